"""OPPO (Kang et al. 2023, "Beyond Reward: Offline Preference-guided Policy Optimization").

* a hindsight encoder ``E(τ) -> z`` (a small transformer over the segment's (s, a) tokens, mean-pooled);
* a contextual policy ``π(a|s, z)`` trained by hindsight information matching: reproduce the segment's actions
  given the segment's own embedding, ``L_HIM = mean ||π(s_t, E(τ)) - a_t||²``;
* a free optimal context ``z*`` pulled toward preferred embeddings and away from dispreferred ones by a triplet
  loss (shared with the encoder, so embeddings organise around preference), plus a norm regulariser on z.

Deployment path: :class:`ContextPolicy` with ``z*`` stored inside as a buffer; ``act(obs)`` / ``forward(obs)`` give
``π(obs, z*)`` deterministically.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from pbrl.agents.offline_data import ObsNorm, OfflineData, OfflineLearner, PairSampler, mlp, obs_stats, tensors


def him_loss(pred: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """Hindsight information matching: ``L = mean_{τ,t} ||π(s_t, E(τ)) - a_t||²`` (OPPO Eq. 4, squared error)."""
    return (pred - act).pow(2).sum(-1).mean()


def triplet_loss(anchor: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, margin: float) -> torch.Tensor:
    """``L = mean max(0, ||a - z+||² - ||a - z-||² + m)`` (OPPO Eq. 6): the anchor nearer the preferred z."""
    return torch.relu((anchor - pos).pow(2).sum(-1) - (anchor - neg).pow(2).sum(-1) + margin).mean()


def norm_loss(z: torch.Tensor) -> torch.Tensor:
    """``L = mean ||z||²``: keeps the context space bounded so the triplet margin stays meaningful."""
    return z.pow(2).sum(-1).mean()


class HindsightEncoder(nn.Module):
    """``E(τ)``: linear token embedding of ``[s_t, a_t]`` + learned positions, transformer encoder, mean pool."""

    def __init__(self, obs_dim: int, act_dim: int, *, z_dim: int, d_model: int, n_layers: int, n_heads: int,
                 max_len: int, obs_mean: np.ndarray, obs_std: np.ndarray) -> None:
        super().__init__()
        self.norm = ObsNorm(obs_mean, obs_std)
        self.embed = nn.Linear(obs_dim + act_dim, d_model)
        self.pos = nn.Parameter(torch.zeros(max_len, d_model))
        layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=2 * d_model, dropout=0.0,
                                           batch_first=True)
        self.body = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, z_dim)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """``(B, L, obs_dim), (B, L, act_dim) -> (B, z_dim)``."""
        tokens = self.embed(torch.cat([self.norm(obs), act], -1)) + self.pos[: obs.shape[1]]
        return self.head(self.body(tokens).mean(1))


class ContextPolicy(nn.Module):
    """``π(a|s, z) = tanh(MLP([norm(s), z]))``; ``z_star`` is the context used at deployment."""

    def __init__(self, obs_dim: int, act_dim: int, *, z_dim: int, hidden: Sequence[int],
                 obs_mean: np.ndarray | None = None, obs_std: np.ndarray | None = None) -> None:
        super().__init__()
        self.config = {"obs_dim": obs_dim, "act_dim": act_dim, "z_dim": z_dim, "hidden": list(hidden)}
        self.norm = ObsNorm(np.zeros(obs_dim) if obs_mean is None else obs_mean,
                            np.ones(obs_dim) if obs_std is None else obs_std)
        self.net = mlp(obs_dim + z_dim, hidden, act_dim)
        self.register_buffer("z_star", torch.zeros(z_dim))

    def with_context(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Action for ``obs`` ``(..., obs_dim)`` under context ``z`` (broadcast over the leading dims)."""
        z = z.expand(*obs.shape[:-1], z.shape[-1])
        return torch.tanh(self.net(torch.cat([self.norm(obs), z], -1)))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic deployment action ``π(obs, z*)``."""
        return self.with_context(obs, self.z_star)

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        return self(torch.as_tensor(np.asarray(obs, np.float32))).numpy()


class OPPOLearner(OfflineLearner):
    """OPPO's joint update of encoder, contextual policy and optimal context ``z*``.

    Args:
        data: the offline dataset.
        z_dim, d_model, n_layers, n_heads, hidden: network sizes.
        margin: triplet margin; pref_weight, norm_weight: weights of the triplet and norm terms.
        lr, batch_pairs, pairing: optimiser and batches.
        rng: batch sampling.
    """

    def __init__(self, data: OfflineData, *, z_dim: int, d_model: int, n_layers: int, n_heads: int,
                 hidden: Sequence[int], margin: float, pref_weight: float, norm_weight: float, lr: float,
                 batch_pairs: int, pairing: str, rng: np.random.Generator) -> None:
        obs_dim, act_dim = data.dims
        mean, std = obs_stats(data.obs)
        self.data, self.margin = data, float(margin)
        self.pref_weight, self.norm_weight = float(pref_weight), float(norm_weight)
        self.sampler = PairSampler(data, batch_pairs=batch_pairs, pairing=pairing, rng=rng)
        self.encoder = HindsightEncoder(obs_dim, act_dim, z_dim=z_dim, d_model=d_model, n_layers=n_layers,
                                        n_heads=n_heads, max_len=data.obs.shape[1], obs_mean=mean, obs_std=std)
        self.policy = ContextPolicy(obs_dim, act_dim, z_dim=z_dim, hidden=hidden, obs_mean=mean, obs_std=std)
        self.z_star = nn.Parameter(torch.zeros(z_dim))
        self.zmod = nn.ParameterDict({"z_star": self.z_star})
        self.modules = {"encoder": self.encoder, "policy": self.policy, "z_star": self.zmod}
        params = [*self.encoder.parameters(), *self.policy.net.parameters(), self.z_star]
        self.optims = {"all": torch.optim.Adam(params, lr=lr)}

    def update(self, step: int) -> dict[str, float]:
        batch = self.sampler.sample()
        obs, acts = tensors(self.data, batch.segs)
        z = self.encoder(obs, acts)  # (U, z_dim), one embedding per unique segment
        him = him_loss(self.policy.with_context(obs, z[:, None, :]), acts)
        p = torch.as_tensor(batch.p)
        strict = p != 0.5
        first_better = (p > 0.5)[strict]
        z1, z2 = z[batch.i1][strict], z[batch.i2][strict]
        pos = torch.where(first_better[:, None], z1, z2)
        neg = torch.where(first_better[:, None], z2, z1)
        anchor = self.z_star.expand_as(pos)
        trip = triplet_loss(anchor, pos, neg, self.margin) if bool(strict.any()) else z.sum() * 0.0
        reg = norm_loss(z) + norm_loss(self.z_star[None])
        loss = him + self.pref_weight * trip + self.norm_weight * reg
        self.optims["all"].zero_grad()
        loss.backward()
        self.optims["all"].step()
        self.policy.z_star.copy_(self.z_star.detach())
        return {"loss": float(loss.detach()), "him_loss": float(him.detach()), "triplet_loss": float(trip.detach())}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.policy.z_star.copy_(self.z_star.detach())

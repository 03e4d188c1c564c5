"""OPPO (Kang et al. 2023, "Beyond Reward: Offline Preference-guided Policy Optimization").

* a hindsight encoder ``E(τ) -> z`` (a small transformer over the segment's (s, a) tokens, mean-pooled);
* a contextual policy ``π(a|s, z)`` trained by hindsight information matching: reproduce the segment's actions
  given the segment's own embedding, ``L_HIM = mean (π(s_t, E(τ)) - a_t)²``;
* a free optimal context ``z*`` and a margin triplet loss on non-squared L2 distances that pulls ``z*`` toward
  preferred embeddings and pushes it from dispreferred ones; the encoder's embeddings are kept near unit norm.

The update follows the reference code (bkkgbkjb/OPPO, ``oppo/scripted/gym/decision_transformer/training/
pdt_trainer.py``): encoder and policy take a step on HIM + triplet (anchor ``z*`` detached) + norm regulariser;
then ``z*`` alone, with its own optimiser, takes a step on the triplet loss against the re-encoded, detached
embeddings. ``z*`` starts at ``N(0, 2²)`` per dimension as there.

Deployment path: :class:`ContextPolicy` with ``z*`` stored inside as a buffer; ``act(obs)`` / ``forward(obs)`` give
``π(obs, z*)`` deterministically.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from pbrl.agents.offline_data import (ObsNorm, OfflineData, OfflineLearner, PairBatchIdx, PairSampler, mlp,
                                      obs_stats, tensors)

#: added to the difference before the norm, as torch's ``TripletMarginLoss`` (the reference's loss) does, so the
#: distance has a gradient when an embedding meets the anchor
TRIPLET_EPS = 1e-6


def him_loss(pred: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """Hindsight information matching: ``L = mean_{τ,t,i} (π(s_t, E(τ))_i - a_{t,i})²`` (OPPO Eq. 4; the
    reference code's ``torch.mean((a_hat - a)**2)``, a mean over action dimensions too)."""
    return (pred - act).pow(2).mean()


def triplet_loss(anchor: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, margin: float) -> torch.Tensor:
    """``L = mean max(0, ||a - z+||₂ - ||a - z-||₂ + m)`` (OPPO Eq. 6; the reference's ``TripletMarginLoss(margin,
    p=2)``): plain, non-squared L2 distances, so the margin is in embedding units."""
    d_pos = torch.linalg.vector_norm(anchor - pos + TRIPLET_EPS, dim=-1)
    d_neg = torch.linalg.vector_norm(anchor - neg + TRIPLET_EPS, dim=-1)
    return torch.relu(d_pos - d_neg + margin).mean()


def norm_loss(z: torch.Tensor) -> torch.Tensor:
    """``L = mean (||z||₂ - 1)²`` over the encoder's embeddings (the reference's ``phi_norm_loss``): keeps them near
    the unit sphere so the triplet margin keeps its meaning; never applied to ``z*``."""
    return (torch.linalg.vector_norm(z, dim=-1) - 1.0).pow(2).mean()


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
    """OPPO's alternating updates of encoder + contextual policy, then of the optimal context ``z*``.

    Loss weights: the reference objective per step is ``HIM_1 + HIM_2 + 0.1 triplet + 0.1 (norm_1 + norm_2)`` over
    two batches of segments (``pref_loss_ratio = phi_norm_loss_ratio = 0.1``); with HIM and the norm term as one
    mean over the batch's segments, the same ratios are ``pref_weight = 0.05``, ``norm_weight = 0.1``. pbrl's
    defaults are ``0.5`` and ``0.01`` (``configs/algo/oppo.yaml``), measured: ``z*`` starts at norm ~2 sqrt(z_dim),
    far outside the unit-norm embeddings, and there the triplet loss has no radial gradient (it depends only on
    the direction to the embeddings), so ``z*`` stays out there; only the encoder can bring preferred embeddings
    to it, which the reference's weak triplet / strong norm weights do not within pbrl's budgets (thousands of
    steps, the reference runs 100k). Drawer-open dense (2200 segments), 3000 steps, seeds 0 / 1, success of 10
    episodes: reference weights 0 / 0%, (0.5, 0.1) 0 / 30%, (0.05, 0.01) 0% (seed 0), (0.5, 0.01) 100 / 60%.
    ``z_lr = 1e-3`` is the reference's ``w_lr``. Kept from pbrl rather than the reference: an MLP contextual
    policy (the reference decodes with a decision transformer), Adam at ``lr`` 3e-4 without weight decay, gradient
    clipping or warm-up (AdamW 1e-4, clip 0.25, 10k warm-up steps there), and batches of labelled pairs from the
    store (the reference labels random pairs by their returns on the fly).

    Args:
        data: the offline dataset.
        z_dim, d_model, n_layers, n_heads, hidden: network sizes.
        margin: triplet margin; pref_weight, norm_weight: weights of the triplet and norm terms in the encoder's
            objective.
        lr: encoder and policy learning rate; z_lr: the learning rate of ``z*`` (its own optimiser).
        batch_pairs, pairing: batches.
        rng: batch sampling and the initial ``z*``.
    """

    def __init__(self, data: OfflineData, *, z_dim: int, d_model: int, n_layers: int, n_heads: int,
                 hidden: Sequence[int], margin: float, pref_weight: float, norm_weight: float, lr: float,
                 batch_pairs: int, pairing: str, rng: np.random.Generator, z_lr: float = 1e-3) -> None:
        obs_dim, act_dim = data.dims
        mean, std = obs_stats(data.obs)
        self.data, self.margin = data, float(margin)
        self.pref_weight, self.norm_weight = float(pref_weight), float(norm_weight)
        self.sampler = PairSampler(data, batch_pairs=batch_pairs, pairing=pairing, rng=rng)
        self.encoder = HindsightEncoder(obs_dim, act_dim, z_dim=z_dim, d_model=d_model, n_layers=n_layers,
                                        n_heads=n_heads, max_len=data.obs.shape[1], obs_mean=mean, obs_std=std)
        self.policy = ContextPolicy(obs_dim, act_dim, z_dim=z_dim, hidden=hidden, obs_mean=mean, obs_std=std)
        self.z_star = nn.Parameter(torch.as_tensor(2.0 * rng.standard_normal(z_dim), dtype=torch.float32))
        self.zmod = nn.ParameterDict({"z_star": self.z_star})
        self.modules = {"encoder": self.encoder, "policy": self.policy, "z_star": self.zmod}
        self.optims = {"model": torch.optim.Adam([*self.encoder.parameters(), *self.policy.net.parameters()], lr=lr),
                       "z_star": torch.optim.Adam([self.z_star], lr=z_lr)}
        self.policy.z_star.copy_(self.z_star.detach())

    def update(self, step: int) -> dict[str, float]:
        batch = self.sampler.sample()
        obs, acts = tensors(self.data, batch.segs)
        model_loss, out = self.model_loss(obs, acts, batch)
        self.optims["model"].zero_grad()
        model_loss.backward()
        self.optims["model"].step()
        with torch.no_grad():  # the reference re-encodes after the encoder's step, detached
            z = self.encoder(obs, acts)
        z_loss = self.z_star_loss(z, batch)
        self.optims["z_star"].zero_grad()
        z_loss.backward()
        self.optims["z_star"].step()
        self.policy.z_star.copy_(self.z_star.detach())
        return {**out, "loss": float(model_loss.detach()), "z_star_loss": float(z_loss.detach())}

    def model_loss(self, obs: torch.Tensor, acts: torch.Tensor,
                   batch: PairBatchIdx) -> tuple[torch.Tensor, dict[str, float]]:
        """Encoder + policy objective ``HIM + pref_weight * triplet(z* detached) + norm_weight * norm(z)``."""
        z = self.encoder(obs, acts)  # (U, z_dim), one embedding per unique segment
        him = him_loss(self.policy.with_context(obs, z[:, None, :]), acts)
        trip = self.triplet(self.z_star.detach(), z, batch)
        reg = norm_loss(z)
        loss = him + self.pref_weight * trip + self.norm_weight * reg
        return loss, {"him_loss": float(him.detach()), "triplet_loss": float(trip.detach()),
                      "norm_loss": float(reg.detach())}

    def z_star_loss(self, z: torch.Tensor, batch: PairBatchIdx) -> torch.Tensor:
        """``z*``'s objective: the triplet loss with ``z*`` as the anchor against fixed (detached) embeddings."""
        return self.triplet(self.z_star, z.detach(), batch)

    def triplet(self, anchor: torch.Tensor, z: torch.Tensor, batch: PairBatchIdx) -> torch.Tensor:
        """Triplet loss over the batch's strict pairs (ties carry no direction and are left out, as in the
        reference, which keeps pairs whose returns differ); 0 (with a graph) when the batch has none."""
        p = torch.as_tensor(batch.p)
        strict = p != 0.5
        if not bool(strict.any()):
            return (z.sum() + anchor.sum()) * 0.0
        first_better = (p > 0.5)[strict][:, None]
        z1, z2 = z[batch.i1][strict], z[batch.i2][strict]
        pos, neg = torch.where(first_better, z1, z2), torch.where(first_better, z2, z1)
        return triplet_loss(anchor.expand_as(pos), pos, neg, self.margin)

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.policy.z_star.copy_(self.z_star.detach())

"""The Gaussian MLP actor shared by CPL and BC, and behaviour cloning (the baseline CPL is compared with).

Deployment path: ``GaussianActor.act(obs) -> action`` (numpy in, numpy out) and ``forward(obs)`` (tensor) both
return the deterministic action ``tanh(mu(norm(obs)))`` with dropout off; observation normalisation is inside
the module, so an exporter only needs ``forward``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from pbrl.agents.offline_data import ObsNorm, OfflineData, OfflineLearner, mlp, obs_stats, tensors
from pbrl.types import PbrlError

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class GaussianActor(nn.Module):
    """pi(a|s) = N(tanh(mu(s)), diag(sigma(s)^2)) over actions in [-1, 1] (MLP with dropout, CPL Sec. 5).

    The mean is squashed but the density is a plain Gaussian, so log pi(a|s) of dataset actions on the box's
    edge stays finite (CPL's scores sum these log-probabilities).

    ``fixed_std`` replaces the learned, state-dependent sigma(s) by a constant: then the likelihood term that
    CPL scores and BC maximises (:meth:`log_likelihood`) is the negative squared error ``-||mu(s) - a||^2 /
    (2 sigma^2)``, exactly ``-||mu(s) - a||^2`` at sigma = 1/sqrt(2) (the deterministic actor of the CPL code,
    ``research/algs/cpl.py``), and the contrastive loss can only separate segments by moving the mean.
    """

    def __init__(self, obs_dim: int, act_dim: int, *, hidden: Sequence[int] = (256, 256), dropout: float = 0.0,
                 obs_mean: np.ndarray | None = None, obs_std: np.ndarray | None = None,
                 fixed_std: float | None = None) -> None:
        super().__init__()
        if fixed_std is not None and not fixed_std > 0:
            raise PbrlError(f"fixed_std: expected a positive number or None, got {fixed_std}")
        self.config = {"obs_dim": obs_dim, "act_dim": act_dim, "hidden": list(hidden), "dropout": dropout,
                       "fixed_std": None if fixed_std is None else float(fixed_std)}
        self.norm = ObsNorm(np.zeros(obs_dim) if obs_mean is None else obs_mean,
                            np.ones(obs_dim) if obs_std is None else obs_std)
        self.fixed_log_std = None if fixed_std is None else math.log(fixed_std)
        self.net = mlp(obs_dim, hidden, act_dim if fixed_std is not None else 2 * act_dim, dropout)

    def dist_params(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(self.norm(obs))
        if self.fixed_log_std is not None:
            return torch.tanh(out), torch.full_like(out, self.fixed_log_std)
        mu, log_std = out.chunk(2, dim=-1)
        return torch.tanh(mu), log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """log pi(a|s), the normalised Gaussian density summed over action dims: ``(..., obs_dim), (..., act_dim)
        -> (...)``."""
        mean, log_std = self.dist_params(obs)
        z = (act - mean) / log_std.exp()
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def log_likelihood(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """The per-step term CPL sums into a segment's score and BC maximises: ``(...,)`` like :meth:`log_prob`.

        With a learned std it is log pi(a|s) (the CPL code scores its Gaussian actors with ``dist.log_prob``).
        With a fixed std it is ``-||mu(s) - a||^2 / (2 sigma^2)``, the density *without* its normalising constant
        ``-d (log sigma + log sqrt(2 pi))``, as the CPL code's fixed-variance actor (``lp = -||mu - a||^2``): the
        conservative bias lambda != 1 would not cancel that constant between two segments and would shift every
        logit by ``-alpha L c (1 - lambda)``. For BC the constant changes nothing (same gradient).
        """
        if self.fixed_log_std is None:
            return self.log_prob(obs, act)
        mean, log_std = self.dist_params(obs)
        return (-0.5 * ((act - mean) / log_std.exp()).pow(2)).sum(-1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic action (the mean); call in eval mode for deployment."""
        return self.dist_params(obs)[0]

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic action for one observation (or a batch), dropout off."""
        was_training = self.training
        self.eval()
        try:
            return self(torch.as_tensor(np.asarray(obs, np.float32))).numpy()
        finally:
            self.train(was_training)


def bc_loss(logp: torch.Tensor) -> torch.Tensor:
    """Behaviour cloning: ``L = -mean_t log pi(a_t|s_t)`` (maximum likelihood on the dataset's actions; with a
    fixed std the MSE of the CPL code's BC, :meth:`GaussianActor.log_likelihood`)."""
    return -logp.mean()


def parse_std(value: object) -> float | None:
    """Config ``algo.std``: ``learned`` (state-dependent sigma, None) or a positive constant."""
    if value is None or str(value) == "learned":
        return None
    try:
        std = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        std = float("nan")
    if not std > 0:
        raise PbrlError(f"algo.std: expected 'learned' or a positive number, got {value!r}")
    return std


def make_actor(data: OfflineData, hidden: Sequence[int], dropout: float, std: object = "learned") -> GaussianActor:
    obs_dim, act_dim = data.dims
    mean, obs_std = obs_stats(data.obs)
    return GaussianActor(obs_dim, act_dim, hidden=hidden, dropout=dropout, obs_mean=mean, obs_std=obs_std,
                         fixed_std=parse_std(std))


class BCLearner(OfflineLearner):
    """BC on every segment of the dataset, or only on the preferred segment of each strict pair.

    Args:
        data: the offline dataset.
        preferred_only: clone only preferred segments ("BC on preferred", CPL's baseline) instead of all data.
        hidden, dropout, lr, batch_segments: actor and optimiser settings.
        rng: batch sampling.
        std: ``learned`` or a fixed action std (see :class:`GaussianActor`).
    """

    def __init__(self, data: OfflineData, *, preferred_only: bool, hidden: Sequence[int], dropout: float,
                 lr: float, batch_segments: int, rng: np.random.Generator, std: object = "learned") -> None:
        self.data, self.rng, self.batch = data, rng, int(batch_segments)
        self.pool = data.preferred() if preferred_only else np.arange(len(data.obs))
        if len(self.pool) == 0:
            raise PbrlError("algo.preferred_only: the dataset has no strict preference (every label is 0.5)")
        self.policy = make_actor(data, hidden, dropout, std)
        self.modules = {"actor": self.policy}
        self.optims = {"actor": torch.optim.Adam(self.policy.parameters(), lr=lr)}

    def update(self, step: int) -> dict[str, float]:
        obs, acts = tensors(self.data, self.rng.choice(self.pool, self.batch))
        loss = bc_loss(self.policy.log_likelihood(obs, acts))
        self.optims["actor"].zero_grad()
        loss.backward()
        self.optims["actor"].step()
        return {"loss": float(loss.detach())}

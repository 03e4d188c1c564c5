"""Gaussian reward model: PEARL's Robust Reward Learning (RRL; Liu et al. 2023).

Each step's reward is a random variable ``r(s, a) ~ N(mu(s, a), sigma(s, a)^2)``. Training draws
reparameterised samples of the segment returns, puts them through the Bradley-Terry likelihood, and
adds ``kl_weight * KL(N(mu, sigma^2) || N(0, 1))`` per step so that the variance does not collapse
on pairs the labels cannot explain (noisy or soft labels are absorbed by sigma instead of bending mu).

Steps are independent given (s, a), so a segment return is ``R ~ N(sum_t mu_t, sum_t sigma_t^2)``
exactly; we sample ``R`` at segment level (one normal draw per sample and segment instead of ``L``):
the same distribution and the same reparameterised gradient, ``L`` times fewer random numbers.

With ``members = M > 1`` it is an ensemble of M such models (each its own data order, as the ensemble's
members): the prediction is the mixture, mean ``mean_m mu_m`` and variance ``mean_m sigma_m^2 + var_m mu_m``,
so the std holds both the label noise RRL models (sigma) and the disagreement of an ensemble (Lakshminarayanan
et al. 2017, "Simple and Scalable Predictive Uncertainty Estimation using Deep Ensembles"). ``members = 1`` is
plain RRL.

The 2M networks (M mean, M log-std) are independent MLPs stacked into one
:class:`~pbrl.rewards.ensemble.BatchedMLP`, so they run in one batched forward pass and reuse the
ensemble's input validation, chunked prediction and checkpointing.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from pbrl.rewards.ensemble import EnsembleReward
from pbrl.rewards.losses import bradley_terry_loss, gaussian_kl_standard_normal, preference_accuracy
from pbrl.types import PairBatch, PbrlError

#: log sigma range; the tanh output of the std network is mapped affinely onto it (as SAC's policy).
LOG_STD_MIN: float = -5.0
LOG_STD_MAX: float = 1.0


class GaussianReward(EnsembleReward):
    """Per-step Gaussian reward trained with sampled Bradley-Terry + KL to N(0, 1) (PEARL RRL).

    Args:
        obs_dim, act_dim: input sizes.
        hidden: hidden layer sizes of both the mean and the log-std network.
        members: Gaussian models in the ensemble (1 = plain RRL).
        kl_weight: weight of the per-step KL(N(mu, sigma^2) || N(0, 1)) regulariser.
        n_samples: reparameterised return samples per pair and update (training).
        eval_samples: return samples given to query selection by :meth:`segment_return_samples`.
        lr, batch_size, weight_decay, label_noise, seed, device: as :class:`EnsembleReward`.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        *,
        hidden: Sequence[int] = (256, 256, 256),
        members: int = 1,
        kl_weight: float = 0.01,
        n_samples: int = 8,
        eval_samples: int = 16,
        lr: float = 3e-4,
        batch_size: int = 128,
        weight_decay: float = 0.0,
        label_noise: float = 0.0,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        if not (math.isfinite(float(kl_weight)) and float(kl_weight) >= 0):
            raise PbrlError(f"GaussianReward.kl_weight: expected a finite number >= 0, got {kl_weight}")
        for name, value in (("members", members), ("n_samples", n_samples), ("eval_samples", eval_samples)):
            if int(value) < 1:
                raise PbrlError(f"GaussianReward.{name}: expected a positive integer, got {value}")
        self.members = int(members)
        # 2M stacked networks: rows [0, M) are the mean networks, rows [M, 2M) the log-std networks.
        super().__init__(obs_dim, act_dim, n_members=2 * self.members, hidden=hidden, lr=lr, batch_size=batch_size,
                         weight_decay=weight_decay, bootstrap="permutation", label_noise=label_noise, seed=seed,
                         device=device)
        self.kl_weight = float(kl_weight)
        self.n_samples, self.eval_samples = int(n_samples), int(eval_samples)
        self._eval_seed = int(seed) + 1

    # ------------------------------------------------------------------ the distribution
    def _split(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, log_std)``, each ``(M, ...)``, from the stacked network output ``(2M, ...)``."""
        log_std = LOG_STD_MIN + 0.5 * (out[self.members:] + 1.0) * (LOG_STD_MAX - LOG_STD_MIN)
        return out[:self.members], log_std

    def _sample_indices(self, n: int) -> torch.Tensor:
        """One data order per Gaussian model; its mean and log-std networks share it (rows m and M + m)."""
        order = torch.argsort(torch.rand(self.members, n, generator=self._gen), dim=1)
        return torch.cat([order, order], dim=0).to(self.device)

    def _batch_loss(self, data: dict[str, torch.Tensor], idx: torch.Tensor):
        """Sampled BT loss on return samples + KL term; also the mean return gap (for accuracy).

        ``idx`` is ``(2M, B)``: model m's pairs in row m (its mean network) and again in row M + m (log-std).
        """
        m, b = self.members, idx.shape[1]
        sel = idx[:m]
        length = data["obs1"].shape[1]
        sa1 = torch.cat([data["obs1"][sel], data["act1"][sel]], dim=-1)  # (M, B, L, in)
        sa2 = torch.cat([data["obs2"][sel], data["act2"][sel]], dim=-1)
        x = torch.cat([sa1, sa2], dim=1).reshape(m, 2 * b * length, -1)
        mu, log_std = self._split(self.net(torch.cat([x, x], dim=0)).reshape(2 * m, 2 * b, length))
        ret_mu = mu.sum(-1)  # (M, 2B)
        ret_std = torch.exp(2.0 * log_std).sum(-1).sqrt()
        eps = torch.randn(self.n_samples, m, 2 * b, generator=self._gen).to(self.device)
        ret = ret_mu + ret_std * eps  # (S, M, 2B) reparameterised segment returns
        p = data["p"][sel]
        bt = bradley_terry_loss(ret[..., :b], ret[..., b:], p, data["weight"][sel], self.label_noise)
        kl = gaussian_kl_standard_normal(mu, log_std).mean()
        loss = bt + self.kl_weight * kl
        # Sum over models, as the ensemble sums member losses: each model's gradient is its own loss's.
        return loss * m, loss, (ret_mu[:, :b] - ret_mu[:, b:]).detach(), p

    # ------------------------------------------------------------------ inference
    def _mu_sigma(self, obs: np.ndarray, act: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-model ``(mu, sigma)``, each ``(M, *lead)``."""
        mu, log_std = self._split(self._member_rewards(obs, act))  # (2M, *lead), chunked, no grad
        return mu, torch.exp(log_std)

    def predict(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        """Mean reward (of the mixture over models), shape ``obs.shape[:-1]``, float32."""
        return self._mu_sigma(obs, act)[0].mean(0).numpy()

    def predict_std(self, obs: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` of the per-step reward mixture, each ``obs.shape[:-1]``: ``sigma`` for one model."""
        mu, sigma = self._mu_sigma(obs, act)
        var = sigma.pow(2).mean(0) + mu.var(0, correction=0)
        return mu.mean(0).numpy(), var.sqrt().numpy()

    def segment_return_samples(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        """``(eval_samples, n)`` samples of ``R ~ N(sum mu, sum sigma^2)`` for ``(n, L, *)`` inputs.

        Sample ``k`` comes from model ``k mod M`` (the mixture, in equal shares). Drawn with a generator
        reseeded on every call, so query scores are reproducible and two calls on the same segments agree
        (disagreement is then a property of the model, not noise).
        """
        if np.ndim(obs) != 3:
            raise PbrlError(
                f"segment_return_samples: expected obs of shape (n, L, obs_dim={self.obs_dim}), got {np.shape(obs)}"
            )
        mu, sigma = self._mu_sigma(obs, act)
        ret_mu, ret_std = mu.sum(-1), sigma.pow(2).sum(-1).sqrt()  # (M, n)
        gen = torch.Generator().manual_seed(self._eval_seed)
        eps = torch.randn(self.eval_samples, ret_mu.shape[1], generator=gen)
        model = torch.arange(self.eval_samples) % self.members
        return (ret_mu[model] + ret_std[model] * eps).numpy()

    def segment_return_mean(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        """Expected segment returns ``(n,)`` (what accuracy and evaluation rank pairs by)."""
        return self._mu_sigma(obs, act)[0].mean(0).sum(-1).numpy()

    def evaluate(self, pairs: PairBatch) -> dict[str, float]:
        """Held-out ``{"loss", "accuracy"}``: BT loss over return samples; accuracy of the mean returns."""
        out = super().evaluate(pairs)
        r1, r2 = self.segment_return_mean(pairs.obs1, pairs.act1), self.segment_return_mean(pairs.obs2, pairs.act2)
        return {"loss": out["loss"], "accuracy": preference_accuracy(r1, r2, np.asarray(pairs.p, np.float32))}

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "kind": "gaussian", "members": self.members, "kl_weight": self.kl_weight}

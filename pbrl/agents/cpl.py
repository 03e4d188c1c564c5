"""Contrastive Preference Learning (Hejna et al. 2024, "Contrastive Preference Learning: Learning from Human
Feedback without RL"): the policy's own log-likelihood is the segment's (regret-based) score.

Training: optional BC warm-up (``bc_steps``; the optimiser is reset after it, as in the CPL code), then the
conservative contrastive loss on labelled pairs plus an optional BC regulariser. The deployable module is the
:class:`~pbrl.agents.bc.GaussianActor` (``act(obs)`` deterministic).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pbrl.agents.bc import bc_loss, make_actor
from pbrl.agents.offline_data import OfflineData, OfflineLearner, PairSampler, tensors
from pbrl.types import PbrlError


def cpl_scores(logp: torch.Tensor, alpha: float) -> torch.Tensor:
    """Segment score ``S(σ) = α Σ_t log π(a_t|s_t)`` (CPL Eq. 5 with γ = 1): ``(B, L) -> (B,)``."""
    return alpha * logp.sum(-1)


def cpl_loss(s1: torch.Tensor, s2: torch.Tensor, p: torch.Tensor, bias: float) -> torch.Tensor:
    """Conservative CPL loss, labels ``p = P(first preferred)`` (ties as 0.5 mix both directions).

    ``L = -mean[ p log σ(S1 - λ S2) + (1 - p) log σ(S2 - λ S1) ]`` with the bias ``λ ∈ (0, 1]`` on the
    dispreferred score (CPL Sec. 4.3, "conservative" variant; λ = 1 is the plain Bradley-Terry form).
    """
    if not 0.0 < bias <= 1.0:
        raise PbrlError(f"algo.bias: expected lambda in (0, 1], got {bias}")
    return -(p * F.logsigmoid(s1 - bias * s2) + (1.0 - p) * F.logsigmoid(s2 - bias * s1)).mean()


class CPLLearner(OfflineLearner):
    """CPL on an :class:`OfflineData` set.

    Args:
        data: the offline dataset.
        alpha: temperature of the score.
        bias: conservative bias λ on the dispreferred score.
        bc_weight: weight of the BC regulariser ``-mean log π`` over the batch's segments (0 = off).
        bc_steps: BC warm-up steps before the contrastive loss starts.
        pairing: ``sparse`` (uniform pairs) or ``dense`` (whole comparison groups, each segment scored once).
        hidden, dropout, lr, batch_pairs: actor/optimiser settings.
        rng: batch sampling.
    """

    def __init__(self, data: OfflineData, *, alpha: float, bias: float, bc_weight: float, bc_steps: int,
                 pairing: str, hidden: Sequence[int], dropout: float, lr: float, batch_pairs: int,
                 rng: np.random.Generator) -> None:
        self.data, self.rng, self.lr = data, rng, float(lr)
        self.alpha, self.bias, self.bc_weight, self.bc_steps = float(alpha), float(bias), float(bc_weight), int(bc_steps)
        cpl_loss(torch.zeros(1), torch.zeros(1), torch.zeros(1), self.bias)  # validate lambda early
        self.sampler = PairSampler(data, batch_pairs=batch_pairs, pairing=pairing, rng=rng)
        self.policy = make_actor(data, hidden, dropout)
        self.modules = {"actor": self.policy}
        self.optims = {"actor": torch.optim.Adam(self.policy.parameters(), lr=self.lr)}

    def update(self, step: int) -> dict[str, float]:
        if step == self.bc_steps and step > 0:  # fresh optimiser state for the contrastive phase (CPL code)
            self.optims["actor"] = torch.optim.Adam(self.policy.parameters(), lr=self.lr)
        batch = self.sampler.sample()
        obs, acts = tensors(self.data, batch.segs)
        logp = self.policy.log_prob(obs, acts)  # (U, L)
        bc = bc_loss(logp)
        out = {"bc_loss": float(bc.detach())}
        if step < self.bc_steps:
            loss = bc
        else:
            scores = cpl_scores(logp, self.alpha)
            s1, s2 = scores[batch.i1], scores[batch.i2]
            p = torch.as_tensor(batch.p)
            loss = cpl_loss(s1, s2, p, self.bias) + self.bc_weight * bc
            strict = p != 0.5
            out["pref_acc"] = float(((s1 > s2) == (p > 0.5))[strict].float().mean()) if bool(strict.any()) else 0.5
        self.optims["actor"].zero_grad()
        loss.backward()
        self.optims["actor"].step()
        out["loss"] = float(loss.detach())
        return out

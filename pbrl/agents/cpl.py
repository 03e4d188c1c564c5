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
from pbrl.agents.offline_data import OfflineData, OfflineLearner, PairBatchIdx, PairSampler, tensors
from pbrl.types import PbrlError


def cpl_scores(logp: torch.Tensor, alpha: float) -> torch.Tensor:
    """Segment score ``S(σ) = α Σ_t log π(a_t|s_t)`` (CPL Eq. 5 with γ = 1; ``segment_adv`` in the CPL code's
    ``_get_cpl_loss``): ``(B, L) -> (B,)``."""
    return alpha * logp.sum(-1)


def cpl_loss(s1: torch.Tensor, s2: torch.Tensor, p: torch.Tensor, bias: float) -> torch.Tensor:
    """Conservative CPL loss, labels ``p = P(first preferred)`` (ties as 0.5 mix both directions).

    ``L = -mean[ p log σ(S1 - λ S2) + (1 - p) log σ(S2 - λ S1) ]`` with the bias ``λ ∈ (0, 1]`` on the
    dispreferred score (CPL Sec. 4.3, "conservative" variant; λ = 1 is the plain Bradley-Terry form). Follows the
    CPL code's ``biased_bce_with_logits`` (jhejna/cpl, ``research/algs/cpl.py``), whose label ``y = 1`` means the
    *second* segment is preferred, i.e. ``y = 1 - p``.
    """
    if not 0.0 < bias <= 1.0:
        raise PbrlError(f"algo.bias: expected lambda in (0, 1], got {bias}")
    return -(p * F.logsigmoid(s1 - bias * s2) + (1.0 - p) * F.logsigmoid(s2 - bias * s1)).mean()


BC_DATA = ("all", "preferred")


def preference_weights(n_segs: int, i1: np.ndarray, i2: np.ndarray, p: np.ndarray) -> torch.Tensor:
    """How often each batch segment was preferred: ``w[i1] += p``, ``w[i2] += 1 - p`` (a tie gives 0.5 each).

    Weighting the BC term by this clones the winners of the batch's pairs only (CPL's ``bc_data`` = positive
    segments), so the regulariser does not pull the policy toward the dispreferred behaviour.
    """
    w = np.zeros(n_segs, np.float32)
    np.add.at(w, i1, p)
    np.add.at(w, i2, 1.0 - p)
    return torch.as_tensor(w)


class CPLLearner(OfflineLearner):
    """CPL on an :class:`OfflineData` set.

    Args:
        data: the offline dataset.
        alpha: temperature of the score.
        bias: conservative bias λ on the dispreferred score.
        bc_weight: weight of the BC regulariser ``-mean log π`` over the batch's segments (0 = off).
        bc_steps: BC warm-up steps before the contrastive loss starts.
        bc_data: segments the BC warm-up and regulariser clone: ``all`` scored segments, or only the
            ``preferred`` ends of the batch's pairs (weighted by preference, see :func:`preference_weights`).
        pairing: ``sparse`` (uniform pairs) or ``dense`` (whole comparison groups, each segment scored once).
        hidden, dropout, lr, batch_pairs: actor/optimiser settings.
        rng: batch sampling.
        std: ``learned`` or a fixed action std (see :class:`~pbrl.agents.bc.GaussianActor`).
    """

    def __init__(self, data: OfflineData, *, alpha: float, bias: float, bc_weight: float, bc_steps: int,
                 pairing: str, hidden: Sequence[int], dropout: float, lr: float, batch_pairs: int,
                 rng: np.random.Generator, bc_data: str = "all", std: object = "learned") -> None:
        if bc_data not in BC_DATA:
            raise PbrlError(f"algo.bc_data: expected one of {BC_DATA}, got {bc_data!r}")
        self.data, self.rng, self.lr, self.bc_data = data, rng, float(lr), bc_data
        self.alpha, self.bias, self.bc_weight, self.bc_steps = float(alpha), float(bias), float(bc_weight), int(bc_steps)
        cpl_loss(torch.zeros(1), torch.zeros(1), torch.zeros(1), self.bias)  # validate lambda early
        self.sampler = PairSampler(data, batch_pairs=batch_pairs, pairing=pairing, rng=rng)
        self.policy = make_actor(data, hidden, dropout, std)
        self.modules = {"actor": self.policy}
        self.optims = {"actor": torch.optim.Adam(self.policy.parameters(), lr=self.lr)}

    def update(self, step: int) -> dict[str, float]:
        if step == self.bc_steps and step > 0:  # fresh optimiser state for the contrastive phase (CPL code)
            self.optims["actor"] = torch.optim.Adam(self.policy.parameters(), lr=self.lr)
        loss, out = self.loss(self.sampler.sample(), contrastive=step >= self.bc_steps)
        self.optims["actor"].zero_grad()
        loss.backward()
        self.optims["actor"].step()
        out["loss"] = float(loss.detach())
        return out

    def loss(self, batch: PairBatchIdx, *, contrastive: bool) -> tuple[torch.Tensor, dict[str, float]]:
        """The objective on one batch: BC alone (warm-up) or CPL + ``bc_weight`` * BC, and its metrics.

        The per-step term is :meth:`~pbrl.agents.bc.GaussianActor.log_likelihood` (``-||mu(s) - a||^2`` for the
        fixed-std actor, as the CPL code's ``_get_cpl_loss``).
        """
        obs, acts = tensors(self.data, batch.segs)
        logp = self.policy.log_likelihood(obs, acts)  # (U, L)
        bc = self.bc_term(logp, batch)
        out = {"bc_loss": float(bc.detach())}
        if not contrastive:
            return bc, out
        scores = cpl_scores(logp, self.alpha)
        s1, s2 = scores[batch.i1], scores[batch.i2]
        p = torch.as_tensor(batch.p)
        strict = p != 0.5
        out["pref_acc"] = float(((s1 > s2) == (p > 0.5))[strict].float().mean()) if bool(strict.any()) else 0.5
        return cpl_loss(s1, s2, p, self.bias) + self.bc_weight * bc, out

    def bc_term(self, logp: torch.Tensor, batch: PairBatchIdx) -> torch.Tensor:
        """``-mean log pi`` over all scored segments, or weighted by how often each was preferred."""
        if self.bc_data == "all":
            return bc_loss(logp)
        w = preference_weights(len(batch.segs), batch.i1, batch.i2, np.asarray(batch.p, np.float32))
        return -(w[:, None] * logp).sum() / (w.sum() * logp.shape[1])

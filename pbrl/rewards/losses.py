"""Reward-learning losses as pure functions (no state, no optimiser, no model).

All preference losses use the pbrl label convention ``p = P(first segment preferred)``.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from pbrl.types import PbrlError

ArrayLike = Union[torch.Tensor, np.ndarray, float]


def _as_tensor(x: ArrayLike, like: Optional[torch.Tensor] = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x if like is None else x.to(device=like.device, dtype=like.dtype)
    t = torch.as_tensor(np.asarray(x, dtype=np.float32))
    return t if like is None else t.to(device=like.device, dtype=like.dtype)


def bradley_terry_loss(
    ret1: torch.Tensor,
    ret2: torch.Tensor,
    p: ArrayLike,
    weight: Optional[ArrayLike] = None,
    label_noise: float = 0.0,
) -> torch.Tensor:
    """Bradley-Terry cross-entropy over summed segment rewards.

    Christiano et al. 2017 ("Deep RL from Human Preferences"), PEBBLE (Lee et al. 2021, Eq. 2-3)::

        P(1 > 2) = exp(R1) / (exp(R1) + exp(R2)) = sigmoid(R1 - R2),   R_i = sum_t r(s_t^i, a_t^i)
        loss     = -sum_j w_j [p_j log sigmoid(R1_j - R2_j) + (1 - p_j) log sigmoid(R2_j - R1_j)] / sum_j w_j

    ``p`` is a soft target (0.5 for ties, as in PEBBLE's ``train_soft_reward``). Computed with
    ``binary_cross_entropy_with_logits`` so large return gaps do not overflow.

    With ``label_noise = eps > 0`` the likelihood assumes the annotator answers at random with probability eps
    (B-Pref's "mistake" teacher, a human's slips): ``P(1 > 2) = eps / 2 + (1 - eps) sigmoid(R1 - R2)``. A label
    that contradicts a confident model then costs at most ``-log(eps / 2)``, so a few wrong labels cannot
    drag the reward toward them (the noise-robust Bradley-Terry form, cf. Mnih & Hinton 2012 on noisy labels).

    Args:
        ret1, ret2: ``(..., n)`` segment returns; leading axes (e.g. ensemble members) are averaged.
        p: ``(n,)`` or ``(..., n)`` labels, P(first preferred).
        weight: optional ``(n,)`` or ``(..., n)`` per-label weights; a weighted mean is taken over the
            last axis.
        label_noise: assumed share of random answers, in [0, 1); 0 is the plain Bradley-Terry loss.

    Returns:
        Scalar tensor: the mean over leading axes of the weighted mean over pairs.
    """
    logits = ret1 - ret2
    target = _as_tensor(p, logits).expand_as(logits)
    if label_noise:
        per_pair = _noisy_bt(logits, target, float(label_noise))
    else:
        per_pair = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if weight is None:
        return per_pair.mean()
    w = _as_tensor(weight, logits).expand_as(logits)
    per_row = (per_pair * w).sum(dim=-1) / w.sum(dim=-1).clamp_min(1e-12)
    return per_row.mean()


def check_label_noise(eps: float, where: str) -> float:
    """``eps`` as a float in [0, 1), or a one-line error naming ``where``."""
    if not (math.isfinite(float(eps)) and 0.0 <= float(eps) < 1.0):
        raise PbrlError(f"{where}: expected a share of random answers in [0, 1), got {eps}")
    return float(eps)


def _noisy_bt(logits: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    """Per-pair ``-[p log P1 + (1 - p) log P2]`` with ``P = eps / 2 + (1 - eps) sigmoid(+-logits)`` (log space)."""
    check_label_noise(eps, "label_noise")
    floor = torch.full_like(logits, math.log(eps / 2.0))
    keep = math.log1p(-eps)
    log_p1 = torch.logaddexp(floor, keep + F.logsigmoid(logits))
    log_p2 = torch.logaddexp(floor, keep + F.logsigmoid(-logits))
    return -(target * log_p1 + (1.0 - target) * log_p2)


def preference_accuracy(ret1: ArrayLike, ret2: ArrayLike, p: ArrayLike) -> float:
    """Fraction of strict labels (``p != 0.5``) whose direction ``sign(R1 - R2)`` agrees.

    A predicted exact tie counts as wrong. Leading axes of the returns (ensemble members) are pooled.

    Returns:
        Accuracy in [0, 1], or NaN when there is no strict label.
    """
    r1 = _to_numpy(ret1)
    r2 = _to_numpy(ret2)
    labels = np.broadcast_to(_to_numpy(p), np.broadcast_shapes(r1.shape, r2.shape))
    strict = labels != 0.5
    if not strict.any():
        return math.nan
    diff = (r1 - r2)[strict]
    first = labels[strict] > 0.5
    correct = np.where(first, diff > 0, diff < 0)
    return float(correct.mean())


def heldout_metrics(ret1: torch.Tensor, ret2: torch.Tensor, p: ArrayLike, weight: ArrayLike) -> dict[str, float]:
    """``{"loss", "accuracy"}`` on held-out pairs from ``(K, n)`` member/sample returns (or scores).

    ``loss``: :func:`bradley_terry_loss` averaged over the K rows; ``accuracy``: :func:`preference_accuracy` of
    the K-mean returns.
    """
    target = _as_tensor(p, ret1)
    loss = bradley_terry_loss(ret1, ret2, target, _as_tensor(weight, ret1))
    return {"loss": float(loss), "accuracy": preference_accuracy(ret1.mean(0), ret2.mean(0), target)}


def gaussian_kl_standard_normal(mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(N(mu, sigma^2) || N(0, 1)), with sigma = exp(log_std).

    The regulariser of PEARL's Gaussian reward model (RRL) and of VAEs (Kingma & Welling 2014)::

        KL = 0.5 * (sigma^2 + mu^2 - 1) - log sigma
    """
    return 0.5 * (torch.exp(2.0 * log_std) + mu.pow(2) - 1.0) - log_std


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)

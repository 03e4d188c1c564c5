"""How well a learned reward agrees with the true one (evaluation only; the agent never sees these)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pbrl.data.trajectory import Trajectory, random_windows
from pbrl.types import RewardModel


def pair_accuracy(r1: np.ndarray, r2: np.ndarray, p: np.ndarray) -> float:
    """Share of strict labels (p != 0.5) whose preferred side has the larger predicted return."""
    strict = p != 0.5
    if not strict.any():
        return float("nan")
    return float(np.mean((r1[strict] > r2[strict]) == (p[strict] > 0.5)))


def reward_alignment(model: RewardModel, episodes: Sequence[Trajectory], *, segment_length: int,
                     rng: np.random.Generator, n_pairs: int = 500) -> dict[str, float]:
    """Agreement of ``model`` with the true reward on recent episodes.

    Returns ``reward_accuracy`` (oracle-labelled random segment pairs, true-return order vs predicted
    order), ``reward_corr_segment`` (Pearson r of segment returns) and ``reward_corr_step``.
    """
    pool = [ep for ep in episodes if len(ep) >= segment_length]
    nan = {"reward_accuracy": float("nan"), "reward_corr_segment": float("nan"), "reward_corr_step": float("nan")}
    if not pool:
        return nan
    windows = random_windows([len(ep) for ep in pool], 2 * n_pairs, segment_length, rng)
    obs = np.stack([pool[i].obs[s:s + segment_length] for i, s in windows])
    act = np.stack([pool[i].acts[s:s + segment_length] for i, s in windows])
    true = np.stack([pool[i].rewards[s:s + segment_length] for i, s in windows])
    pred = model.predict(obs, act)
    pr, tr = pred.sum(-1), true.sum(-1)
    p = np.where(tr[:n_pairs] > tr[n_pairs:], 1.0, np.where(tr[:n_pairs] < tr[n_pairs:], 0.0, 0.5))
    return {
        "reward_accuracy": pair_accuracy(pr[:n_pairs], pr[n_pairs:], p),
        "reward_corr_segment": _pearson(pr, tr),
        "reward_corr_step": _pearson(pred.reshape(-1), true.reshape(-1)),
    }


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if x.std() < 1e-12 or y.std() < 1e-12:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])

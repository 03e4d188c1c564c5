"""Which segment pairs to ask about (PEBBLE, Lee et al. 2021, Sec. 4.2; B-Pref Sec. 5).

``uniform`` draws random pairs. The uncertainty strategies draw ``n_queries * oversample`` random
candidate pairs, score each with the reward model's per-member preference probabilities
``P_k(first) = sigmoid(R1_k - R2_k)``, and keep the ``n_queries`` highest-scoring pairs:

- ``disagreement``: standard deviation of ``P_k`` over ensemble members;
- ``entropy``: binary entropy ``H(P̄)`` of the mean probability ``P̄ = mean_k P_k``.

B-Pref's code scores ``entropy`` by the *mean of the members' entropies* instead; the entropy of the
mean adds the members' disagreement to it (total predictive uncertainty).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from pbrl.data.trajectory import Segment
from pbrl.types import PbrlError, RewardModel

STRATEGIES: tuple[str, ...] = ("uniform", "disagreement", "entropy")


def select_pairs(
    strategy: str,
    candidates: Sequence[Segment],
    n_queries: int,
    *,
    rng: np.random.Generator,
    reward_model: Optional[RewardModel] = None,
    oversample: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Choose ``n_queries`` pairs of candidate segments to label.

    Returns:
        ``(first, second)`` int64 index arrays into ``candidates``, each ``(n_queries,)``; a segment is
        never paired with itself (a segment may appear in several pairs, as in B-Pref).
    """
    if strategy not in STRATEGIES:
        raise PbrlError(f"query strategy {strategy!r} is unknown; valid strategies: {', '.join(STRATEGIES)}")
    if len(candidates) < 2:
        raise PbrlError(f"query selection: need at least 2 candidate segments, got {len(candidates)}")
    if n_queries < 0:
        raise PbrlError(f"query selection: n_queries must be >= 0, got {n_queries}")
    if strategy != "uniform" and reward_model is None:
        raise PbrlError(f"query strategy {strategy!r} needs a reward model (use 'uniform' before the first fit)")
    if oversample < 1:
        raise PbrlError(f"query selection: oversample must be >= 1, got {oversample}")
    if strategy == "uniform" or n_queries == 0:
        return random_pairs(len(candidates), n_queries, rng)
    first, second = random_pairs(len(candidates), n_queries * oversample, rng)
    probs = member_preference_probs(reward_model, candidates, first, second)
    score = probs.std(axis=0) if strategy == "disagreement" else binary_entropy(probs.mean(axis=0))
    keep = np.argsort(-score, kind="stable")[:n_queries]
    return first[keep], second[keep]


def random_pairs(n_candidates: int, n_pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random ordered pairs ``(i, j)`` with ``i != j``."""
    first = rng.integers(0, n_candidates, size=n_pairs, dtype=np.int64)
    # An offset in [1, n) modulo n gives a uniformly random *other* index.
    second = (first + rng.integers(1, n_candidates, size=n_pairs, dtype=np.int64)) % n_candidates
    return first, second


def member_preference_probs(
    model: RewardModel, candidates: Sequence[Segment], first: np.ndarray, second: np.ndarray
) -> np.ndarray:
    """``(K, n)`` per-member P(first preferred) = sigmoid(R1_k - R2_k) for the pairs ``(first, second)``."""
    used = np.unique(np.concatenate([first, second]))
    returns = segment_returns(model, [candidates[i] for i in used])  # (K, len(used))
    col = np.searchsorted(used, first), np.searchsorted(used, second)
    diff = returns[:, col[0]] - returns[:, col[1]]
    return 0.5 * (1.0 + np.tanh(0.5 * diff))  # sigmoid without overflow


def segment_returns(model: RewardModel, segments: Sequence[Segment]) -> np.ndarray:
    """``(K, n)`` per-member returns; segments are stacked per length so mixed lengths work."""
    if not segments:
        raise PbrlError("segment_returns: no segments to score")
    lengths = np.array([len(s) for s in segments])
    out: Optional[np.ndarray] = None
    for length in np.unique(lengths):
        idx = np.flatnonzero(lengths == length)
        obs = np.stack([segments[i].obs for i in idx]).astype(np.float32)
        act = np.stack([segments[i].acts for i in idx]).astype(np.float32)
        r = np.asarray(model.segment_return_samples(obs, act), dtype=np.float64)
        if r.ndim != 2 or r.shape[1] != len(idx):
            raise PbrlError(
                f"reward model segment_return_samples returned shape {r.shape}; expected (K, {len(idx)})"
            )
        if out is None:
            out = np.empty((r.shape[0], len(segments)))
        out[:, idx] = r
    return out  # type: ignore[return-value]  # set on the first (non-empty) length group


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """``H(p) = -p log p - (1-p) log(1-p)`` in nats, 0 at p in {0, 1}."""
    p = np.clip(p, 1e-12, 1.0 - 1e-12)
    return -(p * np.log(p) + (1.0 - p) * np.log1p(-p))

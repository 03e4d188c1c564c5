"""Aggregate scores over seeds with rliable (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice").

Point estimates are the interquartile mean (IQM: the mean of the middle 50% of runs, robust to an outlier
seed) and the mean; intervals are 95% percentile stratified-bootstrap confidence intervals over runs. With
one task per group the stratification has one stratum, i.e. a bootstrap over seeds. The probability of
improvement P(X > Y) is the Mann-Whitney U statistic normalised to [0, 1] (ties count half), with its own
bootstrap interval over the runs of both groups.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from typing import Callable, Iterator, Optional, Sequence

import numpy as np


def _rliable():
    try:
        from rliable import library, metrics
    except ImportError as exc:
        raise ImportError("pbrl report needs rliable: pip install 'pbrl[report]'") from exc
    # rliable hands arch a RandomState (seeded, reproducible); arch warns that it prefers a Generator.
    warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)
    return library, metrics


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% bootstrap interval."""

    value: float
    low: float
    high: float


@dataclasses.dataclass(frozen=True)
class FinalScores:
    """One group's final scores: per-seed values, IQM and mean with CIs."""

    values: tuple[float, ...]
    seeds: tuple[object, ...]
    iqm: Estimate
    mean: Estimate

    @property
    def n(self) -> int:
        return len(self.values)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed NumPy's global RNG for the block and restore it after.

    rliable 1.2's bootstraps draw their resampling indices with ``np.random.choice`` (the ``random_state``
    they take only reaches arch), so the global RNG is what makes an interval reproducible.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _interval(scores: np.ndarray, func: Callable[[np.ndarray], np.ndarray], reps: int, seed: int
              ) -> tuple[np.ndarray, np.ndarray]:
    library, _ = _rliable()
    with seeded(seed):
        point, ci = library.get_interval_estimates({"x": scores}, func, reps=reps,
                                                   random_state=np.random.RandomState(seed))
    return np.asarray(point["x"]), np.asarray(ci["x"])


def final_scores(values: Sequence[float], seeds: Sequence[object], *, reps: int = 2000, seed: int = 0
                 ) -> FinalScores:
    """IQM and mean of per-run final scores with 95% stratified-bootstrap CIs (``reps`` resamples)."""
    _, metrics = _rliable()
    scores = np.asarray(values, dtype=float).reshape(-1, 1)  # (runs, tasks=1), rliable's layout
    out = []
    for agg in (metrics.aggregate_iqm, metrics.aggregate_mean):
        point, ci = _interval(scores, lambda x, agg=agg: np.array([agg(x)]), reps, seed)
        out.append(Estimate(float(point[0]), float(ci[0, 0]), float(ci[1, 0])))
    return FinalScores(tuple(float(v) for v in values), tuple(seeds), *out)


def mean_over_tasks(scores: np.ndarray, *, reps: int = 2000, seed: int = 0) -> Estimate:
    """Mean of a ``(runs, tasks)`` score matrix with its 95% stratified-bootstrap CI: every resample draws the runs
    of each task with replacement, within that task (rliable's ``StratifiedBootstrap``); every task weighs the same.
    With one run per task the interval is the point (nothing to resample)."""
    _, metrics = _rliable()
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.size == 0:
        raise ValueError(f"mean_over_tasks: expected a non-empty (runs, tasks) matrix, got shape {scores.shape}")
    point, ci = _interval(scores, lambda x: np.array([metrics.aggregate_mean(x)]), reps, seed)
    return Estimate(float(point[0]), float(ci[0, 0]), float(ci[1, 0]))


def curve_scores(curves: np.ndarray, *, reps: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """IQM at each evaluation point of ``curves`` (runs, points) and its 95% CI band, shape (2, points)."""
    _, metrics = _rliable()
    scores = np.asarray(curves, dtype=float)[:, None, :]  # (runs, tasks=1, points)

    def iqm_per_point(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x[..., t]) for t in range(x.shape[-1])])

    point, ci = _interval(scores, iqm_per_point, reps, seed)
    return point, ci


def probability_of_improvement(x: Sequence[float], y: Sequence[float], *, reps: int = 2000, seed: int = 0
                               ) -> Estimate:
    """P(a run of X scores higher than a run of Y), with a 95% CI from resampling each group's runs."""
    library, metrics = _rliable()
    pair = (np.asarray(x, float).reshape(-1, 1), np.asarray(y, float).reshape(-1, 1))
    with seeded(seed):
        point, ci = library.get_interval_estimates({"xy": pair}, metrics.probability_of_improvement, reps=reps,
                                                   random_state=np.random.RandomState(seed))
    low, high = np.asarray(ci["xy"], float).ravel()
    return Estimate(float(np.asarray(point["xy"]).ravel()[0]), float(low), float(high))


def common_grid(steps_per_run: Sequence[Sequence[float]]) -> Optional[np.ndarray]:
    """Evaluation steps present in every run (the curves are compared only where all runs were evaluated)."""
    if not steps_per_run:
        return None
    common = set(steps_per_run[0])
    for steps in steps_per_run[1:]:
        common &= set(steps)
    return np.array(sorted(common)) if common else None


def _ratio_of_means(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(x) / np.mean(y))


def _difference_of_means(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(x) - np.mean(y))


CONTRASTS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "ratio": _ratio_of_means, "difference": _difference_of_means,
}


def contrast(x: Sequence[float], y: Sequence[float], kind: str, *, reps: int = 2000, seed: int = 0) -> Estimate:
    """mean(X) / mean(Y) (``ratio``) or mean(X) - mean(Y) (``difference``) with a 95% CI from resampling the
    runs of each group independently (rliable's stratified independent bootstrap)."""
    library, _ = _rliable()
    pair = (np.asarray(x, float).reshape(-1, 1), np.asarray(y, float).reshape(-1, 1))
    with seeded(seed):
        point, ci = library.get_interval_estimates({"xy": pair}, CONTRASTS[kind], reps=reps,
                                                   random_state=np.random.RandomState(seed))
    low, high = np.asarray(ci["xy"], float).ravel()
    return Estimate(float(np.asarray(point["xy"]).ravel()[0]), float(low), float(high))

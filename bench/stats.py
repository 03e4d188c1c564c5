"""Interval estimates for benchmark tables: the mean over tasks and seeds with a stratified-bootstrap 95% CI.

Stratified bootstrap as rliable's ``StratifiedBootstrap`` (Agarwal et al. 2021, "Deep RL at the Edge of the
Statistical Precipice"): every replicate resamples the runs (seeds) of each task with replacement, within that
task, and recomputes the aggregate; the CI is the percentile interval of the replicates. The aggregate here is
the mean over tasks of each task's mean over its runs (every task weighs the same).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def task_mean(per_task: Sequence[np.ndarray]) -> float:
    """Mean over tasks of the mean over each task's runs."""
    return float(np.mean([np.mean(runs) for runs in per_task]))


def stratified_bootstrap_ci(per_task: Sequence[Sequence[float]], *, reps: int = 5000, level: float = 0.95,
                            seed: int = 0) -> tuple[float, float, float]:
    """``(mean, low, high)`` of :func:`task_mean` with a percentile CI from ``reps`` stratified resamples.

    Args:
        per_task: one sequence of run scores per task (tasks may have different numbers of runs).
        reps: bootstrap replicates.
        level: coverage of the interval.
        seed: the resampling generator's seed (the CI is reproducible).
    """
    runs = [np.asarray(r, np.float64) for r in per_task if len(r)]
    if not runs:
        raise ValueError("stratified_bootstrap_ci: no runs")
    rng = np.random.default_rng(seed)
    reps_means = np.zeros(reps)
    for r in runs:  # add each task's resampled mean; divide by the number of tasks at the end
        idx = rng.integers(0, len(r), size=(reps, len(r)))
        reps_means += r[idx].mean(axis=1)
    reps_means /= len(runs)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(reps_means, [alpha, 1.0 - alpha])
    return task_mean(runs), float(low), float(high)

"""mean_over_tasks: the mean of a (runs, tasks) matrix with a stratified-bootstrap CI, against hand-worked values."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rliable", reason="the report extra (pip install 'pbrl[report]') is not installed")

from pbrl.analysis.stats import mean_over_tasks  # noqa: E402


def test_constant_runs_within_each_task_give_a_point_interval() -> None:
    # every resample of a task's runs has the same mean, so the CI collapses on (10 + 40) / 2
    est = mean_over_tasks(np.array([[10.0, 40.0], [10.0, 40.0], [10.0, 40.0]]))
    assert (est.value, est.low, est.high) == (25.0, 25.0, 25.0)


def test_runs_are_resampled_within_their_task_only() -> None:
    """Task 1 has runs 0 and 30, task 2 runs 60 and 60. Resampling task 1's two runs gives its mean 0, 15 or 30
    (probabilities 1/4, 1/2, 1/4), task 2 always 60: overall 30, 37.5 or 45, so the 95% interval is [30, 45].
    Pooling the runs across tasks would also produce overall means like 60 (all four draws from task 2)."""
    est = mean_over_tasks(np.array([[0.0, 60.0], [30.0, 60.0]]), reps=4000)
    assert est.value == 37.5
    assert est.low == pytest.approx(30.0) and est.high == pytest.approx(45.0)


def test_one_task_is_a_bootstrap_over_its_runs_and_bad_shapes_are_refused() -> None:
    est = mean_over_tasks(np.arange(100.0)[:, None], reps=4000)
    # the mean of 0..99 is 49.5; its bootstrap standard error is about 29 / sqrt(100) = 2.9
    assert est.value == 49.5 and est.low < 49.5 < est.high and 8 < est.high - est.low < 15
    with pytest.raises(ValueError, match=r"expected a non-empty \(runs, tasks\) matrix"):
        mean_over_tasks(np.arange(5.0))

"""From grouped runs to numbers: final scores, learning curves and pairwise comparisons per group."""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import numpy as np

from pbrl.analysis.runs import FINISHED, RunRecord
from pbrl.analysis.stats import Estimate, FinalScores, common_grid, curve_scores, final_scores, \
    probability_of_improvement

#: name -> (summary.json key, metrics.csv column, what it is)
METRICS = {
    "return": ("return_mean", "return_mean", "true episode return (final evaluation)"),
    "success": ("success_rate", "success_rate", "success rate (final evaluation)"),
}


@dataclasses.dataclass(frozen=True)
class Curve:
    """A group's learning curve: IQM over runs at each common evaluation step, and its 95% CI band."""

    steps: np.ndarray
    iqm: np.ndarray
    band: np.ndarray  # (2, points): lower, upper
    n: int


@dataclasses.dataclass(frozen=True)
class GroupResult:
    """Everything the report says about one group for one metric."""

    label: str
    runs: list[RunRecord]
    final: Optional[FinalScores]       # None: no finished run has this metric
    curve: Optional[Curve]

    @property
    def unfinished(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status != FINISHED]


def group_result(label: str, runs: Sequence[RunRecord], metric: str, *, reps: int, curve_reps: int,
                 seed: int) -> GroupResult:
    """Final-score statistics over the group's finished runs, and its learning curve."""
    key, column, _ = METRICS[metric]
    done = [r for r in runs if r.status == FINISHED and r.final(key) is not None]
    final = final_scores([r.final(key) for r in done], [r.seed for r in done], reps=reps, seed=seed) if done else None
    return GroupResult(label, list(runs), final, _curve(done, column, curve_reps, seed))


def _curve(runs: Sequence[RunRecord], column: str, reps: int, seed: int) -> Optional[Curve]:
    rows = [[row for row in r.metrics if not math.isnan(row.get(column, math.nan))] for r in runs]
    if not rows or not all(rows):
        return None
    grid = common_grid([[row["env_steps"] for row in rr] for rr in rows])
    if grid is None:
        return None
    table = np.array([[{row["env_steps"]: row[column] for row in rr}[s] for s in grid] for rr in rows])
    iqm, band = curve_scores(table, reps=reps, seed=seed)
    return Curve(grid, iqm, band, len(rows))


def aggregate(groups: dict[str, Sequence[RunRecord]], metric: str, *, reps: int = 2000, curve_reps: int = 500,
              seed: int = 0) -> list[GroupResult]:
    """:func:`group_result` for every group, in the groups' order."""
    return [group_result(label, runs, metric, reps=reps, curve_reps=curve_reps, seed=seed)
            for label, runs in groups.items()]


def metric_present(runs: Sequence[RunRecord], metric: str) -> bool:
    """True when some finished run reports ``metric`` (HalfCheetah has no success signal, for example)."""
    return any(r.final(METRICS[metric][0]) is not None for r in runs)


def compare(a: GroupResult, b: GroupResult, *, reps: int = 2000, seed: int = 0) -> Optional[Estimate]:
    """P(a run of ``a`` beats a run of ``b``) on the final metric, or None when either has no finished run."""
    if a.final is None or b.final is None:
        return None
    return probability_of_improvement(a.final.values, b.final.values, reps=reps, seed=seed)

"""The report a person reads: markdown tables and two plots per metric."""

from __future__ import annotations

import datetime
import math
import time
from pathlib import Path
from typing import Optional, Sequence

from pbrl.analysis.aggregate import METRICS, GroupResult
from pbrl.analysis.runs import FINISHED, RunRecord
from pbrl.analysis.stats import Estimate
from pbrl.utils import pyplot, save_figure


def fmt(value: Optional[float], digits: int = 1) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def fmt_ci(e: Optional[Estimate], digits: int = 1) -> str:
    """``3.0 [1.3, 8.0]``: the estimate and its 95% CI."""
    return "n/a" if e is None else f"{fmt(e.value, digits)} [{fmt(e.low, digits)}, {fmt(e.high, digits)}]"


def _digits(metric: str) -> int:
    return 2 if metric == "success" else 1


def _count(g: GroupResult) -> str:
    n = g.final.n if g.final else 0
    extra = {}
    for run in g.unfinished:
        extra[run.status] = extra.get(run.status, 0) + 1
    note = ", ".join(f"+{k} {s}" for s, k in sorted(extra.items()))
    return f"{n}" + (f" ({note})" if note else "") + (" ⚠ n<3" if 0 < n < 3 else "")


def final_table(results: Sequence[GroupResult], metric: str) -> str:
    """One row per group: n finished seeds, IQM and mean with 95% CIs, and every seed's value."""
    d = _digits(metric)
    lines = [f"| group | n seeds | IQM [95% CI] | mean [95% CI] | per seed (seed: value) |", "|---|---:|---:|---:|---|"]
    for g in results:
        per_seed = ", ".join(f"{s}: {fmt(v, d)}" for s, v in zip(g.final.seeds, g.final.values)) if g.final else "—"
        lines.append(f"| {g.label} | {_count(g)} | {fmt_ci(g.final.iqm if g.final else None, d)} "
                     f"| {fmt_ci(g.final.mean if g.final else None, d)} | {per_seed} |")
    return "\n".join(lines)


def comparison_table(pairs: Sequence[tuple]) -> str:
    """Rows ``(X, Y, P(X > Y) or None[, fewest seeds of the two])``; fewer than 3 seeds supports no reading."""
    lines = ["| X | Y | P(X > Y) [95% CI] | reading |", "|---|---|---:|---|"]
    for x, y, est, *n in pairs:
        if est is None:
            reading = "a group has no finished run"
        elif n and n[0] < 3:
            reading = "fewer than 3 seeds in a group: no reading"
        elif est.low > 0.5:
            reading = "X better (CI above 0.5)"
        elif est.high < 0.5:
            reading = "Y better (CI below 0.5)"
        else:
            reading = "not distinguishable (CI contains 0.5)"
        lines.append(f"| {x} | {y} | {fmt_ci(est, 2)} | {reading} |")
    return "\n".join(lines)


def unfinished_table(runs: Sequence[RunRecord], now: Optional[float] = None) -> str:
    """Runs without summary.json: where they are and how long they have been silent."""
    now = time.time() if now is None else now
    lines = ["| run | group | status | silent for | last eval step | last eval return |", "|---|---|---|---:|---:|---:|"]
    for r in runs:
        row = r.last_row()
        lines.append(f"| {r.path} | {r.group} | {r.status} | {_age(now - r.last_write)} "
                     f"| {fmt(row.get('env_steps'), 0)} | {fmt(row.get('return_mean'))} |")
    return "\n".join(lines)


def _age(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"


def markdown(results: dict[str, list[GroupResult]], comparisons: dict[str, list], runs: Sequence[RunRecord], *,
             paths: Sequence[str], figures: Sequence[str], reps: int, stale_after: float) -> str:
    """The whole report: counts, one final-score table (+ comparisons) per metric, unfinished runs, method."""
    from importlib.metadata import version

    status = {s: sum(r.status == s for r in runs) for s in (FINISHED, "running", "stale", "failed")}
    parts = [f"# pbrl report\n\n{len(runs)} runs under {', '.join(f'`{p}`' for p in paths)}: "
             + ", ".join(f"{k} {v}" for k, v in status.items())
             + f". Generated {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}."]
    for metric, groups in results.items():
        parts.append(f"## Final {METRICS[metric][2]}\n\n{final_table(groups, metric)}")
        if comparisons.get(metric):
            parts.append(f"Probability of improvement on the final {metric}:\n\n{comparison_table(comparisons[metric])}")
    unfinished = [r for r in runs if r.status != FINISHED]
    if unfinished:
        parts.append("## Runs without a result\n\nNot in the statistics above (no `summary.json`); `running` = "
                     f"written to within {stale_after:.0f} s, `stale` = silent for longer (killed, crashed or "
                     "hung: resume it with the same `out=`), `failed` = refused before training started "
                     f"(see its `train.log`).\n\n{unfinished_table(unfinished)}")
    parts.append(
        "## How to read this\n\nEach group is one setting (its label lists the config keys that differ between "
        "groups; seeds are pooled). `n seeds` counts finished runs; ⚠ marks fewer than 3. IQM = interquartile "
        "mean over seeds (mean of the middle 50%, robust to one outlier seed). Brackets are 95% percentile "
        f"stratified-bootstrap confidence intervals over seeds ({reps} resamples, rliable "
        f"{version('rliable')}; Agarwal et al. 2021). A difference is supported only where the intervals "
        "(or the probability of improvement's interval vs 0.5) say so. Learning curves: IQM over seeds at the "
        "evaluation steps all finished runs share, with a 95% CI band.\n\n"
        + "Figures: " + ", ".join(f"`{f}`" for f in figures))
    return "\n\n".join(parts) + "\n"


def plot_final(groups: Sequence[GroupResult], metric: str, path: Path) -> Optional[Path]:
    """Per group: IQM (dot) and mean (cross) with 95% CIs, every seed as a faint dot."""
    rows = [g for g in groups if g.final]
    if not rows:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(rows) + 1.5))
    for i, g in enumerate(rows):
        for est, marker, off in ((g.final.iqm, "o", 0.12), (g.final.mean, "x", -0.12)):
            ax.errorbar(est.value, i + off, xerr=[[est.value - est.low], [est.high - est.value]], fmt=marker,
                        color="tab:blue" if marker == "o" else "tab:orange", capsize=3)
        ax.scatter(g.final.values, [i] * g.final.n, color="grey", alpha=0.4, s=12)
    ax.set_yticks(range(len(rows)), [_short(g.label) for g in rows], fontsize=8)
    ax.set_xlabel(f"final {METRICS[metric][2]}: IQM (o), mean (x), 95% CI; seeds (grey)")
    return save_figure(fig, path)


def plot_curves(groups: Sequence[GroupResult], metric: str, path: Path) -> Optional[Path]:
    """IQM learning curve per group with its 95% CI band."""
    rows = [g for g in groups if g.curve is not None]
    if not rows:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for g in rows:
        c = g.curve
        line, = ax.plot(c.steps, c.iqm, marker=".", label=f"{_short(g.label)} (n={c.n})")
        ax.fill_between(c.steps, c.band[0], c.band[1], color=line.get_color(), alpha=0.2)
    ax.set_xlabel("env steps")
    ax.set_ylabel(f"{metric}: IQM over seeds, 95% CI")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def _short(label: str, width: int = 60) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"

"""The report of ``pbrl report PATH...`` (:mod:`pbrl.cli.report`): run directories aggregated into markdown with
CIs and plots, and the same numbers as JSON."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional, Sequence

from pbrl.analysis.aggregate import METRICS, GroupResult, aggregate, compare, metric_present
from pbrl.analysis.render import markdown, plot_curves, plot_final
from pbrl.analysis.runs import DEFAULT_IGNORE, RunRecord, group_runs, load_runs
from pbrl.types import PbrlError


def collect_groups(paths: Sequence[str], *, by: Optional[Sequence[str]], ignore: Sequence[str],
                   stale_after: float) -> tuple[dict[str, list[RunRecord]], list[RunRecord]]:
    """Runs of every PATH; NAME=PATH paths form their own named group, the rest are grouped by config."""
    named: dict[str, list[RunRecord]] = {}
    loose: list[RunRecord] = []
    for item in paths:
        name, sep, path = item.partition("=")
        if sep and name and not Path(item).exists():
            runs = load_runs([Path(path)], stale_after=stale_after)
            for r in runs:
                r.group = name
            named.setdefault(name, []).extend(runs)
        else:
            loose.extend(load_runs([Path(item)], stale_after=stale_after))
    groups = dict(named)
    if loose:
        for label, runs in group_runs(loose, by=by, ignore=ignore).items():
            if label in groups:
                raise PbrlError(f"group {label!r}: named twice (a NAME=PATH and a config group); rename the NAME")
            groups[label] = runs
    return groups, [r for runs in groups.values() for r in runs]


def resolve_group(ref: str, labels: Sequence[str]) -> str:
    """A group label from an exact label, a 1-based position or a unique substring."""
    if ref in labels:
        return ref
    if ref.isdigit() and 1 <= int(ref) <= len(labels):
        return labels[int(ref) - 1]
    hits = [label for label in labels if ref in label]
    if len(hits) == 1:
        return hits[0]
    raise PbrlError(f"--compare {ref!r}: {'matches several groups' if hits else 'matches no group'}; "
                    f"groups: {'; '.join(f'{i + 1}: {label}' for i, label in enumerate(labels))}")


def build_report(paths: Sequence[str], *, out: Optional[Path] = None, metric: str = "return,success",
                 compare_groups: Sequence[Sequence[str]] = (), group_by: Optional[str] = None,
                 ignore: Sequence[str] = (), reps: int = 2000, curve_reps: int = 500, seed: int = 0,
                 stale_after: float = 900.0) -> tuple[str, dict[str, Any], Path]:
    """The report's markdown, its JSON and the folder its figures went to (``out``, default PATH/report for one
    PATH, else ./report); the arguments are the options of ``pbrl report`` (:mod:`pbrl.cli.report`),
    ``compare_groups`` its ``--compare`` pairs."""
    by = [k.strip() for k in group_by.split(",")] if group_by else None
    groups, runs = collect_groups(paths, by=by, ignore=[*DEFAULT_IGNORE, *ignore], stale_after=stale_after)
    metrics = [m.strip() for m in metric.split(",") if m.strip()]
    for m in metrics:
        if m not in METRICS:
            raise PbrlError(f"--metric {m!r}: unknown; expected some of {', '.join(METRICS)}")
    labels = list(groups)
    pairs = [tuple(resolve_group(r, labels) for r in pair) for pair in compare_groups]
    if not pairs and len(labels) == 2:
        pairs = [(labels[0], labels[1])]
    out = out or (Path(paths[0].partition("=")[2] or paths[0]) / "report" if len(paths) == 1 else Path("report"))
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[GroupResult]] = {}
    comparisons: dict[str, list] = {}
    figures: list[str] = []
    for m in (m for m in metrics if metric_present(runs, m)):
        results[m] = aggregate(groups, m, reps=reps, curve_reps=curve_reps, seed=seed)
        by_label = {g.label: g for g in results[m]}
        comparisons[m] = [(x, y, compare(by_label[x], by_label[y], reps=reps, seed=seed),
                           min(g.final.n if g.final else 0 for g in (by_label[x], by_label[y]))) for x, y in pairs]
        for fig in (plot_final(results[m], m, out / f"final_{m}.png"), plot_curves(results[m], m, out / f"curves_{m}.png")):
            if fig is not None:
                figures.append(fig.name)
    text = markdown(results, comparisons, runs, paths=paths, figures=figures, reps=reps,
                    stale_after=stale_after)
    return text, _as_json(results, comparisons, runs), out


def _as_json(results: dict[str, list[GroupResult]], comparisons: dict[str, list], runs: Sequence[RunRecord]) -> dict:
    def group(g: GroupResult) -> dict:
        curve = None if g.curve is None else {"steps": g.curve.steps.tolist(), "iqm": g.curve.iqm.tolist(),
                                              "low": g.curve.band[0].tolist(), "high": g.curve.band[1].tolist()}
        return {"label": g.label, "final": dataclasses.asdict(g.final) if g.final else None, "curve": curve,
                "runs": [str(r.path) for r in g.runs]}
    return {"metrics": {m: [group(g) for g in gs] for m, gs in results.items()},
            "comparisons": {m: [{"x": x, "y": y, "p": dataclasses.asdict(e) if e else None} for x, y, e, _ in cs]
                            for m, cs in comparisons.items()},
            "runs": [{"path": str(r.path), "group": r.group, "status": r.status, "seed": r.seed} for r in runs]}

"""``pbrl report PATH...``: aggregate run directories into a markdown report with CIs and plots."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any, Optional, Sequence

from pbrl.analysis.aggregate import METRICS, GroupResult, aggregate, compare, metric_present
from pbrl.analysis.render import markdown, plot_curves, plot_final
from pbrl.analysis.runs import DEFAULT_IGNORE, RunRecord, group_runs, load_runs
from pbrl.types import PbrlError
from pbrl.utils import atomic_write_json, atomic_write_text


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="pbrl report",
        description="Aggregate pbrl run directories (a sweep directory, or several) into report.md with IQM / mean "
                    "and 95% stratified-bootstrap CIs per group of seeds (rliable), learning curves with CI bands, "
                    "probabilities of improvement and per-seed values. Runs are grouped by their config "
                    "differences (everything but the seed); NAME=PATH puts every run under PATH in group NAME.",
        epilog="Example: pbrl report runs/multirun/2026-11-30 --compare 'algo.name=sac' 'algo.name=ppo'")
    p.add_argument("paths", nargs="+", metavar="PATH", help="run or sweep directory, or NAME=PATH")
    p.add_argument("--out", type=Path, help="where report.md, report.json and the plots go "
                                            "(default: PATH/report for one PATH, ./report otherwise)")
    p.add_argument("--metric", default="return,success",
                   help=f"comma-separated metrics among {', '.join(METRICS)} (absent ones are left out)")
    p.add_argument("--compare", nargs=2, action="append", default=[], metavar=("X", "Y"),
                   help="probability that a run of group X beats one of Y (a label, a unique part of one, or its "
                        "1-based position); repeatable. With exactly two groups they are compared by default")
    p.add_argument("--group-by", help="comma-separated config keys to group by (instead of every differing key)")
    p.add_argument("--ignore", action="append", default=[], metavar="KEY",
                   help=f"config key to leave out of the grouping (repeatable; always: {', '.join(DEFAULT_IGNORE)})")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples for final scores")
    p.add_argument("--curve-reps", type=int, default=500, help="bootstrap resamples per learning-curve point")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--stale-after", type=float, default=900.0,
                   help="seconds without a write after which an unfinished run counts as stale, not running")
    args = p.parse_args(list(argv))
    if args.reps < 100 or args.curve_reps < 100:
        p.error("--reps and --curve-reps: expected >= 100 bootstrap resamples")
    return args


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


def build_report(args: argparse.Namespace) -> tuple[str, dict[str, Any], Path]:
    by = [k.strip() for k in args.group_by.split(",")] if args.group_by else None
    groups, runs = collect_groups(args.paths, by=by, ignore=[*DEFAULT_IGNORE, *args.ignore],
                                  stale_after=args.stale_after)
    metrics = [m.strip() for m in args.metric.split(",") if m.strip()]
    for m in metrics:
        if m not in METRICS:
            raise PbrlError(f"--metric {m!r}: unknown; expected some of {', '.join(METRICS)}")
    labels = list(groups)
    pairs = [tuple(resolve_group(r, labels) for r in pair) for pair in args.compare]
    if not pairs and len(labels) == 2:
        pairs = [(labels[0], labels[1])]
    out = args.out or (Path(args.paths[0].partition("=")[2] or args.paths[0]) / "report" if len(args.paths) == 1
                       else Path("report"))
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[GroupResult]] = {}
    comparisons: dict[str, list] = {}
    figures: list[str] = []
    for m in (m for m in metrics if metric_present(runs, m)):
        results[m] = aggregate(groups, m, reps=args.reps, curve_reps=args.curve_reps, seed=args.seed)
        by_label = {g.label: g for g in results[m]}
        comparisons[m] = [(x, y, compare(by_label[x], by_label[y], reps=args.reps, seed=args.seed),
                           min(g.final.n if g.final else 0 for g in (by_label[x], by_label[y]))) for x, y in pairs]
        for fig in (plot_final(results[m], m, out / f"final_{m}.png"), plot_curves(results[m], m, out / f"curves_{m}.png")):
            if fig is not None:
                figures.append(fig.name)
    text = markdown(results, comparisons, runs, paths=args.paths, figures=figures, reps=args.reps,
                    stale_after=args.stale_after)
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


def main(argv: Sequence[str]) -> None:
    args = parse_args(argv)
    text, data, out = build_report(args)
    atomic_write_text(out / "report.md", text)
    atomic_write_json(out / "report.json", data)
    print(text)
    print(f"wrote {out / 'report.md'}, report.json and the figures in {out}")

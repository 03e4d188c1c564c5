"""``pbrl report PATH...``: aggregate run directories into report.md / report.json with CIs and plots."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from pbrl.analysis.aggregate import METRICS
from pbrl.analysis.report import build_report
from pbrl.analysis.runs import DEFAULT_IGNORE
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


def main(argv: Sequence[str]) -> None:
    args = parse_args(argv)
    text, data, out = build_report(args.paths, out=args.out, metric=args.metric, compare_groups=args.compare,
                                   group_by=args.group_by, ignore=args.ignore, reps=args.reps,
                                   curve_reps=args.curve_reps, seed=args.seed, stale_after=args.stale_after)
    atomic_write_text(out / "report.md", text)
    atomic_write_json(out / "report.json", data)
    print(text)
    print(f"wrote {out / 'report.md'}, report.json and the figures in {out}")

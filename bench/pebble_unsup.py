"""Benchmark: PEBBLE's unsupervised pre-training (``algo.unsup_steps``) against none, over seeds.

The measurement behind the ``unsup_steps`` default of ``configs/algo/sac.yaml``. For every task, one Hydra sweep
``pbrl train -m seed=... algo.unsup_steps=...`` (joblib launcher with ``--jobs`` > 1) runs PEBBLE with the oracle
teacher, the ensemble reward and disagreement queries, on the feedback schedule of ``bench/online_pbrl.py`` (a
session every 5% of training, the labels spent by 65% of it; with pre-training the sessions start after it).
PEBBLE's own runs pre-train 9000 steps of 0.5-1M (Lee et al. 2021; BPref ``scripts/*/run_PEBBLE.sh``).

Reported per task and variant: the final true return (and success on Meta-World), mean over seeds with a 95%
bootstrap CI (rliable, ``pip install 'pbrl[report]'``), and the paired difference to ``unsup_steps=0`` on the same seeds with its CI. "helps" / "hurts"
only where that CI excludes 0.

Full measurement (one locomotion and one Meta-World task, 3 seeds, 100k steps, 500 labels; 12 runs of ~50 min
(halfcheetah) to ~75 min (drawer-open) single-threaded on a quiet core, ~12.5 core-hours; two jobs side by side):

    python bench/pebble_unsup.py --tasks halfcheetah,drawer-open --seeds 0,1,2 --unsup 0,9000 --steps 100000 \\
        --labels 500 --jobs 2 --update-md

``--quick`` is a smoke run (3000 steps, 40 labels, unsup 0 / 500). A killed run resumes: started again with the
same ``--out``, every run directory continues from its last checkpoint (finished ones only re-evaluate).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

if not __package__:  # run as python bench/<name>.py: bench/_bootstrap.py puts the repository root on sys.path
    import _bootstrap  # noqa: F401
from bench.common import RAW, publish  # noqa: E402
from bench.online_pbrl import make_plan, parse_args as online_args, show  # noqa: E402
from pbrl.analysis.stats import mean_over_tasks  # noqa: E402
from pbrl.utils import atomic_write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MARK = "pebble-unsup"
MIN_SEEDS = 3  # paired seeds before an effect is called (the project's evidence standard)


def parse(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default="halfcheetah,drawer-open")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--unsup", default="0,9000", help="algo.unsup_steps values; the first is the baseline")
    ap.add_argument("--algo", default="sac", choices=("sac", "crossq"), help="PEBBLE's learner (configs/algo/<algo>.yaml)")
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--labels", type=int, default=500)
    ap.add_argument("--final-episodes", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=2, help="runs side by side (Hydra joblib launcher when > 1)")
    ap.add_argument("--quick", action="store_true", help="smoke scale: 3000 steps, 40 labels, unsup 0,500")
    ap.add_argument("--out", type=Path, default=RAW / "pebble_unsup")
    ap.add_argument("--update-md", action="store_true", help="write the table into BENCHMARKS.md")
    ap.add_argument("--dry-run", action="store_true", help="print the sweep commands, run nothing")
    ap.add_argument("--report-only", action="store_true", help="tabulate the finished runs in --out, run nothing")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.labels, args.unsup, args.final_episodes = 3000, 40, "0,500", 2
    try:
        args.seed_list = [int(s) for s in args.seeds.split(",")]
        args.unsup_list = [int(u) for u in args.unsup.split(",")]
    except ValueError:
        ap.error("--seeds / --unsup: expected comma-separated integers")
    return args


def sweep_command(task: str, args: argparse.Namespace) -> list[str]:
    """``pbrl train -m`` over seeds x unsup_steps for one task: run directories ``OUT/TASK/u<unsup>-s<seed>`` (a
    multirun's run directory is its sweep subdir; the same command again resumes every run in it)."""
    plan = make_plan(online_args(["--task", task, "--steps", str(args.steps), "--labels", str(args.labels),
                                  "--final-episodes", str(args.final_episodes)]))
    root = (args.out / task).resolve()
    overrides = [
        f"task={task}", f"algo={args.algo}", "feedback=scripted", "feedback.preset=oracle", "reward=ensemble",
        "query=disagreement", f"budget.env_steps={plan.steps}", f"budget.labels={plan.labels}",
        f"budget.per_round={plan.per_round}", f"budget.every={plan.every}", f"segment_length={plan.segment_length}",
        "threads=1", "eval.video=false", f"eval.every={plan.eval_every}", f"eval.episodes={plan.eval_episodes}",
        f"eval.final_episodes={plan.final_episodes}", f"checkpoint_every={plan.checkpoint_every}",
        f"seed={args.seeds}", f"algo.unsup_steps={args.unsup}",
        f"hydra.sweep.dir={root}", "hydra.sweep.subdir=u${algo.unsup_steps}-s${seed}",  # the run dirs
    ]
    if args.jobs > 1:
        overrides += ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.jobs}"]
    return [sys.executable, "-m", "pbrl.cli", "train", "-m", *overrides]


def collect(task: str, args: argparse.Namespace) -> list[dict]:
    """One row per finished run of ``task``: unsup steps, seed, final return and success."""
    rows = []
    for unsup in args.unsup_list:
        for seed in args.seed_list:
            path = args.out / task / f"u{unsup}-s{seed}" / "summary.json"
            if not path.is_file():
                print(f"missing: {path}", flush=True)
                continue
            s = json.loads(path.read_text())
            rows.append({"task": task, "unsup": unsup, "seed": seed, "return": s["return_mean"],
                         "success": s.get("success_rate"), "reward_accuracy": s.get("reward_accuracy"),
                         "labels": s.get("labels_used"), "wall_s": s.get("wall_s")})
    return rows


def ci_text(values: Sequence[float], fmt: str = ".0f") -> str:
    if len(values) < 2:
        return f"{np.mean(values):{fmt}} (1 seed)"
    est = mean_over_tasks(np.asarray(values, float)[:, None])
    return f"{est.value:{fmt}} [{est.low:{fmt}}, {est.high:{fmt}}]"


def paired_effect(rows: list[dict], task: str, unsup: int, base: int, key: str) -> tuple[str, str]:
    """``(mean [CI] of variant - baseline on the same seeds, helps / hurts / no difference shown)``."""
    got = {(r["unsup"], r["seed"]): r[key] for r in rows if r["task"] == task and r[key] is not None}
    diffs = [got[(unsup, s)] - got[(base, s)] for (u, s) in got if u == unsup and (base, s) in got]
    if len(diffs) < 2:
        return "-", f"{len(diffs)} paired seed(s)"
    est = mean_over_tasks(np.asarray(diffs, float)[:, None])
    mean, lo, hi = est.value, est.low, est.high
    word = "helps" if lo > 0 else "hurts" if hi < 0 else "no difference shown"
    if len(diffs) < MIN_SEEDS:
        word = f"not judged: {len(diffs)} paired seeds, {MIN_SEEDS} needed"
    fmt = ".2f" if key == "success" else ".0f"
    return f"{mean:+{fmt}} [{lo:+{fmt}}, {hi:+{fmt}}]", word


def render(rows: list[dict], args: argparse.Namespace, commands: dict[str, list[str]], wall: float) -> str:
    base = args.unsup_list[0]
    lines = [f"## PEBBLE unsupervised pre-training (`bench/pebble_unsup.py`)", "",
             f"PEBBLE with `algo={args.algo}`. Final true return (and success) after {args.steps} env steps, "
             f"{args.labels} oracle labels, mean over "
             f"seeds {args.seeds} with a 95% bootstrap CI; the effect is the paired difference to unsup_steps={base} "
             f"on the same seeds." + (" Smoke scale (`--quick`): not a result." if args.quick else ""), "",
             "| task | unsup_steps | return | success | effect on return | effect on success |",
             "|---|---:|---|---|---|---|"]
    for task in args.tasks.split(","):
        for unsup in args.unsup_list:
            mine = [r for r in rows if r["task"] == task and r["unsup"] == unsup]
            if not mine:
                continue
            succ = [r["success"] for r in mine if r["success"] is not None]
            eff_r = eff_s = ("-", "baseline") if unsup == base else None
            if unsup != base:
                eff_r = paired_effect(rows, task, unsup, base, "return")
                eff_s = paired_effect(rows, task, unsup, base, "success") if succ else ("-", "n/a")
            lines.append(f"| {task} | {unsup} | {ci_text([r['return'] for r in mine])} | "
                         f"{ci_text(succ, '.2f') if succ else 'n/a'} | {eff_r[0]} ({eff_r[1]}) | "
                         f"{eff_s[0]} ({eff_s[1]}) |")
    core_h = sum(r["wall_s"] or 0.0 for r in rows) / 3600
    lines += ["", (f"Runs' own wall time summed: {core_h:.1f} core-hours; " if rows else "")
              + f"this call {wall / 3600:.1f} h ({args.jobs} job(s) side by side). Sweeps:", ""]
    lines += [f"- `{show(c)}`" for c in commands.values()]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse(argv)
    commands = {task: sweep_command(task, args) for task in args.tasks.split(",")}
    for task, cmd in commands.items():
        print(f"{task}: {show(cmd)}", flush=True)
    if args.dry_run:
        return 0
    t0 = time.time()
    for task, cmd in ([] if args.report_only else commands.items()):
        (args.out / task).mkdir(parents=True, exist_ok=True)
        with open(args.out / task / "sweep.log", "a") as log:
            code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO).returncode
        if code:
            print(f"{task}: the sweep exited with {code}; see {args.out / task / 'sweep.log'}", flush=True)
    rows = [row for task in commands for row in collect(task, args)]
    atomic_write_json(args.out / "rows.json", {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows})
    block = render(rows, args, commands, time.time() - t0)
    publish(block, MARK, args.update_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

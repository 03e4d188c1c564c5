"""PEBBLE loop speed and return per SAC learner: SB3 SAC (PyTorch) vs sbx SAC (JAX), side by side.

For every seed, one ``pbrl train`` per learner (same PEBBLE settings, ``threads=1``, oracle teacher, ensemble
reward, disagreement queries) is started at the same moment, so the learners of a seed see the same machine
load; seeds run one after another (``--jobs`` more at once). Per run it records the process wall time and the
process CPU time (all threads, from ``wait4``'s rusage), and reads ``summary.json``. The table gives

* env steps/s of the whole run (wall), and env steps per CPU-second (what one dedicated core would do; a
  multi-threaded learner pays for every thread), each as a ratio to the first learner;
* the final return (pbrl's final evaluation: deterministic policy, true reward), mean and 95% bootstrap CI over
  seeds, and the per-seed difference to the first learner with its CI;
* time to the first learner's level: the first periodic evaluation (``--eval-every``) whose return reaches the
  first learner's mean final return, as a share of the first learner's whole run (CPU time of the run up to that
  evaluation / the first learner's CPU time, same seed); the issue's alternative goal is <= 1/4.

    python bench/learner_speed.py --quick                                  # a few minutes, 1 seed
    python bench/learner_speed.py --steps 20000 --labels 100 --seeds 0,1,2 --update-benchmarks
    python bench/learner_speed.py --steps 100000 --labels 500 --seeds 0,1,2,3,4 --update-benchmarks  # the goal
    python bench/learner_speed.py --device cuda --learners sb3,sbx ...     # GPU machine (bench/gpu_check.sh)

Learners are ``NAME=OVERRIDES`` (``--learner``, repeatable); the defaults are ``sb3`` (``algo.backend=sb3``) and
``sbx`` (``algo.backend=sbx``). Per-run logs and run dirs go to ``--runs-dir``; the table and raw rows to ``--results-dir`` (``runs/bench``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from omegaconf import OmegaConf

if not __package__:  # run as python bench/<name>.py: bench/_bootstrap.py puts the repository root on sys.path
    import _bootstrap  # noqa: F401
from bench.common import RAW, publish  # noqa: E402
from bench.online_pbrl import feedback_schedule, machine_info, show  # noqa: E402

from pbrl.resources import resource_dir  # noqa: E402
from pbrl.utils import atomic_write_text  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
MARK = "learner-speed"
DEFAULT_LEARNERS = {"sb3": "algo=sac algo.backend=sb3", "sbx": "algo=sac algo.backend=sbx", "crossq": "algo=crossq"}
SPEED_GOAL = 4.0


@dataclasses.dataclass(frozen=True)
class Run:
    """One finished ``pbrl train`` process."""

    learner: str
    seed: int
    wall_s: float
    cpu_s: float
    summary: dict[str, Any]
    curve: list[tuple[int, float, float]]  # (env steps, eval return, session wall s) per metrics.csv row

    @property
    def steps(self) -> int:
        return int(self.summary["env_steps"])


def bootstrap_ci(values: Sequence[float], *, n_boot: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """Mean and 95% percentile-bootstrap CI over seeds (one task: the stratified bootstrap is a plain one)."""
    x = np.asarray(values, np.float64)
    if len(x) < 2:
        return float(x.mean()), float("nan"), float("nan")
    means = x[np.random.default_rng(seed).integers(0, len(x), (n_boot, len(x)))].mean(axis=1)
    return float(x.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def train_command(args: argparse.Namespace, learner_overrides: str, seed: int, out: Path) -> list[str]:
    """``pbrl train`` with the PEBBLE benchmark settings (as bench/online_pbrl.py) plus the learner's overrides."""
    seed_steps = int(OmegaConf.load(resource_dir("configs") / "algo" / "sac.yaml").seed_steps)
    every, per_round, _ = feedback_schedule(args.steps, args.labels, seed_steps, 0.65)
    eval_every = args.eval_every or max(1, args.steps // 10)
    return [sys.executable, "-m", "pbrl.cli", "train", f"task={args.task}", "feedback=scripted",
            "feedback.preset=oracle", "reward=ensemble", "query=disagreement", f"budget.env_steps={args.steps}",
            f"budget.labels={args.labels}", f"budget.per_round={per_round}", f"budget.every={every}",
            "segment_length=50", f"seed={seed}", f"out={out}", "threads=1", f"device={args.device}",
            "eval.video=false", f"eval.every={eval_every}", "eval.episodes=1",
            f"eval.final_episodes={args.final_episodes}", f"checkpoint_every={max(eval_every, args.steps // 5)}",
            *shlex.split(learner_overrides), *args.override]


def run_group(cmds: dict[str, list[str]], logs: dict[str, Path]) -> dict[str, tuple[float, float]]:
    """Start ``cmds`` together (one thread each), wait for all: name -> (wall s, CPU s of all threads).

    A failing run stops the others and raises ``RuntimeError`` with the end of its log.
    """
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONUNBUFFERED="1")
    procs: dict[str, subprocess.Popen] = {}
    done: dict[str, tuple[float, float]] = {}
    t0 = time.perf_counter()
    try:
        for name, cmd in cmds.items():
            with open(logs[name], "wb") as fh:
                procs[name] = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
        while len(done) < len(procs):
            time.sleep(0.5)
            for name, proc in procs.items():
                if name in done:
                    continue
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid == 0:
                    continue
                proc.returncode = os.waitstatus_to_exitcode(status)
                done[name] = (time.perf_counter() - t0, usage.ru_utime + usage.ru_stime)
                print(f"  {name} finished after {done[name][0]:.0f}s wall, {done[name][1]:.0f}s CPU "
                      f"(exit {proc.returncode})", flush=True)
                if proc.returncode != 0:
                    raise RuntimeError(f"{name} failed (exit {proc.returncode}); end of {logs[name]}:\n"
                                       f"{logs[name].read_text(errors='replace')[-3000:]}")
    finally:
        for name, proc in procs.items():
            if name not in done and proc.returncode is None:
                proc.terminate()
                proc.wait(timeout=30)
    return done


def run_all(args: argparse.Namespace, learners: dict[str, str], root: Path) -> tuple[list[Run], dict[str, str]]:
    """Every seed's learners side by side; returns the runs and one example command per learner."""
    runs, examples = [], {}
    for seed in args.seeds:
        dirs = {name: root / f"{name}-s{seed}" for name in learners}
        cmds = {name: train_command(args, learners[name], seed, dirs[name]) for name in learners}
        examples.update({name: show(cmd) for name, cmd in cmds.items() if name not in examples})
        print(f"seed {seed}: " + ", ".join(learners), flush=True)
        times = run_group(cmds, {name: root / f"{name}-s{seed}.log" for name in learners})
        for name in learners:
            summary = json.loads((dirs[name] / "summary.json").read_text())
            runs.append(Run(name, seed, times[name][0], times[name][1], summary, read_curve(dirs[name])))
    return runs, examples


def read_curve(run_dir: Path) -> list[tuple[int, float, float]]:
    """(env steps, return, session wall s) of every evaluation row in a run's metrics.csv."""
    import csv

    with open(run_dir / "metrics.csv", newline="") as fh:
        return [(int(r["env_steps"]), float(r["return_mean"]), float(r["wall_s"])) for r in csv.DictReader(fh)]


def time_to_level(run: Run, level: float, base: Run) -> Optional[float]:
    """CPU time ``run`` needed until an evaluation first reached ``level``, as a share of ``base``'s whole run.

    The run's CPU time up to that row is its total CPU time scaled by the row's share of the session wall time
    (the process's time outside the session, start-up, is small and left out). None: never reached.
    """
    for _, ret, wall in run.curve:
        if ret >= level:
            return run.cpu_s * wall / run.summary["wall_s"] / base.cpu_s
    return None


def _fmt_ci(mean: float, lo: float, hi: float, digits: int = 0) -> str:
    if np.isnan(lo):
        return f"{mean:.{digits}f} (1 seed)"
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def summarise(runs: list[Run], learners: Sequence[str]) -> list[dict[str, Any]]:
    """Per learner: speeds, ratios to the first learner, return with CI, per-seed return difference with CI."""
    base = learners[0]
    by = {name: sorted((r for r in runs if r.learner == name), key=lambda r: r.seed) for name in learners}
    rows = []
    for name in learners:
        rs = by[name]
        wall = sum(r.steps for r in rs) / sum(r.wall_s for r in rs)
        cpu = sum(r.steps for r in rs) / sum(r.cpu_s for r in rs)
        base_wall = sum(r.steps for r in by[base]) / sum(r.wall_s for r in by[base])
        base_cpu = sum(r.steps for r in by[base]) / sum(r.cpu_s for r in by[base])
        diff = [r.summary["return_mean"] - b.summary["return_mean"] for r, b in zip(rs, by[base])]
        level = float(np.mean([b.summary["return_mean"] for b in by[base]]))
        to_level = [time_to_level(r, level, b) for r, b in zip(rs, by[base])]
        rows.append({
            "learner": name, "seeds": [r.seed for r in rs], "steps_per_s": wall, "steps_per_cpu_s": cpu,
            "speedup_wall": wall / base_wall, "speedup_cpu": cpu / base_cpu,
            "return": bootstrap_ci([r.summary["return_mean"] for r in rs]),
            "return_diff": bootstrap_ci(diff) if name != base else None,
            "random_return": float(np.mean([r.summary["random_return"] for r in rs])),
            "reward_accuracy": float(np.mean([r.summary.get("reward_accuracy") or np.nan for r in rs])),
            "level": level, "time_to_level": to_level,
        })
    return rows


def render(args: argparse.Namespace, rows: list[dict[str, Any]], runs: list[Run], learners: dict[str, str],
           examples: dict[str, str], machine: dict[str, Any]) -> str:
    """Markdown: the learner table, per-seed numbers, settings, commands, machine."""
    base = rows[0]["learner"]
    head = ("| learner | overrides | seeds | env steps/s (wall) | env steps / CPU-s | speed-up vs "
            f"{base} (wall / CPU) | final return, mean [95% CI] | return − {base}, mean [95% CI] | "
            f"time to {base}'s final return (share of its run, per seed) | reward acc. |")
    lines = [head, "|" + "---|" * 10]
    for row in rows:
        diff = "—" if row["return_diff"] is None else _fmt_ci(*row["return_diff"])
        ttl = "—" if row["learner"] == base else ", ".join("not reached" if t is None else f"{t:.2f}"
                                                         for t in row["time_to_level"])
        lines.append(f"| {row['learner']} | `{learners[row['learner']]}` | {len(row['seeds'])} | "
                     f"{row['steps_per_s']:.1f} | {row['steps_per_cpu_s']:.1f} | "
                     f"{row['speedup_wall']:.2f}x / {row['speedup_cpu']:.2f}x | {_fmt_ci(*row['return'])} | {diff} | "
                     f"{ttl} | {row['reward_accuracy']:.3f} |")
    seeds = ["| learner | seed | return | wall [s] | CPU [s] | env steps |", "|---|---|---|---|---|---|"]
    seeds += [f"| {r.learner} | {r.seed} | {r.summary['return_mean']:.1f} | {r.wall_s:.0f} | {r.cpu_s:.0f} | {r.steps} |"
              for r in sorted(runs, key=lambda r: (r.seed, r.learner))]
    fastest = max(rows[1:], key=lambda r: r["speedup_cpu"]) if len(rows) > 1 else rows[0]
    verdict = (f"Goal (>= {SPEED_GOAL:.0f}x env steps/s on one thread at equal return): fastest learner "
               f"`{fastest['learner']}` {fastest['speedup_cpu']:.2f}x per CPU-second, {fastest['speedup_wall']:.2f}x "
               f"wall -> **{'met' if fastest['speedup_cpu'] >= SPEED_GOAL else 'NOT met'}** on speed. "
               f"Alternative goal ({base}'s final return {rows[0]['level']:.0f} reached in <= 1/4 of its run): "
               + "; ".join(f"`{r['learner']}` {_level_verdict(r['time_to_level'])}" for r in rows[1:]) + ".")
    cmds = "\n".join(examples.values())
    ver = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    return f"""\
## PEBBLE learner speed: {args.task}, {args.steps} steps, {args.labels} labels, seeds {','.join(map(str, args.seeds))}, device={args.device}

{chr(10).join(lines)}

{verdict}

Per seed (the learners of one seed ran at the same time, `threads=1` each):

{chr(10).join(seeds)}

Env steps/s = env steps / process wall time of the whole run (start-up, periodic 1-episode evaluations every
{args.eval_every or args.steps // 10} steps, {args.final_episodes}-episode final evaluation, checkpoints included); env steps / CPU-s uses
the process's user+system CPU time over all its threads (what one dedicated core would deliver; it is robust to
the machine's load, wall is not). Returns: pbrl's final evaluation (true return, deterministic policy, seed
10000+seed); random-policy return {rows[0]['random_return']:.1f}. CI: 95% percentile bootstrap over seeds.

Example commands (one per learner; seeds differ in `seed=` and `out=`):

```
{cmds}
```

Date {machine['date']}; machine: {machine['nproc']} cores, {machine['cpu']}, load average at start
{', '.join(f'{x:.2f}' for x in machine['loadavg_start'])}; Python {machine['python']}, {ver}.
"""


def _level_verdict(shares: Sequence[Optional[float]]) -> str:
    met = sum(t is not None and t <= 0.25 for t in shares)
    return f"**{'met' if met == len(shares) else 'NOT met'}** (within 1/4 in {met} of {len(shares)} seeds; goal: all)"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", default="halfcheetah", help="task of every run (tasks/*.yaml)")
    p.add_argument("--steps", type=int, default=20000, help="env steps per run")
    p.add_argument("--labels", type=int, default=100, help="label budget per run")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--learner", action="append", default=[], metavar="NAME=OVERRIDES",
                   help="a learner: name, '=', its pbrl train overrides (repeatable; default: sb3 and sbx backends)")
    p.add_argument("--learners", default=None, help="comma-separated subset of the default learners, in order")
    p.add_argument("--device", default="cpu", help="device= of every run (auto | cpu | cuda)")
    p.add_argument("--final-episodes", type=int, default=5, help="episodes of the final evaluation")
    p.add_argument("--eval-every", type=int, default=None, help="periodic 1-episode evaluations (default steps/10)")
    p.add_argument("--override", action="append", default=[], help="extra override for every run (repeatable)")
    p.add_argument("--quick", action="store_true", help="smoke test: 3000 steps, 20 labels, seed 0")
    p.add_argument("--runs-dir", type=Path, default=RAW, help="where run dirs and logs go")
    p.add_argument("--results-dir", type=Path, default=RAW)
    p.add_argument("--update-benchmarks", action="store_true", help=f"rewrite the {MARK} section of BENCHMARKS.md")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.labels, args.seeds = 3000, 20, "0"
    args.seeds = [int(s) for s in str(args.seeds).split(",")]
    return args


def learner_specs(args: argparse.Namespace) -> dict[str, str]:
    """``--learner NAME=OVERRIDES`` entries, else the defaults (optionally a ``--learners`` subset)."""
    if args.learner:
        return dict(item.split("=", 1) for item in args.learner)
    names = args.learners.split(",") if args.learners else list(DEFAULT_LEARNERS)
    unknown = [n for n in names if n not in DEFAULT_LEARNERS]
    if unknown:
        raise SystemExit(f"learner_speed: unknown learner(s) {unknown}; expected {list(DEFAULT_LEARNERS)}")
    return {n: DEFAULT_LEARNERS[n] for n in names}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    learners = learner_specs(args)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    root = (args.runs_dir / f"learner_speed_{args.task}_{args.steps}_{stamp}").resolve()
    root.mkdir(parents=True, exist_ok=True)
    machine = machine_info(extra_packages=("sbx-rl", "jax", "flax"))
    try:
        runs, examples = run_all(args, learners, root)
    except RuntimeError as exc:
        print(f"learner_speed: error: {exc}", file=sys.stderr)
        return 1
    rows = summarise(runs, list(learners))
    block = render(args, rows, runs, learners, examples, machine)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    name = f"learner_speed_{args.task}_{args.steps}_{args.device}"
    atomic_write_text(args.results_dir / f"{name}.json", json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "machine": machine, "rows": rows,
         "runs": [dataclasses.asdict(r) for r in runs]}, indent=2, default=str) + "\n")
    publish(block, f"{MARK}:{args.task}:{args.device}", args.update_benchmarks)
    return 0


if __name__ == "__main__":
    sys.exit(main())

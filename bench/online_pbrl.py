"""Online PbRL benchmark: pbrl's PEBBLE with an oracle teacher vs plain SAC on the true reward.

Both runs are started at the same moment as two single-threaded subprocesses on the same machine, so
their wall times see the same (noisy) load and the ratios between them are meaningful:

  (a) ``pbrl train task=T algo=sac feedback=scripted feedback.preset=oracle reward=ensemble
      query=disagreement ...``, the labels spent over roughly the first 65% of training;
  (b) ``bench/sac_true_reward.py``: SB3 SAC with the same hyperparameters (configs/algo/sac.yaml),
      same env factory, same steps and seed, on the true reward.

It prints a markdown table (returns, success, return ratio, wall times, overhead ratio, reward accuracy,
commands, date, machine), writes it to ``runs/bench/online_<task>_<steps>.md`` (+ ``.json``), and with
``--update-benchmarks`` replaces the ``<!-- online:<task> -->`` section of BENCHMARKS.md.

    python bench/online_pbrl.py --quick                         # smoke test, a few minutes
    python bench/online_pbrl.py --task halfcheetah --steps 100000 --labels 500 --update-benchmarks
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Optional, Sequence

from omegaconf import OmegaConf

if not __package__:  # run as python bench/<name>.py: bench/_bootstrap.py puts the repository root on sys.path
    import _bootstrap  # noqa: F401
from bench.common import BENCHMARKS, RAW, publish  # noqa: E402

from pbrl.resources import resource_dir  # noqa: E402
from pbrl.utils import atomic_write_text

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
QUICK = {"steps": 3000, "labels": 40}
FULL = {"steps": 100_000, "labels": 500}
RETURN_GOAL, OVERHEAD_GOAL = 0.9, 1.2


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything that decides the two runs (the pbrl overrides are derived from it)."""

    task: str
    steps: int
    labels: int
    seed: int
    seed_steps: int
    every: int             # env steps between feedback sessions
    per_round: int         # queries per session
    rounds: int            # sessions needed to spend the label budget
    segment_length: int
    eval_every: int
    eval_episodes: int     # episodes per periodic pbrl evaluation
    final_episodes: int    # episodes of the final evaluation (both runs)
    checkpoint_every: int
    quick: bool

    @property
    def last_feedback_step(self) -> int:
        return self.seed_steps + (self.rounds - 1) * self.every


def feedback_schedule(steps: int, labels: int, seed_steps: int, frac: float,
                      every: Optional[int] = None, per_round: Optional[int] = None) -> tuple[int, int, int]:
    """(every, per_round, rounds) so that ``labels`` are spent between ``seed_steps`` and ``frac * steps``.

    PEBBLE asks its first queries right after the seed steps and then every ``every`` steps; by default a
    session every 5% of training (at least 10 segments' worth of steps apart).
    """
    every = every or max(500, steps // 20)
    if per_round is None:
        sessions = max(1, (max(seed_steps, int(frac * steps)) - seed_steps) // every + 1)
        per_round = math.ceil(labels / sessions)
    return every, per_round, math.ceil(labels / per_round)


def make_plan(args: argparse.Namespace) -> Plan:
    """Resolve defaults (``--quick``, configs/algo/sac.yaml, configs/train.yaml) into a :class:`Plan`."""
    size = QUICK if args.quick else FULL
    steps, labels = args.steps or size["steps"], args.labels or size["labels"]
    algo = OmegaConf.load(resource_dir("configs") / "algo" / "sac.yaml")
    train = OmegaConf.load(resource_dir("configs") / "train.yaml")
    every, per_round, rounds = feedback_schedule(steps, labels, int(algo.seed_steps), args.feedback_frac,
                                                 args.every, args.per_round)
    eval_every = args.eval_every or max(1, steps // 5)
    return Plan(task=args.task, steps=steps, labels=labels, seed=args.seed, seed_steps=int(algo.seed_steps),
                every=every, per_round=per_round, rounds=rounds, segment_length=args.segment_length,
                eval_every=eval_every, eval_episodes=args.eval_episodes,
                final_episodes=args.final_episodes or int(train.eval.final_episodes),
                checkpoint_every=args.checkpoint_every or eval_every, quick=args.quick)


def pbrl_command(plan: Plan, out: Path, extra: Sequence[str]) -> list[str]:
    """``pbrl train`` with PEBBLE-ish overrides (run through this interpreter's ``pbrl.cli``)."""
    overrides = [
        f"task={plan.task}", "algo=sac", "feedback=scripted", "feedback.preset=oracle", "reward=ensemble",
        "query=disagreement", f"budget.env_steps={plan.steps}", f"budget.labels={plan.labels}",
        f"budget.per_round={plan.per_round}", f"budget.every={plan.every}",
        f"segment_length={plan.segment_length}", f"seed={plan.seed}", f"out={out}", "threads=1",
        "eval.video=false", f"eval.every={plan.eval_every}", f"eval.episodes={plan.eval_episodes}",
        f"eval.final_episodes={plan.final_episodes}", f"checkpoint_every={plan.checkpoint_every}",
    ]
    return [sys.executable, "-m", "pbrl.cli", "train", *overrides, *extra]


def sac_command(plan: Plan, out: Path) -> list[str]:
    return [sys.executable, str(BENCH_DIR / "sac_true_reward.py"), "--task", plan.task, "--steps", str(plan.steps),
            "--seed", str(plan.seed), "--out", str(out), "--eval-episodes", str(plan.final_episodes),
            "--threads", "1"]


def show(cmd: Sequence[str]) -> str:
    """A command as a copy-pasteable line, with paths inside the repository made relative to it."""
    def rel(part: str) -> str:
        return re.sub(re.escape(str(REPO)) + r"/", "", part)
    return shlex.join(rel(p) for p in cmd)


def _last_line(log: Path) -> str:
    """Last progress line of a log (tqdm redraws with carriage returns)."""
    try:
        text = log.read_bytes()[-4000:].decode(errors="replace")
    except OSError:
        return ""
    parts = [p.strip() for p in re.split(r"[\r\n]", text) if p.strip()]
    return parts[-1][:160] if parts else ""


def launch(root: Path, cmds: dict[str, list[str]], heartbeat: float, *, prog: str
           ) -> Optional[tuple[dict[str, float], dict[str, Any]]]:
    """Run ``cmds`` side by side with logs in ``root``; (wall seconds, machine info), or None after an error."""
    root.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the children are stopped too
    try:
        return run_side_by_side(cmds, {k: root / f"{k}.log" for k in cmds}, heartbeat), machine
    except RuntimeError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return None


def run_side_by_side(cmds: dict[str, list[str]], logs: dict[str, Path], heartbeat: float) -> dict[str, float]:
    """Start all commands at once (1 thread each), wait for all; process wall seconds per name.

    If one fails the others are stopped and ``RuntimeError`` names the log to read.
    """
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONUNBUFFERED="1")
    procs, walls, t0 = {}, {}, time.perf_counter()
    try:
        for name, cmd in cmds.items():
            with open(logs[name], "wb") as fh:
                procs[name] = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
            print(f"started {name} (pid {procs[name].pid}), log {logs[name]}", flush=True)
        next_beat = t0 + heartbeat
        while len(walls) < len(procs):
            time.sleep(1.0)
            for name, proc in procs.items():
                if name not in walls and proc.poll() is not None:
                    walls[name] = time.perf_counter() - t0
                    print(f"{name} finished after {walls[name]:.0f}s (exit {proc.returncode})", flush=True)
                    if proc.returncode != 0:
                        raise RuntimeError(f"{name} failed (exit {proc.returncode}); last output:\n"
                                           f"{logs[name].read_text(errors='replace')[-3000:]}")
            if time.perf_counter() >= next_beat:
                next_beat += heartbeat
                for name in procs:
                    if name not in walls:
                        print(f"[{time.perf_counter() - t0:.0f}s] {name}: {_last_line(logs[name])}", flush=True)
    finally:
        for name, proc in procs.items():
            if proc.poll() is None:
                print(f"stopping {name} (pid {proc.pid})", flush=True)
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return walls


def machine_info(extra_packages: Sequence[str] = ()) -> dict[str, Any]:
    """Date, cores, CPU model, load and library versions (plus ``extra_packages``), for the record."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("pbrl", "torch", "stable-baselines3", "gymnasium", "mujoco", *extra_packages):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "?"
    return {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "nproc": len(os.sched_getaffinity(0)), "cpu": model, "loadavg_start": os.getloadavg(),
            "python": sys.version.split()[0], "versions": versions}


def count_eval_rows(metrics_csv: Path) -> int:
    """Rows in pbrl's metrics.csv (one per evaluation; the final one replaced the last periodic one)."""
    lines = [ln for ln in metrics_csv.read_text().splitlines() if ln.strip()] if metrics_csv.exists() else []
    return max(0, len(lines) - 1)


def collect(plan: Plan, dirs: dict[str, Path], proc_wall: dict[str, float]) -> dict[str, Any]:
    """Both summaries plus the derived ratios (raw numbers; formatting happens in :func:`render`)."""
    pb = json.loads((dirs["pbrl"] / "summary.json").read_text())
    sac = json.loads((dirs["sac"] / "summary.json").read_text())
    periodic_evals = plan.steps // plan.eval_every  # the one at the last step is redone by the final evaluation
    # Policy episodes pbrl evaluates: periodic + final + one more it always runs for the (disabled) video.
    eval_episodes = periodic_evals * plan.eval_episodes + plan.final_episodes + 1
    s_per_episode = sac["eval_s"] / max(1, sac["eval_episodes"])
    pb_train_est = pb["wall_s"] - eval_episodes * s_per_episode
    rnd = pb.get("random_return")
    ratio = pb["return_mean"] / sac["return_mean"] if sac["return_mean"] > 0 else None
    norm_ratio = None
    if rnd is not None and sac["return_mean"] - rnd > 0:
        norm_ratio = (pb["return_mean"] - rnd) / (sac["return_mean"] - rnd)
    return {
        "pbrl": pb, "sac": sac, "process_wall_s": proc_wall,
        "metrics_rows": count_eval_rows(dirs["pbrl"] / "metrics.csv"),
        "return_ratio": ratio, "normalised_return_ratio": norm_ratio,
        "overhead": pb["wall_s"] / sac["wall_s"], "pbrl_eval_episodes": eval_episodes,
        "pbrl_train_wall_est_s": pb_train_est, "overhead_est": pb_train_est / sac["wall_s"],
    }


def _num(value: Optional[float], fmt: str = ".2f") -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def _goal(value: Optional[float], goal: float, higher_is_better: bool) -> str:
    if value is None:
        return "n/a"
    met = value >= goal if higher_is_better else value <= goal
    return f"{value:.2f} ({'met' if met else 'NOT met'}: {'≥' if higher_is_better else '≤'} {goal})"


def render_table(plan: Plan, res: dict[str, Any]) -> str:
    """The one-row results table."""
    pb, sac = res["pbrl"], res["sac"]
    head = ("| task | steps | labels used | PbRL return | PbRL success | SAC (true reward) return | SAC success "
            "| return ratio PbRL/SAC | normalised ratio | PbRL wall [s]¹ | SAC wall [s]² | overhead PbRL/SAC "
            "| ≈ overhead w/o eval³ | PbRL reward acc. |")
    cells = [
        plan.task, str(plan.steps), f"{pb['labels_used']}/{plan.labels}",
        f"{pb['return_mean']:.1f} ± {pb['return_std']:.1f}", _num(pb["success_rate"]),
        f"{sac['return_mean']:.1f} ± {sac['return_std']:.1f}", _num(sac["success_rate"]),
        _goal(res["return_ratio"], RETURN_GOAL, True), _num(res["normalised_return_ratio"]),
        f"{pb['wall_s']:.0f}", f"{sac['wall_s']:.0f}", _goal(res["overhead"], OVERHEAD_GOAL, False),
        _num(res["overhead_est"]), _num(pb.get("reward_accuracy"), ".3f"),
    ]
    sep = "|" + "---|" * len(cells)
    return "\n".join([head, sep, "| " + " | ".join(cells) + " |"])


def render(plan: Plan, res: dict[str, Any], cmds: dict[str, list[str]], machine: dict[str, Any]) -> str:
    """Markdown block: heading, table, footnotes, settings, commands, machine."""
    pb, sac = res["pbrl"], res["sac"]
    kind = " — quick smoke test" if plan.quick else ""
    ver = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    return f"""\
## Online PbRL vs SAC on the true reward: {plan.task}, {plan.steps} steps, {plan.labels} labels, seed {plan.seed}{kind}

{render_table(plan, res)}

Returns are true episode returns, mean ± std over {plan.final_episodes} evaluation episodes (deterministic
policy, `pbrl.envs.evaluate` with seed 10000+seed for both). Normalised ratio = (PbRL − random) / (SAC − random),
random-policy return {_num(pb.get('random_return'), '.1f')}; the raw ratio is n/a when SAC's return is ≤ 0.
Reward accuracy (`reward_accuracy` in pbrl's summary.json): share of random segment pairs from recent training
episodes that the learned reward orders like the true reward (segment-return correlation
{_num(pb.get('reward_corr_segment'))}).

1. pbrl's summary.json has **no training-only wall time**: its `wall_s` runs from the start of the run session
   to the end of the final evaluation, so it includes {res['metrics_rows']} evaluation rows (every
   {plan.eval_every} steps, {plan.eval_episodes} episode(s) each, plus reward-accuracy checks), the final
   evaluation, one random-policy episode, checkpoints every {plan.checkpoint_every} steps and the plot.
   Evaluation is kept sparse for this reason; the overhead ratio is therefore slightly pessimistic for pbrl.
2. Seconds inside `SAC.learn()` only (evaluation: {sac['eval_s']:.1f}s, not counted).
3. Estimate: pbrl wall minus {res['pbrl_eval_episodes']} policy-evaluation episodes × SAC's measured
   {sac['eval_s'] / max(1, sac['eval_episodes']):.2f}s/episode = {res['pbrl_train_wall_est_s']:.0f}s.

Settings: PEBBLE with ensemble Bradley-Terry reward, disagreement queries, oracle scripted teacher;
{plan.seed_steps} seed steps, then {plan.rounds} feedback sessions of {plan.per_round} queries every {plan.every}
steps (last at step {plan.last_feedback_step}, {100 * plan.last_feedback_step / plan.steps:.0f}% of training),
segments of {plan.segment_length} steps; SAC hyperparameters from `configs/algo/sac.yaml` for both runs; one torch
thread per process. Process wall times incl. start-up: pbrl {res['process_wall_s'].get('pbrl', 0):.0f}s, SAC
{res['process_wall_s'].get('sac', 0):.0f}s.

Commands (started together from the repository root):

```
{show(cmds['pbrl'])}
{show(cmds['sac'])}
```

Date {machine['date']}; machine: {machine['nproc']} cores, {machine['cpu']}, load average at start
{', '.join(f'{x:.2f}' for x in machine['loadavg_start'])}; Python {machine['python']}, {ver}.
"""


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Run pbrl's online PEBBLE (oracle teacher) and plain SB3 SAC on the true reward side by "
                    "side (two single-threaded processes started together) and report returns, wall times "
                    "and their ratios as a markdown table.",
        epilog="Example: python bench/online_pbrl.py --task halfcheetah --steps 100000 --labels 500 "
               "--update-benchmarks",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", default="halfcheetah", help="pbrl task (see `pbrl tasks`)")
    p.add_argument("--steps", type=int, help=f"env steps per run (default {FULL['steps']}, --quick {QUICK['steps']})")
    p.add_argument("--labels", type=int, help=f"label budget (default {FULL['labels']}, --quick {QUICK['labels']})")
    p.add_argument("--seed", type=int, default=0, help="seed of both runs")
    p.add_argument("--quick", action="store_true", help="smoke test: small steps/labels defaults")
    p.add_argument("--feedback-frac", type=float, default=0.65,
                   help="spend the labels by this fraction of training (sets budget.per_round)")
    p.add_argument("--every", type=int, help="env steps between feedback sessions (default max(500, steps/20))")
    p.add_argument("--per-round", type=int, help="queries per session (default: derived from --feedback-frac)")
    p.add_argument("--segment-length", type=int, default=50, help="steps per compared segment")
    p.add_argument("--eval-every", type=int, help="pbrl's periodic evaluation interval (default steps/5)")
    p.add_argument("--eval-episodes", type=int, default=1, help="episodes per periodic pbrl evaluation")
    p.add_argument("--final-episodes", type=int, help="final evaluation episodes, both runs "
                                                      "(default eval.final_episodes of configs/train.yaml)")
    p.add_argument("--checkpoint-every", type=int, help="pbrl checkpoint interval (default = --eval-every)")
    p.add_argument("--pbrl-override", action="append", default=[], metavar="KEY=VALUE",
                   help="extra Hydra override for pbrl train (repeatable), e.g. algo.unsup_steps=2000")
    p.add_argument("--runs-dir", type=Path, default=RAW, help="where the run dirs go")
    p.add_argument("--results-dir", type=Path, default=RAW, help="where the table and raw results go")
    p.add_argument("--update-benchmarks", action="store_true", help="rewrite this task's section of BENCHMARKS.md")
    p.add_argument("--benchmarks-file", type=Path, default=BENCHMARKS,
                   help="file --update-benchmarks edits")
    p.add_argument("--heartbeat", type=float, default=300.0, help="seconds between progress lines")
    p.add_argument("--dry-run", action="store_true", help="print the plan and commands, run nothing")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    root = (args.runs_dir / f"online_{plan.task}_{plan.steps}_s{plan.seed}_{stamp}").resolve()
    dirs = {"pbrl": root / "pbrl", "sac": root / "sac"}
    cmds = {"pbrl": pbrl_command(plan, dirs["pbrl"], args.pbrl_override), "sac": sac_command(plan, dirs["sac"])}
    print(f"plan: {plan}\n" + "\n".join(f"{k}: {show(c)}" for k, c in cmds.items()), flush=True)
    if args.dry_run:
        return 0
    started = launch(root, cmds, args.heartbeat, prog="online_pbrl")
    if started is None:
        return 1
    walls, machine = started
    res = collect(plan, dirs, walls)
    block = render(plan, res, cmds, machine)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    name = f"online_{plan.task}_{plan.steps}"
    atomic_write_text(args.results_dir / f"{name}.md", block)
    atomic_write_text(args.results_dir / f"{name}.json", json.dumps(
        {"plan": dataclasses.asdict(plan), "machine": machine, "commands": {k: show(c) for k, c in cmds.items()},
         "run_dirs": {k: str(d) for k, d in dirs.items()}, **res}, indent=2, default=str) + "\n")
    publish("\n" + block, f"online:{plan.task}", args.update_benchmarks, args.benchmarks_file)
    print(f"wrote {args.results_dir / name}.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

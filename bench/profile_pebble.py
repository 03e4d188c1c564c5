"""Where a PEBBLE run's wall time goes: cProfile of ``pbrl train``, split into the loop's phases.

Runs ``python -m cProfile -m pbrl.cli train ...`` (HalfCheetah, oracle teacher, ensemble reward, disagreement
queries, ``threads=1``) once per learner (as in ``bench/learner_speed.py``) and attributes the profiled wall time to SAC gradient updates,
action selection, env stepping, per-step reward-model inference, the pbrl env wrapper, the replay buffer,
relabelling, reward fits, query selection/labelling, evaluation, checkpoints, final artefacts and start-up, using
each function's cumulative time (and its callers' split where a function serves two phases).

    python bench/profile_pebble.py --steps 10000 --learners sb3,crossq [--update-benchmarks]

cProfile adds a per-call cost, so phases made of many small Python calls (the collection loop) look larger than
they are without it; the shares still rank the phases. Profiles are kept in ``--out`` for ``snakeviz``/``pstats``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pstats
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

if not __package__:  # run as python bench/<name>.py: bench/_bootstrap.py puts the repository root on sys.path
    import _bootstrap  # noqa: F401
from bench.common import publish  # noqa: E402
from bench.learner_speed import DEFAULT_LEARNERS  # noqa: E402
from bench.online_pbrl import machine_info  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MARK = "pebble-profile"

#: phase -> the (file fragment, function name) pairs whose cumulative times it adds; ``minus`` ones are subtracted.
PHASES: list[tuple[str, list[tuple[str, str]], list[tuple[str, str]]]] = [
    ("gradient updates (incl. batch sampling; sbx: JIT compile)", [("sac.py", "train"), ("crossq.py", "train")], []),
    ("action selection (policy forward per env step)", [("off_policy_algorithm.py", "_sample_action")], []),
    ("env stepping (MuJoCo + gymnasium wrappers)", [("dummy_vec_env.py", "step_wait")], []),
    ("reward-model inference per env step", [("preference.py", "reward_fn@wrappers.py:step_wait")], []),
    ("pbrl env wrapper (episode recording)", [("wrappers.py", "step_wait")],
     [("dummy_vec_env.py", "step_wait"), ("preference.py", "reward_fn@wrappers.py:step_wait")]),
    ("replay buffer add", [("off_policy_algorithm.py", "_store_transition")], []),
    ("rest of the collection loop (callbacks, bookkeeping)", [("off_policy_algorithm.py", "collect_rollouts")],
     [("off_policy_algorithm.py", "_sample_action"), ("base_vec_env.py", "step"),
      ("off_policy_algorithm.py", "_store_transition")]),
    ("whole-buffer relabelling + normaliser fit", [("pebble.py", "refresh_reward")], []),
    ("reward-model fits", [("preference.py", "fit")], []),
    ("query selection + labelling", [("preference.py", "round")], [("preference.py", "fit")]),
    ("evaluation (periodic + final, reward accuracy)", [("session.py", "evaluate_now")], []),
    ("checkpoints", [("checkpoint.py", "save_checkpoint")], []),
    ("final artefacts (video, policy, plot)", [("runner.py", "_finish")], [("session.py", "evaluate_now@runner.py:_finish")]),
    ("start-up (config, env, models) and the random-policy episode", [("runner.py", "run_training")],
     [("pebble.py", "train"), ("runner.py", "_finish"), ("checkpoint.py", "save_checkpoint")]),
]


def cumtime(stats: pstats.Stats, fragment: str, spec: str) -> float:
    """Cumulative seconds of ``spec`` (``name`` or ``name@callerfile:callername``) in files matching ``fragment``."""
    name, _, caller = spec.partition("@")
    total = 0.0
    for (path, _, func), (_, _, _, ct, callers) in stats.stats.items():  # type: ignore[attr-defined]
        if func != name or fragment not in path:
            continue
        if not caller:
            total += ct
            continue
        cfile, _, cname = caller.partition(":")
        total += sum(c[3] for (p, _, f), c in callers.items() if f == cname and cfile in p)
    return total


def phase_table(stats: pstats.Stats) -> tuple[list[tuple[str, float]], float]:
    """(phase, seconds) rows and the profiled total (``run_training``'s cumulative time)."""
    rows = []
    for label, plus, minus in PHASES:
        rows.append((label, sum(cumtime(stats, f, s) for f, s in plus) - sum(cumtime(stats, f, s) for f, s in minus)))
    total = cumtime(stats, "runner.py", "run_training")
    rows.append(("other", total - sum(s for _, s in rows)))
    return rows, total


def profile_run(learner: str, args: argparse.Namespace, out: Path) -> tuple[Path, float, float, list[str]]:
    """Profile one ``pbrl train``; returns the profile path, the process wall and CPU seconds, and the command."""
    prof = out / f"{learner}.prof"
    cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "pbrl.cli", "train",
           "task=halfcheetah", *DEFAULT_LEARNERS[learner].split(), "feedback=scripted", "feedback.preset=oracle",
           "reward=ensemble", "query=disagreement", f"budget.env_steps={args.steps}", f"budget.labels={args.labels}",
           f"budget.per_round={args.per_round}", f"budget.every={args.every}", "threads=1", "device=cpu",
           "eval.video=false", f"eval.every={args.steps // 2}", "eval.episodes=1", "eval.final_episodes=5",
           f"checkpoint_every={args.steps // 2}", f"seed={args.seed}", f"out={out / learner}"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    t0, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out / f"{learner}.log", "wb") as log:
        subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return prof, time.perf_counter() - t0, cpu, cmd


def render(results: dict[str, tuple[list[tuple[str, float]], float, float, float]], args: argparse.Namespace,
           cmds: dict[str, list[str]], machine: dict) -> str:
    names = list(results)
    head = "| phase | " + " | ".join(f"{n}: s | {n}: share" for n in names) + " |"
    lines = [head, "|---|" + "---|---|" * len(names)]
    for i, (label, _) in enumerate(results[names[0]][0]):
        cells = []
        for n in names:
            sec, total = results[n][0][i][1], results[n][1]
            cells += [f"{sec:.1f}", f"{100 * sec / total:.1f}%"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| **total (profiled `run_training`)** | " + " | ".join(
        f"**{results[n][1]:.1f}** | 100%" for n in names) + " |")
    walls = ", ".join(f"{n} {results[n][2]:.0f}s wall / {results[n][3]:.0f}s CPU" for n in names)
    shown = "\n".join(" ".join(c.replace(str(REPO) + "/", "") for c in cmds[n]) for n in names)
    return f"""\
## Where a PEBBLE run's time goes (cProfile): halfcheetah, {args.steps} steps, {args.labels} labels, seed {args.seed}

{chr(10).join(lines)}

Processes under the profiler: {walls}. The learners ran one after the other, so the machine's load differed
between them: compare the shares, and the CPU seconds, not the wall seconds across columns. Feedback: sessions of
{args.per_round} queries every {args.every} steps from step 1000; evaluation at {args.steps // 2} and {args.steps} steps
(1 episode) plus the final 5 episodes. cProfile's per-call cost inflates phases made of many small Python calls
(collection loop, wrapper), so read the shares as a ranking; at 100k steps the fixed costs (fits, evaluation,
start-up) shrink relative to the per-step ones.

```
{shown}
```

Date {machine['date']}; machine: {machine['nproc']} cores, {machine['cpu']}, load average at start
{', '.join(f'{x:.2f}' for x in machine['loadavg_start'])}.
"""


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--labels", type=int, default=100)
    p.add_argument("--per-round", type=int, default=20)
    p.add_argument("--every", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--learners", default="sb3,crossq",
                   help=f"comma-separated learners of bench/learner_speed.py ({', '.join(DEFAULT_LEARNERS)}), in turn")
    p.add_argument("--out", type=Path, default=None, help="directory for profiles, logs and runs")
    p.add_argument("--update-benchmarks", action="store_true", help=f"rewrite the {MARK} section of BENCHMARKS.md")
    args = p.parse_args(argv)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = (args.out or REPO / "runs" / "bench" / f"profile_pebble_{stamp}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    results, cmds = {}, {}
    for learner in args.learners.split(","):
        prof, wall, cpu, cmds[learner] = profile_run(learner, args, out)
        rows, total = phase_table(pstats.Stats(str(prof)))
        results[learner] = (rows, total, wall, cpu)
        print(f"{learner}: profiled {total:.0f}s, process {wall:.0f}s wall, {cpu:.0f}s CPU", flush=True)
    publish(render(results, args, cmds, machine), MARK, args.update_benchmarks)
    return 0


if __name__ == "__main__":
    sys.exit(main())

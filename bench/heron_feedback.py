"""HERON hierarchical feedback: agreement with true-return labels, and policies trained from it.

1. Agreement: segments of each task (MuJoCo: random actions at five scales 0.1 ... 1; Meta-World: the
   expert with action noise 0 ... 2), random pairs labelled by the task's shipped HERON ranking (margins
   from the std over all segments) and by the true return; agreement on the pairs HERON answers, skip rate.
2. Policies: ``pbrl train`` with ``feedback=heron`` vs ``feedback=scripted`` (rational) at the same label
   budget and seed, on HalfCheetah, Hopper and button-press; final return / success.

    python bench/heron_feedback.py [--steps 10000 --labels 200] [--skip-train] [--update-benchmarks]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if not __package__:  # run as python bench/<name>.py: bench/_bootstrap.py puts the repository root on sys.path
    import _bootstrap  # noqa: F401
from bench.common import BENCHMARKS, RAW, update_section
from pbrl.data.trajectory import random_start
from pbrl.envs.make import make_env
from pbrl.envs.rollout import rollout
from pbrl.envs.tasks import load_task
from pbrl.feedback.heron import heron_labeller
from pbrl.feedback.query import random_pairs
from pbrl.feedback.transfer_data import noisy_expert_segments, true_return_labels



def _num(x) -> str:
    return "-" if x is None else f"{x:.2f}"
MARK = "heron"
AGREEMENT_TASKS = ("halfcheetah", "hopper", "walker2d", "button-press", "drawer-open")
TRAIN_TASKS = ("halfcheetah", "hopper", "button-press")


def task_segments(name: str, n_episodes: int, episode_length: int, segment_length: int, seed: int) -> list:
    task = load_task(name)
    if task.expert:
        return noisy_expert_segments(task, n_episodes=n_episodes, episode_length=episode_length,
                                     segment_length=segment_length, per_episode=5, seed=seed)
    rng = np.random.default_rng(seed)
    env = make_env(task, seed=seed, episode_length=episode_length)
    segs = []
    try:
        for e in range(n_episodes):
            scale = (0.1, 0.3, 0.5, 0.75, 1.0)[e % 5]
            space = env.action_space
            traj = rollout(env, lambda o: scale * rng.uniform(space.low, space.high), seed=seed + e, episode_id=e)
            if len(traj) >= segment_length:
                for s in random_start(len(traj), segment_length, rng, size=5):
                    segs.append(traj.segment(int(s), segment_length))
    finally:
        env.close()
    return segs


def agreement(name: str, args) -> dict:
    task = load_task(name)
    segs = task_segments(name, args.episodes, args.episode_length, args.segment_length, seed=0)
    lab = heron_labeller(None, sigma=0.1, task_name=name, terms=task.reward_terms,
                         has_success=task.success_key is not None, task_extra=task.extra)
    lab.set_pool(segs)
    a, b = random_pairs(len(segs), args.pairs, np.random.default_rng(1))
    first, second = [segs[i] for i in a], [segs[i] for i in b]
    labels, truth = lab.label(first, second), true_return_labels(first, second)
    ok = ~labels.skipped & (truth != 0.5)
    levels = np.bincount(lab.last_levels[lab.last_levels >= 0], minlength=len(lab.factors))
    return {"task": name, "ranking": [("-" if f.sign < 0 else "") + f.term for f in lab.factors],
            "agreement": float(((labels.p[ok] > 0.5) == (truth[ok] > 0.5)).mean()),
            "skipped": float(labels.skipped.mean()), "n_segments": len(segs), "n_pairs": len(first),
            "decided_by_level": levels.tolist()}


def train(task: str, feedback: str, args, out: Path) -> dict:
    cmd = [sys.executable, "-m", "pbrl.cli", "train", f"out={out}", f"task={task}", "algo=sac", f"feedback={feedback}",
           f"budget.env_steps={args.steps}", f"budget.labels={args.labels}", f"budget.per_round={args.per_round}",
           f"budget.every={args.every}", f"eval.every={args.steps}", "eval.video=false", f"seed={args.seed}",
           f"episode_length={args.train_episode_length}", f"checkpoint_every={args.steps}",
           f"algo.seed_steps={args.every}", *args.extra]
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        return {"task": task, "feedback": feedback, "error": res.stderr.strip().splitlines()[-1:]}
    s = json.loads((out / "summary.json").read_text())
    return {"task": task, "feedback": feedback, "return": s["return_mean"], "success": s["success_rate"],
            "labels_answered": s["labels_answered"], "reward_accuracy": s["reward_accuracy"],
            "wall_s": round(time.time() - t0, 1)}


def render(res: dict, args) -> str:
    lines = ["## HERON hierarchical feedback (`feedback=heron`)", "",
             f"`python bench/heron_feedback.py {' '.join(sys.argv[1:])}` · {res['machine']} · {res['date']}", "",
             f"Agreement of HERON labels with true-return labels ({args.pairs} random pairs of {args.segment_length}-step "
             "segments; MuJoCo: random actions at 5 scales, Meta-World: expert + action noise 0-2; margins from "
             "the std over all segments):", "",
             "| task | ranking (shipped) | segments | agreement (answered pairs) | skipped | pairs decided per level |",
             "|---|---|---|---|---|---|"]
    for r in res["agreement"]:
        lines.append(f"| {r['task']} | {', '.join(r['ranking'])} | {r['n_segments']} | {r['agreement']:.1%} | {r['skipped']:.1%} | "
                     f"{r['decided_by_level']} |")
    if res["train"]:
        lines += ["", f"Policies (PEBBLE/SAC, ensemble reward, {args.steps} env steps, {args.labels} labels, episode length "
                  f"{args.train_episode_length}, seed {args.seed}; a small budget: compare columns, not absolute values):", "",
                  "| task | feedback | final return | success | labels answered | reward acc. | wall |", "|---|---|---|---|---|---|---|"]
        for r in res["train"]:
            if "error" in r:
                lines.append(f"| {r['task']} | {r['feedback']} | error: {r['error']} | | | | |")
                continue
            succ = _num(r["success"])
            lines.append(f"| {r['task']} | {r['feedback']} | {r['return']:.1f} | {succ} | {r['labels_answered']} | "
                         f"{_num(r['reward_accuracy'])} | {r['wall_s']} s |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--episodes", type=int, default=40)
    p.add_argument("--episode-length", type=int, default=200)
    p.add_argument("--segment-length", type=int, default=50)
    p.add_argument("--pairs", type=int, default=2000)
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--labels", type=int, default=200)
    p.add_argument("--per-round", type=int, default=40)
    p.add_argument("--every", type=int, default=2000)
    p.add_argument("--train-episode-length", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--extra", nargs="*", default=[], help="more pbrl train overrides")
    p.add_argument("--train-tasks", default=",".join(TRAIN_TASKS))
    p.add_argument("--update-benchmarks", action="store_true")
    args = p.parse_args()
    res = {"machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPU cores",
           "date": time.strftime("%Y-%m-%d"), "agreement": [], "train": []}
    for name in AGREEMENT_TASKS:
        res["agreement"].append(agreement(name, args))
        print(json.dumps(res["agreement"][-1]), flush=True)
    save(res, args)
    if not args.skip_train:
        with tempfile.TemporaryDirectory() as d:
            for task in args.train_tasks.split(","):
                for fb in ("heron", "scripted"):
                    res["train"].append(train(task, fb, args, Path(d) / f"{task}-{fb}"))
                    print(json.dumps(res["train"][-1]), flush=True)
                    save(res, args)  # partial results survive an interrupted benchmark
    print(save(res, args))


def save(res: dict, args) -> str:
    RAW.mkdir(parents=True, exist_ok=True)
    (RAW / "heron_feedback.json").write_text(json.dumps(res, indent=1))
    table = render(res, args)
    if args.update_benchmarks:  # also after each training: partial results survive an interrupted benchmark
        update_section(BENCHMARKS, MARK, table)
    return table


if __name__ == "__main__":
    main()

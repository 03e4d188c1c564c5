"""Reward-learning benchmark: label efficiency and robustness of single / ensemble / Gaussian models.

For every task (default: HalfCheetah and two Meta-World tasks) it collects segments from mixed
behaviour (bench/reward_learning_data.py), labels the same train pairs with four B-Pref teachers
(rational, mistake 10%, mistake 20%, equal), fits each reward model on the first N labels for
N in 50..2000, and measures accuracy on clean held-out pairs (true-return order, separate episodes).
The same pairs go to `imitation` 1.0.1 (its own venv, bench/reward_learning_imitation.py) for the
ensemble comparison and a throughput ratio (pairs/s over all members, timed in this one invocation).

Goals: Gaussian loses <= 3 accuracy points from rational to 10%-mistake labels; pbrl's accuracy >=
imitation's at every label count; pbrl's training throughput >= 3x imitation's.

    python bench/reward_learning.py --seeds 0,1,2 --n-test 1000 --update-benchmarks   # 33 min at load 6 on 2 cores
    python bench/reward_learning.py --render bench/results/reward_learning_3seeds.json   # re-draw the published tables
    python bench/reward_learning.py --quick                      # smoke test, ~2 min
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

if not __package__:  # run as python bench/<name>.py: bench/_bootstrap.py puts the repository root on sys.path
    import _bootstrap  # noqa: F401
from bench.common import BENCHMARKS, RAW, publish  # noqa: E402
from bench.online_pbrl import machine_info  # noqa: E402
from bench.reward_learning_data import TEACHERS, TaskPairs, label, make_task_pairs  # noqa: E402

from pbrl.rewards.ensemble import EnsembleReward  # noqa: E402
from pbrl.rewards.evaluation import predicted_returns, strict_accuracy  # noqa: E402
from pbrl.rewards.gaussian import GaussianReward  # noqa: E402
from pbrl.types import PairBatch  # noqa: E402
from pbrl.utils import atomic_write_json, atomic_write_text  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
MARK = "reward-learning"
#: model name -> Gaussian models in it (plain RRL, and an ensemble of 3 RRL models)
GAUSSIANS = {"gaussian": 1, "gaussian-ensemble": 3}
QUICK = dict(tasks="halfcheetah,drawer-open", counts="50,250", episodes=8, n_test=100, updates=40)


def epochs_for(n: int, args: argparse.Namespace) -> int:
    """About ``args.updates`` gradient steps whatever the label count, within [min, max] epochs."""
    per_epoch = math.ceil(n / args.batch_size)
    return int(min(args.max_epochs, max(args.min_epochs, math.ceil(args.updates / per_epoch))))


def build_model(kind: str, obs_dim: int, act_dim: int, args: argparse.Namespace, seed: int):
    common = dict(hidden=args.hidden, lr=args.lr, batch_size=args.batch_size, seed=seed, label_noise=args.label_noise)
    if kind in GAUSSIANS:
        return GaussianReward(obs_dim, act_dim, kl_weight=args.kl_weight, members=GAUSSIANS[kind], **common)
    return EnsembleReward(obs_dim, act_dim, n_members=1 if kind == "single" else 3, **common)


def head(batch: PairBatch, n: int) -> PairBatch:
    return PairBatch(*(a[:n] for a in batch))


def fit_and_score(kind: str, train: PairBatch, test: PairBatch, n: int, args: argparse.Namespace) -> dict:
    model = build_model(kind, train.obs1.shape[-1], train.act1.shape[-1], args, args.seed)
    epochs = epochs_for(n, args)
    t0 = time.perf_counter()
    model.fit(head(train, n), epochs=epochs)
    fit_s = time.perf_counter() - t0
    r1, r2 = predicted_returns(model, test)
    return {"model": kind, "n": n, "epochs": epochs, "accuracy": strict_accuracy(r1 - r2, test.p),
            "fit_s": fit_s, "pairs_per_s": n * epochs / fit_s}


def start_imitation(train: PairBatch, test: PairBatch, counts: list[int], args: argparse.Namespace):
    """Start imitation's ensemble on the same pairs in its own interpreter (runs beside pbrl's fits).

    Returns ``(process, output path)``, or None (with a note on stderr) when its venv is missing.
    """
    if not Path(args.imitation_python).exists():
        print(f"imitation: {args.imitation_python} not found; skipping the comparison", file=sys.stderr)
        return None
    cfg = {"hidden": list(args.hidden), "members": 3, "batch_size": args.batch_size, "lr": args.lr,
           "seed": args.seed, "counts": counts, "epochs": [epochs_for(n, args) for n in counts]}
    tmp = Path(tempfile.mkdtemp(prefix="pbrl-imitation-"))
    src, dst = tmp / "pairs.npz", tmp / "out.json"
    np.savez(src, obs1=train.obs1, act1=train.act1, obs2=train.obs2, act2=train.act2, p=train.p,
             test_obs1=test.obs1, test_act1=test.act1, test_obs2=test.obs2, test_act2=test.act2,
             test_p=test.p, config=json.dumps(cfg))
    proc = subprocess.Popen([args.imitation_python, str(BENCH_DIR / "reward_learning_imitation.py"), str(src),
                             str(dst)], stdout=subprocess.DEVNULL, stderr=open(tmp / "stderr.log", "w"))
    return proc, dst


def finish_imitation(job, task: str, teacher: str) -> list[dict]:
    """Wait for one imitation job; its rows, or none (stderr tail printed) if it failed."""
    if job is None:
        return []
    proc, dst = job
    if proc.wait() != 0:
        print(f"imitation failed on {task}/{teacher}:\n{(dst.parent / 'stderr.log').read_text()[-3000:]}",
              file=sys.stderr)
        return []
    rows = [{"task": task, "teacher": teacher, "lib": "imitation", "model": "ensemble", **r}
            for r in json.loads(dst.read_text())["results"]]
    for r in rows:
        print(f"  {task:14} {teacher:10} imitation/ensemble n={r['n']:5} acc={r['accuracy']:.3f} ({r['fit_s']:.1f}s)")
    return rows


def run_task(pairs: TaskPairs, args: argparse.Namespace, jobs: list) -> list[dict]:
    """pbrl fits for every teacher, model and count; imitation jobs are started and appended to ``jobs``."""
    rows = []
    for teacher in args.teachers:
        train = label(pairs, teacher, args.seed)
        counts = [n for n in args.counts if n <= train.n_pairs]
        if teacher in args.imitation_teachers and pairs.task in args.imitation_tasks:
            jobs.append((start_imitation(train, pairs.test, counts, args), pairs.task, teacher))
        for kind in args.models:
            for n in counts:
                row = {"task": pairs.task, "teacher": teacher, "lib": "pbrl",
                       **fit_and_score(kind, train, pairs.test, n, args)}
                rows.append(row)
                print(f"  {pairs.task:14} {teacher:10} pbrl/{kind:8} n={n:5} acc={row['accuracy']:.3f} "
                      f"({row['fit_s']:.1f}s)", flush=True)
    return rows


def _pct(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def mean_accuracy(rows: list[dict], **match: Any) -> float:
    vals = [r["accuracy"] for r in rows if all(r.get(k) == v for k, v in match.items())]
    return float(np.mean(vals)) if vals else math.nan


def render(rows: list[dict], args: argparse.Namespace, info: dict) -> str:
    counts, tasks = args.counts, list(dict.fromkeys(r["task"] for r in rows))
    hdr = "| teacher | model | " + " | ".join(str(n) for n in counts) + " |\n|---|---|" + "---:|" * len(counts)
    out = [f"Held-out accuracy (%) on clean pairs, mean over {len(tasks)} tasks ({', '.join(tasks)}), "
           f"seeds {', '.join(str(x) for x in sorted({r.get('seed', 0) for r in rows}))}:\n", hdr]
    imit_tasks = sorted({r["task"] for r in rows if r["lib"] == "imitation"})
    for teacher in args.teachers:
        for lib, kind in [("pbrl", m) for m in args.models] + [("imitation", "ensemble")]:
            cells = [mean_accuracy(rows, teacher=teacher, lib=lib, model=kind, n=n) for n in counts]
            if not all(math.isnan(c) for c in cells):
                name = kind if lib == "pbrl" else f"imitation/{kind} ({', '.join(imit_tasks)} only)"
                out.append(f"| {teacher} | {name} | " + " | ".join(_pct(c) for c in cells) + " |")
    out.append("\n" + goals(rows, args))
    out.append("\nPer task (pbrl ensemble / gaussian / gaussian-ensemble / imitation ensemble, rational teacher, mean over seeds):\n")
    out.append("| task | model | " + " | ".join(str(n) for n in counts) + " |\n|---|---|" + "---:|" * len(counts))
    for task in tasks:
        for lib, kind in (("pbrl", "ensemble"), ("pbrl", "gaussian"), ("pbrl", "gaussian-ensemble"),
                          ("imitation", "ensemble")):
            cells = [mean_accuracy(rows, task=task, teacher="rational", lib=lib, model=kind, n=n) for n in counts]
            if not all(math.isnan(c) for c in cells):
                out.append(f"| {task} | {lib}/{kind} | " + " | ".join(_pct(c) for c in cells) + " |")
    out.append(f"\nSetup: {info['setup']}\nMachine: {info['machine']}\nCommand: `{info['command']}`; "
               f"wall time {info['wall_s'] / 60:.1f} min.")
    return "\n".join(out)


def goals(rows: list[dict], args: argparse.Namespace) -> str:
    lines = []
    for kind in [k for k in args.models if k in GAUSSIANS]:
        drops = [mean_accuracy(rows, teacher="rational", model=kind, lib="pbrl", n=n)
                 - mean_accuracy(rows, teacher="mistake0.1", model=kind, lib="pbrl", n=n) for n in args.counts]
        if not all(math.isnan(d) for d in drops):
            worst = np.nanmax(drops)
            lines.append(f"- {kind} ({GAUSSIANS[kind]} model{'s' * (GAUSSIANS[kind] > 1)}), rational → 10% mistakes: "
                         f"drop per label count {', '.join(_pct(d) for d in drops)} points (mean "
                         f"{_pct(float(np.nanmean(drops)))}, worst {_pct(worst)}); goal ≤ 3.0 → "
                         f"**{'met' if worst <= 0.03 else 'not met'}**.")
    diffs = []  # per (task, teacher, count) cell, each side averaged over the seeds
    for task, teacher, n in dict.fromkeys((r["task"], r["teacher"], r["n"]) for r in rows if r["lib"] == "imitation"):
        cell = dict(task=task, teacher=teacher, n=n, model="ensemble")
        diffs.append((mean_accuracy(rows, lib="pbrl", **cell) - mean_accuracy(rows, lib="imitation", **cell), task, teacher, n))
    if diffs:
        bad = [d for d in diffs if d[0] < 0]
        lines.append(f"- pbrl ensemble vs imitation ensemble, same pairs: pbrl ≥ imitation in "
                     f"{len(diffs) - len(bad)}/{len(diffs)} (task, teacher, count) cells; mean difference "
                     f"{_pct(float(np.mean([d[0] for d in diffs])))} points"
                     + (f"; below in: {', '.join(f'{t}/{te}/n={n} ({_pct(d)})' for d, t, te, n in bad)}" if bad else "")
                     + f" → **{'met' if not bad else 'not met'}**.")
        lines.append(throughput(rows, args))
    else:
        lines.append("- imitation comparison: not run (see stderr).")
    return "\n".join(lines)


def throughput(rows: list[dict], args: argparse.Namespace) -> str:
    """pbrl vs imitation ensemble training throughput at the largest label count (same run)."""
    n = max(r["n"] for r in rows if r["lib"] == "imitation")
    pairs = {(r["task"], r["teacher"]) for r in rows if r["lib"] == "imitation"}  # same tasks/teachers only
    cell = lambda lib: [r for r in rows if r["lib"] == lib and r["model"] == "ensemble" and r["n"] == n  # noqa: E731
                        and (r["task"], r["teacher"]) in pairs]
    mine, theirs = sum(r["pairs_per_s"] for r in cell("pbrl")), sum(r["pairs_per_s"] for r in cell("imitation"))
    ratio = mine / theirs if theirs else math.nan
    return (f"- Training throughput (3-member ensemble, {n} pairs, pairs/s per epoch over all members, mean of "
            f"{len(cell('pbrl'))} fits): pbrl {mine / max(1, len(cell('pbrl'))):.0f}, imitation "
            f"{theirs / max(1, len(cell('imitation'))):.0f} → ratio **{ratio:.1f}x** (goal ≥ 3x: "
            f"**{'met' if ratio >= 3 else 'not met'}**).")


def partial_policy(task: str) -> Optional[Path]:
    """A partially trained SAC policy of ``task`` left by bench/online_pbrl.py (newest), if any."""
    found = sorted(RAW.glob(f"online_{task}_*/sac/policy.zip"),
                   key=lambda q: q.stat().st_mtime)
    return found[-1] if found else None


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    lst = lambda f: (lambda s: [f(x) for x in s.split(",") if x])  # noqa: E731
    p.add_argument("--tasks", type=lst(str), default="halfcheetah,drawer-open,button-press")
    p.add_argument("--counts", type=lst(int), default="50,100,250,500,1000,2000")
    p.add_argument("--teachers", type=lst(str), default=",".join(TEACHERS))
    p.add_argument("--models", type=lst(str), default="single,ensemble,gaussian,gaussian-ensemble")
    p.add_argument("--imitation-teachers", type=lst(str), default="rational")
    p.add_argument("--imitation-tasks", type=lst(str), default="drawer-open",
                   help="imitation is ~20x slower to train: compared on these tasks only (default budget)")
    p.add_argument("--imitation-python", default=str(Path(__file__).resolve().parent.parent / ".venv-imitation" / "bin" / "python"),
                   help="imitation's own environment (make setup-imitation)")
    p.add_argument("--seeds", type=lst(int), default="0",
                   help="data, label and model seeds; tables show the mean over seeds (and tasks)")
    p.add_argument("--segment-length", type=int, default=25)
    p.add_argument("--episodes", type=int, default=16, help="episodes collected per task")
    p.add_argument("--episode-length", type=int, default=200)
    p.add_argument("--n-test", type=int, default=300, help="held-out pairs per task")
    p.add_argument("--hidden", type=lst(int), default="64,64")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--kl-weight", type=float, default=0.01)
    p.add_argument("--label-noise", type=float, default=0.0,
                   help="noise-robust Bradley-Terry: assumed share of random answers for every pbrl model")
    p.add_argument("--updates", type=int, default=60, help="target gradient steps per fit")
    p.add_argument("--min-epochs", type=int, default=3)
    p.add_argument("--max-epochs", type=int, default=40)
    p.add_argument("--policy", type=Path, help="SAC policy.zip for tasks without a scripted expert "
                   "(default: the newest runs/bench/online_<task>_*/sac/policy.zip, else a sine gait)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--suffix", default="", help="results file: <--results-dir>/reward_learning<SUFFIX>.json")
    p.add_argument("--results-dir", type=Path, default=RAW, help="where the results .json and table go")
    p.add_argument("--update-benchmarks", action="store_true")
    p.add_argument("--render", type=Path, help="only re-render the tables from a saved results .json")
    p.add_argument("--benchmarks-file", type=Path, default=BENCHMARKS)
    args = p.parse_args(argv)
    if args.quick:
        args.tasks, args.counts = lst(str)(QUICK["tasks"]), lst(int)(QUICK["counts"])
        args.episodes, args.n_test, args.updates = QUICK["episodes"], QUICK["n_test"], QUICK["updates"]
    unknown = sorted(set(args.teachers) - set(TEACHERS))
    if unknown:
        p.error(f"--teachers: unknown {unknown}; expected some of {list(TEACHERS)}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.render is not None:  # tables from a finished run (e.g. after changing how they are shown)
        saved = json.loads(args.render.read_text())
        block = "## Reward learning: label efficiency and noise robustness\n\n" + render(saved["rows"], args,
                                                                                          saved["info"])
        publish(block, MARK, args.update_benchmarks, args.benchmarks_file)
        return 0
    torch.set_num_threads(1)  # a benchmark script, not library code: one thread for both libraries
    t0, rows, jobs = time.perf_counter(), [], []
    n_train = max(args.counts)
    for seed in args.seeds:
        args.seed = seed  # what the fits, labels and imitation jobs of this pass read
        for task in args.tasks:
            pairs = make_task_pairs(task, n_train=n_train, n_test=args.n_test, segment_length=args.segment_length,
                                    episodes=args.episodes, episode_length=args.episode_length, seed=seed,
                                    policy_path=args.policy or partial_policy(task))
            print(f"{task} seed {seed}: behaviours {pairs.behaviours}, {pairs.test.n_pairs} held-out pairs "
                  f"({time.perf_counter() - t0:.0f}s)", flush=True)
            rows += [{**r, "seed": seed} for r in run_task(pairs, args, jobs)]
        for job, task, teacher in jobs:  # one seed's imitation jobs at a time: at most one per teacher and task
            rows += [{**r, "seed": seed} for r in finish_imitation(job, task, teacher)]
        jobs.clear()
    info = {"machine": machine_info(), "command": "python bench/reward_learning.py " + " ".join(argv or sys.argv[1:]),
            "wall_s": time.perf_counter() - t0,
            "setup": (f"segments of {args.segment_length} steps from {args.episodes} episodes x {args.episode_length} "
                      f"steps per task (random, noisy expert / SAC / gait behaviour); train pairs from 3/4 of the "
                      f"episodes, {args.n_test} held-out pairs from the rest; MLP {args.hidden}, lr {args.lr}, "
                      f"batch {args.batch_size}, ~{args.updates} gradient steps per fit "
                      f"({args.min_epochs}-{args.max_epochs} epochs), {len(args.seeds)} seed(s), torch 1 thread; Gaussian "
                      f"kl_weight {args.kl_weight}; imitation on teachers {args.imitation_teachers}, tasks {args.imitation_tasks}")}
    info["machine"] = f"{info['machine']['cpu']}, {info['machine']['nproc']} cores, {info['machine']['date']}"
    block = "## Reward learning: label efficiency and noise robustness\n\n" + render(rows, args, info)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else args.suffix
    atomic_write_json(args.results_dir / f"reward_learning{suffix}.json", {"rows": rows, "info": info})
    atomic_write_text(args.results_dir / f"reward_learning{suffix}.md", block + "\n")
    publish("\n" + block, MARK, args.update_benchmarks, args.benchmarks_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Policy from transferred labels vs true labels on a Meta-World target task (PEARL end to end).

Builds a source store (noisy button-press expert, rational labels) and a target pool (unlabelled noisy-expert
segments of the target task, PEARL's unlabelled target dataset), then trains the target task
(button-press-topdown) with the Gaussian (RRL) reward and SAC at the same label budget and seed, in parallel:

* ``transfer+pool``: ``feedback=transfer`` with ``feedback.target_pool`` and ``--pool-pairs`` transferred pool
  labels (zero-shot: no target label);
* ``transfer``: ``feedback=transfer`` on the online segments alone (what failed before the pool existed);
* ``scripted``: rational labels from the true target return (the upper reference);
* ``scripted+pool``: the same, plus true labels on the same ``--pool-pairs`` pool pairs (``feedback=scripted
  feedback.target_pool=... feedback.pool_pairs=...``): the reference for ``transfer+pool``, where only the labels'
  source differs.

A converged comparison needs ~1e5-1e6 env steps per run (hours on a CPU); ``--tiny`` is a smoke run.

    python bench/transfer_policy.py [--steps 20000 --labels 500] [--tiny] [--update-benchmarks]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common import publish
from pbrl.data.store import PreferenceStore
from pbrl.envs.tasks import load_task
from pbrl.feedback.teachers import teacher_from_preset
from pbrl.agents.preference import INITIAL_ANNOTATOR
from pbrl.feedback.query import random_pairs
from pbrl.feedback.transfer_data import noisy_expert_segments, true_return_labels, write_labelled_store

ROOT = Path(__file__).resolve().parents[1]


def _num(x) -> str:
    return "-" if x is None else f"{x:.2f}"
MARK = "transfer-policy"


def build_source(path: Path, task: str, n_episodes: int, segment_length: int, n_pairs: int) -> None:
    if path.exists():
        return
    segs = noisy_expert_segments(load_task(task), n_episodes=n_episodes, episode_length=150,
                                 segment_length=segment_length, per_episode=10, seed=0)
    rng = np.random.default_rng(0)
    write_labelled_store(path, segs, n_pairs=n_pairs, labeller=teacher_from_preset("oracle", rng=rng), rng=rng).close()


def build_pool(path: Path, task: str, n_episodes: int, segment_length: int) -> None:
    """Unlabelled target-task segments (noisy expert, action noise 0-2): the transfer's target pool."""
    if path.exists():
        return
    segs = noisy_expert_segments(load_task(task), n_episodes=n_episodes, episode_length=150,
                                 segment_length=segment_length, per_episode=10, seed=1)
    with PreferenceStore(path) as store:
        store.add_segments(segs)


VARIANTS = ("transfer+pool", "transfer", "scripted", "scripted+pool")


def command(args, variant: str, out: Path, source: Path, pool: Path) -> list[str]:
    feedback = "scripted" if variant.startswith("scripted") else "transfer"
    cmd = [sys.executable, "-m", "pbrl.cli", "train", f"out={out}", f"task={args.target}", f"feedback={feedback}",
           "reward=gaussian", f"budget.env_steps={args.steps}", f"budget.labels={args.labels}",
           f"budget.per_round={args.per_round}", f"budget.every={args.every}", f"algo.seed_steps={args.every}",
           f"segment_length={args.segment_length}", f"episode_length={args.episode_length}", f"eval.every={args.steps}",
           f"checkpoint_every={args.steps}", "eval.video=false", f"seed={args.seed}", "threads=1", *args.extra]
    if feedback == "transfer":
        cmd.append(f"feedback.source_store={source}")
    if variant.endswith("+pool"):  # its fits see the pool's labels from the first session: fewer epochs
        cmd += [f"feedback.target_pool={pool}", f"feedback.pool_pairs={args.pool_pairs}",
                f"reward.epochs={args.pool_epochs}"]
    return cmd


def heldout_segments(task: str, segment_length: int) -> list:
    """Noisy-expert target segments no run saw (another seed): where the learned rewards are compared."""
    return noisy_expert_segments(load_task(task), n_episodes=30, episode_length=150, segment_length=segment_length,
                                 per_episode=10, seed=7)


def model_accuracy(out: Path, segments: list, n_pairs: int = 2000) -> float:
    """The run's final reward model ranked against the true return on random pairs of ``segments``."""
    from pbrl.rewards.eval_cli import model_from_checkpoint

    model = model_from_checkpoint(out / "reward_model.pt", None, segments[0].obs.shape[-1], segments[0].acts.shape[-1])
    a, b = random_pairs(len(segments), n_pairs, np.random.default_rng(0))
    first, second = [segments[i] for i in a], [segments[i] for i in b]
    truth = true_return_labels(first, second)
    ret = lambda segs: model.predict(np.stack([x.obs for x in segs]), np.stack([x.acts for x in segs])).sum(-1)  # noqa: E731
    ok = truth != 0.5
    return float(((ret(first) > ret(second)) == (truth > 0.5))[ok].mean())


def label_agreement(out: Path) -> dict[str, float]:
    """Share of the run's stored labels that agree with the true return, for queried and free pool pairs."""
    with PreferenceStore(out / "store.sqlite", create=False) as store:
        rows = store.labels()
        ids = sorted({r.first_id for r in rows} | {r.second_id for r in rows})
        segs = dict(zip(ids, store.get_segments(ids)))
    res = {}
    for name, keep in (("queried", lambda r: r.annotator != INITIAL_ANNOTATOR),
                       ("pool", lambda r: r.annotator == INITIAL_ANNOTATOR)):
        rr = [r for r in rows if keep(r)]
        if rr:
            truth = true_return_labels([segs[r.first_id] for r in rr], [segs[r.second_id] for r in rr])
            ok = truth != 0.5
            res[name] = float(((np.array([r.label for r in rr]) > 0.5) == (truth > 0.5))[ok].mean())
    return res


def summary_row(variant: str, out: Path, wall_s: float, heldout: list) -> dict:
    s = json.loads((out / "summary.json").read_text())
    return {"feedback": variant, "return": s["return_mean"], "success": s["success_rate"],
            "random_return": s.get("random_return"), "reward_accuracy": s["reward_accuracy"],
            "heldout_accuracy": model_accuracy(out, heldout), "agreement": label_agreement(out),
            "labels": s["labels_used"], "wall_s": round(wall_s, 1)}


def train_all(args, source: Path, pool: Path) -> list[dict]:
    """All variants side by side (one process each), then their summaries."""
    jobs = {}
    for v in args.variants:
        out = args.out / f"{v}-s{args.seed}-{args.steps}"
        jobs[v] = (out, time.time(), subprocess.Popen(command(args, v, out, source, pool), stdout=subprocess.DEVNULL,
                                                      stderr=subprocess.PIPE, text=True))
    rows = []
    for v, (out, t0, proc) in jobs.items():
        _, err = proc.communicate()
        if proc.returncode != 0:
            rows.append({"feedback": v, "error": err.strip().splitlines()[-1:]})
            continue
        rows.append(summary_row(v, out, time.time() - t0, heldout_segments(args.target, args.segment_length)))
    return rows


def collect(args) -> list[dict]:
    """Rows from finished runs in ``--out`` (``--collect``: re-render without training)."""
    rows = []
    for v in args.variants:
        out = args.out / f"{v}-s{args.seed}-{args.steps}"
        rows.append(summary_row(v, out, json.loads((out / "summary.json").read_text())["wall_s"],
                                heldout_segments(args.target, args.segment_length)))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--source", default="button-press")
    p.add_argument("--target", default="button-press-topdown")
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--labels", type=int, default=500)
    p.add_argument("--per-round", type=int, default=50)
    p.add_argument("--every", type=int, default=2000)
    p.add_argument("--pool-episodes", type=int, default=50, help="target-pool episodes (10 segments each)")
    p.add_argument("--pool-pairs", type=int, default=300, help="transferred labels on target-pool pairs")
    p.add_argument("--pool-epochs", type=int, default=10, help="reward.epochs of the +pool runs (their fits see the pool labels from the first session)")
    p.add_argument("--collect", action="store_true", help="only read the finished runs in --out and print the table")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--segment-length", type=int, default=50)
    p.add_argument("--episode-length", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tiny", action="store_true", help="smoke scale: 1000 steps, 40 labels, episodes of 150")
    p.add_argument("--extra", nargs="*", default=[])
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-transfer-policy")
    p.add_argument("--update-benchmarks", action="store_true")
    args = p.parse_args()
    if args.tiny:
        args.steps, args.labels, args.per_round, args.every, args.episode_length = 1000, 40, 20, 400, 150
        args.pool_episodes, args.pool_pairs = 10, 200
        args.extra = ["reward.epochs=10", "eval.episodes=2", "eval.final_episodes=3", *args.extra]
    args.variants = [v for v in args.variants.split(",") if v]
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        p.error(f"--variants: unknown {sorted(unknown)}; expected some of {VARIANTS}")
    args.out.mkdir(parents=True, exist_ok=True)
    source = args.out / f"source-{args.source}.sqlite"
    build_source(source, args.source, n_episodes=30, segment_length=args.segment_length, n_pairs=3000)
    pool = args.out / f"pool-{args.target}-{args.segment_length}.sqlite"
    build_pool(pool, args.target, n_episodes=args.pool_episodes, segment_length=args.segment_length)
    rows = collect(args) if args.collect else train_all(args, source, pool)
    lines = ["## PEARL transfer: policy on the target task", "",
             f"`python bench/transfer_policy.py {' '.join(sys.argv[1:])}` · {platform.machine()} · "
             f"{time.strftime('%Y-%m-%d')}", "",
             f"{args.source} -> {args.target}, SAC + Gaussian reward, {args.steps} env steps, {args.labels} labels "
             f"({args.per_round} every {args.every} steps), seed {args.seed}; target pool: "
             f"{args.pool_episodes * 10} unlabelled noisy-expert segments, {args.pool_pairs} transferred pool labels "
             f"(the +pool runs only, outside the label budget; their reward.epochs={args.pool_epochs}, the others' 50)."
             + (" **Smoke scale only** (--tiny): it shows the pipeline runs end to end, not which labels train the "
                "better policy." if args.tiny else ""), "",
             "| labels | final return | success | reward acc. on the run's own segments | reward acc. on held-out "
             "target segments | labels agreeing with the true return | labels used | wall |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        print(json.dumps(r), flush=True)
        if "error" in r:
            lines.append(f"| {r['feedback']} | error: {r['error']} | | | | | | |")
        else:
            agree = ", ".join(f"{k} {v:.0%}" for k, v in r["agreement"].items())
            lines.append(f"| {r['feedback']} | {r['return']:.1f} | {_num(r['success'])} | {_num(r['reward_accuracy'])} | "
                         f"{_num(r['heldout_accuracy'])} | {agree} | {r['labels']} | {r['wall_s']:.0f} s |")
    table = "\n".join(lines)
    publish(table, f"{MARK}:{args.target}", args.update_benchmarks)


if __name__ == "__main__":
    main()

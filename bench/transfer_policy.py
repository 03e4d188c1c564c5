"""Policy from transferred labels vs true labels on Meta-World target tasks (PEARL end to end), several seeds.

For each `--pairs source:target`, builds a source store (noisy source-task expert, 3000 rational labels) and a
target pool (unlabelled noisy-expert segments of the target task, PEARL's unlabelled target dataset), then trains
the target task with the Gaussian (RRL) reward and `--algo` (default crossq, `pbrl train`'s learner; sac), every variant at the same label budget, one Hydra multirun
(`-m seed=...` through `--launcher`: local = hydra-joblib-launcher, slurm, ray_cluster) per variant:

* ``transfer-kK+pool``: ``feedback=transfer`` with the target pool, ``--pool-pairs`` transferred pool labels and
  ``feedback.target_labels=K`` (K of each session's queries answered by the true teacher; they choose the
  alignment's orientation, :mod:`pbrl.feedback.orientation`);
* ``transfer+pool``: the same, zero-shot (K = 0);
* ``transfer``: zero-shot on the online segments alone;
* ``scripted+pool``: true labels on every query and on the same pool pairs: the same budget, all labels true;
* ``scripted``: true labels on every query, no pool;
* ``scripted-kK``: true labels only where the transfer run has them: K per session, same sessions, no pool.

Per variant: mean and 95% stratified-bootstrap CI over seeds (rliable, as ``pbrl report``; the ``report`` extra)
of final success, return and the learned reward's accuracy on
held-out target segments, and each seed's values. A converged comparison needs ~1e5 env steps per run (hours on
a CPU); ``--tiny`` is a smoke run.

    python bench/transfer_policy.py --pairs button-press:button-press-topdown,drawer-open:drawer-close \\
        --seeds 0,1,2 --steps 40000 [--jobs 3] [--update-benchmarks]
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

if not __package__:  # run as python bench/<name>.py: bench/_bootstrap.py puts the repository root on sys.path
    import _bootstrap  # noqa: F401
from bench.common import ROOT, publish
from pbrl.agents.preference import INITIAL_ANNOTATOR
from pbrl.data.store import PreferenceStore
from pbrl.envs.tasks import load_task
from pbrl.feedback.query import random_pairs
from pbrl.feedback.teachers import teacher_from_preset
from pbrl.feedback.transfer_data import noisy_expert_segments, true_return_labels, write_labelled_store

MARK = "transfer-policy"
BASES = ("transfer-k{K}+pool", "transfer+pool", "transfer", "scripted+pool", "scripted", "scripted-k{K}")
DEFAULT_VARIANTS = "transfer-k{K}+pool,scripted+pool,scripted-k{K}"


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


def variant_overrides(args, variant: str, target: str, source: Path, pool: Path) -> list[str]:
    """The `pbrl train` overrides of one variant (the same budget, seeds and settings for all)."""
    K = args.target_labels
    feedback = "scripted" if variant.startswith("scripted") else "transfer"
    per_round, labels = args.per_round, args.labels
    over = [f"task={target}", f"algo={args.algo}", f"feedback={feedback}", "reward=gaussian", f"budget.env_steps={args.steps}",
            f"budget.every={args.every}", f"algo.seed_steps={args.every}", f"segment_length={args.segment_length}",
            f"episode_length={args.episode_length}", f"eval.every={args.steps}", f"checkpoint_every={args.every}",
            "eval.video=false", "threads=1", *args.extra]
    if variant == f"scripted-k{K}":  # true labels only where the transfer run has them: K per session
        per_round, labels = K, K * (args.labels // args.per_round)
    over += [f"budget.per_round={per_round}", f"budget.labels={labels}"]
    if feedback == "transfer":
        over.append(f"feedback.source_store={source}")
        if variant == f"transfer-k{K}+pool":
            over.append(f"feedback.target_labels={K}")
    if variant.endswith("+pool"):  # its fits see the pool's labels from the first session: fewer epochs
        over += [f"feedback.target_pool={pool}", f"feedback.pool_pairs={args.pool_pairs}",
                 f"reward.epochs={args.pool_epochs}"]
    return over


def heldout_segments(task: str, segment_length: int) -> list:
    """Noisy-expert target segments no run saw (another seed): where the learned rewards are compared."""
    return noisy_expert_segments(load_task(task), n_episodes=30, episode_length=150, segment_length=segment_length,
                                 per_episode=10, seed=7)


def model_accuracy(out: Path, segments: list, n_pairs: int = 2000) -> float:
    """The run's final reward model ranked against the true return on random pairs of ``segments``."""
    from pbrl.cli.eval_reward import model_from_checkpoint

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


def run_row(variant: str, seed: int, out: Path, heldout: list) -> dict:
    """One finished run: final success / return, held-out reward accuracy, label agreement, transfer status."""
    if not (out / "summary.json").exists():
        return {"variant": variant, "seed": seed, "error": f"no summary.json in {out}"}
    s = json.loads((out / "summary.json").read_text())
    metrics = list(csv.DictReader(open(out / "metrics.csv")))
    status = metrics[-1].get("transfer_status") if metrics else None
    return {"variant": variant, "seed": seed, "return": s["return_mean"], "success": s["success_rate"],
            "heldout_accuracy": model_accuracy(out, heldout), "agreement": label_agreement(out),
            "labels": s["labels_used"], "transfer_status": status or None, "wall_s": round(s["wall_s"], 1)}


def train_variant(args, variant: str, target: str, source: Path, pool: Path, sweep: Path) -> None:
    """All seeds of one variant as one Hydra multirun (``--launcher``); a killed sweep resumes its runs."""
    launcher = [f"hydra/launcher={args.launcher}", *args.launcher_override]
    if args.launcher == "local":
        launcher.append(f"hydra.launcher.n_jobs={args.jobs}")
    cmd = [sys.executable, "-m", "pbrl.cli", "train", "-m", f"seed={args.seeds}", *launcher,
           f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=s${seed}", *variant_overrides(args, variant, target, source,
                                                                                        pool)]
    print(" ".join(cmd), flush=True)
    res = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if res.returncode != 0:
        print(f"{variant}: exit {res.returncode}: {res.stderr.strip().splitlines()[-1:]}", flush=True)


def _cell(rows: list[dict], key: str, digits: int) -> str:
    """Mean over seeds with its 95% stratified-bootstrap CI (rliable, as ``pbrl report``)."""
    from pbrl.analysis.render import fmt_ci
    from pbrl.analysis.stats import final_scores

    keep = [r for r in rows if r.get(key) is not None]
    if not keep:
        return "-"
    return fmt_ci(final_scores([r[key] for r in keep], [r["seed"] for r in keep]).mean, digits)


def render(args, source: str, target: str, rows: list[dict]) -> str:
    lines = [f"## PEARL transfer: policy on the target task ({source} -> {target})", "",
             f"`python bench/transfer_policy.py {' '.join(sys.argv[1:])}` · {platform.machine()} · "
             f"{time.strftime('%Y-%m-%d')}", "",
             f"{source} -> {target}, {args.algo} + Gaussian reward, {args.steps} env steps, {args.labels} labels "
             f"({args.per_round} every {args.every} steps), seeds {args.seeds}; target pool: "
             f"{args.pool_episodes * 10} unlabelled noisy-expert segments, {args.pool_pairs} pool labels (the +pool "
             f"runs only, outside the label budget; their reward.epochs={args.pool_epochs}). Cells: mean over seeds "
             "[95% stratified-bootstrap CI, rliable]; a difference holds only where the intervals say so."
             + (" **Smoke scale only** (--tiny): it shows the pipeline runs end to end, not which labels train the "
                "better policy." if args.tiny else ""), "",
             "| labels | seeds | final success | final return | reward acc. on held-out target segments | "
             "labels agreeing with the true return | transfer status (last session) | per seed: success / return |",
             "|---|---|---|---|---|---|---|---|"]
    for variant in args.variants:
        rs = [r for r in rows if r["variant"] == variant]
        ok = [r for r in rs if "error" not in r]
        agree = {k: np.mean([r["agreement"][k] for r in ok if k in r["agreement"]])
                 for k in ("queried", "pool") if any(k in r["agreement"] for r in ok)}
        status = ", ".join(sorted({str(r["transfer_status"]) for r in ok if r["transfer_status"]})) or "-"
        per = "; ".join(f"s{r['seed']}: {r['success'] if r['success'] is not None else '-'} / {r['return']:.0f}"
                        if "error" not in r else f"s{r['seed']}: error" for r in rs)
        lines.append(f"| {variant} | {len(ok)}/{len(rs)} | {_cell(ok, 'success', 2)} | {_cell(ok, 'return', 0)} | "
                     f"{_cell(ok, 'heldout_accuracy', 2)} | {', '.join(f'{k} {v:.0%}' for k, v in agree.items())} "
                     f"| {status} | {per} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", default="button-press:button-press-topdown,drawer-open:drawer-close")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--launcher", default="local", help="hydra/launcher config: local (joblib), slurm, ray_cluster")
    p.add_argument("--launcher-override", action="append", default=[], metavar="KEY=VALUE",
                   help="extra launcher setting, e.g. hydra.launcher.partition=cpu (repeatable)")
    p.add_argument("--jobs", type=int, default=3, help="runs at once with --launcher local")
    p.add_argument("--steps", type=int, default=40_000)
    p.add_argument("--algo", default="crossq", choices=("crossq", "sac"), help="the learner of every variant")
    p.add_argument("--labels", type=int, default=500)
    p.add_argument("--per-round", type=int, default=50)
    p.add_argument("--every", type=int, default=2000)
    p.add_argument("--target-labels", type=int, default=10, help="K: true target labels per session (transfer-kK)")
    p.add_argument("--pool-episodes", type=int, default=50, help="target-pool episodes (10 segments each)")
    p.add_argument("--pool-pairs", type=int, default=300, help="labels on target-pool pairs")
    p.add_argument("--pool-epochs", type=int, default=10, help="reward.epochs of the +pool runs")
    p.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"some of {', '.join(BASES)}")
    p.add_argument("--collect", action="store_true", help="only read the finished runs in --out and print the table")
    p.add_argument("--segment-length", type=int, default=50)
    p.add_argument("--episode-length", type=int, default=500)
    p.add_argument("--tiny", action="store_true", help="smoke scale: 1000 steps, 40 labels, episodes of 150")
    p.add_argument("--extra", nargs="*", default=[])
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-transfer-policy")
    p.add_argument("--update-benchmarks", action="store_true")
    args = p.parse_args()
    if args.tiny:
        args.steps, args.labels, args.per_round, args.every, args.episode_length = 1000, 40, 20, 400, 150
        args.pool_episodes, args.pool_pairs = 10, 200
        args.extra = ["reward.epochs=10", "eval.episodes=2", "eval.final_episodes=3", *args.extra]
    known = [b.format(K=args.target_labels) for b in BASES]
    args.variants = [v.format(K=args.target_labels) for v in args.variants.split(",") if v]
    if set(args.variants) - set(known):
        p.error(f"--variants: unknown {sorted(set(args.variants) - set(known))}; expected some of {known}")
    seeds = [int(s) for s in args.seeds.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    for pair in args.pairs.split(","):
        source_task, target = pair.split(":")
        source = args.out / f"source-{source_task}-{args.segment_length}.sqlite"
        build_source(source, source_task, n_episodes=30, segment_length=args.segment_length, n_pairs=3000)
        pool = args.out / f"pool-{target}-{args.segment_length}.sqlite"
        build_pool(pool, target, n_episodes=args.pool_episodes, segment_length=args.segment_length)
        sweeps = {v: args.out / f"{source_task}-{target}" / f"{v}-{args.steps}" for v in args.variants}
        if not args.collect:
            for v, sweep in sweeps.items():
                train_variant(args, v, target, source, pool, sweep)
        heldout = heldout_segments(target, args.segment_length)
        rows = [run_row(v, s, sweep / f"s{s}", heldout) for v, sweep in sweeps.items() for s in seeds]
        for r in rows:
            print(json.dumps(r), flush=True)
        publish(render(args, source_task, target, rows), f"{MARK}:{target}", args.update_benchmarks)


if __name__ == "__main__":
    main()

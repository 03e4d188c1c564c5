"""PEARL cross-task transfer: transferred-label accuracy on Meta-World task pairs, and GW solve time.

For each pair (source -> target): noisy-expert segments of both tasks (per-episode action noise
0 ... 2), a source store with rational labels from the true return, GW alignment, and the accuracy of
the transferred labels (p > 0.5) against the target's true-return labels on random target pairs (exact
ties left out). Plain GW (PEARL) and the fused hand-object anchor (pbrl default) are both reported.
Then GW wall time on CPU for 1000 x 1000 and 2000 x 2000 segments, after compilation.

    python bench/transfer_accuracy.py [--segments 500] [--timing 1000,2000] [--update-benchmarks]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from common import publish, update_section
from pbrl.envs.tasks import load_task
from pbrl.feedback.ot import FeatureSpec, GWSettings
from pbrl.feedback.query import random_pairs
from pbrl.feedback.teachers import teacher_from_preset
from pbrl.feedback.transfer import GWConvergenceWarning, TransferLabeller, load_source
from pbrl.feedback.transfer_data import noisy_expert_segments, true_return_labels, write_labelled_store

ROOT = Path(__file__).resolve().parents[1]
MARK = "transfer"
PAIRS = [("button-press", "button-press-topdown"), ("drawer-open", "drawer-close"), ("window-open", "window-close")]


def segments(task: str, n: int, seed: int, episode_length: int, segment_length: int) -> list:
    per = 10
    return noisy_expert_segments(load_task(task), n_episodes=-(-n // per), episode_length=episode_length,
                                 segment_length=segment_length, per_episode=per, seed=seed)[:n]


def accuracy(src_segs, tgt_segs, *, anchor: str, args, tmp: Path, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    store_path = tmp / f"src-{seed}-{anchor}.sqlite"
    write_labelled_store(store_path, src_segs, n_pairs=args.source_labels,
                         labeller=teacher_from_preset("oracle", rng=rng), rng=rng).close()
    source = load_source(store_path, max_segments=len(src_segs), rng=rng)
    lab = TransferLabeller(source, features=FeatureSpec(), gw=GWSettings(), anchor=anchor, max_target=len(tgt_segs))
    lab.set_pool(tgt_segs)
    a, b = random_pairs(len(tgt_segs), args.target_pairs, rng)
    first, second = [tgt_segs[i] for i in a], [tgt_segs[i] for i in b]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GWConvergenceWarning)
        labels = lab.label(first, second)
    truth = true_return_labels(first, second)
    ok = truth != 0.5
    hard = (labels.p[ok] > 0.5) == (truth[ok] > 0.5)
    w = labels.weight[ok]
    rep = lab.reports[-1]
    return {"accuracy": float(hard.mean()), "weighted_accuracy": float((hard * w).sum() / max(w.sum(), 1e-12)),
            "mean_weight": float(w.mean()), "n_pairs": int(ok.sum()), "n_source": rep["n_source"],
            "n_target": rep["n_target"], "iterations": rep["iterations"], "converged": rep["converged"],
            "warned": bool(caught), "seconds": rep["seconds"]}


def timing(src_segs, tgt_segs, n: int, tmp: Path, args) -> dict:
    """GW seconds for n x n after one compile call of the same shape (plain GW and fused)."""
    rng = np.random.default_rng(0)
    store_path = tmp / f"time-{n}.sqlite"
    write_labelled_store(store_path, src_segs[:n], n_pairs=5 * n, labeller=teacher_from_preset("oracle", rng=rng),
                         rng=rng).close()
    source = load_source(store_path, max_segments=n, rng=rng)
    out = {"n": n, "n_source": len(source.segments)}
    for anchor in ("none", "hand_object"):
        lab = TransferLabeller(source, anchor=anchor, max_target=n)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GWConvergenceWarning)
            lab.align(tgt_segs[:n])
            compile_s = time.perf_counter() - t0
            runs = [lab.align(tgt_segs[:n]) for _ in range(args.repeats)]
        out[anchor] = {"first_call_s": round(compile_s, 2), "solve_s": round(float(np.median([r.seconds for r in runs])), 2),
                       "iterations": runs[-1].n_iters, "converged": runs[-1].converged}
    return out


def render(res: dict, args) -> str:
    lines = [
        "## PEARL cross-task transfer (`feedback=transfer`)",
        "",
        f"`python bench/transfer_accuracy.py --segments {args.segments}` · {res['machine']} · {res['date']}",
        "",
        f"Source: {args.segments} noisy-expert segments (length {args.segment_length}, episodes of "
        f"{args.episode_length} steps, action noise 0-2) with {args.source_labels} rational labels. Target: "
        f"{args.segments} segments of the target task, {args.target_pairs} random pairs scored against the target's "
        "true-return labels. GW epsilon 0.005, features mean_delta/euclidean. Goal: >= 80%.",
        "",
        "| source -> target | plain GW (PEARL) | fused, hand-object anchor (default) | weighted acc. | GW iters | converged |",
        "|---|---|---|---|---|---|",
    ]
    for r in res["pairs"]:
        lines.append(f"| {r['source']} -> {r['target']} | {r['none']['accuracy']:.1%} | "
                     f"{r['hand_object']['accuracy']:.1%} | {r['hand_object']['weighted_accuracy']:.1%} | "
                     f"{r['hand_object']['iterations']} | {r['hand_object']['converged']} |")
    lines += ["", "GW solve time on CPU after compilation (median of repeats), float32, jitted once per shape "
              f"(load average during the run: {res.get('load', '?')}; on a shared machine these are upper bounds):", "",
              "| source x target segments | plain GW | fused GW | first call (incl. compile) | iterations |", "|---|---|---|---|---|"]
    for t in res["timing"]:
        lines.append(f"| {t['n_source']} x {t['n']} | {t['none']['solve_s']} s | {t['hand_object']['solve_s']} s | "
                     f"{t['none']['first_call_s']} s | {t['none']['iterations']} / {t['hand_object']['iterations']} |")
    lines += ["", "Plain GW cannot tell an alignment from its mirror image; on drawer-open -> drawer-close it "
              "matches opening with closing progress and inverts the labels. The fused anchor (gripper-object "
              "distance, shared by Meta-World tasks) breaks that symmetry."]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--segments", type=int, default=500)
    p.add_argument("--source-labels", type=int, default=3000)
    p.add_argument("--target-pairs", type=int, default=2000)
    p.add_argument("--episode-length", type=int, default=150)
    p.add_argument("--segment-length", type=int, default=50)
    p.add_argument("--timing", default="1000,2000")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--update-benchmarks", action="store_true")
    p.add_argument("--from-json", type=Path, help="re-render a saved results file instead of running")
    args = p.parse_args()
    if args.from_json:
        table = render(json.loads(args.from_json.read_text()), args)
        print(table)
        if args.update_benchmarks:
            update_section(ROOT / "BENCHMARKS.md", MARK, table)
        return
    res = {"machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPU cores",
           "date": time.strftime("%Y-%m-%d"), "pairs": [], "timing": [],
           "load": round(__import__("os").getloadavg()[0], 1)}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cache = {}
        for k, (s, t) in enumerate(PAIRS):
            for name, seed in ((s, 1), (t, 2)):
                cache[name] = segments(name, args.segments, seed, args.episode_length, args.segment_length)
            row = {"source": s, "target": t}
            for anchor in ("none", "hand_object"):
                row[anchor] = accuracy(cache[s], cache[t], anchor=anchor, args=args, tmp=tmp, seed=10 + k)
            print(json.dumps(row), flush=True)
            res["pairs"].append(row)
        sizes = [int(x) for x in args.timing.split(",") if x]
        if sizes:
            big = max(sizes)
            src = segments("button-press", big, 3, args.episode_length, args.segment_length)
            tgt = segments("button-press-topdown", big, 4, args.episode_length, args.segment_length)
            for n in sizes:
                res["timing"].append(timing(src, tgt, n, tmp, args))
                print(json.dumps(res["timing"][-1]), flush=True)
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "transfer_accuracy.json").write_text(json.dumps({**res, "args": vars(args)}, default=str, indent=1))
    table = render(res, args)
    publish(table, MARK, args.update_benchmarks)


if __name__ == "__main__":
    main()

"""PEARL cross-task transfer: transferred-label accuracy on many Meta-World pairs, k = 0/5/10/20 target labels.

For each pair (source -> target) and data seed: noisy-expert segments of both tasks (per-episode action noise
0 ... 2), a source store with rational labels from the true return, and the shipped `feedback=transfer` defaults
(configs/feedback/transfer.yaml, built by the same `transfer_labeller` as a run, refusals included). Every
candidate GW plan is solved once on all target segments; then, for k labelled target pairs (random, disjoint
from the evaluation pairs, `--resamples` draws per seed) the labeller picks a candidate exactly as a feedback
session does, and the picked candidate's labels (p > 0.5) are scored against the target's true-return labels on
`--target-pairs` random pairs (exact ties left out). Side by side, on the same plans:

* default: every candidate (fused and plain GW where both YAMLs declare features, product and mirror starts,
  labels as they are and reversed); with k > 0 the chosen one is the prior of the linear few-shot reward that
  the k labels fit (`few_shot.model=linear`, pbrl/feedback/few_shot.py);
* choose only: the same candidates, the chosen one's labels as they are (`few_shot.model=none`);
* plain: plain GW candidates only (what tasks without declared features get); at k = 0 this is PEARL's CPA;
* no mirror: product starts only (fused and plain, both orientations);
* labels alone (the baseline without any transfer): the same linear Bradley-Terry reward fitted to the k target
  labels with a prior centred at zero of the same precision.

At k = 0 a pair-seed whose labels come out inverted (accuracy < 50%) must be flagged unreliable; the table
counts inverted and flagged seeds for the default and the plain candidates. Development pairs and held-out
pairs (never looked at while the method was built) are reported separately. Then the time of one feedback
session's alignment (all candidate plans) for n x n segments.

    python bench/transfer_accuracy.py [--pairs s:t,...] [--heldout s:t,...] [--seeds 0,1,2] [--update-benchmarks]
    python bench/transfer_accuracy.py --from-json --out bench/results/transfer_accuracy.json   # the published table
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import yaml

if not __package__:  # run as python bench/<name>.py: bench/_bootstrap.py puts the repository root on sys.path
    import _bootstrap  # noqa: F401
from bench.common import RAW, ROOT, publish
from pbrl.envs.tasks import load_task
from pbrl.feedback.few_shot import fit_bradley_terry, sigmoid
from pbrl.feedback.heron import segment_key
from pbrl.feedback.orientation import hard_agreement
from pbrl.feedback.ot import segment_features, standardise
from pbrl.feedback.query import random_pairs
from pbrl.feedback.teachers import teacher_from_preset
from pbrl.feedback.transfer import (GWConvergenceWarning, TargetLabels, TransferLabeller, transfer_labeller,
                                    transfer_pair_labels)
from pbrl.feedback.transfer_data import noisy_expert_segments, true_return_labels, write_labelled_store

MARK = "transfer"
KS = (0, 5, 10, 20)
DEV = "button-press:button-press-topdown,drawer-open:drawer-close,window-open:window-close,door-open:drawer-open," \
      "reach:push,button-press:drawer-close,plate-slide:sweep-into,faucet-open:faucet-close,push:pick-place," \
      "handle-press:button-press-topdown"
HELDOUT = "coffee-button:button-press,push-back:plate-slide-back,door-close:window-close,sweep-into:reach," \
    "drawer-close:door-open,pick-place:push,button-press-topdown:coffee-button,push:reach"
FRESH = "plate-slide-back:push-back,faucet-close:window-open,bin-picking:pick-place,reach:button-press"
GROUPS = (("dev", "Development pairs"),
          ("heldout", "Held-out pairs (not used to build the candidate alignments; seen before the few-shot fit and the "
                      "zero-shot threshold were fixed)"),
          ("fresh", "Fresh pairs (first run after every setting was fixed)"))
VARIANTS = {"default": None, "choose only": None, "plain": ("plain/",), "no mirror": ("/product",)}


def shipped_defaults() -> dict:
    """configs/feedback/transfer.yaml as transfer_labeller keywords (what `feedback=transfer` runs with)."""
    cfg = yaml.safe_load((ROOT / "configs" / "feedback" / "transfer.yaml").read_text())
    return {k: v for k, v in cfg.items() if k not in ("name", "segment_length", "source_store", "target_pool",
                                                        "pool_pairs", "target_labels", "max_source", "max_target")}


def segments(task: str, seed: int, args) -> list:
    """Noisy-expert segments of ``task``, cached per (task, seed, sizes) under ``--cache``."""
    path = Path(args.cache) / f"{task}-{seed}-{args.segments}-{args.segment_length}-{args.episode_length}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    per = 10
    segs = noisy_expert_segments(load_task(task), n_episodes=-(-args.segments // per), per_episode=per, seed=seed,
                                 episode_length=args.episode_length, segment_length=args.segment_length)[:args.segments]
    path.write_bytes(pickle.dumps(segs))
    return segs


def build(src_segs, tgt_task: str, args, tmp: Path, seed: int) -> TransferLabeller:
    """A fresh source store (its own file) and the labeller the shipped config builds for ``tgt_task``."""
    rng = np.random.default_rng(seed)
    store = tmp / f"src-{src_segs[0].task}-{tgt_task}-{len(src_segs)}-{seed}.sqlite"
    if store.exists():
        raise SystemExit(f"{store} exists: one source store per pair and seed")
    write_labelled_store(store, src_segs, n_pairs=args.source_labels, labeller=teacher_from_preset("oracle", rng=rng),
                         rng=rng).close()
    return transfer_labeller(source_store=str(store), max_source=len(src_segs), max_target=10**6, rng=rng,
                             target_task=load_task(tgt_task), segment_length=args.segment_length, **shipped_defaults())


def labelled_pairs(n: int, eval_pairs: set, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random target pairs that are not evaluation pairs (the k labels come from these)."""
    a, b = random_pairs(n, 4 * max(KS) * 50, rng)
    keep = np.array([frozenset((i, j)) not in eval_pairs for i, j in zip(a, b)])
    return a[keep], b[keep]


def run_pair(src: str, tgt: str, d: int, args, tmp: Path) -> dict:
    """Accuracy, choice and reliability of each variant at each k, for one pair and data seed."""
    S, T = segments(src, 1000 * d + 1, args), segments(tgt, 1000 * d + 2, args)
    lab = build(S, tgt, args, tmp, seed=10 + d)
    t0 = time.perf_counter()
    feats = segment_features(T, lab.features)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GWConvergenceWarning)
        plans = lab.align(T, feats)
    solve_s = time.perf_counter() - t0
    index = {segment_key(s): i for i, s in enumerate(T)}
    rng = np.random.default_rng([d, 5])
    ea, eb = random_pairs(len(T), args.target_pairs, rng)
    truth = true_return_labels([T[i] for i in ea], [T[i] for i in eb])
    strict = truth != 0.5
    ea, eb, truth = ea[strict], eb[strict], truth[strict]
    la, lb = labelled_pairs(len(T), {frozenset(p) for p in zip(ea, eb)}, rng)
    ly = true_return_labels([T[i] for i in la], [T[i] for i in lb])
    la, lb, ly = la[ly != 0.5], lb[ly != 0.5], ly[ly != 0.5]
    acc = {p.name: hard_agreement(transfer_pair_labels(p.coupling, lab.source, ea, eb)[0], truth).mean()
           for p in plans}
    out = {"source": src, "target": tgt, "seed": d, "solve_s": round(solve_s, 1),
           "plans": {p.name: {"accuracy": float(acc[p.name]), "gw_cost": p.gw_cost, "entropy": p.entropy}
                     for p in plans}, "variants": {}}
    model = lab.few_shot
    for variant, keep in VARIANTS.items():
        sub = [p for p in plans if keep is None or any(k in p.name for k in keep)]
        if not sub:
            continue
        lab.few_shot = dataclasses.replace(model, model="none") if variant == "choose only" else model
        rows = {}
        for k in KS:
            res = []
            for r in range(1 if k == 0 else args.resamples):
                pick = np.random.default_rng([d, k, r]).choice(len(ly), size=min(k, len(ly)), replace=False)
                lab.memory = TargetLabels([T[la[i]] for i in pick], [T[lb[i]] for i in pick],
                                          [float(ly[i]) for i in pick])
                dec, rel = lab.decide(sub, index, len(T), feats)
                if dec.weights is None:
                    a = acc[sub[dec.candidate.plan].name]
                    a = 1.0 - a if dec.candidate.flipped else a
                else:
                    a = hard_agreement(lab.pair_labels(dec, sub, ea, eb), truth).mean()
                res.append({"accuracy": float(a), "chosen": dec.name,
                            "status": rel.status, "agreement": rel.agreement, "confidence": rel.confidence,
                            "mirror_agreement": rel.mirror_agreement, "entropy": rel.entropy,
                            "reasons": list(rel.reasons)})
            rows[str(k)] = {"accuracy": float(np.mean([x["accuracy"] for x in res])),
                            "loo": float(np.nanmean([x["agreement"] for x in res])) if k else None,
                            "unreliable": float(np.mean([x["status"] == "unreliable" for x in res])),
                            "chosen": {c: [x["chosen"] for x in res].count(c) for c in {x["chosen"] for x in res}},
                            "reasons": res[0]["reasons"] if k == 0 else [],
                            **({key: res[0][key] for key in ("confidence", "mirror_agreement", "entropy")}
                               if k == 0 else {})}
        out["variants"][variant] = rows
    lab.few_shot = model
    out["labels alone"] = labels_alone(standardise(feats), (ea, eb, truth), (la, lb, ly), d, model.prior_weight,
                                       args.resamples)
    return out


def labels_alone(X: np.ndarray, scored: tuple, labelled: tuple, d: int, ridge: float, resamples: int) -> dict:
    """Accuracy at each k > 0 of the linear reward fitted to the k target labels alone (no transfer), drawn as
    the labeller's are."""
    (ea, eb, truth), (la, lb, ly) = scored, labelled
    out = {}
    for k in KS[1:]:
        accs = []
        for r in range(resamples):
            pick = np.random.default_rng([d, k, r]).choice(len(ly), size=min(k, len(ly)), replace=False)
            w = fit_bradley_terry(X[la[pick]] - X[lb[pick]], ly[pick], ridge=ridge)
            accs.append(hard_agreement(sigmoid((X[ea] - X[eb]) @ w), truth).mean())
        out[str(k)] = float(np.mean(accs))
    return out


def summarise(rows: list[dict]) -> dict:
    """Per pair: mean over seeds (and min over seeds) per variant and k; k = 0 inverted / flagged seed counts."""
    out = {}
    for r in rows:
        key = f"{r['source']} -> {r['target']}"
        out.setdefault(key, []).append(r)
    summary = {}
    for key, rs in out.items():
        cell = {}
        for variant in VARIANTS:
            if not all(variant in r["variants"] for r in rs):
                continue
            for k in KS:
                vals = [r["variants"][variant][str(k)] for r in rs]
                accs = [v["accuracy"] for v in vals]
                cell[(variant, k)] = {"mean": float(np.mean(accs)), "min": float(np.min(accs)),
                                      "loo": None if k == 0 else float(np.mean([v["loo"] for v in vals])),
                                      "unreliable": float(np.mean([v["unreliable"] for v in vals]))}
            zero = [r["variants"][variant]["0"] for r in rs]
            cell[(variant, "inverted")] = sum(v["accuracy"] < 0.5 for v in zero)
            cell[(variant, "flagged")] = sum(v["unreliable"] == 1.0 for v in zero)
            cell[(variant, "silent")] = sum(v["accuracy"] < 0.5 and v["unreliable"] < 1.0 for v in zero)
        if all("labels alone" in r for r in rs):
            for k in KS[1:]:
                accs = [r["labels alone"][str(k)] for r in rs]
                cell[("alone", k)] = {"mean": float(np.mean(accs)), "min": float(np.min(accs))}
        summary[key] = cell
    return summary


def _table(summary: dict, title: str) -> list[str]:
    lines = [f"**{title}** (accuracy of the transferred labels, mean over data seeds; `min` = worst seed)", "",
             "| source -> target | PEARL plain GW, k=0 | default k=0 (flagged) | k=5 | k=10 (worst seed) | k=20 | "
             "LOO estimate at k=10 | choose only, k=10 | labels alone, k=10 | plain, k=10 | no mirror, k=10 | "
             "plain k=0 inverted / flagged |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    cols = {k: [] for k in ("pearl", "d0", "d5", "d10", "d20", "c10", "a10", "p10", "n10")}
    for key, c in summary.items():
        d = lambda k, v="default": c.get((v, k), {"mean": float("nan")})  # noqa: E731
        vals = {"pearl": d(0, "plain")["mean"], "d0": d(0)["mean"], "d5": d(5)["mean"], "d10": d(10)["mean"],
                "d20": d(20)["mean"], "c10": d(10, "choose only")["mean"], "a10": d(10, "alone")["mean"],
                "p10": d(10, "plain")["mean"], "n10": d(10, "no mirror")["mean"]}
        for k, v in vals.items():
            cols[k].append(v)
        lines.append(f"| {key} | {vals['pearl']:.1%} | {vals['d0']:.1%} ({c[('default', 'flagged')]}) | "
                     f"{vals['d5']:.1%} | {vals['d10']:.1%} ({d(10)['min']:.1%}) | {vals['d20']:.1%} | "
                     f"{d(10)['loo']:.1%} | {vals['c10']:.1%} | {vals['a10']:.1%} | {vals['p10']:.1%} | "
                     f"{vals['n10']:.1%} | {c[('plain', 'inverted')]} / {c[('plain', 'flagged')]} |")
    for name, fn in (("mean", np.mean), ("min", np.min)):
        v = {k: fn(x) for k, x in cols.items()}
        lines.append(f"| **{name}** | {v['pearl']:.1%} | {v['d0']:.1%} | {v['d5']:.1%} | **{v['d10']:.1%}** | "
                     f"{v['d20']:.1%} | | {v['c10']:.1%} | {v['a10']:.1%} | {v['p10']:.1%} | {v['n10']:.1%} | |")
    return lines


def _goals(summary: dict) -> list[str]:
    d10 = [c[("default", 10)]["mean"] for c in summary.values()]
    gap = max(abs(c[("default", 10)]["loo"] - c[("default", 10)]["mean"]) for c in summary.values())
    silent = {v: sum(c[(v, "silent")] for c in summary.values()) for v in ("default", "plain")}
    inverted = {v: sum(c[(v, "inverted")] for c in summary.values()) for v in ("default", "plain")}
    met = lambda ok: "**met**" if ok else "**not met**"  # noqa: E731
    return [f"- k=10: mean {np.mean(d10):.1%} (goal >= 80%: {met(np.mean(d10) >= 0.8)}), worst pair "
            f"{np.min(d10):.1%} (goal >= 65%: {met(np.min(d10) >= 0.65)}).",
            f"- k=0: inverted pair-seeds flagged unreliable: default {inverted['default'] - silent['default']}/"
            f"{inverted['default']}, plain {inverted['plain'] - silent['plain']}/{inverted['plain']} "
            f"(goal: none silently inverted: {met(silent['default'] == 0 and silent['plain'] == 0)}).",
            f"- The labeller's own estimate (LOO at k=10) is within {gap * 100:.1f} points of the measured "
            "accuracy on every pair.",
            *_contrasts(summary)]


def _contrasts(summary: dict) -> list[str]:
    """Mean over pairs of the default minus each reference at every k > 0 (the few-shot fit's gain)."""
    out = []
    for ref, name in (("choose only", "choosing a candidate only"), ("alone", "the target labels alone")):
        if not all((ref, 10) in c for c in summary.values()):
            continue
        gaps = ", ".join(f"k={k} {np.mean([c[('default', k)]['mean'] - c[(ref, k)]['mean'] for c in summary.values()]) * 100:+.1f}"
                         for k in KS[1:])
        out.append(f"- Default minus {name} (points, mean over pairs): {gaps}.")
    return out


def label_sweep(pairs: list[tuple[str, str]], counts: list[int], args, tmp: Path) -> list[dict]:
    """Zero-shot accuracy of the default candidate vs the number of source labels (data seed 0)."""
    out = []
    for src, tgt in pairs:
        S, T = segments(src, 1, args), segments(tgt, 2, args)
        a, b = random_pairs(len(T), args.target_pairs, np.random.default_rng(5))
        truth = true_return_labels([T[i] for i in a], [T[i] for i in b])
        keep = truth != 0.5
        row = {"pair": f"{src} -> {tgt}", "accuracy": {}}
        for n in counts:
            sub = argparse.Namespace(**{**vars(args), "source_labels": n})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                lab = build(S, tgt, sub, tmp, seed=1000 + n)
                lab.orientation = dataclasses.replace(lab.orientation, inits=("product",))
                plan = lab.align(T)[0]
            p = transfer_pair_labels(plan.coupling, lab.source, a[keep], b[keep])[0]
            row["accuracy"][str(n)] = float(hard_agreement(p, truth[keep]).mean())
        out.append(row)
        print(json.dumps(row), flush=True)
    return out


def timing(n: int, args, tmp: Path) -> dict:
    """One feedback session's alignment (every candidate plan) for n x n segments, after compilation."""
    big = argparse.Namespace(**{**vars(args), "segments": n})
    S, T = segments("button-press", 3, big), segments("button-press-topdown", 4, big)
    lab = build(S, "button-press-topdown", big, tmp, seed=99)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GWConvergenceWarning)
        t0 = time.perf_counter()
        lab.align(T)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        plans = lab.align(T)
        again = time.perf_counter() - t0
    reps = lab.reports[-len(plans):]
    return {"n": n, "first_call_s": round(first, 1), "session_s": round(again, 1), "plans": len(plans),
            "per_plan_s": {r["plan"]: r["seconds"] for r in reps},
            "iterations": {r["plan"]: r["iterations"] for r in reps}}


def _flags(cell: dict) -> str:
    """Letters for the zero-shot flags in a k=0 cell's reasons (see render)."""
    marks = (("stays mirrored", "M"), ("near 0.5", "C"), ("opposite ways", "D"))
    return "".join(m for text, m in marks if any(text in r for r in cell["reasons"]))


def render(res: dict) -> str:
    a = res["args"]
    lines = ["## PEARL cross-task transfer (`feedback=transfer`)", "",
             f"`{res['command']}` · {res['machine']} · {res['date']} · {res['cpu_s'] / 3600:.2f} core-hours", "",
             f"Per pair and data seed ({a['seeds']}): {a['segments']} noisy-expert segments per task (length "
             f"{a['segment_length']}, episodes of {a['episode_length']} steps, action noise 0-2), {a['source_labels']} "
             f"rational source labels, the shipped `configs/feedback/transfer.yaml`; {a['target_pairs']} random target "
             f"pairs scored against the target's true-return labels; k labelled target pairs drawn {a['resamples']} "
             "times per seed (disjoint from the scored pairs). `flagged` = seeds whose k=0 session said unreliable; "
             "`LOO estimate` = the agreement the labeller itself reports (leave-one-out on its k labels).", ""]
    for key, title in GROUPS:
        rows = [r for r in res["rows"] if r["group"] == key]
        if rows:
            s = summarise(rows)
            lines += _table(s, title) + [""] + _goals(s) + [""]
    lines += ["Zero-shot (k=0), per pair: each seed's accuracy and the unsupervised flags that fired (M = the "
              "mirror-start solve stays mirrored, C = labels near 0.5, D = fused and plain point opposite ways; "
              "none = unverified):", "", "| source -> target | default (fused where declared) | plain GW |",
              "|---|---|---|"]
    for key in summarise(res["rows"]):
        cells = []
        for v in ("default", "plain"):
            rs = [r for r in res["rows"] if f"{r['source']} -> {r['target']}" == key]
            cells.append(", ".join(f"{r['variants'][v]['0']['accuracy']:.0%} {_flags(r['variants'][v]['0'])}".strip()
                                   for r in rs))
        lines.append(f"| {key} | {cells[0]} | {cells[1]} |")
    lines += ["", "Zero-shot (k=0) status over all pair-seeds (a flag on a correct pair is a false alarm; an "
              "inversion the segments' structure does not show -- the same arrangement, rewards running opposite "
              "ways -- cannot be flagged by any of the three):", ""]
    for v in ("default", "plain"):
        inv = [r for r in res["rows"] if r["variants"][v]["0"]["accuracy"] < 0.5]
        ok = [r for r in res["rows"] if r["variants"][v]["0"]["accuracy"] >= 0.5]
        fl = lambda rs: sum(r["variants"][v]["0"]["unreliable"] == 1.0 for r in rs)  # noqa: E731
        lines.append(f"- {v}: inverted {len(inv)} pair-seeds, {fl(inv)} flagged; not inverted {len(ok)}, "
                     f"{fl(ok)} flagged (false alarms).")
    if res.get("label_sweep"):
        counts = list(res["label_sweep"][0]["accuracy"])
        lines += ["", "Zero-shot accuracy of the first candidate (fused/product) against the number of rational source "
                  f"labels on {a['segments']} source segments (data seed 0): the default "
                  "`feedback.min_source_labels` warns below 300.", "",
                  "| source -> target | " + " | ".join(f"{c} labels" for c in counts) + " |",
                  "|---|" + "---|" * len(counts)]
        for r in res["label_sweep"]:
            lines.append(f"| {r['pair']} | " + " | ".join(f"{r['accuracy'][c]:.1%}" for c in counts) + " |")
    if res.get("timing"):
        lines += ["", "One feedback session's alignment on CPU (all candidate plans: fused and plain x product and "
                  "mirror start), after compilation; load average during the run "
                  f"{res.get('load', '?')} on {os.cpu_count()} cores:", "",
                  "| source x target segments | plans | session | first call (incl. compile) | per plan |",
                  "|---|---|---|---|---|"]
        for t in res["timing"]:
            per = ", ".join(f"{k} {v:.1f} s" for k, v in t["per_plan_s"].items())
            lines.append(f"| {t['n']} x {t['n']} | {t['plans']} | {t['session_s']} s | {t['first_call_s']} s | {per} |")
    return "\n".join(lines)


def parse_pairs(text: str) -> list[tuple[str, str]]:
    out = []
    for item in filter(None, text.split(",")):
        if item.count(":") != 1:
            raise SystemExit(f"--pairs: expected source:target items, got {item!r}")
        out.append(tuple(item.split(":")))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", default=DEV, help="development pairs source:target,...")
    p.add_argument("--heldout", default=HELDOUT, help="held-out pairs, reported separately ('' = none)")
    p.add_argument("--fresh", default=FRESH, help="pairs first run after the settings were fixed ('' = none)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--segments", type=int, default=500)
    p.add_argument("--source-labels", type=int, default=3000)
    p.add_argument("--target-pairs", type=int, default=2000)
    p.add_argument("--resamples", type=int, default=20, help="draws of the k labelled target pairs per seed")
    p.add_argument("--episode-length", type=int, default=150)
    p.add_argument("--segment-length", type=int, default=50)
    p.add_argument("--timing", default="1000", help="n for the n x n session timing ('' = skip)")
    p.add_argument("--label-sweep", default="30,100,300,1000,3000",
                   help="source-label counts for the zero-shot accuracy sweep on the first two pairs ('' = skip)")
    p.add_argument("--cache", default=None, help="directory caching generated segments (default: a temp dir)")
    p.add_argument("--out", type=Path, default=RAW / "transfer_accuracy.json",
                   help="results .json (the published table: --from-json --out bench/results/transfer_accuracy.json)")
    p.add_argument("--resume", action="store_true", help="keep the (pair, seed) rows already in --out")
    p.add_argument("--update-benchmarks", action="store_true")
    p.add_argument("--from-json", action="store_true", help="re-render --out instead of running")
    args = p.parse_args()
    if args.from_json:
        publish(render(json.loads(args.out.read_text())), MARK, args.update_benchmarks)
        return
    groups = [(g, s, t) for g, text in (("dev", args.pairs), ("heldout", args.heldout), ("fresh", args.fresh))
              for s, t in parse_pairs(text)]
    seeds = [int(x) for x in args.seeds.split(",")]
    old = json.loads(args.out.read_text()) if args.resume and args.out.exists() else {}
    rows = [r for r in old.get("rows", []) if r["group"] in dict(GROUPS)]
    done = {(r["source"], r["target"], r["seed"]) for r in rows}
    cpu0 = time.process_time() - float(old.get("cpu_s", 0.0))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        args.cache = args.cache or str(tmp)
        Path(args.cache).mkdir(parents=True, exist_ok=True)
        res = {"command": "python bench/transfer_accuracy.py " + " ".join(os.sys.argv[1:]),
               "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "date": time.strftime("%Y-%m-%d"),
               "args": {k: v for k, v in vars(args).items() if k not in ("out",)}, "rows": rows, "timing": [],
               "label_sweep": old.get("label_sweep")}
        for group, s, t in groups:
            for seed in seeds:
                if (s, t, seed) in done:
                    continue
                row = {"group": group, **run_pair(s, t, seed, args, tmp)}
                rows.append(row)
                print(json.dumps({k: row[k] for k in ("group", "source", "target", "seed", "solve_s")} |
                                 {v: {k: round(x["accuracy"], 3) for k, x in c.items()}
                                  for v, c in row["variants"].items()}), flush=True)
                res["cpu_s"] = time.process_time() - cpu0
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(res, default=str, indent=1))
        counts = [int(x) for x in args.label_sweep.split(",") if x]
        if counts and not res.get("label_sweep"):
            res["label_sweep"] = label_sweep(parse_pairs(args.pairs)[:2], counts, args, tmp)
        res["load"] = round(os.getloadavg()[0], 1)
        for n in [int(x) for x in args.timing.split(",") if x]:
            res["timing"].append(timing(n, args, tmp))
            print(json.dumps(res["timing"][-1]), flush=True)
        res["cpu_s"] = time.process_time() - cpu0
        res["args"]["cache"] = "(temp)" if args.cache == str(tmp) else args.cache
    args.out.write_text(json.dumps(res, default=str, indent=1))
    publish(render(res), MARK, args.update_benchmarks)


if __name__ == "__main__":
    main()

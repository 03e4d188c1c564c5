"""Benchmark: how many epochs the offline reward fits need, the ensemble (P-IQL) against the Preference Transformer
(PT-IQL), on the offline benchmark's own data.

The offline table (``bench/offline_prefs.py``) fits every reward for ``--reward-epochs`` (5 at its 5000 steps: CPL's
P-IQL schedule, its reward trained in the first 10% of the steps) and stops at 97% training accuracy. That budget is
the MLP ensemble's reference; the Preference Transformer code trains its transformer far longer (2000 epochs of
batches of 64 over 100-1000 queries, warm-up and cosine decay), and in the table PT's fits end at ~82% training
accuracy where the ensemble's reach ~94%. Is PT-IQL then measuring an under-fitted reward?

For one task and seed this script builds the dense store exactly as the offline benchmark does
(:func:`offline_prefs.make_datasets`), holds out whole groups of segments (``--heldout`` of the pairs; dense pairs
share segments within a group, so a held-out pair never shows a training segment), fits each reward model once for
``--epochs`` epochs (no early stop) and records training and held-out accuracy and loss after each epoch, and
how well the per-step reward it would relabel the data with agrees with the true reward on the held-out segments
(Pearson correlation per step and per segment return: what IQL is then trained on). It prints the tables, saves the
curves as a plot and, with ``--update-md``, writes both into BENCHMARKS.md.

The transformer's learning rate follows the reference's warm-up and cosine over the whole fit, so epoch 5 of a
15-epoch curve is not what a 5-epoch fit ends at (run ``--epochs 5`` for that); the ensemble's rate is constant.

Cost on one idle core (dense store, 8624 pairs): rollouts ~1.7 min, then per epoch ~55 s for the ensemble and ~70 s for
the transformer (the configs' sizes).

Usage:  python bench/reward_fit_length.py [--task drawer-open] [--seed 0] [--epochs 15] [--rewards ensemble,transformer]
        [--quick] [--update-md]
        python bench/reward_fit_length.py --from-rows runs/bench/reward_fit_length/rows.json --update-md
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from omegaconf import OmegaConf

if not __package__:  # run as python bench/<name>.py: bench/_bootstrap.py puts the repository root on sys.path
    import _bootstrap  # noqa: F401
from bench.common import RAW, publish  # noqa: E402
from bench import offline_prefs  # noqa: E402

from pbrl.data.store import PreferenceStore  # noqa: E402
from pbrl.resources import resource_dir  # noqa: E402
from pbrl.rewards.transformer import ARCH_VERSION  # noqa: E402
from pbrl.run import builder  # noqa: E402
from pbrl.types import PairBatch  # noqa: E402
from pbrl.utils import atomic_write_json, pyplot, save_figure  # noqa: E402

MARK = "reward_fit_length"
PLOT = Path(__file__).resolve().parent / "results" / "reward_fit_length.png"


def parse(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="drawer-open")
    ap.add_argument("--seed", type=int, default=0, help="data seed (rollouts, segments, labels) and fit seed")
    ap.add_argument("--epochs", type=int, default=15, help="epochs per reward model (no early stop)")
    ap.add_argument("--rewards", default="ensemble,transformer", help="reward configs (configs/reward/<name>.yaml)")
    ap.add_argument("--heldout", type=float, default=0.1, help="share of the pairs held out, in whole segment groups")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--quick", action="store_true", help="the offline benchmark's --quick data, 3 epochs: a smoke run")
    ap.add_argument("--update-md", action="store_true", help="write the table into BENCHMARKS.md")
    ap.add_argument("--out", default=str(RAW / MARK))
    ap.add_argument("--from-rows", default=None, help="re-render the table and plot from a finished run's rows.json")
    args = ap.parse_args(argv)
    if not 0.0 < args.heldout < 0.5:
        ap.error(f"--heldout: expected a share in (0, 0.5), got {args.heldout}")
    if args.epochs < 1:
        ap.error(f"--epochs: expected >= 1, got {args.epochs}")
    missing = [r for r in args.rewards.split(",") if not (resource_dir("configs") / "reward" / f"{r}.yaml").is_file()]
    if missing:
        ap.error(f"--rewards: no configs/reward/{missing[0]}.yaml")
    if args.quick:
        args.epochs = min(args.epochs, 3)
    return args


def group_split(first: np.ndarray, second: np.ndarray, heldout: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of the held-out pairs: whole connected groups of segments (pairs linked by a shared segment), drawn
    in random order until they hold ``heldout`` of the pairs, so no held-out pair shares a segment with training."""
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(first.tolist(), second.tolist()):
        parent[root(a)] = root(b)
    groups = np.array([root(a) for a in first.tolist()])
    held, target = np.zeros(len(groups), bool), heldout * len(groups)
    for g in rng.permutation(np.unique(groups)):
        if held.sum() >= target:
            break
        held |= groups == g
    return held


def subset(pairs: PairBatch, mask: np.ndarray) -> PairBatch:
    return PairBatch(*(np.asarray(field)[mask] for field in pairs))


def heldout_segments(store: PreferenceStore, first: np.ndarray, second: np.ndarray,
                     held: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(obs, acts, true rewards)`` of every segment in a held-out pair, stacked ``(n, L, ...)``."""
    segs = store.get_segments(sorted(set(first[held].tolist()) | set(second[held].tolist())))
    return (np.stack([s.obs[:len(s.acts)] for s in segs]), np.stack([s.acts for s in segs]),
            np.stack([s.rewards for s in segs]))


def reward_agreement(model, segs: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, float]:
    """Pearson correlation of the model's per-step reward (``predict`` on each segment as a sequence: the
    transformer's step ``t`` sees the segment up to ``t``) with the true one, per step and per segment return."""
    obs, acts, true = segs
    pred = np.asarray(model.predict(obs, acts), np.float64)
    corr = lambda a, b: float(np.corrcoef(a, b)[0, 1])  # noqa: E731
    return {"step_corr": corr(pred.ravel(), true.ravel()), "return_corr": corr(pred.sum(1), true.sum(1))}


def fit_curve(name: str, train: PairBatch, test: PairBatch, epochs: int, seed: int,
              segs: Optional[tuple[np.ndarray, np.ndarray, np.ndarray]] = None) -> list[dict]:
    """Per epoch: training metrics of the epoch, held-out loss and accuracy after it (and with ``segs``, the
    held-out segments, :func:`reward_agreement`), and its seconds."""
    reward = OmegaConf.load(resource_dir("configs") / "reward" / f"{name}.yaml")
    model = builder.build_reward_model(OmegaConf.create({"reward": reward, "device": "cpu"}),
                                       int(train.obs1.shape[-1]), int(train.act1.shape[-1]), seed)
    torch.manual_seed(seed)
    rows: list[dict] = []
    t0 = time.time()

    def after_epoch(fit: dict[str, float]) -> None:  # one fit of ``epochs``: a learning-rate schedule spans all
        nonlocal t0
        seconds = time.time() - t0
        held = model.evaluate(test)  # type: ignore[attr-defined]
        rows.append({"reward": name, "epoch": int(fit["epochs"]), "train_acc": fit["train_acc"],
                     "train_loss": fit["loss"], "heldout_acc": held["accuracy"], "heldout_loss": held["loss"],
                     "fit_s": seconds, **({} if segs is None else reward_agreement(model, segs)),
                     **({"pt_version": ARCH_VERSION} if name == "transformer" else {})})
        print(json.dumps(rows[-1]), flush=True)
        t0 = time.time()

    model.fit(train, epochs=epochs, on_epoch=after_epoch)
    return rows


def table(rows: list[dict], names: list[str]) -> str:
    head = "| epoch | " + " | ".join(f"{n}: train acc / held-out acc / held-out loss" for n in names) + " |"
    lines = [head, "|---|" + "---|" * len(names)]
    for epoch in sorted({r["epoch"] for r in rows}):
        cells = []
        for n in names:
            r = next((r for r in rows if r["reward"] == n and r["epoch"] == epoch), None)
            cells.append("-" if r is None else
                         f"{100 * r['train_acc']:.1f} / {100 * r['heldout_acc']:.1f} / {r['heldout_loss']:.3f}")
        lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def agreement_table(rows: list[dict], names: list[str]) -> str:
    """Per epoch and model: correlation of the relabelling reward with the true one (step / segment return); ''
    for rows from before it was measured."""
    if not any("step_corr" in r for r in rows):
        return ""
    lines = ["| epoch | " + " | ".join(f"{n}: r per step / per return" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for epoch in sorted({r["epoch"] for r in rows}):
        found = [next((r for r in rows if r["reward"] == n and r["epoch"] == epoch), {}) for n in names]
        cells = [f"{r['step_corr']:.2f} / {r['return_corr']:.2f}" if "step_corr" in r else "-" for r in found]
        lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], names: list[str], path: Path, title: str) -> None:
    fig, ax = pyplot().subplots(figsize=(6, 3.6))
    for n in names:
        mine = [r for r in rows if r["reward"] == n]
        ep = [r["epoch"] for r in mine]
        line, = ax.plot(ep, [100 * r["heldout_acc"] for r in mine], marker="o", ms=3, label=f"{n}, held-out")
        ax.plot(ep, [100 * r["train_acc"] for r in mine], ls="--", color=line.get_color(), label=f"{n}, training")
    if max(r["epoch"] for r in rows) >= 5:
        ax.axvline(5, color="grey", lw=0.8, ls=":")
        ax.text(5.1, ax.get_ylim()[0] + 1, "offline table's fit", fontsize=7, color="grey")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set(xlabel="epoch", ylabel="preference accuracy (%)", title=title)
    ax.legend(fontsize=7)
    save_figure(fig, path, dpi=110)


def main() -> None:
    args = parse()
    if args.from_rows:
        saved = json.loads(Path(args.from_rows).read_text())
        run = argparse.Namespace(**{**saved["args"], "update_md": args.update_md})
        report(saved["rows"], run, saved["pairs"]["train"], saved["pairs"]["heldout"], saved["wall_s"])
        return
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data_args = offline_prefs.parse(["--datasets", "dense", "--tasks", args.task, "--seeds", str(args.seed)]
                                    + (["--quick"] if args.quick else []))
    t0 = time.time()
    (path, counts), = offline_prefs.make_datasets(args.task, data_args, out, args.seed).values()
    with PreferenceStore(path, create=False) as store:
        labels = [r for r in store.labels() if not r.skipped]
        pairs = store.pair_batch(pair_ids=[r.pair_id for r in labels])
        first, second = np.array([r.first_id for r in labels]), np.array([r.second_id for r in labels])
        held = group_split(first, second, args.heldout, np.random.default_rng(args.seed))
        segs = heldout_segments(store, first, second, held)
    path.unlink(missing_ok=True)
    names = args.rewards.split(",")
    rows = [r for n in names
            for r in fit_curve(n, subset(pairs, ~held), subset(pairs, held), args.epochs, args.seed, segs)]
    atomic_write_json(out / "rows.json", {"args": vars(args), "rows": rows, "wall_s": time.time() - t0,
                                          "pairs": {"train": int((~held).sum()), "heldout": int(held.sum())}})
    report(rows, args, int((~held).sum()), int(held.sum()), time.time() - t0)


def report(rows: list[dict], args: argparse.Namespace, n_train: int, n_test: int, wall: float) -> None:
    names = list(dict.fromkeys(r["reward"] for r in rows))
    title = f"{args.task}, dense, seed {args.seed}: {n_train} training / {n_test} held-out pairs"
    plot(rows, names, PLOT if args.update_md else Path(args.out) / PLOT.name, title)
    per_epoch = ", ".join(f"{n} {np.mean([r['fit_s'] for r in rows if r['reward'] == n]):.0f} s" for n in names)
    text = (f"## Offline reward fits: accuracy per epoch (`bench/reward_fit_length.py`)\n\n"
            f"{title} (the offline benchmark's dense store; held out in whole segment groups). Each model trains "
            f"{args.epochs} epochs with the configs' settings and no early stop; accuracy is on strict labels, "
            f"training accuracy over the epoch's batches as the fit reports it. Seconds per epoch: {per_epoch}; "
            f"wall {wall / 60:.0f} min.\n\n{table(rows, names)}\n\n![held-out accuracy per epoch]"
            f"(bench/results/{PLOT.name})")
    agree = agreement_table(rows, names)
    if agree:
        text += ("\n\nThe per-step reward each model would relabel the data with, against the true reward on the "
                 f"held-out segments (Pearson r over steps, and over segment returns):\n\n{agree}")
    publish(text, MARK, args.update_md)


if __name__ == "__main__":
    main()

"""How good is a learned reward? Accuracy, calibration and agreement with the true reward.

Used by ``pbrl eval-reward`` and the reward-learning benchmark. Works with any
:class:`~pbrl.types.RewardModel` (ensemble, single MLP, Gaussian): pairs are ranked by the mean
segment return ``sum_t predict(s_t, a_t)``; calibration uses the model's predictive probability
``P(first) = mean_k sigmoid(R1_k - R2_k)`` over its members / return samples.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple, Optional

import numpy as np

from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import stack_pairs
from pbrl.types import PairBatch, PbrlError, RewardModel, validate_label_values
from pbrl.utils import pyplot, save_figure


class LabelledPairs(NamedTuple):
    """Answered pairs of a store with what evaluation needs beyond the PairBatch.

    Attributes:
        batch: the pairs and labels (pbrl convention).
        true1, true2: ``(n, L)`` true per-step rewards of the first / second segments.
        source, annotator: ``(n,)`` label provenance (``labels.source`` / ``labels.annotator``).
        pair_id: ``(n,)`` store pair ids.
    """

    batch: PairBatch
    true1: np.ndarray
    true2: np.ndarray
    source: np.ndarray
    annotator: np.ndarray
    pair_id: np.ndarray

    def subset(self, idx: np.ndarray) -> "LabelledPairs":
        return LabelledPairs(PairBatch(*(np.asarray(a)[idx] for a in self.batch)),
                             *(np.asarray(a)[idx] for a in self[1:]))


def load_labelled_pairs(store: PreferenceStore) -> LabelledPairs:
    """Every answered label of ``store`` with its segments, or a one-line error saying why not."""
    rows = store.labels(include_skipped=True)
    if not rows:
        raise PbrlError(f"store {store.path}: no labels at all; label some pairs first (pbrl train / the viewer)")
    answered = [r for r in rows if not r.skipped]
    if not answered:
        raise PbrlError(f"store {store.path}: all {len(rows)} labels are skipped; expected answered labels")
    validate_label_values(np.array([r.label for r in answered]), name=f"store {store.path}: labels")
    segs = store.get_segments([r.first_id for r in answered] + [r.second_id for r in answered])
    shapes = {(s.obs.shape, s.acts.shape) for s in segs}
    if len(shapes) > 1:
        shown = sorted(f"obs{o} acts{a}" for o, a in shapes)[:4]
        raise PbrlError(f"store {store.path}: segments of mismatched shapes {shown}; expected one length and size")
    n = len(answered)
    batch = stack_pairs(segs[:n], segs[n:], np.array([r.label for r in answered], np.float32),
                        np.array([r.weight for r in answered], np.float32))
    return LabelledPairs(batch, np.stack([s.rewards for s in segs[:n]]), np.stack([s.rewards for s in segs[n:]]),
                         np.array([r.source for r in answered]), np.array([r.annotator for r in answered]),
                         np.array([r.pair_id for r in answered]))


def split_pairs(data: LabelledPairs, test_frac: float, rng: np.random.Generator) -> tuple[LabelledPairs, LabelledPairs]:
    """Random (train, test) split; both parts keep at least one pair."""
    n = data.batch.n_pairs
    if not 0.0 < test_frac < 1.0:
        raise PbrlError(f"--split: expected a fraction in (0, 1), got {test_frac}")
    if n < 2:
        raise PbrlError(f"held-out split needs at least 2 answered labels, the store has {n}")
    order = rng.permutation(n)
    n_test = min(n - 1, max(1, int(round(test_frac * n))))
    return data.subset(np.sort(order[n_test:])), data.subset(np.sort(order[:n_test]))


def predicted_returns(model: RewardModel, batch: PairBatch) -> tuple[np.ndarray, np.ndarray]:
    """Mean predicted segment returns ``(n,)`` of the first and second segments."""
    return model.predict(batch.obs1, batch.act1).sum(-1), model.predict(batch.obs2, batch.act2).sum(-1)


def predictive_prob(model: RewardModel, batch: PairBatch) -> np.ndarray:
    """``P(first preferred)`` averaged over members / samples: ``mean_k sigmoid(R1_k - R2_k)``."""
    r1 = np.asarray(model.segment_return_samples(batch.obs1, batch.act1), np.float64)
    r2 = np.asarray(model.segment_return_samples(batch.obs2, batch.act2), np.float64)
    return (0.5 * (1.0 + np.tanh(0.5 * (r1 - r2)))).mean(axis=0)


def strict_accuracy(diff: np.ndarray, p: np.ndarray) -> float:
    """Share of strict labels (p != 0.5) whose preferred side has the larger predicted return."""
    strict = p != 0.5
    if not strict.any():
        return math.nan
    return float(np.mean(np.where(p[strict] > 0.5, diff[strict] > 0, diff[strict] < 0)))


def calibration(prob: np.ndarray, p: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    """Expected calibration error of ``P(first)`` against the (soft) labels, and the diagram's bins.

    ECE = sum_b (n_b / n) |mean predicted P in b - mean label in b| over equal-width bins of P
    (Naeini et al. 2015; Guo et al. 2017), with the label itself as the outcome so soft labels count.
    """
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(prob, edges[1:-1]), 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        mask = which == b
        if not mask.any():
            continue
        conf, freq = float(prob[mask].mean()), float(p[mask].mean())
        ece += mask.mean() * abs(conf - freq)
        bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": int(mask.sum()),
                     "mean_prob": conf, "label_freq": freq})
    return {"ece": float(ece), "bins": bins}


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if x.size < 2 or x.std() < 1e-12 or y.std() < 1e-12:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rank = lambda a: np.argsort(np.argsort(np.asarray(a).ravel(), kind="stable"), kind="stable")  # noqa: E731
    return _pearson(rank(x), rank(y))


def group_accuracy(diff: np.ndarray, data: LabelledPairs) -> dict[str, dict[str, Any]]:
    """Accuracy by label source, annotator and whether the label agrees with the true-return order.

    ``teacher=wrong`` are strict labels that contradict the true returns (B-Pref mistakes); a robust
    model's predictions agree with the *true* order there, i.e. its label accuracy is low.
    """
    p = data.batch.p
    true_diff = data.true1.sum(-1) - data.true2.sum(-1)
    truth = np.where(true_diff > 0, 1.0, np.where(true_diff < 0, 0.0, 0.5)).astype(np.float32)
    agrees = np.where(p == 0.5, "equal", np.where((p > 0.5) == (true_diff > 0), "right", "wrong"))
    groups: dict[str, np.ndarray] = {f"source={s}": data.source == s for s in np.unique(data.source)}
    groups.update({f"annotator={a}": data.annotator == a for a in np.unique(data.annotator) if a})
    groups.update({f"teacher={g}": agrees == g for g in ("right", "wrong", "equal")})
    out = {}
    for name, mask in groups.items():
        if mask.any():
            out[name] = {"n": int(mask.sum()), "accuracy": strict_accuracy(diff[mask], p[mask]),
                         "accuracy_vs_true": strict_accuracy(diff[mask], truth[mask])}
    return out


def reward_report(model: RewardModel, data: LabelledPairs, *, n_bins: int = 10) -> dict[str, Any]:
    """All metrics of ``model`` on ``data`` as a JSON-able dict (the arrays for plots under ``_plot``)."""
    validate_label_values(data.batch.p, name="labels")
    r1, r2 = predicted_returns(model, data.batch)
    prob = predictive_prob(model, data.batch)
    true_ret = np.concatenate([data.true1.sum(-1), data.true2.sum(-1)])
    pred_ret = np.concatenate([r1, r2])
    step_pred = np.concatenate([model.predict(data.batch.obs1, data.batch.act1),
                                model.predict(data.batch.obs2, data.batch.act2)]).ravel()
    step_true = np.concatenate([data.true1, data.true2]).ravel()
    p = data.batch.p
    true_p = np.where(data.true1.sum(-1) > data.true2.sum(-1), 1.0, 0.0)
    return {
        "n_pairs": int(p.shape[0]), "n_strict": int((p != 0.5).sum()),
        "accuracy": strict_accuracy(r1 - r2, p),
        "accuracy_vs_true": strict_accuracy(r1 - r2, true_p.astype(np.float32)),
        "label_agreement_with_true": strict_accuracy(data.true1.sum(-1) - data.true2.sum(-1), p),
        "calibration": calibration(prob, p, n_bins),
        "corr_segment_pearson": _pearson(pred_ret, true_ret), "corr_segment_spearman": _spearman(pred_ret, true_ret),
        "corr_step_pearson": _pearson(step_pred, step_true),
        "groups": group_accuracy(r1 - r2, data),
        "_plot": {"pred_ret": pred_ret, "true_ret": true_ret, "step_pred": step_pred, "step_true": step_true},
    }


def plot_reliability(report: dict[str, Any], path: Path, *, title: str = "") -> Path:
    """Reliability diagram: mean predicted P(first) against the mean label per bin."""
    plt = pyplot()
    bins = report["calibration"]["bins"]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfectly calibrated")
    ax.bar([b["lo"] for b in bins], [b["label_freq"] for b in bins], width=[b["hi"] - b["lo"] for b in bins],
           align="edge", alpha=0.5, edgecolor="k", label="mean label")
    ax.plot([b["mean_prob"] for b in bins], [b["label_freq"] for b in bins], marker="o", label="model")
    ax.set_xlabel("predicted P(first preferred)")
    ax.set_ylabel("label frequency (first preferred)")
    ax.set_title(f"{title} ECE={report['calibration']['ece']:.3f}".strip())
    ax.legend(loc="upper left", fontsize=8)
    return save_figure(fig, Path(path))


def plot_scatter(report: dict[str, Any], path: Path, *, title: str = "", max_points: int = 5000) -> Path:
    """Learned vs true returns, per segment (left) and per step (right)."""
    plt = pyplot()
    d = report["_plot"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    step = max(1, d["step_true"].size // max_points)
    for ax, (x, y, what, r) in zip(axes, (
            (d["true_ret"], d["pred_ret"], "segment return", report["corr_segment_pearson"]),
            (d["step_true"][::step], d["step_pred"][::step], "per-step reward", report["corr_step_pearson"]))):
        ax.scatter(x, y, s=4, alpha=0.4)
        ax.set_xlabel(f"true {what}")
        ax.set_ylabel(f"learned {what}")
        ax.set_title(f"{what}: Pearson r = {r:.3f}")
    fig.suptitle(title)
    return save_figure(fig, Path(path))


def format_table(report: dict[str, Any], *, heading: Optional[str] = None) -> str:
    """A short plain-text table of the headline numbers and the per-group accuracy."""
    lines = [heading] if heading else []
    lines += [f"{'pairs':28} {report['n_pairs']} ({report['n_strict']} strict)",
              f"{'accuracy (vs labels)':28} {report['accuracy']:.3f}",
              f"{'accuracy (vs true returns)':28} {report['accuracy_vs_true']:.3f}",
              f"{'labels agreeing with truth':28} {report['label_agreement_with_true']:.3f}",
              f"{'calibration ECE':28} {report['calibration']['ece']:.3f}",
              f"{'corr segment (Pearson)':28} {report['corr_segment_pearson']:.3f}",
              f"{'corr segment (Spearman)':28} {report['corr_segment_spearman']:.3f}",
              f"{'corr per step (Pearson)':28} {report['corr_step_pearson']:.3f}",
              f"{'group':28} {'n':>5} {'acc':>6} {'acc_true':>8}"]
    for name, g in report["groups"].items():
        lines.append(f"{name:28} {g['n']:>5} {g['accuracy']:>6.3f} {g['accuracy_vs_true']:>8.3f}")
    return "\n".join(lines)

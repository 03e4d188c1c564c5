"""Run artefacts a person reads: ``metrics.csv``, ``summary.json`` and ``curves.png``."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Optional

from pbrl.utils import atomic_write_text, pyplot, save_figure

METRIC_COLUMNS = (
    "env_steps", "labels_used", "labels_answered", "return_mean", "return_std", "success_rate",
    "reward_heldout_acc", "reward_accuracy", "reward_corr_segment", "reward_corr_step", "wall_s",
    # feedback=transfer: the last feedback session's reliability (pbrl.feedback.orientation.Reliability)
    "transfer_status", "transfer_labels", "transfer_agreement", "transfer_gw_cost", "transfer_entropy",
    "transfer_confidence",
)


class MetricsLog:
    """Rows of evaluation metrics, rewritten atomically on every append (small file, never torn)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        if self.path.exists():
            with open(self.path, newline="") as fh:
                self.rows = [dict(r) for r in csv.DictReader(fh)]

    def truncate_after(self, env_steps: int) -> None:
        """Drop rows newer than a checkpoint we resume from (they will be produced again)."""
        self.rows = [r for r in self.rows if float(r["env_steps"]) <= env_steps]
        self._flush()

    def append(self, row: dict[str, Any]) -> None:
        """Add a row; a row for the same env step as the last one replaces it (the final evaluation)."""
        if self.rows and float(self.rows[-1]["env_steps"]) == float(row["env_steps"]):
            self.rows.pop()
        self.rows.append({k: _fmt(row.get(k)) for k in METRIC_COLUMNS})
        self._flush()

    def _flush(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue())

    def column(self, name: str) -> list[float]:
        return [float(r[name]) if r.get(name) not in (None, "") else math.nan for r in self.rows]


def _fmt(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


def plot_curves(log: MetricsLog, path: Path, *, title: str, baseline: Optional[float] = None) -> Path:
    """Learning curve (true return, success) and reward-model accuracy against env steps."""
    plt = pyplot()
    steps = log.column("env_steps")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    ax.plot(steps, log.column("return_mean"), marker="o", label="policy (learned reward)")
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", label="random policy")
    ax.set_xlabel("env steps")
    ax.set_ylabel("true episode return")
    success = log.column("success_rate")
    if any(not math.isnan(s) for s in success):
        twin = ax.twinx()
        twin.plot(steps, success, color="tab:green", marker="s", label="success rate")
        twin.set_ylim(-0.05, 1.05)
        twin.set_ylabel("success rate", color="tab:green")
    ax.legend(loc="upper left")
    ax.set_title("learning curve")
    ax = axes[1]
    ax.plot(steps, log.column("reward_accuracy"), marker="o", label="accuracy vs true-return order")
    ax.plot(steps, log.column("reward_heldout_acc"), marker="x", label="accuracy on next labels (held out)")
    ax.plot(steps, log.column("reward_corr_segment"), marker=".", label="corr. segment return")
    ax.set_ylim(-0.05, 1.05)
    ax.axhline(0.5, color="grey", linestyle=":")
    ax.set_xlabel("env steps")
    ax.set_title("reward model")
    ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, Path(path))

"""``logger=tensorboard``: the learner's SB3 logger and pbrl's metrics rows as TensorBoard event files.

Both go through one SB3 :class:`~stable_baselines3.common.logger.Logger` writing to ``<run dir>/tensorboard``:
SB3 records its own ``train/*``, ``rollout/*`` and ``time/*`` values as usual, and every row pbrl appends to
``metrics.csv`` is recorded under ``pbrl/<column>`` at its ``env_steps``, so ``tensorboard --logdir runs/``
shows a whole sweep side by side.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Optional

from pbrl.types import PbrlError

LOGGERS = ("none", "tensorboard")


def check_logger(kind: str) -> None:
    """Refuse an unknown ``logger=`` or a missing TensorBoard before a run starts."""
    if kind not in LOGGERS:
        raise PbrlError(f"logger: {kind!r} is not a logger; expected one of {', '.join(LOGGERS)}")
    if kind == "tensorboard":
        try:
            import tensorboard  # noqa: F401  (SB3's TensorBoard writer is torch's SummaryWriter, which needs it)
        except ImportError as exc:
            raise ImportError("logger=tensorboard needs tensorboard: pip install 'pbrl[tensorboard]'") from exc


def make_logger(kind: str, run_dir: Path):
    """An SB3 logger writing TensorBoard event files under ``run_dir/tensorboard``, or None for ``none``."""
    check_logger(kind)
    if kind == "none":
        return None
    from stable_baselines3.common.logger import configure

    return configure(str(Path(run_dir) / "tensorboard"), ["tensorboard"])


def row_sink(logger) -> Callable[[dict[str, Any]], None]:
    """A callback that records one metrics row under ``pbrl/<column>`` at its ``env_steps`` and flushes."""
    def write(row: dict[str, Any]) -> None:
        record_stats(logger, "pbrl", {k: v for k, v in row.items() if k != "env_steps"}, int(row["env_steps"]))
    return write


def record_stats(logger, prefix: str, stats: dict[str, Any], step: int) -> None:
    """Record the numeric entries of ``stats`` (e.g. an offline learner's losses) as ``prefix/<key>`` at ``step``."""
    for key, value in stats.items():
        if isinstance(value, (int, float)) and not math.isnan(float(value)):
            logger.record(f"{prefix}/{key}", float(value))
    logger.dump(int(step))


def attach(kind: str, run_dir: Path, model, session) -> Optional[Any]:
    """Send ``model``'s SB3 logs and ``session``'s metrics rows to ``kind``; returns the logger to close."""
    logger = make_logger(kind, run_dir)
    if logger is not None:
        model.set_logger(logger)
        session.on_row = row_sink(logger)
    return logger

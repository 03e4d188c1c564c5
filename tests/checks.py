"""Outcome checks shared by the end-to-end tests: do a run's stored labels mean what they claim?"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from pbrl.data.store import PreferenceStore


def true_order_agreement(store_path: Path, sources: Sequence[str]) -> tuple[float, int]:
    """Share of answered, decided labels of ``sources`` that prefer the segment with the higher true return.

    Computed from the stored segments' own reward columns (the task's true reward), independent of any
    labeller code. Equal labels (0.5) and exact return ties are left out. Returns (agreement, n counted).
    """
    with PreferenceStore(store_path, create=False) as store:
        rows = [r for r in store.labels(sources=list(sources)) if r.label != 0.5]
        segs = store.get_segments([i for r in rows for i in (r.first_id, r.second_id)])
    hits = []
    for k, row in enumerate(rows):
        diff = float(np.sum(segs[2 * k].rewards, dtype=np.float64) - np.sum(segs[2 * k + 1].rewards, dtype=np.float64))
        if diff != 0.0:
            hits.append((diff > 0) == (row.label > 0.5))
    return (float(np.mean(hits)) if hits else float("nan")), len(hits)


def tensorboard_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of the TensorBoard event files under ``logdir``: tag -> [(step, value), ...]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(logdir.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events.parent), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return out


def require_system_package(present: bool, what: str) -> None:
    """Skip on a developer machine without ``what``; fail where `make test` installed it (``PBRL_SYSTEM_DEPS=1``,
    set by the Makefile's test targets) or in CI, so a missing package never turns a check into a silent skip."""
    if present:
        return
    if os.environ.get("PBRL_SYSTEM_DEPS") or os.environ.get("CI"):
        pytest.fail(f"{what} is missing although `make test` installs it")
    pytest.skip(f"{what} is not installed here (make test installs it)")

"""The label convention and the small protocols every component speaks.

A label inside pbrl is ``p = P(first segment preferred)`` as float32: ``1.0`` first better,
``0.0`` second better, ``0.5`` equal. A skipped query is never a label value: it is carried as a
separate boolean mask in memory and as ``skipped = 1`` (label NULL) in the store. Conversions to
other conventions happen only in :mod:`pbrl.data.io`.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Protocol, runtime_checkable

import numpy as np

FIRST_BETTER: float = 1.0
SECOND_BETTER: float = 0.0
EQUAL: float = 0.5

#: Where a label came from; stored verbatim in the ``labels.source`` column.
SOURCES: tuple[str, ...] = ("scripted", "heron", "transfer", "human", "vlm", "import")


class PbrlError(Exception):
    """An error caused by user input (config, file, store); printed as one line by the CLI."""


class Labels(NamedTuple):
    """Answers to ``n`` queries.

    Attributes:
        p: ``(n,)`` float32, P(first preferred) in [0, 1]; the value at a skipped index is meaningless.
        skipped: ``(n,)`` bool, True where the labeller declined to answer.
        weight: ``(n,)`` float32 confidence per label (e.g. PEARL's transferred labels), or None for 1.0.
    """

    p: np.ndarray
    skipped: np.ndarray
    weight: Optional[np.ndarray] = None

    @property
    def n_answered(self) -> int:
        return int((~self.skipped).sum())


def validate_label_values(p: np.ndarray, *, name: str = "label") -> np.ndarray:
    """Return ``p`` as float32 after checking it lies in [0, 1] and is finite."""
    arr = np.asarray(p, dtype=np.float32)
    if arr.size and not np.all(np.isfinite(arr)):
        raise PbrlError(f"{name}: {int((~np.isfinite(arr)).sum())} NaN/inf value(s); expected P(first preferred) in [0, 1]")
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise PbrlError(
            f"{name}: expected P(first preferred) in [0, 1] (1 first, 0 second, 0.5 equal), "
            f"got values in [{np.nanmin(arr)}, {np.nanmax(arr)}]"
        )
    return arr


class PairBatch(NamedTuple):
    """A batch of labelled segment pairs, the input of reward learning.

    Attributes:
        obs1, obs2: ``(n, L, obs_dim)`` float32.
        act1, act2: ``(n, L, act_dim)`` float32.
        p: ``(n,)`` float32 labels in the pbrl convention (skipped pairs are never in a batch).
        weight: ``(n,)`` float32 per-label weight (confidence), 1.0 by default.
    """

    obs1: np.ndarray
    act1: np.ndarray
    obs2: np.ndarray
    act2: np.ndarray
    p: np.ndarray
    weight: np.ndarray

    @property
    def n_pairs(self) -> int:
        # Not __len__: a NamedTuple's len() must stay its field count (``_replace`` relies on it).
        return int(self.p.shape[0])


@runtime_checkable
class RewardModel(Protocol):
    """A learned per-step reward r(s, a)."""

    def fit(self, pairs: PairBatch, *, epochs: int, stop_at_acc: Optional[float] = None,
            on_epoch: Optional[Callable[[dict[str, float]], None]] = None) -> dict[str, float]:
        """Train on labelled pairs (stopping early at ``stop_at_acc`` train accuracy; ``on_epoch`` gets each epoch's
        metrics, for a progress bar); returns metrics."""
        ...

    def predict(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        """Mean reward for ``(..., obs_dim)``, ``(..., act_dim)`` inputs, shape ``(...)``."""
        ...

    def predict_std(self, obs: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) of the reward, each shape ``(...)``."""
        ...

    def segment_return_samples(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        """Per-member (or per-sample) segment returns ``(K, n)`` for ``(n, L, *)`` inputs.

        Query selection uses these to measure disagreement/entropy of P(first preferred).
        """
        ...

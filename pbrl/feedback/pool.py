"""Free labels on a pool of this task's segments, stored once before the first reward fit, for any teacher.

``feedback=transfer`` labels its target pool by optimal transport (PEARL). The same pool labelled by the
scripted teacher is the reference a transfer result must be compared with: identical segments and pairs,
only the labels' source differs (``feedback=scripted feedback.target_pool=STORE feedback.pool_pairs=N``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Segment
from pbrl.feedback.labeller import Labeller, OfferedPairs, check_labeller
from pbrl.feedback.query import random_pairs
from pbrl.types import Labels, PbrlError


def load_target_pool(path: str | Path, *, max_segments: int, rng: np.random.Generator) -> list[Segment]:
    """Up to ``max_segments`` random segments of a target-task store (labels are not read)."""
    with PreferenceStore(path, create=False) as store:
        ids = store.segment_ids()
        if len(ids) < 2:
            raise PbrlError(f"feedback.target_pool: {path} holds {len(ids)} segment(s); expected >= 2")
        keep = sorted(rng.choice(len(ids), min(len(ids), int(max_segments)), replace=False))
        return store.get_segments([ids[i] for i in keep])


def draw_pool_pairs(pool: Sequence[Segment], n: int, rng: np.random.Generator,
                    segment_length: int) -> tuple[list[Segment], list[Segment]]:
    """``n`` random pairs of pool segments; they must have the run's length to share its training batches."""
    bad = {len(s) for s in pool} - {segment_length}
    if bad:
        raise PbrlError(f"feedback.target_pool: segments of {min(bad)} steps; this run uses segment_length="
                        f"{segment_length} (collect the pool with the same segment_length)")
    a, b = random_pairs(len(pool), n, rng)
    return [pool[i] for i in a], [pool[i] for i in b]


class PoolPairs(Labeller):
    """A labeller that also answers ``pool_pairs`` random pairs of ``pool`` once (see the module docstring).

    Queries go to the wrapped labeller unchanged; :meth:`initial_pairs` is what
    :meth:`~pbrl.agents.preference.FeedbackLoop.seed_initial_pairs` stores outside the label budget.
    """

    def __init__(self, labeller: Labeller, pool: Sequence[Segment], pool_pairs: int) -> None:
        if pool_pairs < 1 or len(pool) < 2:
            raise PbrlError(f"feedback.pool_pairs: expected > 0 with a feedback.target_pool of >= 2 segments; "
                            f"got {pool_pairs} pairs, {len(pool)} segments")
        self.inner, self.pool, self.pool_pairs = check_labeller(labeller), list(pool), int(pool_pairs)

    def label(self, first: Sequence[Segment], second: Sequence[Segment]) -> Labels:
        return self.inner.label(first, second)

    def initial_pairs(self, rng: np.random.Generator, segment_length: int) -> OfferedPairs:
        first, second = draw_pool_pairs(self.pool, self.pool_pairs, rng, segment_length)
        return first, second, self.inner.label(first, second)

    # The other hooks are the wrapped labeller's (a teacher's margin, a labeller's own state).
    @property
    def stores_labels(self) -> bool:  # type: ignore[override]
        return self.inner.stores_labels

    def set_margin(self, mean_segment_return: float) -> None:
        self.inner.set_margin(mean_segment_return)

    def set_pool(self, candidates: Sequence[Segment]) -> None:
        self.inner.set_pool(candidates)

    def unfinished_pairs(self) -> Optional[tuple[list[Segment], list[Segment]]]:
        return self.inner.unfinished_pairs()

    def session_metrics(self) -> dict[str, Any]:
        return self.inner.session_metrics()

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)

    def __getattr__(self, name: str):  # everything else (e.g. a teacher's settings) is the wrapped labeller's
        if name == "inner":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

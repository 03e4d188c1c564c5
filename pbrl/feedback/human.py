"""A person as the labeller of the online loop (``pbrl train feedback=human``).

Each round's query segments are stored (with what re-renders them), queued in the run's preference store
at once, and their clips are rendered and encoded in the background (the first pair shows as soon as its
two clips are ready); :meth:`HumanLabeller.label` blocks (with a progress bar) until every query of the
round has an answer. The viewer commits each answer to the store itself, so nothing depends on this
process staying alive: a restarted run (or viewer) finds every label where it was left, and a restarted
run waits for its unfinished round instead of queuing another one.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Optional, Protocol, Sequence

import numpy as np

from pbrl.data.label_queue import LabelQueue, Round
from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Segment
from pbrl.envs.render import can_render, label_size
from pbrl.envs.tasks import TaskSpec
from pbrl.feedback.labeller import Labeller
from pbrl.types import Labels, PbrlError


class LabelViewer(Protocol):
    """Where a person answers the queued pairs: the labelling web app as the labeller drives it (run/ composes
    :class:`pbrl.viewer.hosted.HostedViewer` from the ``feedback`` config)."""

    def prefetch(self, store: PreferenceStore, segment_ids: Sequence[int], size: int) -> None:
        """Start rendering and encoding these segments' clips (``size`` px) in the background."""

    def show(self, store: PreferenceStore, size: int, description: str) -> str:
        """Serve ``store`` (at the first call, where this process serves it); returns where a person opens it."""

    def close(self) -> None:
        """Stop serving and encoding."""


@dataclasses.dataclass
class HumanLabeller(Labeller):
    """Queues pairs for the viewer and waits for a person's answers.

    Attributes:
        store_path: the run's preference store (answers are written there by the viewer).
        task: the task (camera and description for rendering).
        rng: draws the left/right placement of each pair.
        viewer: shows the queued pairs to a person (and makes their clips).
        poll_s: seconds between checks of the store while waiting.
        timeout_s: give up waiting after this long (None: wait for ever); the queries stay queued.
        encode: start encoding each clip when queuing (in a background process), so pairs show without waiting.
        clip_size: longer side (px) of re-rendered clips; None: the task's ``camera.label_size``, else 256.
    """

    store_path: Path
    task: TaskSpec
    rng: np.random.Generator
    viewer: LabelViewer
    poll_s: float = 0.5
    timeout_s: Optional[float] = None
    encode: bool = True
    clip_size: Optional[int] = None

    #: The viewer stores each answer as it is given; FeedbackLoop must not store them again.
    stores_labels = True

    def __post_init__(self) -> None:
        self.size = label_size(self.task, self.clip_size)
        self._store: Optional[PreferenceStore] = None
        self._resumed: Optional[Round] = None

    def _open(self) -> tuple[PreferenceStore, LabelQueue]:
        if self._store is None:
            self._store = PreferenceStore(self.store_path)
            if self._store.get_meta("clip_size") != str(self.size):  # a separate `pbrl label` renders the same
                self._store.set_meta("clip_size", str(self.size))
        return self._store, LabelQueue(self._store)

    def _prefetch(self, store: PreferenceStore, queue: LabelQueue) -> None:
        if self.encode:
            self.viewer.prefetch(store, queue.pending_segment_ids(), self.size)

    def unfinished_pairs(self) -> Optional[tuple[list[Segment], list[Segment]]]:
        """The round a previous run queued and did not see answered, as stored (None if there is none).

        The next :meth:`label` call waits for that round (answers given meanwhile count) instead of
        queuing a new one, so a restarted run never shows the person two rounds at once.
        """
        store, queue = self._open()
        rnd = queue.unfinished_round("training")
        if rnd is None:
            return None
        queries = [queue.get(q) for q in rnd.query_ids]
        segs = store.get_segments([q.first_id for q in queries] + [q.second_id for q in queries])
        self._resumed = rnd
        return segs[: len(queries)], segs[len(queries):]

    def queue_round(self, first: Sequence[Segment], second: Sequence[Segment]) -> list[int]:
        """Store and queue one round's pairs (clips are made in the background); returns the query ids."""
        store, queue = self._open()
        unique: dict[int, Segment] = {}
        for seg in (*first, *second):  # a candidate can appear in several pairs: store it once
            unique.setdefault(id(seg), seg)
        for seg in unique.values():
            if not can_render(seg, self.task):
                raise PbrlError(f"task {self.task.name}: query segments have no frames and cannot be re-rendered "
                                "(record simulator states: make_env(record_states=True))")
        ids = dict(zip(unique, store.add_segments(list(unique.values()))))
        qids = queue.queue_pairs([ids[id(s)] for s in first], [ids[id(s)] for s in second], rng=self.rng,
                                 origin="training")
        self._prefetch(store, queue)
        return qids

    def _resumed_ids(self, first: Sequence[Segment]) -> Optional[list[int]]:
        rnd, self._resumed = self._resumed, None
        if rnd is None:
            return None
        store, queue = self._open()
        if [s.segment_id for s in first] != [queue.get(q).first_id for q in rnd.query_ids]:
            return None  # not the stored round's pairs: queue these as a round of their own
        self._prefetch(store, queue)
        return rnd.query_ids

    def label(self, first: Sequence[Segment], second: Sequence[Segment]) -> Labels:
        """Queue the pairs (or take up the unfinished round they came from), show where, block until answered."""
        qids = self._resumed_ids(first)
        resumed = qids is not None
        if qids is None:
            qids = self.queue_round(first, second)
        self._announce(len(qids), resumed=resumed)
        answers = self.wait(qids)
        p = np.array([answers[q][0] if answers[q][0] is not None else 0.5 for q in qids], np.float32)
        return Labels(p=p, skipped=np.array([answers[q][1] for q in qids], bool))

    def _announce(self, n: int, resumed: bool = False) -> None:
        where = self.viewer.show(self._open()[0], self.size, self.task.description)
        note = " (the round queued before the restart; answers given meanwhile count)" if resumed else ""
        print(f"\n{n} pair(s) queued for labelling{note}: {where}", file=sys.stderr, flush=True)

    def wait(self, query_ids: Sequence[int]) -> dict[int, tuple[Optional[float], bool]]:
        """Poll the store until every query has an answer (first answer per query)."""
        from tqdm import tqdm

        _, queue = self._open()
        start = time.monotonic()
        with tqdm(total=len(query_ids), desc="human labels", unit="pair", file=sys.stderr) as bar:
            while True:
                answers = queue.answers_for(query_ids)
                bar.n = len(answers)
                bar.refresh()
                if len(answers) == len(query_ids):
                    return answers
                if self.timeout_s is not None and time.monotonic() - start > self.timeout_s:
                    raise PbrlError(f"feedback.timeout_s: {len(query_ids) - len(answers)} pair(s) still unlabelled "
                                    f"after {self.timeout_s:.0f} s; they stay queued in {self.store_path}")
                time.sleep(self.poll_s)

    def close(self) -> None:
        self.viewer.close()
        if self._store is not None:
            self._store.close()
            self._store = None

"""A person as the labeller of the online loop (``pbrl train feedback=human``).

Each round's queries are rendered, stored with their frames, queued in the run's preference store and
answered in the viewer; :meth:`HumanLabeller.label` blocks (with a progress bar) until every query
of the round has an answer. The viewer commits each answer to the store itself, so nothing depends on
this process staying alive: a restarted run (or viewer) finds every label where it was left.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Segment
from pbrl.envs.tasks import TaskSpec
from pbrl.types import Labels, PbrlError
from pbrl.viewer.clips import ClipCache, segment_frames
from pbrl.viewer.queue import LabelQueue, check_annotator


@dataclasses.dataclass
class HumanLabeller:
    """Queues pairs for the viewer and waits for a person's answers.

    Attributes:
        store_path: the run's preference store (answers are written there by the viewer).
        task: the task (camera and description for rendering).
        rng: draws the left/right placement of each pair.
        annotator: default name shown in the viewer.
        serve: start the viewer inside this process (else run ``pbrl label STORE`` yourself).
        host, port, token: where the viewer listens (see ``pbrl label``).
        poll_s: seconds between checks of the store while waiting.
        timeout_s: give up waiting after this long (None: wait for ever); the queries stay queued.
        encode: pre-encode each clip when queuing, so the first pair shows without waiting.
    """

    store_path: Path
    task: TaskSpec
    rng: np.random.Generator
    annotator: str = "anonymous"
    serve: bool = True
    host: str = "127.0.0.1"
    port: int = 8765
    token: Optional[str] = None
    poll_s: float = 0.5
    timeout_s: Optional[float] = None
    encode: bool = True

    #: The viewer stores each answer as it is given; PreferenceLearner must not store them again.
    stores_labels = True

    def __post_init__(self) -> None:
        from pbrl.viewer.server import check_bind

        check_annotator(self.annotator)
        check_bind(self.host, self.token)
        self._store: Optional[PreferenceStore] = None
        self._server = None

    def _open(self) -> tuple[PreferenceStore, LabelQueue]:
        if self._store is None:
            self._store = PreferenceStore(self.store_path)
        return self._store, LabelQueue(self._store)

    def queue_round(self, first: Sequence[Segment], second: Sequence[Segment]) -> list[int]:
        """Render, store and queue one round's pairs; returns the query ids."""
        store, queue = self._open()
        unique: dict[int, Segment] = {}
        for seg in (*first, *second):  # a candidate can appear in several pairs: render and store it once
            unique.setdefault(id(seg), seg)
        rendered = [dataclasses.replace(s, frames=segment_frames(s, self.task)) for s in unique.values()]
        ids = dict(zip(unique, store.add_segments(rendered)))
        if self.encode:
            clips = ClipCache(store)
            for sid in ids.values():
                clips.get(sid, "webm")
        rnd = int(store._read("SELECT COALESCE(MAX(round) + 1, 0) FROM queries")[0][0])
        return queue.enqueue([ids[id(s)] for s in first], [ids[id(s)] for s in second], rng=self.rng, round=rnd)

    def label(self, first: Sequence[Segment], second: Sequence[Segment]) -> Labels:
        """Queue the pairs, show where to label them, and block until all are answered."""
        qids = self.queue_round(first, second)
        self._announce(len(qids))
        answers = self.wait(qids)
        p = np.array([answers[q][0] if answers[q][0] is not None else 0.5 for q in qids], np.float32)
        return Labels(p=p, skipped=np.array([answers[q][1] for q in qids], bool))

    def _announce(self, n: int) -> None:
        from pbrl.viewer.server import viewer_url

        url = viewer_url(self.host, self.port, self.token, self.annotator)
        if self.serve and self._server is None:
            from pbrl.viewer.server import BackgroundServer, ViewerConfig, create_app

            self._server_store = PreferenceStore(self.store_path)
            app = create_app(self._server_store, ViewerConfig(annotator=self.annotator, token=self.token,
                                                            description=self.task.description))
            self._server = BackgroundServer(app, self.host, self.port).start()
        how = "" if self.serve else f" (start it with: pbrl label {self.store_path} --port {self.port})"
        print(f"\n{n} pair(s) queued for labelling: open {url}{how}", file=sys.stderr, flush=True)

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
        if self._server is not None:
            self._server.stop()
            self._server = None
            self._server_store.close()
        if self._store is not None:
            self._store.close()
            self._store = None

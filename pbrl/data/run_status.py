"""What a training run is doing, kept in its store so the labelling page can say it.

A person who opens the viewer during the seed phase otherwise sees an empty queue and no reason for it.
The run writes a small record (``meta.run_status``, JSON) when its phase changes and after each chunk of
steps; the viewer reads it, in whichever process it runs.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Optional

from pbrl.data.store import PreferenceStore

PHASES = {
    "seed": "collecting random-action seed steps",
    "unsupervised": "unsupervised pre-training (state entropy)",
    "training": "training the policy",
    "selecting": "choosing the next pairs",
    "preparing": "preparing clips",
    "labelling": "waiting for labels",
    "fitting": "fitting the reward model",
    "finished": "finished",
}


@dataclasses.dataclass(frozen=True)
class RunStatus:
    """One snapshot of a run.

    Attributes:
        phase: a key of :data:`PHASES`.
        step: environment steps taken.
        total: environment steps the run will take.
        next_pairs: step at which the next pairs are chosen (None: no more feedback).
        updated_at: unix time of the snapshot.
    """

    phase: str
    step: int
    total: int
    next_pairs: Optional[int] = None
    updated_at: float = 0.0

    @property
    def text(self) -> str:
        """One line for a person, e.g. ``collecting random-action seed steps: step 300 of 2000; next pairs at 1000``."""
        what = f"{PHASES.get(self.phase, self.phase)}: step {self.step} of {self.total}"
        if self.next_pairs is not None and self.phase in ("seed", "unsupervised", "training"):
            what += f"; next pairs at step {self.next_pairs}"
        return what


def write_run_status(store: PreferenceStore, phase: str, *, step: int, total: int,
                     next_pairs: Optional[int] = None) -> RunStatus:
    """Record the run's phase (one small durable write)."""
    status = RunStatus(phase, int(step), int(total), None if next_pairs is None else int(next_pairs), time.time())
    store.set_meta("run_status", json.dumps(dataclasses.asdict(status)))
    return status


def read_run_status(store: PreferenceStore) -> Optional[RunStatus]:
    """The last recorded status, or None (no run has written one, or it is unreadable)."""
    raw = store.get_meta("run_status")
    try:
        return RunStatus(**json.loads(raw)) if raw else None
    except (TypeError, ValueError):
        return None

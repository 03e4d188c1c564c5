"""Trajectories, segments, the preference store (with its label queue) and format conversions."""

from pbrl.data.io import (
    export_cpl_npz,
    export_imitation_npz,
    from_imitation,
    import_cpl_npz,
    import_imitation_npz,
    to_imitation,
)
from pbrl.data.label_queue import LabelQueue
from pbrl.data.store import LabelRow, PreferenceStore
from pbrl.data.trajectory import Segment, Trajectory, stack_pairs

__all__ = [
    "LabelQueue",
    "LabelRow",
    "PreferenceStore",
    "Segment",
    "Trajectory",
    "export_cpl_npz",
    "export_imitation_npz",
    "from_imitation",
    "import_cpl_npz",
    "import_imitation_npz",
    "stack_pairs",
    "to_imitation",
]

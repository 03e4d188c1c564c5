"""``pbrl data collect npz_in=FILE``: a store from a preference file users already have (labels from the file).

Formats and their label conventions are in :mod:`pbrl.data.io` (CPL / B-Pref pairs, CPL's released scored-segment
datasets, imitation's preferences); this module only checks the file against the task's spaces and records where
the store came from (meta ``import``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pbrl.data.io import import_npz
from pbrl.data.store import PreferenceStore
from pbrl.envs.make import make_env
from pbrl.envs.tasks import TaskSpec


def import_to_store(task: TaskSpec, node: Any, *, seed: int, path: Path) -> dict[str, Any]:
    """Import ``node.npz_in`` (``npz_format``, ``label_key``, ``pairing``, ``group_size``) into the new store ``path``."""
    env = make_env(task, seed=seed)
    try:
        dims = (int(env.observation_space.shape[0]), int(env.action_space.shape[0]))
    finally:
        env.close()
    with PreferenceStore(path) as store:
        fmt, pairs = import_npz(str(node.npz_in), store, task=task.name, fmt=str(node.get("npz_format", "auto")),
                                dims=dims, label_key=str(node.get("label_key", "rl_sum")),
                                pairing=str(node.get("pairing", "sparse")), group_size=int(node.get("group_size", 8)),
                                seed=seed)
        store.set_meta("task", task.name)
        store.set_meta("import", json.dumps({"file": str(node.npz_in), "format": fmt}))
        segments = store.num_segments()
    return {"segments": segments, "pairs": pairs, "answered": pairs, "format": fmt}

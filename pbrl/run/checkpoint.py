"""Atomic training checkpoints: a killed run resumes from the last complete one.

A checkpoint is a directory (agent, optional replay buffer, reward model, recent episodes, loop state)
written to ``checkpoint.tmp`` and swapped in only once every file is on disk.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any, Optional

import torch

from pbrl.utils import atomic_write_json, find_directory, swap_in_directory

CKPT = "checkpoint"


def save_checkpoint(run_dir: Path, *, model: Any, reward_model: Any, episodes: list, state: dict[str, Any],
                    with_buffer: bool) -> Path:
    """Write every piece of resumable state, then swap it in atomically."""
    final = run_dir / CKPT
    tmp = run_dir / (CKPT + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model.save(tmp / "agent.zip")
    if with_buffer:
        model.save_replay_buffer(tmp / "replay_buffer.pkl")
    torch.save(reward_model.state_dict(), tmp / "reward_model.pt")
    with open(tmp / "episodes.pkl", "wb") as fh:
        pickle.dump(list(episodes), fh, protocol=pickle.HIGHEST_PROTOCOL)
    atomic_write_json(tmp / "state.json", state)  # written last: its presence marks a complete checkpoint
    swap_in_directory(tmp, final)
    return final


def find_checkpoint(run_dir: Path) -> Optional[Path]:
    """The last complete checkpoint directory of a run, or None."""
    found = find_directory(run_dir / CKPT)
    return found if found is not None and (found / "state.json").is_file() else None


def read_state(ckpt: Path) -> dict[str, Any]:
    return json.loads((ckpt / "state.json").read_text())


def read_episodes(ckpt: Path) -> list:
    with open(ckpt / "episodes.pkl", "rb") as fh:
        return pickle.load(fh)

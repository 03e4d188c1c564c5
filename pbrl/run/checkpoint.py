"""Atomic training checkpoints: a killed run resumes from the last complete one.

A checkpoint is a directory written to ``checkpoint.tmp`` and swapped in only once every file is on disk:
``components.pt`` holds each component's ``state_dict()`` (learner, trainer, env wrapper, session, random
generators), an algorithm may add its own files (SB3's ``agent.zip`` and replay buffer), and ``state.json``,
written last, marks the checkpoint complete and says which format it has.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from pbrl.types import PbrlError
from pbrl.utils import atomic_write_json, find_directory, swap_in_directory

CKPT = "checkpoint"
FORMAT = 2  # 2: components.pt with state_dicts (1: reward_model.pt + episodes.pkl + loop state in state.json)


def save_checkpoint(run_dir: Path, *, components: dict[str, Any], info: dict[str, Any],
                    save_files: Optional[Callable[[Path], None]] = None) -> Path:
    """Write ``components`` (state dicts), the files ``save_files(dir)`` adds, then ``info``; swap in atomically."""
    final, tmp = run_dir / CKPT, run_dir / (CKPT + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    if save_files is not None:
        save_files(tmp)
    torch.save(components, tmp / "components.pt")
    atomic_write_json(tmp / "state.json", {"format": FORMAT, **info})  # last: marks a complete checkpoint
    swap_in_directory(tmp, final)
    return final


def find_checkpoint(run_dir: Path) -> Optional[Path]:
    """The last complete checkpoint directory of a run, or None."""
    found = find_directory(run_dir / CKPT)
    return found if found is not None and (found / "state.json").is_file() else None


def read_info(ckpt: Path) -> dict[str, Any]:
    """``state.json`` of a checkpoint this pbrl can resume."""
    info = json.loads((ckpt / "state.json").read_text())
    if info.get("format") != FORMAT:
        raise PbrlError(f"{ckpt}: written by another pbrl version (checkpoint format {info.get('format', 1)}, "
                        f"expected {FORMAT}); this run cannot be resumed, start it again with a new out=")
    return info


def read_components(ckpt: Path) -> dict[str, Any]:
    """The components' state dicts saved by :func:`save_checkpoint`."""
    return torch.load(ckpt / "components.pt", weights_only=False, map_location="cpu")  # CPU first: optimiser state follows its parameters

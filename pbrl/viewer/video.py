"""Encoding one clip: a segment's frames (stored, or re-rendered for labelling) as WebM/VP9 or mp4/H.264.

Shared by the clip cache (:mod:`pbrl.viewer.clips`, which names and serves the files) and the encoder process
(:mod:`pbrl.viewer.encoder`, which makes them). A clip is written to a temp file named after the writing
process and thread (:data:`TEMP_NAME`), then renamed into place, so a reader never sees a torn clip.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Optional

import numpy as np

from pbrl.data.store import PreferenceStore
from pbrl.envs.render import RenderEnvs, segment_frames
from pbrl.envs.tasks import TaskSpec
from pbrl.types import PbrlError

FORMATS = {"webm": ("libvpx-vp9", ["-deadline", "realtime", "-cpu-used", "8", "-b:v", "0", "-crf", "34"]),
           "mp4": ("libx264", ["-preset", "veryfast", "-pix_fmt", "yuv420p", "-movflags", "+faststart"])}
#: A temp file of :func:`temp_path`: ``.<stem>.<pid>.<thread>.tmp.<fmt>`` (group 1: the writer's pid).
TEMP_NAME = re.compile(r"\..+\.(\d+)\.\d+\.tmp\.(webm|mp4)")


def temp_path(path: Path) -> Path:
    """Where this process and thread write ``path`` before renaming it into place."""
    return path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp{path.suffix}")


def encode_clip(frames: np.ndarray, path: Path, fmt: str, *, fps: int = 20) -> Path:
    """Encode ``(T, H, W, 3)`` uint8 frames; written to a temp file and renamed (never a torn clip)."""
    import imageio.v2 as imageio

    codec, params = FORMATS[fmt]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        imageio.mimsave(tmp, list(frames), format="FFMPEG", fps=fps, codec=codec, output_params=params,
                        macro_block_size=2, ffmpeg_log_level="error")
        try:
            os.replace(tmp, path)  # also replaces a symlink or stray file planted at ``path``, never its target
        except IsADirectoryError:
            raise PbrlError(f"clip cache: {path} is a directory; expected a clip file (remove it)") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def encode_segment(store: PreferenceStore, segment_id: int, fmt: str, path: Path, *, size: int, fps: int,
                   tasks: dict[str, Optional[TaskSpec]], envs: Optional[RenderEnvs] = None) -> Path:
    """Load (and if needed re-render, at ``size``) one stored segment and encode its clip to ``path``."""
    from pbrl.envs.tasks import list_tasks, load_task

    seg = store.get_segments([segment_id], with_frames=True)[0]
    if seg.task not in tasks:
        tasks[seg.task] = load_task(seg.task) if seg.task in list_tasks() else None
    return encode_clip(segment_frames(seg, tasks[seg.task], size, envs), path, fmt, fps=fps)

"""Clips for the viewer: frames of a segment (stored, or re-rendered from its recorded simulator states or
its observations), encoded once as WebM/VP9 (mp4/H.264 as fallback) and cached on disk next to the store.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Segment
from pbrl.envs.simstate import obs_renderable
from pbrl.envs.tasks import TaskSpec
from pbrl.types import PbrlError

FORMATS = {"webm": ("libvpx-vp9", ["-deadline", "realtime", "-cpu-used", "8", "-b:v", "0", "-crf", "34"]),
           "mp4": ("libx264", ["-preset", "veryfast", "-pix_fmt", "yuv420p", "-movflags", "+faststart"])}
MEDIA_TYPES = {"webm": "video/webm", "mp4": "video/mp4"}


def clip_dir(store_path: Path) -> Path:
    """Where a store's clips are cached: ``<store>.videos/`` beside the store file."""
    return Path(store_path).with_name(Path(store_path).name + ".videos")


def encode_clip(frames: np.ndarray, path: Path, fmt: str, *, fps: int = 20) -> Path:
    """Encode ``(T, H, W, 3)`` uint8 frames; written to a temp file and renamed (never a torn clip)."""
    import imageio.v2 as imageio

    codec, params = FORMATS[fmt]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.{fmt}")
    try:
        imageio.mimsave(tmp, list(frames), format="FFMPEG", fps=fps, codec=codec, output_params=params,
                        macro_block_size=2, ffmpeg_log_level="error")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _render_each(task: TaskSpec, n: int, pose: Callable[[Any, int], None]) -> np.ndarray:
    """Frames ``(n, H, W, 3)``: for each step ``k``, ``pose(base_env, k)`` sets the simulator, then render."""
    from pbrl.envs.make import make_env

    env = make_env(task, seed=0, render=True)
    try:
        env.reset(seed=0)
        frames = []
        for k in range(n):
            pose(env.unwrapped, k)
            frames.append(env.render())
        return np.asarray(frames, dtype=np.uint8)
    finally:
        env.close()


def render_from_obs(task: TaskSpec, obs: np.ndarray) -> np.ndarray:
    """Frames ``(L, H, W, 3)`` by setting the MuJoCo state from each observation and rendering.

    The root x position is not observed; it is integrated from the root x velocity (``qvel[0] * dt``)
    so the ground scrolls as in the original run.
    """
    if not obs_renderable(task):
        raise PbrlError(f"task {task.name}: segments without frames or simulator states cannot be re-rendered "
                        f"(suite {task.suite}); collect them with states (make_env(record_states=True))")
    import mujoco

    x = [0.0]

    def pose(base: Any, k: int) -> None:
        nq, nv = base.model.nq, base.model.nv
        if obs.shape[1] < nq - 1 + nv:
            raise PbrlError(f"task {task.name}: observations have {obs.shape[1]} values; expected >= {nq - 1 + nv} "
                            "(qpos[1:], qvel) to re-render")
        qvel = obs[k, nq - 1: nq - 1 + nv]
        base.data.qpos[:], base.data.qvel[:] = np.concatenate([[x[0]], obs[k, : nq - 1]]), qvel
        mujoco.mj_forward(base.model, base.data)
        x[0] += float(qvel[0]) * base.dt

    return _render_each(task, len(obs), pose)


def render_from_states(task: TaskSpec, states: np.ndarray, scene: np.ndarray) -> np.ndarray:
    """Frames ``(L, H, W, 3)`` from recorded simulator states (:mod:`pbrl.envs.simstate`): any MuJoCo task."""
    from pbrl.envs.simstate import restore

    def pose(base: Any, k: int) -> None:
        try:
            restore(base, states[k], scene)
        except ValueError as exc:
            raise PbrlError(f"task {task.name}: {exc}") from None

    return _render_each(task, len(states), pose)


def segment_frames(seg: Segment, task: Optional[TaskSpec]) -> np.ndarray:
    """Stored frames, else frames re-rendered from stored simulator states, else from the observations."""
    if seg.frames is not None:
        return seg.frames
    if task is None:
        raise PbrlError(f"segment {seg.segment_id}: has no frames and task {seg.task!r} is unknown")
    if seg.states is not None and seg.scene is not None:
        return render_from_states(task, seg.states, seg.scene)
    return render_from_obs(task, seg.obs)


class ClipCache:
    """Segment id + format -> encoded clip on disk, encoded at most once (per-clip locks)."""

    def __init__(self, store: PreferenceStore, directory: Optional[Path] = None, *, fps: int = 20) -> None:
        self.store = store
        self.dir = Path(directory) if directory else clip_dir(store.path)
        self.fps = fps
        self._locks: dict[tuple[int, str], threading.Lock] = {}
        self._guard = threading.Lock()
        self._tasks: dict[str, Optional[TaskSpec]] = {}

    def path(self, segment_id: int, fmt: str) -> Path:
        if fmt not in FORMATS:
            raise PbrlError(f"clip format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
        return self.dir / f"seg{int(segment_id):08d}.{fmt}"

    def _task(self, name: str) -> Optional[TaskSpec]:
        if name not in self._tasks:
            from pbrl.envs.tasks import list_tasks, load_task

            self._tasks[name] = load_task(name) if name in list_tasks() else None
        return self._tasks[name]

    def get(self, segment_id: int, fmt: str) -> Path:
        """The clip's path, encoding it first if it is not cached (KeyError: unknown segment)."""
        path = self.path(segment_id, fmt)
        if path.exists():
            return path
        with self._guard:
            lock = self._locks.setdefault((int(segment_id), fmt), threading.Lock())
        with lock:
            if not path.exists():
                try:
                    seg = self.store.get_segments([segment_id], with_frames=True)[0]
                except PbrlError:
                    raise KeyError(segment_id) from None
                encode_clip(segment_frames(seg, self._task(seg.task)), path, fmt, fps=self.fps)
        return path

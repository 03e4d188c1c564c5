"""Frames of a stored segment for a person to look at: its own frames, or re-rendered from its recorded
simulator states or its observations, at a size chosen for labelling (not the training camera's).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import numpy as np

from pbrl.data.trajectory import Segment
from pbrl.envs.simstate import obs_renderable
from pbrl.envs.tasks import TaskSpec
from pbrl.types import PbrlError

#: Longer side, in pixels, of clips re-rendered for labelling when neither the task nor the viewer sets one:
#: the training camera (often 128 px) is too coarse for a person on a 400 px video element.
LABEL_SIZE = 256
_MAX_SIZE = 640  # MuJoCo's default offscreen buffer


def label_size(task: Optional[TaskSpec], override: Optional[int] = None) -> int:
    """The labelling render size: ``override`` (viewer / feedback config), else the task's ``camera.label_size``."""
    size = override if override is not None else (task.camera.label_size if task is not None else None)
    size = LABEL_SIZE if size is None else size
    if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= _MAX_SIZE:
        raise PbrlError(f"clip size: expected an integer number of pixels in [16, {_MAX_SIZE}], got {size!r}")
    return size


def _sized(task: TaskSpec, size: Optional[int]) -> TaskSpec:
    """The task with its camera scaled so its longer side is ``size`` (aspect kept)."""
    if size is None:
        return task
    cam = task.camera
    scale = size / max(cam.width, cam.height)
    width, height = (max(16, round(side * scale)) for side in (cam.width, cam.height))
    camera = dataclasses.replace(cam, width=width, height=height)
    return dataclasses.replace(task, camera=camera)


class RenderEnvs:
    """Rendering environments kept open per (task, size): a long-lived renderer (the clip encoder process)
    pays for building the model and its GL context once, not once per segment."""

    def __init__(self) -> None:
        self._envs: dict[tuple[str, Optional[int]], Any] = {}

    def get(self, task: TaskSpec, size: Optional[int]) -> Any:
        from pbrl.envs.make import make_env

        key = (task.name, size)
        if key not in self._envs:
            self._envs[key] = make_env(_sized(task, size), seed=0, render=True)
        env = self._envs[key]
        env.reset(seed=0)
        return env

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


def _render_each(task: TaskSpec, n: int, pose: Callable[[Any, int], None], size: Optional[int],
                 envs: Optional[RenderEnvs]) -> np.ndarray:
    """Frames ``(n, H, W, 3)``: for each step ``k``, ``pose(base_env, k)`` sets the simulator, then render."""
    own = envs is None
    envs = envs or RenderEnvs()
    try:
        env = envs.get(task, size)
        frames = []
        for k in range(n):
            pose(env.unwrapped, k)
            frames.append(env.render())
        return np.asarray(frames, dtype=np.uint8)
    finally:
        if own:
            envs.close()


def render_from_obs(task: TaskSpec, obs: np.ndarray, size: Optional[int] = None,
                    envs: Optional[RenderEnvs] = None) -> np.ndarray:
    """Frames ``(L, H, W, 3)`` by setting the MuJoCo state from each observation and rendering.

    The root x position is not observed; it is integrated from the root x velocity (``qvel[0] * dt``)
    so the ground scrolls as in the original run. ``size`` (longer side, px) overrides the task camera's.
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

    return _render_each(task, len(obs), pose, size, envs)


def render_from_states(task: TaskSpec, states: np.ndarray, scene: np.ndarray, size: Optional[int] = None,
                       envs: Optional[RenderEnvs] = None) -> np.ndarray:
    """Frames ``(L, H, W, 3)`` from recorded simulator states (:mod:`pbrl.envs.simstate`): any MuJoCo task."""
    from pbrl.envs.simstate import restore

    def pose(base: Any, k: int) -> None:
        try:
            restore(base, states[k], scene)
        except ValueError as exc:
            raise PbrlError(f"task {task.name}: {exc}") from None

    return _render_each(task, len(states), pose, size, envs)


def can_render(seg: Segment, task: Optional[TaskSpec]) -> bool:
    """Whether :func:`segment_frames` can produce frames for ``seg`` (checked before queuing it for a person)."""
    if seg.frames is not None:
        return True
    return task is not None and ((seg.states is not None and seg.scene is not None) or obs_renderable(task))


def segment_frames(seg: Segment, task: Optional[TaskSpec], size: Optional[int] = None,
                   envs: Optional[RenderEnvs] = None) -> np.ndarray:
    """Stored frames, else frames re-rendered (at ``size``) from stored simulator states, else from the observations."""
    if seg.frames is not None:
        return seg.frames
    if task is None:
        raise PbrlError(f"segment {seg.segment_id}: has no frames and task {seg.task!r} is unknown")
    if seg.states is not None and seg.scene is not None:
        return render_from_states(task, seg.states, seg.scene, size, envs)
    return render_from_obs(task, seg.obs, size, envs)

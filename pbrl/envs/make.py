"""Environment factory: gymnasium MuJoCo v5 and Meta-World v3 behind one call, headless rendering included."""

from __future__ import annotations

import contextlib
import ctypes.util
import logging
import os
import sys
from typing import TYPE_CHECKING, Any, Optional

import gymnasium as gym
import numpy as np

from pbrl.envs.metaworld_tasks import memoised_mt1
from pbrl.envs.simstate import physics_state, scene_snapshot
from pbrl.envs.tasks import TaskSpec
from pbrl.types import PbrlError

if TYPE_CHECKING:
    from pbrl.envs.randomize import RandomisationSpec

METAWORLD_MAX_STEPS = 500

log = logging.getLogger(__name__)


def configure_headless_gl() -> str:
    """Pick a headless OpenGL backend for MuJoCo before it is imported, unless the user chose one.

    EGL (Mesa's software or a GPU driver) first, OSMesa as fallback; both come from the set-up command.
    MuJoCo reads ``MUJOCO_GL`` once, when it is imported: :func:`make_env` calls this first, so nothing of
    pbrl's has to be imported early for rendering to work (``import pbrl`` sets nothing).
    """
    if "MUJOCO_GL" not in os.environ:
        if "mujoco" in sys.modules:
            log.warning("MuJoCo was imported before pbrl chose a headless OpenGL backend; rendering may need a "
                        "display. Set MUJOCO_GL=egl (or osmesa) before importing mujoco.")
        if ctypes.util.find_library("EGL"):
            os.environ["MUJOCO_GL"] = "egl"
        elif ctypes.util.find_library("OSMesa"):
            os.environ["MUJOCO_GL"] = "osmesa"
    backend = os.environ.get("MUJOCO_GL", "")
    if backend in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", backend)
    return backend


class TaskInfoWrapper(gym.Wrapper):
    """Adds the task's named reward terms and success flag to ``info`` and rejects NaN/inf.

    ``info["reward_terms"]`` is a float32 vector in the task's ``reward_terms`` order and
    ``info["is_success"]`` (the key SB3 reads) is set when the task has a success signal. With
    ``record_states``, ``info["sim_state"]`` is the physics state the action was taken in and
    ``info["sim_scene"]`` the episode's scene (:mod:`pbrl.envs.simstate`), for re-rendering later.
    """

    def __init__(self, env: gym.Env, task: TaskSpec, *, record_states: bool = False) -> None:
        super().__init__(env)
        self.task = task
        self.record_states = record_states
        self._checked = False
        self._t = 0
        self._scene: Optional[np.ndarray] = None

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self._t = 0
        self._check_finite(obs, 0.0)
        if self.record_states:
            self._scene = scene_snapshot(self.env.unwrapped)
        return obs, info

    def step(self, action):
        state = physics_state(self.env.unwrapped) if self.record_states else None
        obs, reward, terminated, truncated, info = self.env.step(action)
        if state is not None:
            info["sim_state"], info["sim_scene"] = state, self._scene
        self._t += 1
        self._check_finite(obs, reward)
        if not self._checked:
            missing = [t for t in self.task.reward_terms if t not in info]
            if missing or (self.task.success_key and self.task.success_key not in info):
                raise PbrlError(
                    f"task {self.task.name}: reward_terms {missing or [self.task.success_key]} not in the env's info; "
                    f"available keys: {sorted(info)}"
                )
            self._checked = True
        info["reward_terms"] = np.array([info[t] for t in self.task.reward_terms], dtype=np.float32)
        if self.task.success_key:
            info["is_success"] = bool(info[self.task.success_key])
        return obs, reward, terminated, truncated, info

    def render(self):
        frame = self.env.render()
        return frame[::-1].copy() if frame is not None and self.task.camera.flip else frame

    def _check_finite(self, obs: np.ndarray, reward: float) -> None:
        if not (np.all(np.isfinite(obs)) and np.isfinite(reward)):
            raise PbrlError(
                f"task {self.task.name}: NaN/inf in the {'observation' if np.isfinite(reward) else 'reward'} "
                f"at step {self._t}; the simulation diverged (check actions and env_kwargs)"
            )


def make_env(
    task: TaskSpec,
    *,
    seed: Optional[int] = None,
    render: bool = False,
    episode_length: Optional[int] = None,
    randomisation: Optional[RandomisationSpec] = None,
    record_states: bool = False,
) -> gym.Env:
    """Create the task's environment, wrapped with :class:`TaskInfoWrapper` and a TimeLimit.

    With ``randomisation`` (:mod:`pbrl.envs.randomize`) the dynamics/delay/noise wrappers go on top;
    ``record_states`` adds simulator snapshots to ``info`` (see :class:`TaskInfoWrapper`).
    """
    configure_headless_gl()
    horizon = int(episode_length or task.episode_length)
    kwargs: dict[str, Any] = dict(task.env_kwargs)
    if render:
        kwargs.update(render_mode="rgb_array", width=task.camera.width, height=task.camera.height)
        if task.camera.name:
            kwargs["camera_name"] = task.camera.name
    if task.suite == "metaworld":
        import metaworld  # noqa: F401  (registers the Meta-World/* ids)

        if horizon > METAWORLD_MAX_STEPS:
            raise PbrlError(
                f"task {task.name}: episode_length {horizon} exceeds Meta-World's limit of {METAWORLD_MAX_STEPS}"
            )
        kwargs["seed"] = seed
    try:
        with memoised_mt1() if task.suite == "metaworld" else contextlib.nullcontext():
            env = gym.make(task.env_id, max_episode_steps=horizon, disable_env_checker=True, **kwargs)
    except gym.error.Error as exc:
        raise PbrlError(f"task {task.name}: cannot make env {task.env_id!r} ({exc})") from None
    env = TaskInfoWrapper(env, task, record_states=record_states)
    env.action_space.seed(seed)
    if randomisation is not None:
        from pbrl.envs.randomize import apply_randomisation

        env = apply_randomisation(env, randomisation, seed=seed)
    return env

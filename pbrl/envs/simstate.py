"""Simulator snapshots, so that a segment can be re-rendered long after it was collected.

Rendering every step while training is slow on CPU (software GL: ~50-200 ms a frame), and only the few
segments that end up in a query are ever looked at. So pbrl records, per step, MuJoCo's full physics state
(``mjSTATE_FULLPHYSICS``: time, qpos, qvel, actuator state, mocap poses) and, per episode, the model fields
an environment moves at reset (Meta-World places objects and goals by editing ``body_pos``/``site_pos``),
and renders a queried segment from them on demand. Meta-World observations do not determine the simulator
state, so this is how Meta-World segments reach the labelling viewer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pbrl.envs.tasks import TaskSpec

#: Model fields that environments edit at reset (object placement, goal markers); saved once per episode.
SCENE_FIELDS: tuple[str, ...] = ("body_pos", "site_pos")


def obs_renderable(task: "TaskSpec") -> bool:
    """Gymnasium MuJoCo locomotion observations hold ``qpos[1:]`` and ``qvel``: enough to pose the robot
    without recorded states (Meta-World observations are not)."""
    return task.suite == "mujoco" and task.env_kwargs.get("exclude_current_positions_from_observation", True)


def _full_physics() -> Any:
    import mujoco

    return mujoco.mjtState.mjSTATE_FULLPHYSICS


def physics_state(base: Any) -> np.ndarray:
    """``base``'s full physics state as a float64 vector (``base`` is a gymnasium MujocoEnv)."""
    import mujoco

    spec = _full_physics()
    out = np.empty(mujoco.mj_stateSize(base.model, spec), np.float64)
    mujoco.mj_getState(base.model, base.data, out, spec)
    return out


def scene_snapshot(base: Any) -> np.ndarray:
    """The reset-time model edits (:data:`SCENE_FIELDS`) as one float64 vector (a new array every call)."""
    return np.concatenate([np.asarray(getattr(base.model, f), np.float64).ravel() for f in SCENE_FIELDS])


def restore(base: Any, state: np.ndarray, scene: np.ndarray) -> None:
    """Put ``base`` back into a recorded state (scene first, then physics) and recompute positions."""
    import mujoco

    model = base.model
    sizes = [getattr(model, f).size for f in SCENE_FIELDS]
    expected = mujoco.mj_stateSize(model, _full_physics())
    if scene.shape != (sum(sizes),) or state.shape != (expected,):
        raise ValueError(f"recorded simulator state does not fit this model: state {state.shape} (expected "
                         f"({expected},)), scene {scene.shape} (expected ({sum(sizes)},))")
    offset = 0
    for field, size in zip(SCENE_FIELDS, sizes):
        target = getattr(model, field)
        target[...] = scene[offset:offset + size].reshape(target.shape)
        offset += size
    mujoco.mj_setState(model, base.data, np.asarray(state, np.float64), _full_physics())
    mujoco.mj_forward(model, base.data)


def recorded_states(states: list, n_steps: int, info: dict) -> dict[str, np.ndarray]:
    """``states``/``scene`` keyword arguments of a finished episode's Trajectory (``info``: its last step's),
    or none when not every one of its ``n_steps`` steps was recorded."""
    if len(states) != n_steps or not states or "sim_scene" not in info:
        return {}
    return {"states": np.asarray(states, np.float64), "scene": info["sim_scene"]}

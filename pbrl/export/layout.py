"""Names and timing of a task's observation and action vectors, for ``policy.json``.

Gymnasium's MuJoCo locomotion observations are ``qpos`` (minus the excluded root position) then ``qvel``;
when the sizes say so, each entry is named after its joint. Otherwise (Meta-World's hand-crafted vector)
entries are ``obs_<i>``. Actions are named after the MuJoCo actuators.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

_QPOS = {0: ("x", "y", "z", "qw", "qx", "qy", "qz"), 1: ("qw", "qx", "qy", "qz")}  # free, ball joints
_QVEL = {0: ("vx", "vy", "vz", "wx", "wy", "wz"), 1: ("wx", "wy", "wz")}


def _joint_names(model: Any) -> tuple[list[str], list[str]]:
    qpos, qvel = [], []
    for j in range(model.njnt):
        name, kind = model.joint(j).name or f"joint{j}", int(model.jnt_type[j])
        qpos += [f"qpos:{name}.{s}" for s in _QPOS[kind]] if kind in _QPOS else [f"qpos:{name}"]
        qvel += [f"qvel:{name}.{s}" for s in _QVEL[kind]] if kind in _QVEL else [f"qvel:{name}"]
    return qpos, qvel


def _actuator_name(model: Any, i: int) -> str:
    """The actuator's name, else the joint it drives (gymnasium's Hopper leaves actuators unnamed)."""
    if model.actuator(i).name:
        return model.actuator(i).name
    joint = int(model.actuator_trnid[i, 0])
    return f"motor:{model.joint(joint).name}" if int(model.actuator_trntype[i]) == 0 and joint >= 0 else f"action_{i}"


def env_layout(env: gym.Env) -> dict[str, Any]:
    """Observation/action names and the control period (``dt`` = timestep x frame_skip) of ``env``."""
    obs_dim, act_dim = int(env.observation_space.shape[0]), int(env.action_space.shape[0])
    base = env.unwrapped
    model = getattr(base, "model", None)
    obs_names = [f"obs_{i}" for i in range(obs_dim)]
    act_names = [f"action_{i}" for i in range(act_dim)]
    if model is not None:
        qpos, qvel = _joint_names(model)
        skip = len(qpos) + len(qvel) - obs_dim
        if 0 <= skip <= 2 and len(qpos) == model.nq and len(qvel) == model.nv:
            obs_names = qpos[skip:] + qvel
        if model.nu == act_dim:
            act_names = [_actuator_name(model, i) for i in range(act_dim)]
    dt = getattr(base, "dt", None)
    return {"obs_names": obs_names, "act_names": act_names, "control_period_s": None if dt is None else float(dt)}

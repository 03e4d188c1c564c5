"""Running a policy in a task: episodes as Trajectories, evaluation, and evaluation videos."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Optional

import gymnasium as gym
import numpy as np

from pbrl.data.trajectory import Trajectory
from pbrl.envs.make import configure_headless_gl, make_env
from pbrl.envs.simstate import recorded_states
from pbrl.envs.tasks import TaskSpec
from pbrl.types import PbrlError

PolicyFn = Callable[[np.ndarray], np.ndarray]

#: Evaluation episodes are seeded apart from training episodes (seed ``EVAL_SEED_OFFSET + run seed``).
EVAL_SEED_OFFSET = 10_000


def eval_seed(seed: int) -> int:
    """The environment seed of a run's evaluation episodes and video (episode ``i`` uses ``eval_seed(seed) + i``),
    shared by training runs, offline learners, export checks and the benchmarks' baselines."""
    return EVAL_SEED_OFFSET + int(seed)


def rollout(
    env: gym.Env,
    policy: PolicyFn,
    *,
    seed: Optional[int] = None,
    render: bool = False,
    episode_id: int = 0,
    task_name: str = "",
) -> Trajectory:
    """Run one episode and return it with named reward terms, success flags, (if ``render``) frames and
    (if the env was made with ``record_states``) simulator states."""
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards, terms, success, frames, states = [obs], [], [], [], [], [], []
    done = False
    while not done:
        if render:
            frames.append(env.render())
        action = np.asarray(policy(obs), dtype=np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
        terms.append(info["reward_terms"])
        success.append(bool(info.get("is_success", False)))
        if "sim_state" in info:
            states.append(info["sim_state"])
        done = terminated or truncated
    term_arr = np.asarray(terms, dtype=np.float32)
    names = env.get_wrapper_attr("task").reward_terms
    has_success = env.get_wrapper_attr("task").success_key is not None
    return Trajectory(
        obs=np.asarray(observations, dtype=np.float32),
        acts=np.asarray(actions, dtype=np.float32),
        rewards=np.asarray(rewards, dtype=np.float32),
        terms={n: term_arr[:, i] for i, n in enumerate(names)},
        success=np.asarray(success, dtype=bool) if has_success else None,
        frames=np.asarray(frames, dtype=np.uint8) if render else None,
        episode_id=episode_id,
        task=task_name,
        **recorded_states(states, len(actions), info),
    )


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """Per-episode evaluation numbers; success is None for tasks without a success signal."""

    returns: np.ndarray
    lengths: np.ndarray
    success: Optional[np.ndarray]

    @property
    def return_mean(self) -> float:
        return float(self.returns.mean())

    @property
    def success_rate(self) -> Optional[float]:
        return None if self.success is None else float(self.success.mean())


def evaluate(
    task: TaskSpec,
    policy: PolicyFn,
    *,
    n_episodes: int,
    seed: int,
    episode_length: Optional[int] = None,
    video_path: Optional[Path] = None,
    video_steps: int = 10_000,
    fps: int = 30,
) -> EvalResult:
    """Evaluate ``policy`` for ``n_episodes`` (seeds ``seed, seed+1, ...``).

    With ``video_path`` the first ``video_steps`` steps of the first episode are written as an mp4.
    """
    if n_episodes < 1:
        raise PbrlError(f"eval.episodes: expected >= 1, got {n_episodes}")
    env = make_env(task, seed=seed, render=video_path is not None, episode_length=episode_length)
    try:
        trajs = [rollout(env, policy, seed=seed + i, episode_id=i) for i in range(n_episodes)]
        if video_path is not None:
            write_video(video_path, film(env, policy, seed=seed, steps=video_steps), fps=fps)
    finally:
        env.close()
    success = None
    if task.success_key is not None:
        success = np.array([bool(t.success.any()) for t in trajs])
    return EvalResult(
        returns=np.array([t.true_return for t in trajs]),
        lengths=np.array([len(t) for t in trajs]),
        success=success,
    )


def film(env: gym.Env, policy: PolicyFn, *, seed: int, steps: int) -> np.ndarray:
    """Frames of the first ``steps`` steps of an episode (rendering is the slow part on CPU)."""
    obs, _ = env.reset(seed=seed)
    frames = []
    for _ in range(steps):
        frames.append(env.render())
        obs, _, terminated, truncated, _ = env.step(np.asarray(policy(obs), dtype=np.float32))
        if terminated or truncated:
            break
    return np.asarray(frames, dtype=np.uint8)


def write_video(path: Path, frames: np.ndarray, *, fps: int = 30) -> Path:
    """Write ``(T, H, W, 3)`` uint8 frames as an H.264 mp4 (imageio + ffmpeg)."""
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimsave(path, list(frames), fps=fps, macro_block_size=1)
    return path


def expert_policy(task: TaskSpec) -> PolicyFn:
    """The task's scripted expert (Meta-World ``metaworld.policies``)."""
    if not task.expert:
        raise PbrlError(f"task {task.name}: has no scripted expert (field 'expert' is empty)")
    configure_headless_gl()  # importing Meta-World imports MuJoCo, which reads MUJOCO_GL once
    import metaworld.policies as policies

    cls = getattr(policies, task.expert, None)
    if cls is None:
        raise PbrlError(f"task {task.name}: expert {task.expert!r} is not a class in metaworld.policies")
    expert = cls()
    return lambda obs: np.clip(expert.get_action(obs), -1.0, 1.0).astype(np.float32)

"""Segments and labelled pairs for the reward-learning benchmark (bench/reward_learning.py).

Behaviour is a mix so that segment returns vary widely: uniform random actions, the task's scripted
expert (Meta-World, :func:`pbrl.envs.rollout.expert_policy`) with Gaussian action noise of several
scales, and for tasks without an expert a partially trained SAC policy when one is available
(``--policy``, e.g. the policy.zip of a short ``pbrl train`` run) or an open-loop sine gait otherwise.
Episodes are split into train / test *episodes* so held-out pairs never share a segment with training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple, Optional

import numpy as np

from pbrl.data.trajectory import Segment, Trajectory, random_segments, stack_pairs
from pbrl.envs.make import make_env
from pbrl.envs.rollout import expert_policy, rollout
from pbrl.envs.tasks import TaskSpec, load_task
from pbrl.feedback.teachers import teacher_from_preset
from pbrl.types import PairBatch

#: teacher name -> (B-Pref preset, overrides); "equal" answers 0.5 below 10% of the mean |segment return|.
TEACHERS: dict[str, tuple[str, dict]] = {
    "rational": ("oracle", {}),
    "mistake0.1": ("mistake", {"eps_mistake": 0.1}),
    "mistake0.2": ("mistake", {"eps_mistake": 0.2}),
    "equal": ("equal", {}),
}
NOISE_SCALES: tuple[float, ...] = (0.1, 0.3, 0.6, 1.0)


class TaskPairs(NamedTuple):
    """Train segments (labelled per teacher later) and clean held-out pairs of one task."""

    task: str
    first: list[Segment]
    second: list[Segment]
    test: PairBatch
    behaviours: dict[str, int]


def _behaviours(task: TaskSpec, env, rng: np.random.Generator,
                policy_path: Optional[Path]) -> list[tuple[str, Callable[[np.ndarray], np.ndarray]]]:
    low, high = env.action_space.low, env.action_space.high

    def noisy(base: Callable, scale: float) -> Callable:
        return lambda o: np.clip(base(o) + scale * rng.standard_normal(low.shape), low, high)

    out: list[tuple[str, Callable]] = [("random", lambda o: rng.uniform(low, high))]
    if task.expert:
        expert = expert_policy(task)
        out += [(f"expert+N({s})", noisy(expert, s)) for s in NOISE_SCALES]
    elif policy_path is not None and policy_path.is_file():
        from stable_baselines3 import SAC

        sac = SAC.load(policy_path, device="cpu")
        base = lambda o: sac.predict(o, deterministic=True)[0]  # noqa: E731
        out += [(f"sac+N({s})", noisy(base, s)) for s in NOISE_SCALES]
    else:  # open-loop gait: a travelling sine wave over the joints, at several speeds
        t = {"k": 0}

        def gait(freq: float) -> Callable:
            def act(o: np.ndarray) -> np.ndarray:
                t["k"] += 1
                return np.sin(freq * t["k"] + np.arange(low.size) * 1.3).astype(np.float32) * high
            return act

        out += [(f"gait{f}", noisy(gait(f), 0.2)) for f in (0.2, 0.5, 1.0, 1.5)]
    return out


def collect_episodes(task_name: str, *, episodes: int, episode_length: int, seed: int,
                     policy_path: Optional[Path] = None) -> tuple[list[Trajectory], dict[str, int]]:
    """``episodes`` episodes cycling through the behaviours."""
    task = load_task(task_name)
    env = make_env(task, seed=seed, episode_length=episode_length)
    rng = np.random.default_rng(seed)
    behaviours = _behaviours(task, env, rng, policy_path)
    trajs, counts = [], {}
    for i in range(episodes):
        name, policy = behaviours[i % len(behaviours)]
        trajs.append(rollout(env, policy, seed=seed * 1000 + i, episode_id=i, task_name=task.name))
        counts[name] = counts.get(name, 0) + 1
    env.close()
    return trajs, counts


def make_task_pairs(task_name: str, *, n_train: int, n_test: int, segment_length: int, episodes: int,
                    episode_length: int, seed: int, policy_path: Optional[Path] = None) -> TaskPairs:
    """Collect, split episodes 3:1 into train/test, and draw train pairs and clean held-out pairs."""
    trajs, counts = collect_episodes(task_name, episodes=episodes, episode_length=episode_length, seed=seed,
                                     policy_path=policy_path)
    test_eps, train_eps = trajs[3::4], [t for i, t in enumerate(trajs) if i % 4 != 3]
    rng = np.random.default_rng([seed, 7])
    first, second = (random_segments(train_eps, n_train, segment_length, rng) for _ in range(2))
    t1, t2 = (random_segments(test_eps, 2 * n_test, segment_length, rng) for _ in range(2))
    r1, r2 = np.array([s.true_return for s in t1]), np.array([s.true_return for s in t2])
    keep = np.flatnonzero(r1 != r2)[:n_test]  # held-out labels are the true order (no ties)
    test = stack_pairs([t1[i] for i in keep], [t2[i] for i in keep], (r1[keep] > r2[keep]).astype(np.float32))
    return TaskPairs(task_name, first, second, test, counts)


def label(pairs: TaskPairs, teacher: str, seed: int) -> PairBatch:
    """Label all train pairs with one B-Pref teacher (margin = mean |segment return| of the pool)."""
    preset, overrides = TEACHERS[teacher]
    t = teacher_from_preset(preset, rng=np.random.default_rng([seed, 11]), **overrides)
    t.set_margin(float(np.mean([abs(s.true_return) for s in pairs.first + pairs.second])))
    labels = t.label(pairs.first, pairs.second)
    keep = ~labels.skipped
    return stack_pairs([s for s, k in zip(pairs.first, keep) if k], [s for s, k in zip(pairs.second, keep) if k],
                       labels.p[keep], None if labels.weight is None else labels.weight[keep])

"""Helpers for tests that drive the real ``pbrl`` CLI on tiny budgets (used by pbrl's own test suite)."""

from __future__ import annotations

import subprocess
import sys

#: A PEBBLE run that finishes in seconds: 100-step HalfCheetah episodes, tiny networks, one thread.
TINY_TRAIN: tuple[str, ...] = (
    "task=halfcheetah", "episode_length=100", "segment_length=20", "budget.labels=20", "budget.per_round=10",
    "budget.every=200", "eval.every=300", "eval.episodes=1", "eval.final_episodes=1", "eval.video=false",
    "eval.reward_pairs=50", "checkpoint_every=300", "reward.epochs=3", "reward.model.hidden=[32,32]", "threads=1",
    "algo=sac", "budget.env_steps=600", "algo.seed_steps=200", "algo.sac.batch_size=32",
    "algo.sac.policy_kwargs.net_arch=[32,32]",
)


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``pbrl ARGS`` in a fresh interpreter and capture its output."""
    return subprocess.run([sys.executable, "-m", "pbrl.cli", *args], capture_output=True, text=True, timeout=timeout)


def tiny_learner(labeller, store, *, source: str, max_labels: int, per_round: int, segment_length: int = 3):
    """A PreferenceLearner over 2-d observations / 1-d actions with a one-member 8-unit reward (unit tests)."""
    import numpy as np

    from pbrl.agents.preference import FeedbackSchedule, PreferenceLearner
    from pbrl.rewards.ensemble import EnsembleReward

    return PreferenceLearner(reward_model=EnsembleReward(2, 1, n_members=1, hidden=(8,), seed=0), labeller=labeller,
                             store=store, source=source, rng=np.random.default_rng(0),
                             schedule=FeedbackSchedule(max_labels=max_labels, per_round=per_round, every=1,
                                                       segment_length=segment_length, strategy="uniform",
                                                       reward_epochs=1))


def tiny_episode(seed: int, steps: int = 12):
    """A ``steps``-long episode with 2-d observations, 1-d zero actions and reward = first obs coordinate."""
    import numpy as np

    from pbrl.data.trajectory import Trajectory

    obs = np.random.default_rng(seed).normal(size=(steps + 1, 2)).astype(np.float32)
    return Trajectory(obs=obs, acts=np.zeros((steps, 1), np.float32), rewards=obs[:-1, 0].copy(), episode_id=0)


def pusher_task():
    """Gymnasium's Pusher as a pbrl task (7 actions in [-2, 2], 23-d observations, 50-step episodes): a real env whose
    action range is not SAC's [-1, 1], so tests see whether actions are unscaled before the reward model."""
    from pbrl.envs.tasks import task_from_dict

    return task_from_dict({"name": "pusher", "suite": "mujoco", "env_id": "Pusher-v5", "episode_length": 50,
                           "reward_terms": ["reward_dist", "reward_ctrl"]})

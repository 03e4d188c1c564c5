"""Small real parts for unit tests: a feedback loop on 2-d toy episodes, toy episodes, a task with a wide action box."""

from __future__ import annotations

import numpy as np

from pbrl.agents.preference import FeedbackLoop, FeedbackSchedule
from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Trajectory
from pbrl.envs.tasks import TaskSpec, task_from_dict
from pbrl.feedback.labeller import Labeller
from pbrl.rewards.ensemble import EnsembleReward


def tiny_feedback(labeller: Labeller, store: PreferenceStore, *, source: str, max_labels: int, per_round: int,
                  segment_length: int = 3) -> FeedbackLoop:
    """A FeedbackLoop over 2-d observations / 1-d actions with a one-member 8-unit reward."""
    return FeedbackLoop(reward_model=EnsembleReward(2, 1, n_members=1, hidden=(8,), seed=0), labeller=labeller,
                        store=store, source=source, rng=np.random.default_rng(0),
                        schedule=FeedbackSchedule(max_labels=max_labels, per_round=per_round, every=1,
                                                  segment_length=segment_length, strategy="uniform", reward_epochs=1))


def tiny_episode(seed: int, steps: int = 12) -> Trajectory:
    """A ``steps``-long episode with 2-d observations, 1-d zero actions and reward = first obs coordinate."""
    obs = np.random.default_rng(seed).normal(size=(steps + 1, 2)).astype(np.float32)
    return Trajectory(obs=obs, acts=np.zeros((steps, 1), np.float32), rewards=obs[:-1, 0].copy(), episode_id=0)


def pusher_task() -> TaskSpec:
    """Gymnasium's Pusher as a pbrl task (7 actions in [-2, 2], 23-d observations, 50-step episodes): a real env whose
    action range is not SAC's [-1, 1], so tests see whether actions are unscaled before the reward model."""
    return task_from_dict({"name": "pusher", "suite": "mujoco", "env_id": "Pusher-v5", "episode_length": 50,
                           "reward_terms": ["reward_dist", "reward_ctrl"]})

"""Source data for cross-task transfer: noisy-expert segments of a task and a labelled store of them.

A PEARL source store needs segments of *varied* quality with labels. Meta-World ships scripted
experts; adding Gaussian action noise of different scales per episode gives everything from
clean solutions to near-random flailing. Used by tests and benchmarks; any store with labels
(human, scripted, imported) works as a source too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Segment, random_start
from pbrl.envs.make import make_env
from pbrl.envs.rollout import expert_policy, rollout
from pbrl.envs.tasks import TaskSpec
from pbrl.feedback.query import random_pairs
from pbrl.types import PbrlError

DEFAULT_NOISE: tuple[float, ...] = (0.0, 0.3, 0.6, 1.0, 2.0)


def noisy_expert_segments(task: TaskSpec, *, n_episodes: int, episode_length: int, segment_length: int,
                          per_episode: int, seed: int, noise: Sequence[float] = DEFAULT_NOISE) -> list[Segment]:
    """Segments cut at random starts from expert episodes with per-episode Gaussian action noise.

    Episode ``e`` uses noise std ``noise[e % len(noise)]``; actions are clipped to [-1, 1].
    """
    if segment_length > episode_length:
        raise PbrlError(f"segment_length ({segment_length}) > episode_length ({episode_length})")
    rng = np.random.default_rng(seed)
    expert = expert_policy(task)
    env = make_env(task, seed=seed, episode_length=episode_length)
    segments: list[Segment] = []
    try:
        for e in range(n_episodes):
            std = float(noise[e % len(noise)])

            def policy(obs: np.ndarray, std: float = std) -> np.ndarray:
                act = expert(obs)
                return np.clip(act + std * rng.standard_normal(act.shape), -1.0, 1.0).astype(np.float32)

            traj = rollout(env, policy, seed=seed * 10_000 + e, episode_id=e, task_name=task.name)
            if len(traj) < segment_length:
                continue
            for start in random_start(len(traj), segment_length, rng, size=per_episode):
                segments.append(traj.segment(int(start), segment_length))
    finally:
        env.close()
    return segments


def write_labelled_store(path: str | Path, segments: Sequence[Segment], *, n_pairs: int, labeller,
                         rng: np.random.Generator, source: str = "scripted") -> PreferenceStore:
    """Store ``segments`` and ``n_pairs`` random pairs of them labelled by ``labeller`` (one transaction each)."""
    store = PreferenceStore(path)
    ids = store.add_segments(segments)
    first, second = random_pairs(len(segments), n_pairs, rng)
    labels = labeller.label([segments[i] for i in first], [segments[i] for i in second])
    store.add_labels([ids[i] for i in first], [ids[i] for i in second], labels, source=source,
                     weight=labels.weight)
    return store


def true_return_labels(first: Sequence[Segment], second: Sequence[Segment],
                       tie: Optional[float] = None) -> np.ndarray:
    """Rational labels from true segment returns (1 first, 0 second, 0.5 exact tie unless ``tie`` given)."""
    r1 = np.array([s.true_return for s in first])
    r2 = np.array([s.true_return for s in second])
    return np.where(r1 > r2, 1.0, np.where(r1 < r2, 0.0, 0.5 if tie is None else tie))

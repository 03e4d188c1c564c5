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

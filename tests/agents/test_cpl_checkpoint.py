"""Offline runs resume exactly: learner, optimiser, numpy and torch RNG state survive a checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pbrl.agents.cpl import CPLLearner
from pbrl.agents.offline_data import OfflineData
from pbrl.agents.offline_policy import load_policy, save_policy
from pbrl.run.offline import _restore, _save_checkpoint


def _data() -> OfflineData:
    rng = np.random.default_rng(0)
    return OfflineData(obs=rng.standard_normal((8, 4, 3)).astype(np.float32),
                       acts=rng.uniform(-1, 1, (8, 4, 2)).astype(np.float32),
                       first=np.arange(0, 8, 2), second=np.arange(1, 8, 2), p=np.array([1, 0, 0.5, 1], np.float32))


def _learner(seed: int = 0) -> tuple[CPLLearner, np.random.Generator]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    return CPLLearner(_data(), alpha=0.1, bias=0.5, bc_weight=0.5, bc_steps=2, pairing="sparse", hidden=(8,),
                      dropout=0.5, lr=1e-2, batch_pairs=3, rng=rng), rng


def test_checkpoint_resume_is_exact(tmp_path: Path) -> None:
    a, rng_a = _learner()
    for step in range(3):
        a.update(step)
    _save_checkpoint(tmp_path, a, rng_a, 3)
    for step in range(3, 6):
        a.update(step)
    b, rng_b = _learner(seed=1)  # different init: everything must come from the checkpoint
    assert _restore(tmp_path, b, rng_b) == 3
    for step in range(3, 6):
        b.update(step)
    for pa, pb in zip(a.policy.parameters(), b.policy.parameters()):
        assert torch.equal(pa, pb)


def test_no_checkpoint_starts_at_zero_and_policy_file_round_trips(tmp_path: Path) -> None:
    learner, rng = _learner()
    assert _restore(tmp_path, learner, rng) == 0
    save_policy(learner.policy, tmp_path / "policy.pt")
    loaded = load_policy(tmp_path / "policy.pt")
    obs = _data().obs[0]
    assert not loaded.training and np.array_equal(loaded.act(obs), learner.policy.act(obs))

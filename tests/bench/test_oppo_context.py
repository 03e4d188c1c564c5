"""bench/oppo_context.py: the contexts an OPPO policy is evaluated under, and that z* is restored afterwards."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bench_modules import load_bench

from pbrl.agents.offline_data import OfflineData
from pbrl.agents.oppo import OPPOLearner


@pytest.fixture(scope="module")
def oc():
    return load_bench("oppo_context")


def _data(n: int = 20, obs_dim: int = 39, act_dim: int = 4) -> OfflineData:
    rng = np.random.default_rng(0)
    return OfflineData(obs=rng.standard_normal((n, 5, obs_dim)).astype(np.float32),
                       acts=rng.uniform(-1, 1, (n, 5, act_dim)).astype(np.float32),
                       first=np.arange(n - 1), second=np.arange(1, n),
                       p=np.array([1.0] * (n - 1), np.float32))  # every segment beats the next: 0 is best


def _learner(data: OfflineData) -> OPPOLearner:
    torch.manual_seed(0)
    return OPPOLearner(data, z_dim=4, d_model=8, n_layers=1, n_heads=2, hidden=(8,), margin=1.0, pref_weight=0.5,
                       norm_weight=0.01, lr=1e-3, batch_pairs=4, pairing="sparse", rng=np.random.default_rng(0))


def test_win_rates_hand_computed(oc) -> None:
    data = OfflineData(obs=np.zeros((3, 2, 1), np.float32), acts=np.zeros((3, 2, 1), np.float32),
                       first=np.array([0, 1, 0]), second=np.array([1, 2, 2]), p=np.array([1.0, 0.5, 0.0], np.float32))
    # segment 0: beats 1, loses to 2 -> 1/2; segment 1: loses to 0, ties 2 -> 0.5/2; segment 2: 0.5 + 1 over 2
    assert oc.win_rates(data).tolist() == [0.5, 0.25, 0.75]


def test_contexts_are_z_star_its_direction_the_best_segments_and_the_nearest(oc) -> None:
    data = _data()
    learner = _learner(data)
    found, info = oc.contexts(learner, data)
    z = oc.embeddings(learner, data)
    z_star = learner.z_star.detach()
    assert torch.equal(found["z*"], z_star)
    assert torch.allclose(found["z* / |z*|"].norm(), torch.tensor(1.0)) and \
        torch.allclose(found["z* / |z*|"] * z_star.norm(), z_star)
    # win rates: segment 0 wins its one game (1.0), the last loses its one (0.0), the rest 0.5: the top tenth is 0, 1
    assert torch.allclose(found["top-10% embedding"], z[[0, 1]].mean(0))
    nearest = int(torch.argmin((z - z_star).norm(dim=1)))
    assert torch.equal(found["nearest embedding"], z[nearest])
    assert info["z_star_norm"] == pytest.approx(float(z_star.norm()))
    assert info["embedding_norm"] == pytest.approx(float(z.norm(dim=1).mean()))


def test_evaluation_under_other_contexts_restores_z_star(oc) -> None:
    data = _data()
    learner = _learner(data)
    before = learner.policy.z_star.clone()
    found = {"zero": torch.zeros(4), "z*": before.clone()}
    got = oc.evaluate_contexts(learner, found, "drawer-open", seed=0, episodes=1, episode_length=5)
    assert set(got) == {"zero", "z*"} and all(0.0 <= s <= 1.0 for s, _ in got.values())
    assert got["zero"][1] != got["z*"][1]  # the context reached the policy
    assert torch.equal(learner.policy.z_star, before)

"""OPPO: losses against hand-computed values and the z* mechanics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pbrl.agents.offline_data import OfflineData
from pbrl.agents.oppo import OPPOLearner, him_loss, norm_loss, triplet_loss


def test_oppo_losses_hand_computed() -> None:
    a = torch.zeros(1, 2)
    # ||a-p||^2 = 4, ||a-n||^2 = 1: 4 - 1 + 0.5 = 3.5
    assert float(triplet_loss(a, torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]]), 0.5)) == pytest.approx(3.5)
    # 1 - 4 + 1 < 0 -> 0
    assert float(triplet_loss(a, torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]]), 1.0)) == 0.0
    assert float(him_loss(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]]))) == pytest.approx(5.0)
    assert float(norm_loss(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))) == pytest.approx(12.5)


def test_oppo_moves_z_star_toward_preferred_embeddings(rng: np.random.Generator) -> None:
    torch.manual_seed(0)
    n, L = 16, 6
    good = np.arange(n) % 2 == 0
    acts = np.where(good[:, None, None], 0.7, -0.7) * np.ones((n, L, 2))
    data = OfflineData(obs=rng.standard_normal((n, L, 3)).astype(np.float32), acts=acts.astype(np.float32),
                       first=np.arange(0, n, 2), second=np.arange(1, n, 2), p=np.ones(n // 2, np.float32))
    learner = OPPOLearner(data, z_dim=4, d_model=16, n_layers=1, n_heads=2, hidden=(32,), margin=1.0,
                          pref_weight=1.0, norm_weight=0.01, lr=3e-3, batch_pairs=8, pairing="sparse", rng=rng)
    for step in range(120):
        out = learner.update(step)
    assert set(out) == {"loss", "him_loss", "triplet_loss"}
    assert torch.equal(learner.policy.z_star, learner.z_star.detach())
    with torch.no_grad():
        z = learner.encoder(torch.as_tensor(data.obs), torch.as_tensor(data.acts))
        d_good = (z[good] - learner.z_star).pow(2).sum(-1).mean()
        d_bad = (z[~good] - learner.z_star).pow(2).sum(-1).mean()
    assert float(d_good) < float(d_bad)
    # deployment under z* reproduces the preferred behaviour (positive actions)
    assert float(np.mean(learner.policy.act(data.obs.reshape(-1, 3)))) > 0.2

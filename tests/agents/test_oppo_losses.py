"""OPPO: losses against hand-computed values of the reference definitions, and the z* mechanics.

Reference: bkkgbkjb/OPPO ``pdt_trainer.py`` (``TripletMarginLoss(margin=1, p=2)``, ``MSE(||phi||, 1)``, ``w`` with its
own optimiser stepped after the encoder on re-encoded, detached embeddings, ``w = randn(z_dim) * 2``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pbrl.agents.offline_data import OfflineData
from pbrl.agents.oppo import OPPOLearner, him_loss, norm_loss, triplet_loss


def test_triplet_loss_uses_plain_l2_distances() -> None:
    a = torch.zeros(1, 2)
    # ||a - p|| = 5, ||a - n|| = 1, margin 1: 5 - 1 + 1 = 5 (squared distances would give 25 - 1 + 1 = 25)
    got = float(triplet_loss(a, torch.tensor([[3.0, 4.0]]), torch.tensor([[0.0, 1.0]]), 1.0))
    assert got == pytest.approx(5.0, abs=1e-4)
    # ||a - p|| = 1, ||a - n|| = 2: 1 - 2 + 0.5 < 0 -> 0
    assert float(triplet_loss(a, torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]]), 0.5)) == 0.0
    # mean over triplets: (5) and (0) -> 2.5
    two = triplet_loss(torch.zeros(2, 2), torch.tensor([[3.0, 4.0], [1.0, 0.0]]), torch.tensor([[0.0, 1.0], [0.0, 2.0]]),
                       1.0)
    assert float(two) == pytest.approx((5.0 + max(0.0, 1 - 2 + 1)) / 2, abs=1e-4)


def test_him_and_norm_losses_hand_computed() -> None:
    # MSE over every element, as the reference's torch.mean((a_hat - a)**2): (1 + 4) / 2
    assert float(him_loss(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]]))) == pytest.approx(2.5)
    # (||z|| - 1)^2: ||(3, 4)|| = 5 -> 16; ||0|| = 0 -> 1; a unit vector -> 0
    z = torch.tensor([[3.0, 4.0], [0.0, 0.0], [0.6, 0.8]])
    assert float(norm_loss(z)) == pytest.approx((16.0 + 1.0 + 0.0) / 3, rel=1e-6)


def _chain_data(rng: np.random.Generator, n: int = 6, length: int = 4) -> OfflineData:
    """One connected comparison chain 0-1-2-...: with dense pairing every batch is every pair."""
    acts = rng.uniform(-1, 1, (n, length, 2)).astype(np.float32)
    p = np.array([1.0, 0.0, 1.0, 0.5, 1.0][: n - 1], np.float32)
    return OfflineData(obs=rng.standard_normal((n, length, 3)).astype(np.float32), acts=acts,
                       first=np.arange(n - 1), second=np.arange(1, n), p=p)


def _learner(data: OfflineData, seed: int = 3, **kw) -> OPPOLearner:
    torch.manual_seed(0)
    args = dict(z_dim=4, d_model=16, n_layers=1, n_heads=2, hidden=(16,), margin=1.0, pref_weight=0.05,
                norm_weight=0.1, lr=1e-3, z_lr=1e-3, batch_pairs=8, pairing="dense")
    return OPPOLearner(data, rng=np.random.default_rng(seed), **{**args, **kw})


def test_z_star_starts_as_the_reference_and_has_its_own_optimiser(rng: np.random.Generator) -> None:
    learner = _learner(_chain_data(rng), seed=3)
    # reference: w = randn(z_dim) * 2, here from the learner's seeded generator (dense sampling draws nothing first)
    np.testing.assert_allclose(learner.z_star.detach().numpy(), 2.0 * np.random.default_rng(3).standard_normal(4),
                               rtol=1e-6)
    assert torch.equal(learner.policy.z_star, learner.z_star.detach())
    z_params = learner.optims["z_star"].param_groups[0]["params"]
    assert len(z_params) == 1 and z_params[0] is learner.z_star
    assert learner.optims["z_star"].param_groups[0]["lr"] == 1e-3
    assert all(p is not learner.z_star for g in learner.optims["model"].param_groups for p in g["params"])


def test_encoder_step_sees_z_star_detached_and_z_star_step_sees_embeddings_detached(rng: np.random.Generator) -> None:
    data = _chain_data(rng)
    learner = _learner(data)
    batch = learner.sampler.sample()
    obs, acts = torch.as_tensor(data.obs[batch.segs]), torch.as_tensor(data.acts[batch.segs])
    loss, out = learner.model_loss(obs, acts, batch)
    loss.backward()
    assert learner.z_star.grad is None  # the encoder's triplet term uses a detached anchor
    assert out["triplet_loss"] > 0 and all(p.grad is not None for p in learner.encoder.parameters())
    learner.encoder.zero_grad()
    z = learner.encoder(obs, acts)
    learner.z_star_loss(z, batch).backward()
    assert learner.z_star.grad is not None and float(learner.z_star.grad.abs().sum()) > 0
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in learner.encoder.parameters())


def test_z_star_update_follows_the_reference_triplet_gradient(rng: np.random.Generator) -> None:
    """After one update, z* moved by -lr * g, where g is the gradient of the triplet loss at the old z* against
    the *re-encoded* embeddings (the encoder has stepped first); g worked out by hand: d/da (||a - p|| - ||a - n||)
    = (a - p)/||a - p|| - (a - n)/||a - n|| for active triplets, meaned. z*'s optimiser is swapped for plain SGD
    here so the step shows g itself (Adam's first step is only its sign)."""
    data = _chain_data(rng)
    learner = _learner(data)
    learner.optims["z_star"] = torch.optim.SGD([learner.z_star], lr=0.1)
    a = learner.z_star.detach().numpy().astype(np.float64).copy()
    encoder_before = [p.detach().clone() for p in learner.encoder.parameters()]
    learner.update(0)
    assert any(not torch.equal(b, p) for b, p in zip(encoder_before, learner.encoder.parameters()))
    with torch.no_grad():  # the encoder is unchanged by z*'s step: these are the embeddings z* was fitted to
        z = learner.encoder(torch.as_tensor(data.obs), torch.as_tensor(data.acts)).numpy().astype(np.float64)
    grad, active = np.zeros_like(a), 0
    strict = [(i, j, p) for i, j, p in zip(data.first, data.second, data.p) if p != 0.5]
    for i, j, p in strict:
        pos, neg = (z[i], z[j]) if p > 0.5 else (z[j], z[i])
        d_pos, d_neg = math.dist(a, pos), math.dist(a, neg)
        if d_pos - d_neg + 1.0 > 0:
            active += 1
            grad += (a - pos) / d_pos - (a - neg) / d_neg
    grad /= len(strict)
    assert active > 0
    np.testing.assert_allclose(learner.z_star.detach().numpy(), a - 0.1 * grad, atol=1e-5)
    assert torch.equal(learner.policy.z_star, learner.z_star.detach())


def test_oppo_moves_z_star_toward_preferred_embeddings(rng: np.random.Generator) -> None:
    torch.manual_seed(0)
    n, L = 16, 6
    good = np.arange(n) % 2 == 0
    acts = np.where(good[:, None, None], 0.7, -0.7) * np.ones((n, L, 2))
    data = OfflineData(obs=rng.standard_normal((n, L, 3)).astype(np.float32), acts=acts.astype(np.float32),
                       first=np.arange(0, n, 2), second=np.arange(1, n, 2), p=np.ones(n // 2, np.float32))
    learner = OPPOLearner(data, z_dim=4, d_model=16, n_layers=1, n_heads=2, hidden=(32,), margin=1.0,
                          pref_weight=0.05, norm_weight=0.1, lr=3e-3, z_lr=3e-2, batch_pairs=8, pairing="sparse",
                          rng=rng)
    for step in range(150):
        out = learner.update(step)
    assert set(out) == {"loss", "him_loss", "triplet_loss", "norm_loss", "z_star_loss"}
    assert torch.equal(learner.policy.z_star, learner.z_star.detach())
    with torch.no_grad():
        z = learner.encoder(torch.as_tensor(data.obs), torch.as_tensor(data.acts))
        d_good = (z[good] - learner.z_star).norm(dim=-1).mean()
        d_bad = (z[~good] - learner.z_star).norm(dim=-1).mean()
    assert float(d_good) < float(d_bad)
    assert abs(float(z.norm(dim=-1).mean()) - 1.0) < 0.5  # embeddings kept near the unit sphere
    # deployment under z* reproduces the preferred behaviour (positive actions)
    assert float(np.mean(learner.policy.act(data.obs.reshape(-1, 3)))) > 0.2

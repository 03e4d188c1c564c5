"""EnsembleReward: shapes, validation, batched forward, determinism, learning, checkpoints."""

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pbrl.data.trajectory import Segment, stack_pairs
from pbrl.feedback.teachers import teacher_from_preset
from pbrl.rewards.ensemble import EnsembleReward
from pbrl.types import PairBatch, PbrlError, RewardModel

OBS, ACT, L = 4, 2, 8
W_OBS = np.array([1.0, -0.5, 0.3, 0.0])
W_ACT = np.array([0.6, -0.2])


def random_segments(n: int, rng: np.random.Generator, length: int = L) -> list[Segment]:
    """Random segments whose true reward is a known linear function of (s, a)."""
    segments = []
    for _ in range(n):
        obs = rng.normal(size=(length, OBS)).astype(np.float32)
        acts = rng.uniform(-1, 1, size=(length, ACT)).astype(np.float32)
        rewards = (0.3 * (obs @ W_OBS + acts @ W_ACT)).astype(np.float32)
        segments.append(Segment(obs=obs, acts=acts, rewards=rewards))
    return segments


def oracle_pairs(n: int, seed: int) -> PairBatch:
    rng = np.random.default_rng(seed)
    first, second = random_segments(n, rng), random_segments(n, rng)
    labels = teacher_from_preset("oracle", rng=rng).label(first, second)
    return stack_pairs(first, second, labels.p)


def replaced(pairs: PairBatch, **fields) -> PairBatch:
    # PairBatch overrides __len__, which breaks NamedTuple._replace; rebuild from the fields instead.
    return PairBatch(**{**pairs._asdict(), **fields})


def small(**kw) -> EnsembleReward:
    return EnsembleReward(OBS, ACT, **{"hidden": (32, 32), "batch_size": 64, "lr": 3e-3, **kw})


def test_implements_protocol_and_shapes():
    model = small(n_members=3)
    assert isinstance(model, RewardModel)
    rng = np.random.default_rng(0)
    obs, act = rng.normal(size=(5, 7, OBS)), rng.normal(size=(5, 7, ACT))
    pred = model.predict(obs, act)
    mean, std = model.predict_std(obs, act)
    assert pred.shape == (5, 7) and pred.dtype == np.float32
    assert mean.shape == std.shape == (5, 7) and std.dtype == np.float32
    np.testing.assert_allclose(pred, mean, rtol=1e-6)
    assert np.all(np.abs(pred) <= 1.0)  # tanh output
    samples = model.segment_return_samples(obs, act)
    assert samples.shape == (3, 5)
    np.testing.assert_allclose(samples.mean(0), pred.sum(1), rtol=1e-5, atol=1e-5)
    assert model.predict(obs[0, 0], act[0, 0]).shape == ()


def test_prediction_chunks_agree(monkeypatch):
    model = small()
    rng = np.random.default_rng(1)
    obs, act = rng.normal(size=(300, OBS)), rng.normal(size=(300, ACT))
    whole = model.predict(obs, act)
    monkeypatch.setattr("pbrl.rewards.ensemble.PREDICT_CHUNK", 64)
    np.testing.assert_allclose(model.predict(obs, act), whole, rtol=1e-6, atol=1e-7)


def test_batched_forward_equals_per_member_loop():
    model = EnsembleReward(OBS, ACT, n_members=4, hidden=(16, 8, 8), seed=3)
    x = torch.randn(4, 10, OBS + ACT, generator=torch.Generator().manual_seed(0))
    batched = model.net(x)
    net = model.net
    for m in range(4):
        h = x[m]
        for k, (w, b) in enumerate(zip(net.weights, net.biases)):
            h = F.linear(h, w[m].T, b[m, 0])
            h = torch.tanh(h) if k == len(net.weights) - 1 else F.leaky_relu(h)
        torch.testing.assert_close(batched[m], h.squeeze(-1))
    shared = model.net(x[0])  # a shared (N, in) input is broadcast over members
    torch.testing.assert_close(shared[1], model.net(x[0].expand(4, -1, -1))[1])


def test_input_validation():
    model = small()
    with pytest.raises(PbrlError, match=r"expected \(\.\.\., obs_dim=4\)"):
        model.predict(np.zeros((3, 5)), np.zeros((3, ACT)))
    with pytest.raises(PbrlError, match=r"expected \(\.\.\., act_dim=2\)"):
        model.predict(np.zeros((3, OBS)), np.zeros((3, 3)))
    with pytest.raises(PbrlError, match="share leading dims"):
        model.predict(np.zeros((3, OBS)), np.zeros((4, ACT)))
    empty = PairBatch(*(np.zeros((0, L, d), np.float32) for d in (OBS, ACT, OBS, ACT)),
                      p=np.zeros(0, np.float32), weight=np.zeros(0, np.float32))
    with pytest.raises(PbrlError, match="reward fit: no labelled pairs"):
        model.fit(empty, epochs=1)
    bad = replaced(oracle_pairs(4, 0), obs1=np.zeros((4, L, 3), np.float32))
    with pytest.raises(PbrlError, match=r"PairBatch.obs1 has shape \(4, 8, 3\); expected \(4, 8, 4\)"):
        model.fit(bad, epochs=1)
    with pytest.raises(PbrlError, match="weight must be finite"):
        model.fit(replaced(oracle_pairs(4, 0), weight=np.full(4, -1.0, np.float32)), epochs=1)
    with pytest.raises(PbrlError, match=r"reward evaluate: PairBatch.p: expected P\(first preferred\)"):
        model.evaluate(replaced(oracle_pairs(4, 0), p=np.full(4, 2.0, np.float32)))
    with pytest.raises(PbrlError, match="bootstrap"):
        EnsembleReward(OBS, ACT, bootstrap="jackknife")


def test_same_seed_same_outputs_different_seed_differs():
    pairs = oracle_pairs(100, 0)
    obs = np.random.default_rng(5).normal(size=(20, OBS))
    act = np.random.default_rng(6).normal(size=(20, ACT))
    runs = []
    for seed in (7, 7, 8):
        model = small(seed=seed)
        metrics = model.fit(pairs, epochs=3)
        runs.append((metrics, model.predict(obs, act)))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert not np.allclose(runs[0][1], runs[2][1])


@pytest.mark.parametrize("bootstrap", ["permutation", "bootstrap"])
def test_members_differ_after_training(bootstrap):
    """Members start as exact copies of member 0, so only their own data order / resample can make them differ:
    an ensemble that fed every member the same batches would keep them identical (std exactly 0)."""
    model = small(n_members=3, bootstrap=bootstrap)
    with torch.no_grad():
        for w in [*model.net.weights, *model.net.biases]:
            w.copy_(w[:1].expand_as(w))
    rng = np.random.default_rng(2)
    obs, act = rng.normal(size=(50, OBS)), rng.normal(size=(50, ACT))
    assert model.predict_std(obs, act)[1].max() == 0.0  # identical before training
    model.fit(oracle_pairs(100, 1), epochs=5)
    _, std = model.predict_std(obs, act)
    assert std.mean() > 1e-3


@pytest.mark.parametrize("bootstrap", ["permutation", "bootstrap"])
def test_each_member_draws_its_own_indices(bootstrap):
    idx = small(n_members=4, bootstrap=bootstrap)._sample_indices(200).numpy()
    assert idx.shape == (4, 200) and idx.min() >= 0 and idx.max() < 200
    assert len({tuple(row) for row in idx}) == 4  # no two members see the same sequence
    for row in idx:
        if bootstrap == "permutation":
            assert sorted(row) == list(range(200))  # every pair once per epoch
        else:  # a resample with replacement: about 1 - 1/e of the pairs appear
            assert 0.55 < len(set(row)) / 200 < 0.72


def test_learns_linear_reward_from_oracle_labels():
    start = time.perf_counter()
    train, test = oracle_pairs(300, 10), oracle_pairs(300, 11)
    model = small(n_members=3, seed=0)
    before = model.evaluate(test)
    metrics = model.fit(train, epochs=40)
    after = model.evaluate(test)
    assert set(metrics) >= {"loss", "train_acc"}
    assert metrics["train_acc"] > 0.9
    assert after["accuracy"] > 0.85, (before, after)
    assert after["loss"] < before["loss"]
    assert time.perf_counter() - start < 15


def flipped(pairs: PairBatch, share: float, seed: int) -> PairBatch:
    """``pairs`` with a ``share`` of labels flipped (B-Pref's mistake teacher)."""
    flip = np.random.default_rng(seed).random(len(pairs.p)) < share
    return replaced(pairs, p=np.where(flip, 1.0 - pairs.p, pairs.p).astype(np.float32))


def test_label_noise_model_learns_through_wrong_labels():
    """With 10% flipped labels the noise-aware likelihood learns the reward (and the share is validated)."""
    train, test = flipped(oracle_pairs(300, 10), 0.1, 0), oracle_pairs(300, 11)
    model = small(n_members=1, seed=0, label_noise=0.1)
    before = model.evaluate(test)["accuracy"]
    model.fit(train, epochs=40)
    assert model.evaluate(test)["accuracy"] > max(0.8, before + 0.2)
    with pytest.raises(PbrlError, match="reward.model.label_noise"):
        small(label_noise=1.5)


def test_ties_and_weights_are_accepted():
    pairs = oracle_pairs(40, 3)
    p = pairs.p.copy()
    p[:10] = 0.5
    metrics = small().fit(replaced(pairs, p=p, weight=np.linspace(0.5, 1.5, 40, dtype=np.float32)), epochs=2)
    assert np.isfinite(metrics["loss"]) and 0.0 <= metrics["train_acc"] <= 1.0


def test_stop_at_acc_stops_early():
    metrics = small().fit(oracle_pairs(200, 4), epochs=200, stop_at_acc=0.8)
    assert metrics["epochs"] < 200 and metrics["train_acc"] > 0.8


def test_state_dict_round_trip_resumes_training_identically():
    pairs = oracle_pairs(80, 5)
    obs = np.random.default_rng(0).normal(size=(10, OBS))
    act = np.random.default_rng(1).normal(size=(10, ACT))
    a = small(seed=1)
    a.fit(pairs, epochs=2)
    state = a.state_dict()
    b = small(seed=99)
    b.load_state_dict(state)
    np.testing.assert_array_equal(a.predict(obs, act), b.predict(obs, act))
    a.fit(pairs, epochs=2)
    b.fit(pairs, epochs=2)  # optimiser moments and sampling generator were restored too
    np.testing.assert_array_equal(a.predict(obs, act), b.predict(obs, act))
    with pytest.raises(PbrlError, match="does not match"):
        small(hidden=(16, 16)).load_state_dict(state)

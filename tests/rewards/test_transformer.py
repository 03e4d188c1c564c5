"""Preference Transformer reward: preference attention on hand values, a non-Markovian preference it learns and a
Markovian MLP provably cannot, the per-step reward definition (PT's relabelling windows), checkpoints, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pbrl.rewards.ensemble import EnsembleReward
from pbrl.rewards.losses import bradley_terry_loss, heldout_metrics
from pbrl.rewards.transformer import PreferenceTransformerReward, preference_weighted_score, warmup_cosine_lr
from pbrl.types import PairBatch, PbrlError

LN3 = math.log(3.0)


def test_preference_attention_hand_values() -> None:
    # The reference's logits q_t.k_i, unscaled (flaxmodels' ops.attention divides by sqrt(value size) = sqrt(1)):
    # row 0 = [0, 2 ln3] -> softmax [1/10, 9/10]; row 1 = [0, 0] -> [1/2, 1/2].
    q = torch.tensor([[[2.0, 0, 0, 0], [0.0, 0, 0, 0]]])
    k = torch.tensor([[[0.0, 0, 0, 0], [LN3, 0, 0, 0]]])
    r = torch.tensor([[2.0, 6.0]])
    # z_0 = 2/10 + 6*9/10 = 5.6, z_1 = (2 + 6)/2 = 4, S = (5.6 + 4)/2 = 4.8 (scaled by sqrt(4) it would be 4.5)
    assert preference_weighted_score(q, k, r).item() == pytest.approx(4.8, abs=1e-6)
    # step 1 masked out: every step attends to step 0 only, the mean runs over step 0: S = 2
    mask = torch.tensor([[True, False]])
    assert preference_weighted_score(q, k, r, mask).item() == pytest.approx(2.0, abs=1e-6)


def test_pt_bradley_terry_on_scores_hand_value() -> None:
    # Segment 1: S = 4.8 (above); segment 2: uniform attention over r = [1, 3] -> S = 2. p = 1 (first preferred):
    # loss = -log sigmoid(4.8 - 2) = log(1 + e^-2.8); p = 0.25 (soft): 0.25 log(1+e^-2.8) + 0.75 log(1+e^2.8).
    q = torch.tensor([[[2.0, 0, 0, 0], [0.0, 0, 0, 0]], [[0.0, 0, 0, 0], [0.0, 0, 0, 0]]])
    k = torch.tensor([[[0.0, 0, 0, 0], [LN3, 0, 0, 0]], [[0.0, 0, 0, 0], [0.0, 0, 0, 0]]])
    s = preference_weighted_score(q, k, torch.tensor([[2.0, 6.0], [1.0, 3.0]]))
    assert bradley_terry_loss(s[:1], s[1:], torch.tensor([1.0])).item() == pytest.approx(math.log1p(math.exp(-2.8)), rel=1e-5)
    soft = 0.25 * math.log1p(math.exp(-2.8)) + 0.75 * math.log1p(math.exp(2.8))
    assert bradley_terry_loss(s[:1], s[1:], torch.tensor([0.25])).item() == pytest.approx(soft, rel=1e-5)


L = 6


def _key_door(n: int, rng: np.random.Generator) -> PairBatch:
    """Each segment has one 'key' step (obs [1, 0]) and one 'door' step (obs [0, 1]) at random distinct times; the
    segment where the key comes first is preferred. Both segments of a pair hold the same multiset of (s, a), so
    every Markovian reward gives them equal returns: only order-aware models can tell them apart."""
    def seg(key_first: bool) -> np.ndarray:
        i, j = sorted(rng.choice(L, 2, replace=False))
        o = np.zeros((L, 2), np.float32)
        o[i if key_first else j, 0], o[j if key_first else i, 1] = 1.0, 1.0
        return o
    first_good = rng.random(n) < 0.5
    acts = np.zeros((n, L, 1), np.float32)
    return PairBatch(np.stack([seg(g) for g in first_good]), acts, np.stack([seg(not g) for g in first_good]),
                     acts.copy(), first_good.astype(np.float32), np.ones(n, np.float32))


def _small_pt(**kw) -> PreferenceTransformerReward:
    args = dict(d_model=32, n_heads=2, dropout=0.0, lr=1e-3, batch_size=32, seed=0)
    return PreferenceTransformerReward(2, 1, **{**args, **kw})


def test_learns_non_markovian_preference_that_an_mlp_cannot() -> None:
    rng = np.random.default_rng(0)
    train, test = _key_door(256, rng), _key_door(200, rng)
    pt = _small_pt()
    pt.fit(train, epochs=25)
    held = pt.evaluate(test)
    assert held["accuracy"] >= 0.95 and held["loss"] < 0.2
    s1, s2 = pt.segment_return_samples(test.obs1, test.act1), pt.segment_return_samples(test.obs2, test.act2)
    assert np.mean((s1[0] > s2[0]) == (test.p > 0.5)) >= 0.95  # the first-preferred convention is not flipped

    mlp = EnsembleReward(2, 1, n_members=3, hidden=(64, 64), seed=0)
    fit = mlp.fit(train, epochs=25)
    assert fit["loss"] == pytest.approx(math.log(2.0), abs=1e-4)  # cannot move off chance
    r1, r2 = mlp.predict(test.obs1, test.act1).sum(-1), mlp.predict(test.obs2, test.act2).sum(-1)
    assert np.abs(r1 - r2).max() < 1e-4  # equal returns: P(first) = 1/2 for every pair
    assert mlp.evaluate(test)["loss"] == pytest.approx(math.log(2.0), abs=1e-4)


def test_zero_weight_labels_do_not_count() -> None:
    rng = np.random.default_rng(1)
    good = _key_door(192, rng)
    flipped = good._replace(p=1.0 - good.p, weight=np.zeros(192, np.float32))
    both = PairBatch(*(np.concatenate([a, b]) for a, b in zip(good, flipped)))
    pt = _small_pt()
    pt.fit(both, epochs=25)
    assert pt.evaluate(_key_door(200, rng))["accuracy"] >= 0.95


def test_per_step_rewards_follow_pt_relabelling_windows() -> None:
    """predict on sequences: step t sees the `context` steps up to t, positioned from 0 (PT's label_mode='last');
    single transitions are one-step windows."""
    rng = np.random.default_rng(2)
    pt = _small_pt(context=4, seed=3)
    obs, act = rng.standard_normal((2, 9, 2)).astype(np.float32), rng.standard_normal((2, 9, 1)).astype(np.float32)
    got = pt.predict(obs, act)
    assert got.shape == (2, 9)
    for t in range(9):
        lo = max(0, t - 3)
        alone = pt.predict(obs[:, lo:t + 1], act[:, lo:t + 1])[:, -1]  # the window as its own sequence
        np.testing.assert_allclose(got[:, t], alone, atol=1e-5)
    flat = pt.predict(obs.reshape(-1, 2), act.reshape(-1, 1))
    np.testing.assert_allclose(flat, pt.predict(obs.reshape(-1, 1, 2), act.reshape(-1, 1, 1))[:, 0], atol=1e-6)
    assert pt.predict(obs[0, 0], act[0, 0]).shape == ()
    # context matters: with history, step 5 differs from the same step seen alone
    assert abs(got[0, 5] - flat.reshape(2, 9)[0, 5]) > 1e-4


def test_fit_sets_context_from_segments_and_members_spread() -> None:
    rng = np.random.default_rng(3)
    pairs = _key_door(32, rng)
    pt = _small_pt(members=2)
    assert pt.context is None
    pt.fit(pairs, epochs=1)
    assert pt.context == L
    mean, std = pt.predict_std(pairs.obs1, pairs.act1)
    assert mean.shape == std.shape == (32, L) and std.max() > 0
    assert pt.segment_return_samples(pairs.obs1, pairs.act1).shape == (2, 32)
    one = _small_pt()
    assert one.predict_std(pairs.obs1, pairs.act1)[1].max() == 0.0


def test_state_dict_round_trip_and_mismatch() -> None:
    rng = np.random.default_rng(4)
    pairs = _key_door(32, rng)
    a = _small_pt()
    a.fit(pairs, epochs=2)
    b = _small_pt(seed=9)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.predict(pairs.obs1, pairs.act1), b.predict(pairs.obs1, pairs.act1))
    assert b.context == L
    a.fit(pairs, epochs=1), b.fit(pairs, epochs=1)  # optimiser and data order resume too
    np.testing.assert_array_equal(a.predict(pairs.obs2, pairs.act2), b.predict(pairs.obs2, pairs.act2))
    with pytest.raises(PbrlError, match="does not match"):
        _small_pt(d_model=16).load_state_dict(a.state_dict())
    old = a.state_dict()  # saved before the reference check: no version, sqrt(d) attention and GELU
    old["config"] = {k: v for k, v in old["config"].items() if k != "version"}
    with pytest.raises(PbrlError, match="version-1 Preference Transformer.*fit the reward again"):
        b.load_state_dict(old)


def test_lr_schedule_is_optax_warmup_cosine_hand_values() -> None:
    """optax.warmup_cosine_decay_schedule(1e-4, peak 1e-3, warmup 10, decay_steps 100, end 1e-4), by hand: linear
    1e-4 -> 1e-3 over updates 0..10, then 1e-4 + 9e-4 * (1 + cos(pi (t - 10) / 90)) / 2."""
    lr = lambda t: warmup_cosine_lr(t, 100, 1e-4)  # noqa: E731
    assert [lr(0), lr(5), lr(10)] == pytest.approx([1e-4, 5.5e-4, 1e-3], rel=1e-9)
    assert [lr(55), lr(100), lr(130)] == pytest.approx([5.5e-4, 1e-4, 1e-4], rel=1e-9)
    assert lr(40) == pytest.approx(1e-4 + 9e-4 * (1 + math.cos(math.pi / 3)) / 2, rel=1e-9)


def test_fit_steps_the_rate_on_the_schedule_over_its_updates() -> None:
    """3 pairs in batches of 2 for 5 epochs = 10 updates: warm-up over update 0 only (int(0.1 * 10) = 1), then the
    cosine over 9; 'constant' keeps lr. A second fit starts its own schedule."""
    pairs = _key_door(3, np.random.default_rng(0))
    for schedule in ("warmup_cosine", "constant"):
        pt, seen = _small_pt(batch_size=2, lr=1e-4, lr_schedule=schedule), []
        step = pt.optimizer.step
        pt.optimizer.step = lambda *a, **k: (seen.append(pt.optimizer.param_groups[0]["lr"]), step(*a, **k))[1]
        pt.fit(pairs, epochs=5)
        pt.fit(pairs, epochs=1)  # 2 updates: warm-up int(0.2) = 0, a cosine over 2 from the peak: 1e-3, 5.5e-4
        want = ([1e-4] + [1e-4 + 9e-4 * (1 + math.cos(math.pi * t / 9)) / 2 for t in range(9)] + [1e-3, 5.5e-4]
                if schedule == "warmup_cosine" else [1e-4] * 12)
        assert seen == pytest.approx(want, rel=1e-9)
    with pytest.raises(PbrlError, match="lr_schedule"):
        _small_pt(lr_schedule="cosine")


def test_same_seed_same_model_whatever_the_global_rng() -> None:
    torch.manual_seed(0)
    a = _small_pt(seed=5)
    torch.manual_seed(123)
    b = _small_pt(seed=5)
    x, u = np.ones((1, 3, 2), np.float32), np.zeros((1, 3, 1), np.float32)
    np.testing.assert_array_equal(a.predict(x, u), b.predict(x, u))


def test_bad_inputs_are_one_line_errors() -> None:
    with pytest.raises(PbrlError, match="n_heads"):
        PreferenceTransformerReward(2, 1, d_model=30, n_heads=4)
    with pytest.raises(PbrlError, match="context"):
        PreferenceTransformerReward(2, 1, context=0)
    pt = _small_pt(max_len=4)
    with pytest.raises(PbrlError, match="obs_dim=2"):
        pt.predict(np.zeros((3, 5)), np.zeros((3, 1)))
    with pytest.raises(PbrlError, match="max_len=4"):
        pt.fit(_key_door(4, np.random.default_rng(0)), epochs=1)
    with pytest.raises(PbrlError, match="epochs"):
        pt.fit(_key_door(4, np.random.default_rng(0)), epochs=0)


def test_heldout_metrics_hand_values() -> None:
    # K = 2 members, 2 pairs: member 0 logits [2, 0], member 1 logits [0, -2]; labels p = [1, 0]
    r1, r2 = torch.tensor([[2.0, 0.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    got = heldout_metrics(r1, r2, np.array([1.0, 0.0]), np.ones(2))
    assert got["loss"] == pytest.approx((2 * math.log1p(math.exp(-2.0)) + 2 * math.log(2.0)) / 4, rel=1e-6)
    assert got["accuracy"] == 1.0  # member means: first [1, 0] vs second [0, 1]


def test_blocks_are_the_reference_codes_relu_mlp_with_dropout_on_its_output_only() -> None:
    """flaxmodels' GPT2MLP: Dense -> ReLU (``--activations relu``) -> Dense -> Dropout; torch's layer would also drop
    out between the two Dense layers."""
    block = _small_pt(dropout=0.1).nets[0].blocks.layers[0]
    assert block.activation is torch.nn.functional.relu and isinstance(block.dropout, torch.nn.Identity)
    assert block.dropout2.p == 0.1 and block.dropout1.p == 0.1  # residual dropout after attention and after the MLP
    x = torch.randn(3, 5, 32)
    block.train()
    torch.manual_seed(0)
    mlp_out = block._ff_block(block.norm2(x))
    full = block.linear2(torch.relu(block.linear1(block.norm2(x)))) / 0.9  # no unit dropped inside the MLP
    kept = mlp_out != 0  # one dropout mask, on the output only: every surviving output is the full MLP's
    assert 0.8 < kept.float().mean() < 0.97 and torch.allclose(mlp_out[kept], full[kept], atol=1e-5)

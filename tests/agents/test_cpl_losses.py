"""CPL and BC: losses against hand-computed values, label direction, the actor, and a learner step."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pbrl.agents.bc import BCLearner, GaussianActor, bc_loss
from pbrl.agents.cpl import CPLLearner, cpl_loss, cpl_scores, preference_weights
from pbrl.agents.offline_data import OfflineData, PairBatchIdx, PairSampler
from pbrl.types import PbrlError


def _sp(x: float) -> float:  # softplus = -log sigmoid(-x)
    return math.log1p(math.exp(x))


def test_cpl_loss_hand_computed() -> None:
    s1, s2 = torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0.0, 0.0, 0.0])
    # p=1: -log sig(1 - 0.5*0) = softplus(-1); p=0: -log sig(0 - 0.5*1) = softplus(0.5); tie: their mean
    per = [_sp(-1.0), _sp(0.5), 0.5 * (_sp(-1.0) + _sp(0.5))]
    for k, p in enumerate([1.0, 0.0, 0.5]):
        got = cpl_loss(s1[k : k + 1], s2[k : k + 1], torch.tensor([p]), bias=0.5)
        assert float(got) == pytest.approx(per[k], rel=1e-6)
    assert float(cpl_loss(s1, s2, torch.tensor([1.0, 0.0, 0.5]), bias=0.5)) == pytest.approx(np.mean(per), rel=1e-6)


def test_cpl_bias_one_is_bradley_terry_and_bias_checked() -> None:
    s1, s2 = torch.tensor([2.0]), torch.tensor([-1.0])
    assert float(cpl_loss(s1, s2, torch.tensor([1.0]), bias=1.0)) == pytest.approx(_sp(-3.0), rel=1e-6)
    with pytest.raises(PbrlError, match=r"algo.bias: expected lambda in \(0, 1\]"):
        cpl_loss(s1, s2, torch.tensor([1.0]), bias=0.0)


def test_cpl_label_direction_first_preferred_raises_first_score() -> None:
    """A flipped label convention would make s1 fall below s2 here."""
    s = torch.zeros(2, requires_grad=True)
    opt = torch.optim.SGD([s], lr=0.5)
    for _ in range(50):
        loss = cpl_loss(s[:1], s[1:], torch.tensor([1.0]), bias=0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(s[0].detach()) > float(s[1].detach())


def test_scores_and_bc_loss_hand_computed() -> None:
    logp = torch.tensor([[-1.0, -2.0], [0.0, -4.0]])
    assert cpl_scores(logp, 0.1).tolist() == pytest.approx([-0.3, -0.4])
    assert float(bc_loss(logp)) == pytest.approx(1.75)


def test_actor_log_prob_matches_torch_normal_and_act_is_deterministic() -> None:
    torch.manual_seed(0)
    actor = GaussianActor(3, 2, hidden=(8,), dropout=0.5)
    obs, act = torch.randn(5, 3), torch.rand(5, 2) * 2 - 1
    mean, log_std = actor.eval().dist_params(obs)
    ref = torch.distributions.Normal(mean, log_std.exp()).log_prob(act).sum(-1)
    assert torch.allclose(actor.log_prob(obs, act), ref, atol=1e-5)
    actor.train()
    a1, a2 = actor.act(obs.numpy()), actor.act(obs.numpy())
    assert np.array_equal(a1, a2) and actor.training and np.all(np.abs(a1) <= 1)


def test_fixed_std_actor_scores_negative_squared_error_and_round_trips(tmp_path) -> None:
    """std = 1/sqrt(2): log pi = -||mu - a||^2 + const (the CPL code's deterministic actor); saved and reloaded."""
    from pbrl.agents.offline_policy import load_policy, save_policy

    torch.manual_seed(0)
    actor = GaussianActor(3, 2, hidden=(8,), dropout=0.0, fixed_std=1 / math.sqrt(2)).eval()
    obs, act = torch.randn(5, 3), torch.rand(5, 2) * 2 - 1
    mean, log_std = actor.dist_params(obs)
    assert torch.allclose(log_std, torch.full_like(mean, -0.5 * math.log(2)))
    const = -2 * (0.5 * math.log(math.pi))  # per action dim: -log sigma - log sqrt(2 pi) = -0.5 log(pi)
    assert torch.allclose(actor.log_prob(obs, act), -(act - mean).pow(2).sum(-1) + const, atol=1e-5)
    # what CPL scores and BC maximises: the CPL code's lp = -||mu - a||^2, without the constant
    assert torch.allclose(actor.log_likelihood(obs, act), -(act - mean).pow(2).sum(-1), atol=1e-6)
    save_policy(actor, tmp_path / "policy.pt")
    again = load_policy(tmp_path / "policy.pt")
    assert again.config["fixed_std"] == pytest.approx(1 / math.sqrt(2))
    assert torch.allclose(again(obs), actor(obs))


def _constant_mean_learner(mu: list[float], acts: np.ndarray, **kw) -> CPLLearner:
    """A CPL learner whose fixed-std actor outputs the mean ``mu`` for every observation (one linear layer with
    zero weights and bias atanh(mu)), over segments with actions ``acts`` (N, L, d)."""
    n, length, _ = acts.shape
    data = OfflineData(obs=np.zeros((n, length, 1), np.float32), acts=acts.astype(np.float32),
                       first=np.array([0]), second=np.array([1]), p=np.ones(1, np.float32))
    learner = CPLLearner(data, hidden=(), dropout=0.0, lr=1e-3, batch_pairs=1, pairing="sparse",
                         rng=np.random.default_rng(0), **kw)
    layer = learner.policy.net[0]
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.copy_(torch.atanh(torch.tensor(mu)))
    return learner


def test_cpl_loss_of_the_fixed_std_actor_hand_computed_with_conservative_bias() -> None:
    """CPL code: score = alpha * sum_t -||mu(s_t) - a_t||^2 (no Gaussian constant), loss = biased BCE, lambda = 0.5.

    Segment A: actions (0.5, -0.5), (0.7, -0.5) against mu = (0.5, -0.5): squared errors 0 + 0.04 -> S_A = -0.004.
    Segment B: actions (0.1, -0.5), (0.5, 0.5): squared errors 0.16 + 1.0 -> S_B = -0.116 (alpha = 0.1).
    Pairs: A > B, B > A, A = B.
    """
    acts = np.array([[[0.5, -0.5], [0.7, -0.5]], [[0.1, -0.5], [0.5, 0.5]]])
    learner = _constant_mean_learner([0.5, -0.5], acts, alpha=0.1, bias=0.5, bc_weight=0.0, bc_steps=0,
                                     std=1 / math.sqrt(2))
    s_a, s_b = 0.1 * -(0.0 + 0.04), 0.1 * -(0.16 + 1.0)
    a_wins = math.log1p(math.exp(-(s_a - 0.5 * s_b)))  # -log sigmoid(S_A - lambda S_B) = log(1 + e^-0.054)
    b_wins = math.log1p(math.exp(-(s_b - 0.5 * s_a)))  # log(1 + e^0.114)
    expected = (a_wins + b_wins + 0.5 * (a_wins + b_wins)) / 3
    batch = PairBatchIdx(segs=np.array([0, 1]), i1=np.array([0, 1, 0]), i2=np.array([1, 0, 1]),
                         p=np.array([1.0, 1.0, 0.5], np.float32))
    loss, out = learner.loss(batch, contrastive=True)
    got = float(loss.detach())
    assert got == pytest.approx(expected, rel=1e-6)
    assert out["pref_acc"] == 0.5  # A > B scored right, B > A wrong; the tie is not counted
    # the normalising constant (-0.5 ln pi per step and action dim) would have shifted both logits by
    # -alpha * 4 * c * (1 - lambda) = +0.0572 and changed the loss: the test would see it
    shift = -0.1 * 4 * -0.5 * math.log(math.pi) * 0.5
    shifted = (math.log1p(math.exp(-(s_a - 0.5 * s_b) - shift)) + math.log1p(math.exp(-(s_b - 0.5 * s_a) - shift)))
    assert abs(got - 1.5 * shifted / 3) > 1e-3
    # warm-up: BC = mean over the 2 x 2 steps of ||mu - a||^2 (the CPL code's MSE), here (0.04 + 1.16) / 4
    bc, _ = learner.loss(batch, contrastive=False)
    assert float(bc.detach()) == pytest.approx(1.2 / 4, rel=1e-6)


def test_std_setting_is_checked() -> None:
    from pbrl.agents.bc import parse_std

    assert parse_std("learned") is None and parse_std(0.5) == 0.5 and parse_std("0.25") == 0.25
    for bad in ("fixed", 0, -1.0):
        with pytest.raises(PbrlError, match="algo.std: expected 'learned' or a positive number"):
            parse_std(bad)


def _toy_data(rng: np.random.Generator, n: int = 16, L: int = 5) -> OfflineData:
    """Pairs of one good (action +0.8) and one bad (action -0.8) segment in random order, plus one tie."""
    good = np.zeros(n, bool)
    good[np.arange(0, n, 2) + rng.integers(0, 2, n // 2)] = True
    good[-2:] = True  # the last pair is a tie between two good segments
    acts = np.where(good[:, None, None], 0.8, -0.8) * np.ones((n, L, 1)) + 0.05 * rng.standard_normal((n, L, 1))
    first, second = np.arange(0, n, 2), np.arange(1, n, 2)
    p = np.where(good[first] == good[second], 0.5, good[first].astype(float))
    return OfflineData(obs=rng.standard_normal((n, L, 2)).astype(np.float32), acts=acts.astype(np.float32),
                       first=first, second=second, p=p.astype(np.float32))


@pytest.mark.parametrize("std", ["learned", 0.5])
def test_cpl_learner_prefers_good_actions_after_training(rng: np.random.Generator, std: object) -> None:
    torch.manual_seed(0)
    data = _toy_data(rng)
    learner = CPLLearner(data, alpha=0.1, bias=0.5, bc_weight=0.0, bc_steps=5, pairing="sparse", hidden=(16,),
                         dropout=0.0, lr=3e-3, batch_pairs=6, rng=rng, std=std)
    metrics = [learner.update(step) for step in range(150)]
    assert "pref_acc" not in metrics[0] and "pref_acc" in metrics[-1]
    assert float(np.mean(learner.policy.act(data.obs.reshape(-1, 2)))) > 0.3


def test_bc_preferred_only_clones_preferred_segments(rng: np.random.Generator) -> None:
    data = _toy_data(rng)
    pref = data.preferred()
    assert np.all(data.acts[pref].mean((1, 2)) > 0)  # every preferred segment is a good one
    bc = BCLearner(data, preferred_only=True, hidden=(8,), dropout=0.0, lr=1e-3, batch_segments=4, rng=rng)
    assert set(bc.pool.tolist()) == set(pref.tolist())
    tie = OfflineData(data.obs, data.acts, data.first, data.second, np.full_like(data.p, 0.5))
    with pytest.raises(PbrlError, match="algo.preferred_only"):
        BCLearner(tie, preferred_only=True, hidden=(8,), dropout=0.0, lr=1e-3, batch_segments=4, rng=rng)


def test_preference_weights_count_wins_and_split_ties() -> None:
    # pairs (0 > 1), (2 < 1), (0 = 2): segment 0 wins once and ties once, 1 wins once, 2 ties once
    w = preference_weights(3, np.array([0, 2, 0]), np.array([1, 1, 2]), np.array([1.0, 0.0, 0.5], np.float32))
    assert w.tolist() == [1.5, 1.0, 0.5]


def _bc_only_learner(data: OfflineData, bc_data: str, rng: np.random.Generator) -> CPLLearner:
    """CPL in its BC warm-up for the whole run, so only the BC term (and its data choice) trains the actor."""
    return CPLLearner(data, alpha=0.1, bias=0.5, bc_weight=1.0, bc_steps=10_000, bc_data=bc_data, pairing="sparse",
                      hidden=(16,), dropout=0.0, lr=3e-3, batch_pairs=8, rng=rng)


def test_cpl_bc_data_preferred_clones_only_the_winners(rng: np.random.Generator) -> None:
    """BC on all scored segments averages good (+0.8) and bad (-0.8) actions; on preferred ones it is good."""
    data = _toy_data(rng)
    means = {}
    for bc_data in ("all", "preferred"):
        torch.manual_seed(0)
        learner = _bc_only_learner(data, bc_data, np.random.default_rng(1))
        for step in range(300):
            learner.update(step)
        means[bc_data] = float(np.mean(learner.policy.act(data.obs.reshape(-1, 2))))
    assert means["preferred"] > 0.6 and abs(means["all"]) < 0.4, means
    with pytest.raises(PbrlError, match="algo.bc_data"):
        _bc_only_learner(data, "winners", rng)


def test_dense_sampler_takes_whole_components(rng: np.random.Generator) -> None:
    # two groups of 3 fully compared segments: components {0,1,2} and {3,4,5}
    first, second = np.array([0, 0, 1, 3, 3, 4]), np.array([1, 2, 2, 4, 5, 5])
    data = OfflineData(np.zeros((6, 2, 1), np.float32), np.zeros((6, 2, 1), np.float32), first, second,
                       np.ones(6, np.float32))
    comps = sorted(sorted(c.tolist()) for c in data.components())
    assert comps == [[0, 1, 2], [3, 4, 5]]
    batch = PairSampler(data, batch_pairs=2, pairing="dense", rng=rng).sample()
    assert len(batch.segs) == 3 and len(batch.i1) == 3  # 3 segments scored, 3 comparisons used
    with pytest.raises(PbrlError, match="algo.pairing"):
        PairSampler(data, batch_pairs=2, pairing="full", rng=rng)


def test_mask_dropout_is_dropout() -> None:
    """Training: each unit kept with probability 1 - p and scaled by 1 / (1 - p) (expectation preserved); eval:
    the identity; the gradient flows through kept units only."""
    from pbrl.agents.offline_data import MaskDropout

    torch.manual_seed(0)
    drop = MaskDropout(0.25)
    x = torch.full((400, 500), 2.0, requires_grad=True)
    y = drop(x)
    values = torch.unique(y.detach()).tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(2.0 / 0.75)
    kept = float((y != 0).float().mean())
    assert abs(kept - 0.75) < 0.005  # 200k Bernoulli(0.75) draws: std 0.001
    assert abs(float(y.detach().mean()) - 2.0) < 0.02
    y.sum().backward()
    assert torch.equal(x.grad != 0, y != 0)
    assert torch.equal(drop.eval()(x), x)
    with pytest.raises(PbrlError, match=r"dropout: expected a probability in \[0, 1\)"):
        MaskDropout(1.0)

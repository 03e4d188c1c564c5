"""GaussianReward (PEARL RRL): learning, soft labels and weights, the KL term, uncertainty, checkpoints,
query selection and the conservative agent reward."""

from pathlib import Path

import numpy as np
import pytest

from pbrl.agents.preference import FeedbackLoop, FeedbackSchedule
from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Segment, stack_pairs
from pbrl.feedback.query import select_pairs
from pbrl.feedback.teachers import teacher_from_preset
from pbrl.rewards.ensemble import EnsembleReward
from pbrl.rewards.evaluation import predicted_returns, strict_accuracy
from pbrl.rewards.gaussian import GaussianReward
from pbrl.types import PairBatch, PbrlError, RewardModel

OBS, ACT, L = 3, 1, 10


def segments(n: int, rng: np.random.Generator) -> list[Segment]:
    """True per-step reward = obs[0] + 0.5 * act[0] (a function the model can learn exactly)."""
    out = []
    for _ in range(n):
        obs = rng.normal(size=(L, OBS)).astype(np.float32)
        acts = rng.uniform(-1, 1, size=(L, ACT)).astype(np.float32)
        out.append(Segment(obs=obs, acts=acts, rewards=(0.3 * (obs[:, 0] + 0.5 * acts[:, 0])).astype(np.float32)))
    return out


def pairs(n: int, seed: int, p_first: float = 1.0) -> PairBatch:
    """Oracle pairs; with ``p_first < 1`` the labels are soft: p_first for the better first segment."""
    rng = np.random.default_rng(seed)
    first, second = segments(n, rng), segments(n, rng)
    hard = teacher_from_preset("oracle", rng=rng).label(first, second).p
    return stack_pairs(first, second, np.where(hard > 0.5, p_first, 1.0 - p_first).astype(np.float32))


def model(**kw) -> GaussianReward:
    return GaussianReward(OBS, ACT, hidden=(32, 32), lr=5e-3, batch_size=32, seed=0, **kw)


def heldout_acc(m: RewardModel, test: PairBatch) -> float:
    r1, r2 = predicted_returns(m, test)
    return strict_accuracy(r1 - r2, test.p)


def test_is_a_reward_model_and_learns_from_soft_labels() -> None:
    m = model()  # hard labels are learnt in test_label_weights_are_used
    assert isinstance(m, RewardModel)
    metrics = m.fit(pairs(160, seed=1, p_first=0.8), epochs=15)  # soft "transferred" labels: same order
    assert metrics["train_acc"] > 0.85
    assert heldout_acc(m, pairs(200, seed=99)) > 0.75


def test_label_weights_are_used() -> None:
    clean, test = pairs(120, seed=2), pairs(200, seed=98)
    flipped = PairBatch(*clean[:4], p=1.0 - clean.p, weight=clean.weight)
    both = PairBatch(*(np.concatenate([a, b]) for a, b in zip(clean, flipped)))
    zero_flipped = both._asdict() | {"weight": np.r_[np.ones(120), np.zeros(120)].astype(np.float32)}
    weighted = model()
    weighted.fit(PairBatch(**zero_flipped), epochs=12)
    unweighted = model()
    unweighted.fit(both, epochs=12)
    assert heldout_acc(weighted, test) > 0.75  # the contradicting half carries no weight
    assert heldout_acc(unweighted, test) < heldout_acc(weighted, test) - 0.1


def test_kl_weight_pulls_towards_standard_normal() -> None:
    batch, probe = pairs(128, seed=3), segments(20, np.random.default_rng(4))
    obs, act = np.stack([s.obs for s in probe]), np.stack([s.acts for s in probe])
    sigmas = {}
    for w in (0.0, 100.0):
        m = model(kl_weight=w)
        m.fit(batch, epochs=15)
        mu, sigma = m.predict_std(obs, act)
        assert mu.shape == sigma.shape == (20, L) and (sigma > 0).all()
        sigmas[w] = float(sigma.mean())
        if w == 100.0:
            assert abs(float(mu.mean())) < 0.1 and abs(sigmas[w] - 1.0) < 0.15
    assert sigmas[0.0] < 0.5 * sigmas[100.0]  # without the regulariser the variance shrinks


def test_return_samples_and_checkpoint_round_trip() -> None:
    m = model(eval_samples=7)
    m.fit(pairs(64, seed=5), epochs=3)
    seg = pairs(6, seed=6)
    s1 = m.segment_return_samples(seg.obs1, seg.act1)
    assert s1.shape == (7, 6) and np.array_equal(s1, m.segment_return_samples(seg.obs1, seg.act1))
    assert np.allclose(s1.mean(0), m.segment_return_mean(seg.obs1, seg.act1), atol=3 * s1.std(0).max() + 1e-6)
    ev = m.evaluate(seg)  # accuracy ranks by the expected returns, not by one noisy sample
    assert ev["accuracy"] == heldout_acc(m, seg) and ev["loss"] > 0
    other = model(eval_samples=7)
    other.load_state_dict(m.state_dict())
    assert np.array_equal(other.predict(seg.obs1, seg.act1), m.predict(seg.obs1, seg.act1))
    with pytest.raises(PbrlError, match="does not match"):
        model(kl_weight=0.5).load_state_dict(m.state_dict())


def test_gaussian_ensemble_learns_and_its_std_holds_sigma_and_disagreement() -> None:
    m = model(members=3, eval_samples=9)
    assert m.fit(pairs(160, seed=11), epochs=12)["train_acc"] > 0.85
    test = pairs(200, seed=97)
    assert heldout_acc(m, test) > 0.8
    mu_m, sigma_m = (t.numpy() for t in m._mu_sigma(test.obs1, test.act1))  # per model: (3, n, L)
    assert mu_m.shape == (3, 200, L) and np.ptp(mu_m, axis=0).max() > 1e-3  # the models differ
    mean, std = m.predict_std(test.obs1, test.act1)
    assert np.allclose(mean, mu_m.mean(0), atol=1e-6) and np.allclose(mean, m.predict(test.obs1, test.act1))
    # mixture variance = mean sigma^2 + var of the means: above the average sigma wherever the models disagree
    assert np.allclose(std ** 2, (sigma_m ** 2).mean(0) + mu_m.var(0), rtol=1e-4, atol=1e-7)
    assert (std ** 2 > (sigma_m ** 2).mean(0)).mean() > 0.99
    samples = m.segment_return_samples(test.obs1[:5], test.act1[:5])  # sample k from model k mod 3
    assert samples.shape == (9, 5)
    ret_std = np.sqrt((sigma_m[:, :5] ** 2).sum(-1))
    z = (samples[3] - mu_m[0, :5].sum(-1)) / ret_std[0]  # sample 3 comes from model 0: a plausible draw
    assert np.all(np.abs(z) < 6)
    other = model(members=3, eval_samples=9)
    other.load_state_dict(m.state_dict())
    assert np.array_equal(other.predict(test.obs1, test.act1), m.predict(test.obs1, test.act1))
    with pytest.raises(PbrlError, match="does not match"):
        model(members=2).load_state_dict(m.state_dict())


def test_one_member_is_plain_rrl() -> None:
    """members=1: predict_std is the model's own sigma (no disagreement term)."""
    m = model()
    m.fit(pairs(64, seed=12), epochs=2)
    seg = pairs(10, seed=13)
    mu, sigma = (t.numpy() for t in m._mu_sigma(seg.obs1, seg.act1))
    mean, std = m.predict_std(seg.obs1, seg.act1)
    assert np.array_equal(mean, mu[0]) and np.allclose(std, sigma[0])


def test_bad_arguments_and_inputs() -> None:
    with pytest.raises(PbrlError, match="members"):
        model(members=0)
    with pytest.raises(PbrlError, match="kl_weight"):
        model(kl_weight=-1.0)
    with pytest.raises(PbrlError, match="n_samples"):
        model(n_samples=0)
    m = model()
    bad = pairs(8, seed=7)
    with pytest.raises(PbrlError, match="PairBatch.p"):
        m.fit(PairBatch(**bad._asdict() | {"p": bad.p + 2.0}), epochs=1)
    with pytest.raises(PbrlError, match="PairBatch.obs2 has shape"):
        m.fit(PairBatch(**bad._asdict() | {"obs2": bad.obs2[:, :5]}), epochs=1)
    with pytest.raises(PbrlError, match="segment_return_samples"):
        m.segment_return_samples(bad.obs1[0], bad.act1[0])


def test_query_selection_uses_the_gaussian_spread(rng: np.random.Generator) -> None:
    m = model()
    m.fit(pairs(100, seed=8), epochs=5)
    cands = segments(30, rng)
    for strategy in ("disagreement", "entropy"):
        i1, i2 = select_pairs(strategy, cands, 5, rng=rng, reward_model=m, oversample=4)
        assert len(i1) == len(i2) == 5 and (i1 != i2).all()


@pytest.mark.parametrize("make", [lambda: model(), lambda: EnsembleReward(OBS, ACT, n_members=3, hidden=(16,), seed=0)])
def test_conservative_reward_is_mean_minus_k_std(tmp_path: Path, make) -> None:
    m = make()
    m.fit(pairs(64, seed=9), epochs=3)
    kw = dict(reward_model=m, labeller=teacher_from_preset("oracle", rng=np.random.default_rng(0)),
              store=PreferenceStore(tmp_path / "s.sqlite"), schedule=FeedbackSchedule(10, 5, 100, L),
              source="scripted", rng=np.random.default_rng(0))
    probe = pairs(4, seed=10)
    mean, std = m.predict_std(probe.obs1, probe.act1)
    assert std.max() > 0
    plain = FeedbackLoop(**kw).reward_fn(probe.obs1, probe.act1)
    careful = FeedbackLoop(**kw, conservative_k=2.0).reward_fn(probe.obs1, probe.act1)
    assert np.allclose(plain, mean, atol=1e-6)
    assert np.allclose(careful, mean - 2.0 * std, atol=1e-6)
    with pytest.raises(PbrlError, match="conservative_k"):
        FeedbackLoop(**kw, conservative_k=-1.0)

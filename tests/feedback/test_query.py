"""Query selection: uniform, ensemble disagreement and entropy (PEBBLE / B-Pref)."""

import numpy as np
import pytest

from pbrl.data.trajectory import Segment
from pbrl.feedback.query import STRATEGIES, binary_entropy, member_preference_probs, random_pairs, select_pairs
from pbrl.types import PbrlError


class FakeModel:
    """Deterministic "ensemble": member k's return of a segment is ``obs[:, 0].sum() + k * obs[:, 1].sum()``.

    Only segment_return_samples is needed by query selection, so this isolates the selection logic.
    """

    def __init__(self, n_members: int = 3):
        self.n_members = n_members
        self.calls = 0

    def segment_return_samples(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        self.calls += 1
        base, spread = obs[:, :, 0].sum(1), obs[:, :, 1].sum(1)
        return np.stack([base + k * spread for k in range(self.n_members)])


def make_segment(value: float, spread: float = 0.0, length: int = 4) -> Segment:
    obs = np.zeros((length, 2), np.float32)
    obs[0] = (value, spread)
    return Segment(obs=obs, acts=np.zeros((length, 1), np.float32), rewards=np.zeros(length, np.float32))


def values_segments(values, spreads=None) -> list[Segment]:
    spreads = np.zeros(len(values)) if spreads is None else spreads
    return [make_segment(v, s) for v, s in zip(values, spreads)]


def test_uniform_pairs_are_valid_and_cover_candidates():
    first, second = select_pairs("uniform", values_segments(range(10)), 500, rng=np.random.default_rng(0))
    assert first.shape == second.shape == (500,) and first.dtype == np.int64
    assert np.all(first != second)
    assert set(first) == set(second) == set(range(10))
    two = select_pairs("uniform", values_segments([0, 1]), 50, rng=np.random.default_rng(1))
    assert np.all(two[0] + two[1] == 1)


def test_random_pairs_second_is_uniform_over_others():
    first, second = random_pairs(3, 30000, np.random.default_rng(0))
    for i in range(3):
        counts = np.bincount(second[first == i], minlength=3) / (first == i).sum()
        assert counts[i] == 0 and np.allclose(np.delete(counts, i), 0.5, atol=0.03)


def test_same_seed_same_pairs():
    cands = values_segments(np.linspace(0, 1, 20), np.linspace(1, 0, 20))
    for strategy in STRATEGIES:
        a = select_pairs(strategy, cands, 8, rng=np.random.default_rng(4), reward_model=FakeModel())
        b = select_pairs(strategy, cands, 8, rng=np.random.default_rng(4), reward_model=FakeModel())
        np.testing.assert_array_equal(a, b)


def test_disagreement_keeps_pairs_where_members_disagree():
    # Members agree on every segment except 3 and 7, so only pairs touching them have disagreement > 0.
    spreads = np.zeros(12)
    spreads[[3, 7]] = 2.0
    cands = values_segments(np.zeros(12), spreads)
    first, second = select_pairs("disagreement", cands, 5, rng=np.random.default_rng(0),
                                 reward_model=FakeModel(), oversample=10)
    assert len(first) == 5
    assert all({3, 7} & {i, j} for i, j in zip(first, second))


def _hand_probs(values: np.ndarray, spreads: np.ndarray, first: np.ndarray, second: np.ndarray, members: int = 3):
    """FakeModel's per-member P(first) worked out directly: member k's return is value + k * spread."""
    k = np.arange(members)[:, None]
    r1, r2 = values[first] + k * spreads[first], values[second] + k * spreads[second]
    return 1.0 / (1.0 + np.exp(-(r1 - r2)))


def test_selection_is_top_n_of_the_oversampled_candidates():
    values, spreads = np.random.default_rng(1).normal(size=15), np.random.default_rng(2).normal(size=15)
    cands = values_segments(values, spreads)
    # the pool select_pairs draws: 4 x 10 ordered pairs, the second a uniform *other* index (offset in [1, n))
    draw = np.random.default_rng(9)
    first = draw.integers(0, 15, size=40)
    second = (first + draw.integers(1, 15, size=40)) % 15
    probs = _hand_probs(values.astype(np.float32).astype(float), spreads.astype(np.float32).astype(float), first,
                        second)
    mean = probs.mean(0)
    scores = {"disagreement": np.sqrt(((probs - mean) ** 2).mean(0)),  # std over members
              "entropy": -(mean * np.log(mean) + (1 - mean) * np.log(1 - mean))}  # H of the mean probability
    for strategy, score in scores.items():
        got = select_pairs(strategy, cands, 4, rng=np.random.default_rng(9), reward_model=FakeModel(), oversample=10)
        top = np.argsort(-score)[:4]
        assert sorted(zip(got[0].tolist(), got[1].tolist())) == sorted(zip(first[top].tolist(), second[top].tolist()))
        assert np.sort(score)[-4] > np.sort(score)[-5]  # no tie at the cut, so the top 4 are well defined


def test_entropy_prefers_pairs_with_close_predicted_returns():
    values = np.arange(20, dtype=float)
    cands = values_segments(values)
    first, second = select_pairs("entropy", cands, 6, rng=np.random.default_rng(0),
                                 reward_model=FakeModel(n_members=1), oversample=10)
    gaps = np.abs(values[first] - values[second])
    assert gaps.max() <= 2  # among 60 random pairs of 20 values, the 6 closest are within 2


def test_member_probs_convention_and_mixed_lengths():
    cands = [make_segment(2.0, length=4), make_segment(0.0, length=6), make_segment(0.0, length=4)]
    model = FakeModel(n_members=2)
    probs = member_preference_probs(model, cands, np.array([0, 1]), np.array([1, 0]))
    np.testing.assert_allclose(probs, [[1 / (1 + np.exp(-2)), 1 / (1 + np.exp(2))]] * 2)
    assert model.calls == 2  # one batched call per segment length


def test_binary_entropy_values():
    np.testing.assert_allclose(binary_entropy(np.array([0.5, 0.0, 1.0])), [np.log(2), 0.0, 0.0], atol=1e-9)


def test_errors():
    cands = values_segments(range(4))
    rng = np.random.default_rng(0)
    with pytest.raises(PbrlError, match="valid strategies: uniform, disagreement, entropy"):
        select_pairs("kcenter", cands, 2, rng=rng)
    for strategy in ("disagreement", "entropy"):
        with pytest.raises(PbrlError, match="needs a reward model"):
            select_pairs(strategy, cands, 2, rng=rng)
    with pytest.raises(PbrlError, match="at least 2 candidate segments, got 1"):
        select_pairs("uniform", cands[:1], 2, rng=rng)
    with pytest.raises(PbrlError, match="n_queries"):
        select_pairs("uniform", cands, -1, rng=rng)
    with pytest.raises(PbrlError, match="oversample"):
        select_pairs("entropy", cands, 2, rng=rng, reward_model=FakeModel(), oversample=0)
    assert select_pairs("entropy", cands, 0, rng=rng, reward_model=FakeModel())[0].shape == (0,)


def test_with_a_real_ensemble():
    from pbrl.data.trajectory import stack_pairs
    from pbrl.rewards.ensemble import EnsembleReward

    rng = np.random.default_rng(0)
    cands = [
        Segment(obs=rng.normal(size=(5, 3)).astype(np.float32), acts=rng.normal(size=(5, 2)).astype(np.float32),
                rewards=np.zeros(5, np.float32))
        for _ in range(30)
    ]
    model = EnsembleReward(3, 2, n_members=3, hidden=(16, 16), seed=0)
    i, j = random_pairs(30, 40, rng)
    model.fit(stack_pairs([cands[k] for k in i], [cands[k] for k in j], (i < j).astype(np.float32)), epochs=3)
    returns = model.segment_return_samples(np.stack([c.obs for c in cands]), np.stack([c.acts for c in cands]))

    def member_std(first, second):  # std over members of sigmoid(R1_k - R2_k), from the model's own returns
        return (1.0 / (1.0 + np.exp(-(returns[:, first] - returns[:, second])))).std(0)

    pool = random_pairs(30, 200, np.random.default_rng(1))
    first, second = select_pairs("disagreement", cands, 10, rng=np.random.default_rng(1), reward_model=model,
                                 oversample=20)
    assert np.all(first != second) and first.max() < 30
    assert member_std(first, second).min() >= np.quantile(member_std(*pool), 0.94) - 1e-6
    first, second = select_pairs("entropy", cands, 10, rng=np.random.default_rng(1), reward_model=model)
    assert first.shape == (10,) and np.all(first != second)

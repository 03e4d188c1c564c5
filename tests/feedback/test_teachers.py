"""B-Pref scripted teachers on hand-built segments."""

import math

import numpy as np
import pytest

from pbrl.data.trajectory import Segment
from pbrl.feedback.teachers import PRESETS, ScriptedTeacher, TeacherSpec, teacher_from_preset
from pbrl.types import PbrlError


def seg(rewards, **terms) -> Segment:
    r = np.asarray(rewards, np.float32)
    z = np.zeros((len(r), 1), np.float32)
    return Segment(obs=z, acts=z, rewards=r, terms={k: np.asarray(v, np.float32) for k, v in terms.items()})


def flat(total: float, length: int = 4) -> Segment:
    return seg(np.full(length, total / length))


def teacher(name: str, seed: int = 0, **kw) -> ScriptedTeacher:
    return teacher_from_preset(name, rng=np.random.default_rng(seed), **kw)


@pytest.mark.parametrize("name", ["oracle", "rational"])
def test_oracle_is_rational_with_exact_ties_equal(name):
    labels = teacher(name).label([flat(2), flat(1), flat(1)], [flat(1), flat(2), flat(1)])
    np.testing.assert_array_equal(labels.p, [1.0, 0.0, 0.5])
    assert labels.p.dtype == np.float32
    assert not labels.skipped.any() and labels.n_answered == 3


def test_presets_are_bpref_six():
    assert set(PRESETS) == {"oracle", "stochastic", "myopic", "mistake", "skip", "equal"}
    assert PRESETS["oracle"] == TeacherSpec(beta=math.inf, gamma=1.0)
    assert PRESETS["stochastic"].beta == 1.0 and PRESETS["myopic"].gamma == 0.9
    assert PRESETS["mistake"].eps_mistake == PRESETS["skip"].eps_skip == PRESETS["equal"].eps_equal == 0.1


def test_stochastic_follows_bradley_terry():
    n = 2000
    labels = teacher("stochastic").label([flat(1.0)] * n, [flat(0.0)] * n)
    assert set(np.unique(labels.p)) <= {0.0, 1.0}
    expected = 1 / (1 + math.exp(-1.0))  # sigmoid(beta * (R1 - R2)), beta = 1
    assert abs(labels.p.mean() - expected) < 0.03
    sharper = teacher("stochastic", beta=10.0).label([flat(1.0)] * n, [flat(0.0)] * n)
    assert sharper.p.mean() > 0.999


def test_beta_zero_answers_at_random():
    labels = teacher("oracle", beta=0.0).label([flat(5.0)] * 2000, [flat(0.0)] * 2000)
    assert abs(labels.p.mean() - 0.5) < 0.03


def test_myopic_weights_later_steps_more():
    early, late = seg([1.0, 0, 0, 0]), seg([0, 0, 0, 0.9])
    assert teacher("oracle").label([early], [late]).p[0] == 1.0  # 1.0 > 0.9
    # gamma^(L-1-t): the early step counts 0.9^3 = 0.729 < 0.9
    assert teacher("myopic").label([early], [late]).p[0] == 0.0
    assert teacher("myopic").label([late], [early]).p[0] == 1.0


def test_mistake_flips_about_eps_of_strict_labels_but_not_ties():
    n = 2000
    labels = teacher("mistake").label([flat(2.0)] * n, [flat(1.0)] * n)
    assert abs((labels.p == 0.0).mean() - 0.1) < 0.03
    ties = teacher("mistake").label([flat(1.0)] * n, [flat(1.0)] * n)
    assert np.all(ties.p == 0.5)


def test_skip_threshold_scales_with_margin():
    t = teacher("skip")
    first, second = [flat(0.5), flat(0.5), flat(1.0)], [flat(0.8), flat(1.5), flat(0.2)]
    t.set_margin(10.0)  # thres_skip = 0.1 * 10 = 1: skip when max(R1, R2) <= 1 (B-Pref keeps only > thres)
    assert t.thresholds() == pytest.approx((1.0, 0.0))
    labels = t.label(first, second)
    np.testing.assert_array_equal(labels.skipped, [True, False, True])
    assert labels.p[1] == 0.0 and labels.n_answered == 1
    t.set_margin(20.0)  # thres_skip = 2: everything here is skipped
    assert t.label(first, second).skipped.all()


def test_equal_threshold_scales_with_margin():
    t = teacher("equal")
    first, second = [flat(1.0), flat(3.0), flat(0.0)], [flat(1.5), flat(1.5), flat(-0.9)]
    t.set_margin(10.0)  # thres_equal = 1: |R1 - R2| < 1 -> 0.5
    np.testing.assert_array_equal(t.label(first, second).p, [0.5, 1.0, 0.5])
    t.set_margin(4.0)  # thres_equal = 0.4
    np.testing.assert_array_equal(t.label(first, second).p, [0.0, 1.0, 1.0])


def test_margin_defaults_to_mean_abs_return_of_the_call():
    t = teacher("equal")
    assert t.thresholds() == (0.0, 0.0)
    # mean |R| over both sides = (4 + 4.5 + 3.8 + 3.7) / 4 = 4 -> thres_equal = 0.4
    np.testing.assert_array_equal(t.label([flat(4.0), flat(-4.5)], [flat(3.8), flat(-3.7)]).p, [0.5, 0.0])
    with pytest.raises(PbrlError, match="margin"):
        t.set_margin(float("nan"))


def test_equal_overrides_mistake():
    t = teacher("mistake", eps_mistake=1.0, eps_equal=0.1)
    t.set_margin(10.0)
    np.testing.assert_array_equal(t.label([flat(1.0), flat(3.0)], [flat(1.5), flat(1.0)]).p, [0.5, 0.0])


def test_same_seed_same_labels():
    first = [flat(x) for x in np.linspace(-1, 1, 200)]
    second = [flat(x) for x in np.linspace(1, -1, 200)]
    a = teacher("stochastic", seed=3, eps_mistake=0.2).label(first, second)
    b = teacher("stochastic", seed=3, eps_mistake=0.2).label(first, second)
    c = teacher("stochastic", seed=4, eps_mistake=0.2).label(first, second)
    np.testing.assert_array_equal(a.p, b.p)
    assert not np.array_equal(a.p, c.p)


def test_reward_key_uses_named_term():
    a = seg([1.0, 1.0], grasp=[0.0, 0.0])
    b = seg([0.0, 0.0], grasp=[1.0, 0.0])
    assert teacher("oracle").label([a], [b]).p[0] == 1.0
    assert teacher("oracle", reward_key="grasp").label([a], [b]).p[0] == 0.0
    with pytest.raises(PbrlError, match=r"'place' is not a term.*available terms: \['grasp'\]"):
        teacher("oracle", reward_key="place").label([a], [b])


def test_errors():
    with pytest.raises(PbrlError, match="unknown; valid presets: equal, mistake, myopic, oracle, rational, skip"):
        teacher("lazy")
    with pytest.raises(PbrlError, match=r"unknown override\(s\) \['temperature'\]"):
        teacher("oracle", temperature=1.0)
    with pytest.raises(PbrlError, match="gamma"):
        TeacherSpec(gamma=0.0)
    with pytest.raises(PbrlError, match="eps_mistake"):
        TeacherSpec(eps_mistake=1.5)
    with pytest.raises(PbrlError, match="2 first and 1 second"):
        teacher("oracle").label([flat(1), flat(2)], [flat(1)])
    empty = teacher("oracle").label([], [])
    assert empty.p.shape == (0,) and empty.skipped.shape == (0,)

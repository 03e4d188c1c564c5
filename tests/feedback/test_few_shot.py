"""The few-shot transfer fit: the Bradley-Terry MAP against a hand solve of its optimality condition, the
leave-one-out procedure written out step by step, and what the prior does with few and many labels."""

from __future__ import annotations

import numpy as np
import pytest

from pbrl.feedback.few_shot import FewShotSettings, fit_bradley_terry, fit_few_shot, sigmoid
from pbrl.feedback.ot import standardise
from pbrl.types import PbrlError


def _bisect(f, lo: float, hi: float) -> float:
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
    return 0.5 * (lo + hi)


def test_map_solves_its_optimality_condition_by_hand():
    # one pair, difference d = 2, label y = 1, prior N(c = 0.3, 1 / 0.5). The loss
    # -log sigmoid(2w) + 0.25 (w - 0.3)^2 has derivative 2 (sigmoid(2w) - 1) + 0.5 (w - 0.3) = 0.
    def grad(w):
        return 2.0 * (1.0 / (1.0 + np.exp(-2.0 * w)) - 1.0) + 0.5 * (w - 0.3)
    expected = _bisect(grad, -10.0, 10.0)
    got = fit_bradley_terry(np.array([[2.0]]), np.array([1.0]), ridge=0.5, center=np.array([0.3]))
    assert got[0] == pytest.approx(expected, abs=1e-9) and expected > 0.3  # the label pulls w up from the prior


def test_soft_labels_weights_and_symmetry():
    D = np.array([[1.0, -2.0], [0.5, 0.5]])
    # y = 0.5 everywhere with the prior at 0: the gradient is 0 at w = 0 exactly
    np.testing.assert_allclose(fit_bradley_terry(D, np.array([0.5, 0.5]), ridge=1.0), 0.0, atol=1e-12)
    # a weight of 2 is the same pair counted twice
    y = np.array([1.0, 0.0])
    twice = fit_bradley_terry(np.vstack([D, D[:1]]), np.array([1.0, 0.0, 1.0]), ridge=1.0)
    np.testing.assert_allclose(fit_bradley_terry(D, y, ridge=1.0, weight=np.array([2.0, 1.0])), twice, atol=1e-10)
    # swapping first and second (d -> -d, y -> 1 - y) gives the same reward
    np.testing.assert_allclose(fit_bradley_terry(-D, 1.0 - y, ridge=1.0), fit_bradley_terry(D, y, ridge=1.0))
    np.testing.assert_allclose(sigmoid(np.array([-1000.0, 0.0, 1000.0])), [0.0, 0.5, 1.0])
    with pytest.raises(PbrlError, match=r"\(m, d\) differences and \(m,\) labels"):
        fit_bradley_terry(D, np.zeros(3), ridge=1.0)


def _line(n: int = 30):
    x = np.linspace(-1.0, 1.0, n)
    return standardise(np.stack([x, np.random.default_rng(0).normal(size=n)], axis=1)), x


def test_leave_one_out_written_out():
    X, x = _line()
    first, second = np.array([0, 5, 9, 20, 3]), np.array([29, 2, 25, 11, 17])
    y = (x[first] > x[second]).astype(float)
    a, b = np.arange(0, 28), np.arange(2, 30)
    cands = [np.where(x[a] > x[b], 1.0, 0.0), np.where(x[a] > x[b], 0.0, 1.0)]  # right, and inverted
    agree = np.array([[1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], float)
    s = FewShotSettings(prior_weight=3.0, prior_ridge=0.5)
    fit = fit_few_shot(X, first, second, y, agree, lambda c: (a, b, cands[c]), s)
    # by hand: leave label j out, choose on the rest (candidate 0 always), fit its prior, fit the posterior on the
    # other four, predict j
    prior = fit_bradley_terry(X[a] - X[b], cands[0], ridge=0.5)
    D = X[first] - X[second]
    held = []
    for j in range(5):
        keep = np.arange(5) != j
        w = fit_bradley_terry(D[keep], y[keep], ridge=3.0, center=prior)
        held.append(float((sigmoid(D[j] @ w) > 0.5) == (y[j] > 0.5)))
    assert fit.candidate == 0 and fit.agreement == pytest.approx(np.mean(held))
    np.testing.assert_allclose(fit.weights, fit_bradley_terry(D, y, ridge=3.0, center=prior))
    assert fit.weights[0] > 0 and fit.fit_agreement == 1.0


def test_the_prior_rules_few_labels_and_labels_rule_many():
    X, x = _line(60)
    a, b = np.arange(0, 58), np.arange(2, 60)
    wrong = np.where(x[a] > x[b], 0.0, 1.0)  # a candidate that orders every pair backwards
    rng = np.random.default_rng(1)
    s = FewShotSettings(prior_weight=10.0)

    def fit(k: int):
        f, g = rng.integers(0, 60, k), rng.integers(0, 60, k)
        f, g = f[f != g], g[f != g]
        y = (x[f] > x[g]).astype(float)
        return fit_few_shot(X, f, g, y, np.zeros((1, len(y))), lambda c: (a, b, wrong), s)

    assert fit(2).weights[0] < 0  # two labels do not overturn a confident prior
    many = fit(400)
    assert many.weights[0] > 0 and many.agreement > 0.9  # hundreds do; the LOO estimate says so


def test_bad_settings():
    with pytest.raises(PbrlError, match="feedback.few_shot.model"):
        FewShotSettings(model="mlp")
    with pytest.raises(PbrlError, match="feedback.few_shot.prior_pairs"):
        FewShotSettings(prior_pairs=0)

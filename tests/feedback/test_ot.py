"""GW primitives against their definitions: the square-loss objective, plan entropy, solves from a given start."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pbrl.feedback.ot import GWSettings, gw_objective, plan_entropy, solve_gw
from pbrl.types import PbrlError


def test_gw_objective_is_the_quadruple_sum():
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(3, 2)), rng.normal(size=(4, 1))
    Cs = np.linalg.norm(xs[:, None] - xs[None], axis=-1)
    Ct = np.abs(ys - ys.T)
    T = rng.random((3, 4))
    T /= T.sum()
    brute = sum((Cs[i, k] - Ct[j, l]) ** 2 * T[i, j] * T[k, l]
                for i, k in itertools.product(range(3), repeat=2) for j, l in itertools.product(range(4), repeat=2))
    assert gw_objective(Cs, Ct, T) == pytest.approx(brute, rel=1e-10)
    # an isometry has zero cost: target j is source perm[j], matched one to one
    perm = np.array([2, 0, 1])
    assert gw_objective(Cs, Cs[np.ix_(perm, perm)], np.eye(3)[:, perm] / 3) == pytest.approx(0, abs=1e-12)


def test_plan_entropy_bounds_and_a_hand_value():
    n = 4
    assert plan_entropy(np.full((n, n), 1 / n**2)) == pytest.approx(1.0)  # product coupling: says nothing
    assert plan_entropy(np.eye(n) / n) == pytest.approx(0.0)  # one source segment per target segment
    # column 0 split half/half over two of four source segments, column 1 on one: (log 2 + 0) / 2 / log 4 = 1/4
    T = np.array([[0.25, 0.0], [0.25, 0.0], [0.0, 0.5], [0.0, 0.0]])
    assert plan_entropy(T) == pytest.approx(0.25)


def _line(n: int) -> np.ndarray:
    x = np.linspace(0.0, 1.0, n)
    return np.abs(x[:, None] - x[None, :]).astype(np.float32)


def test_a_solve_stays_in_the_basin_of_its_start():
    """On a line GW cannot tell x -> x from x -> 1 - x; the start picks which one it returns (ott's init)."""
    n = 12
    C = _line(n)
    settings = GWSettings(epsilon=1e-3, max_iterations=100)
    same, flipped = np.eye(n) / n, np.eye(n)[::-1] / n
    a = solve_gw(C, C, settings, init=same)
    b = solve_gw(C, C, settings, init=flipped)
    assert np.array_equal(a.coupling.argmax(axis=0), np.arange(n))
    assert np.array_equal(b.coupling.argmax(axis=0), np.arange(n)[::-1])
    assert gw_objective(C, C, a.coupling) == pytest.approx(gw_objective(C, C, b.coupling), rel=1e-3)  # mirror twins
    with pytest.raises(PbrlError, match=r"init coupling shape \(3, 3\); expected \(12, 12\)"):
        solve_gw(C, C, settings, init=np.eye(3))

"""Candidate choice by leave-one-out, the return-order mirror of a plan, and the reliability verdict (by hand)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pbrl.feedback.orientation import (Choice, OrientationSettings, assess, candidate_list, choose, hard_agreement,
                                       mirror_plan, source_utility, zero_shot_flags)
from pbrl.types import PbrlError


def test_choose_by_hand():
    agree = np.array([[1, 1, 0, 0],    # 2 of 4
                      [1, 1, 1, 0],    # 3 of 4: chosen on all labels
                      [0, 0, 0, 1]], float)
    # Leave label j out, choose on the rest, score on j:
    # j=0: totals 1, 2, 1 -> c1 -> 1 ; j=1: same -> 1 ; j=2: 2, 2, 1 -> tie, the earlier c0 -> agree[0, 2] = 0 ;
    # j=3: 2, 3, 0 -> c1 -> agree[1, 3] = 0.  LOO = 2 / 4.
    c = choose(agree)
    assert c == Choice(index=1, agreement=0.5, fit_agreement=0.75, n_labels=4)
    zero = choose(np.zeros((3, 0)))
    assert zero.index == 0 and zero.n_labels == 0 and math.isnan(zero.agreement) and math.isnan(zero.fit_agreement)
    assert choose(np.array([[0, 1.0], [0, 1.0]])).index == 0  # ties go to the earlier (preferred) candidate
    with pytest.raises(PbrlError, match="n_candidates, k"):
        choose(np.zeros(3))


def test_hard_agreement_counts_a_half_label_as_half():
    np.testing.assert_array_equal(hard_agreement([0.9, 0.2, 0.5, 0.7], [1.0, 1.0, 0.0, 0.0]), [1.0, 0.0, 0.5, 0.0])


def test_source_utility_is_the_win_rate():
    # pairs (0 beats 1), (1 ties 2), (2 beats 0) ; segment 3 has no label
    u = source_utility(4, np.array([0, 1, 2]), np.array([1, 2, 0]), np.array([1.0, 0.5, 1.0]))
    np.testing.assert_allclose(u, [1 / 2, (0 + 0.5) / 2, (0.5 + 1) / 2, 0.5])


def test_mirror_plan_swaps_rows_by_return_rank():
    T = np.array([[0.5, 0.0], [0.0, 0.3], [0.1, 0.1]])
    # utility ranks: segment 0 lowest, 2 middle, 1 highest -> 0 and 1 trade rows, 2 keeps its own
    M = mirror_plan(T, np.array([0.1, 0.9, 0.5]), np.random.default_rng(0))
    np.testing.assert_array_equal(M, T[[1, 0, 2]])
    np.testing.assert_allclose(M.sum(axis=0), T.sum(axis=0))  # target marginals unchanged
    # mirroring twice is the identity (no ties)
    np.testing.assert_array_equal(mirror_plan(M, np.array([0.1, 0.9, 0.5]), np.random.default_rng(1)), T)


def test_candidates_in_preference_order():
    c = candidate_list(["fused/product", "fused/mirror", "plain/product"], flips=True)
    assert [x.name for x in c] == ["fused/product", "fused/mirror", "plain/product", "fused/product/flipped",
                                   "fused/mirror/flipped", "plain/product/flipped"]
    assert [x.plan for x in c] == [0, 1, 2, 0, 1, 2] and [x.flipped for x in c] == [False] * 3 + [True] * 3
    assert len(candidate_list(["plain/product"], flips=False)) == 1


def test_assess_statuses():
    s = OrientationSettings(min_agreement=0.6, min_confidence=0.2)
    common = dict(chosen="plain/product", gw_cost=0.01, entropy=0.5, confidence=0.6, mirror_agreement=0.9,
                  fused_plain_agreement=float("nan"), settings=s)
    good = assess(Choice(0, 0.8, 0.9, 10), **common)
    assert good.status == "verified" and good.reasons == ()
    bad = assess(Choice(3, 0.4, 0.5, 10), **common)
    assert bad.status == "unreliable" and "held-out agreement 40% on 10 target labels" in bad.reasons[0]
    zero = assess(Choice(0, math.nan, math.nan, 0), **common)
    assert zero.status == "unverified" and zero.n_labels == 0
    # zero-shot but a mirror solve that stays mirrored, labels near 0.5, two alignments pointing opposite ways
    flags = zero_shot_flags(confidence=0.1, mirror_agreement=0.2, fused_plain_agreement=0.3, settings=s)
    assert len(flags) == 3 and "stays mirrored" in flags[0] and "near 0.5 (mean |2p-1| 0.10" in flags[1]
    assert "point opposite ways (labels agree on 30%" in flags[2]
    assert zero_shot_flags(confidence=0.2, mirror_agreement=0.5, fused_plain_agreement=float("nan"), settings=s) == []
    assert assess(Choice(0, math.nan, math.nan, 0), **{**common, "mirror_agreement": 0.1}).status == "unreliable"
    assert assess(Choice(0, math.nan, math.nan, 0), **{**common, "confidence": 0.1}).status == "unreliable"
    m = good.metrics()
    assert m["transfer_status"] == "verified" and m["transfer_labels"] == 10 and m["transfer_agreement"] == 0.8


@pytest.mark.parametrize("kwargs, match", [
    ({"inits": ["mirror"]}, "inits"), ({"inits": ["product", "random"]}, "inits"), ({"fused": "yes"}, "fused"),
    ({"min_agreement": 2.0}, "min_agreement"), ({"min_confidence": -0.1}, "min_agreement / min_confidence"),
    ({"eval_pairs": 0}, "eval_pairs"),
])
def test_bad_orientation_settings(kwargs, match):
    with pytest.raises(PbrlError, match=f"feedback.orientation.{match}"):
        OrientationSettings(**kwargs)

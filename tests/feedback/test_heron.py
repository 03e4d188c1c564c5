"""HERON hierarchical ranking labeller: decision tree, margins, parsing, task rankings, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cli_runs import TINY_TRAIN, run_cli
from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Segment
from pbrl.envs.tasks import list_tasks, load_task
from pbrl.feedback.heron import (HeronFactor, HeronLabeller, hierarchical_compare, heron_labeller, parse_factor,
                                 parse_ranking)
from pbrl.types import PbrlError
from checks import true_order_agreement


def seg(success=None, **totals) -> Segment:
    """A 2-step segment whose terms have the given totals."""
    z = np.zeros((2, 1), np.float32)
    terms = {k: np.full(2, v / 2, np.float32) for k, v in totals.items()}
    succ = None if success is None else np.array([success, False])
    return Segment(obs=z, acts=z, rewards=np.zeros(2, np.float32), terms=terms, success=succ)


def test_compare_level_by_level_by_hand():
    # level 0 differences -5, 0.5, 0, 0 ; level 1 (sign -1) signed differences 3, 4, 0.1, 0 ; deltas 1, 0.5
    tot1 = np.array([[0.0, 0.0], [0.5, 0.0], [2.0, 0.0], [1.0, 1.0]])
    tot2 = np.array([[5.0, 3.0], [0.0, 4.0], [2.0, 0.1], [1.0, 1.0]])
    p, skipped, level = hierarchical_compare(tot1, tot2, np.array([1.0, -1.0]), np.array([1.0, 0.5]))
    np.testing.assert_array_equal(level, [0, 1, -1, -1])  # pair 1: level 0 within margin, level 1 decides
    np.testing.assert_array_equal(skipped, [False, False, True, True])
    np.testing.assert_array_equal(p[:2], [0.0, 1.0])  # pair 1: second has more of a "lower is better" factor
    assert p.dtype == np.float32


def test_labeller_uses_pool_std_for_margins():
    lab = HeronLabeller([HeronFactor("fwd", 1, sigma=1.0), HeronFactor("ctrl", 1, sigma=0.0)])
    a, b = seg(fwd=1.0, ctrl=0.0), seg(fwd=0.0, ctrl=-1.0)
    # Without a pool, std over {a, b} of fwd is 0.5: diff 1 > 0.5, level 0 decides.
    assert lab.label([a], [b]).p.tolist() == [1.0] and lab.last_levels.tolist() == [0]
    # A wide pool (std 10) makes level 0 a tie; level 1 (sigma 0) still decides on ctrl.
    lab.set_pool([seg(fwd=v, ctrl=0.0) for v in (-10.0, 10.0)])
    labels = lab.label([b], [a])
    assert labels.p.tolist() == [0.0] and lab.last_levels.tolist() == [1] and labels.n_answered == 1
    # Tied on every level: skipped.
    assert lab.label([a], [seg(fwd=0.9, ctrl=0.0)]).skipped.tolist() == [True]


def test_success_factor_and_parsing():
    lab = HeronLabeller([parse_factor("success", 0.0), parse_factor("-dist", 0.0)])
    p = lab.label([seg(success=True, dist=5.0), seg(success=False, dist=1.0)],
                  [seg(success=False, dist=0.0), seg(success=False, dist=2.0)]).p
    assert p.tolist() == [1.0, 1.0]
    assert parse_factor("-reward_ctrl", 0.3) == HeronFactor("reward_ctrl", -1, 0.3)
    assert parse_factor({"term": "x", "sign": "-", "sigma": 2}, 0.1) == HeronFactor("x", -1, 2.0)


@pytest.mark.parametrize("items, match", [
    (["nope"], "'nope' is not a reward term of halfcheetah"),
    (["reward_forward", "reward_forward"], "appears twice"),
    ([{"term": "reward_forward", "weight": 1}], "only term/sign/sigma/why"),
    ([{"term": "reward_forward", "sigma": -1}], "sigma must be a finite number >= 0"),
    (["success"], "'success' is not a reward term"),
    (None, "declares no 'heron' ranking"),
])
def test_bad_ranking_is_one_line(items, match):
    with pytest.raises(PbrlError, match=match):
        parse_ranking(items, default_sigma=0.1, terms=("reward_forward", "reward_ctrl"), has_success=False,
                      task="halfcheetah")


def test_shipped_rankings_are_valid_and_explained():
    shipped = [n for n in list_tasks() if "heron" in load_task(n).extra]
    assert {"halfcheetah", "hopper", "walker2d", "button-press", "drawer-open"} <= set(shipped)
    for name in shipped:
        task = load_task(name)
        lab = heron_labeller(None, sigma=0.1, task_name=name, terms=task.reward_terms,
                             has_success=task.success_key is not None, task_extra=task.extra)
        assert all(f.why for f in lab.factors), name
    # The command-line ranking wins over the task's block.
    task = load_task("halfcheetah")
    lab = heron_labeller(["reward_forward", "-reward_ctrl"], sigma=0.2, task_name="halfcheetah",
                         terms=task.reward_terms, has_success=False, task_extra=task.extra)
    assert lab.factors == (HeronFactor("reward_forward", 1, 0.2), HeronFactor("reward_ctrl", -1, 0.2))


TINY = [*TINY_TRAIN, "budget.labels=10", "budget.env_steps=400"]  # later overrides win
pbrl = run_cli


@pytest.mark.slow  # ~25-50 s on 2 shared cores
def test_train_feedback_heron_end_to_end(tmp_path: Path):
    res = pbrl("train", f"out={tmp_path}/run", "feedback=heron", "feedback.ranking=[reward_forward,reward_ctrl]", *TINY)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["feedback"] == "heron" and summary["labels_used"] == 10
    with PreferenceStore(tmp_path / "run" / "store.sqlite", create=False) as store:
        assert store.count_labels(include_skipped=True, sources=["heron"]) == 10
        assert store.count_labels(include_skipped=True, sources=["scripted"]) == 0
    # forward progress first, then control cost: on HalfCheetah that orders pairs like the true reward
    # (forward + ctrl). Chance is 0.5; a random labeller reaches 8 of 10 with probability 0.055.
    agreement, n = true_order_agreement(tmp_path / "run" / "store.sqlite", ["heron"])
    assert n >= 8 and agreement >= 0.8, (agreement, n)
    bad = pbrl("train", f"out={tmp_path}/bad", "feedback=heron", "feedback.ranking=[reward_sideways]", *TINY)
    assert bad.returncode == 2 and "pbrl: error: feedback.ranking: 'reward_sideways'" in bad.stderr

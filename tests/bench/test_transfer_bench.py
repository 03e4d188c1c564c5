"""bench/transfer_policy.py and bench/transfer_accuracy.py: variant budgets, the seed CI, goal bookkeeping."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench_modules import load_bench


@pytest.fixture(scope="module")
def tp():
    return load_bench("transfer_policy")


@pytest.fixture(scope="module")
def ta():
    return load_bench("transfer_accuracy")


ARGS = argparse.Namespace(target_labels=10, per_round=50, labels=500, steps=40000, every=2000, segment_length=50,
                          episode_length=500, extra=[], pool_pairs=300, pool_epochs=10, algo="crossq")


def test_variants_share_the_budget_and_differ_only_in_labels(tp):
    over = {v: tp.variant_overrides(ARGS, v, "drawer-close", Path("s.sqlite"), Path("p.sqlite"))
            for v in ("transfer-k10+pool", "scripted+pool", "scripted-k10")}
    for v in over.values():
        assert "budget.env_steps=40000" in v and "reward=gaussian" in v and "task=drawer-close" in v
        assert "algo=crossq" in v  # one learner for every variant
    k10 = over["transfer-k10+pool"]
    assert "feedback=transfer" in k10 and "feedback.target_labels=10" in k10 and "feedback.source_store=s.sqlite" in k10
    assert "budget.labels=500" in k10 and "feedback.target_pool=p.sqlite" in k10 and "feedback.pool_pairs=300" in k10
    assert "feedback=scripted" in over["scripted+pool"] and "budget.labels=500" in over["scripted+pool"]
    # true labels only where the transfer run has them: 10 per session, the same 10 sessions, no pool
    assert "budget.per_round=10" in over["scripted-k10"] and "budget.labels=100" in over["scripted-k10"]
    assert not any("target_pool" in o for o in over["scripted-k10"])


def test_cells_are_the_rliable_mean_over_seeds(tp):
    rows = [{"seed": 0, "success": 0.0}, {"seed": 1, "success": 1.0}, {"seed": 2, "success": 1.0},
            {"seed": 3, "success": None}]  # a run without a success signal is left out, not counted as 0
    mean, ci = tp._cell(rows, "success", 2).split(" ", 1)
    assert mean == "0.67" and ci.startswith("[") and ci.endswith("]")
    low, high = (float(x) for x in ci.strip("[]").split(", "))
    assert 0.0 <= low <= 0.67 <= high <= 1.0
    assert tp._cell([{"seed": 0, "success": None}], "success", 2) == "-"


def _row(acc0: float, unreliable0: float, acc10: float) -> dict:
    cell = lambda acc, un, k: {"accuracy": acc, "unreliable": un, "loo": None if k == 0 else acc,  # noqa: E731
                               "reasons": ["the mirror image stays mirrored"] if un else []}
    variants = {v: {str(k): cell(acc0 if k == 0 else acc10, unreliable0 if k == 0 else 0.0, k) for k in (0, 5, 10, 20)}
                for v in ("default", "plain", "no mirror")}
    return {"source": "a", "target": "b", "seed": 0, "variants": variants}


def test_an_unflagged_inversion_is_counted_silent(ta):
    s = ta.summarise([_row(0.4, 0.0, 0.9), _row(0.45, 1.0, 0.8)])
    cell = s["a -> b"]
    assert cell[("default", "inverted")] == 2 and cell[("default", "flagged")] == 1 and cell[("default", "silent")] == 1
    assert cell[("default", 10)]["mean"] == pytest.approx(0.85) and cell[("default", 10)]["min"] == pytest.approx(0.8)
    goals = "\n".join(ta._goals(s))
    assert "mean 85.0% (goal >= 80%: **met**)" in goals and "none silently inverted: **not met**" in goals
    assert ta._flags(_row(0.4, 1.0, 0.9)["variants"]["plain"]["0"]) == "M"

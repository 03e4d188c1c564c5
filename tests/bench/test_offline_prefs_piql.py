"""bench/offline_prefs.py: the P-IQL / PT-IQL methods (reward fitted on the store, IQL on its relabelled steps)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from bench_modules import load_bench

from pbrl.agents.offline_data import OfflineData
from pbrl.cli import main
from pbrl.data.store import PreferenceStore


@pytest.fixture(scope="module")
def tab():
    return load_bench("offline_prefs_table")


@pytest.fixture(scope="module")
def piql_bench():
    return load_bench("offline_prefs")


@pytest.fixture(scope="module")
def tiny_unit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, OfflineData, argparse.Namespace]:
    """A tiny drawer-open store (3 episodes), its data, and bench arguments for a few-step IQL on it."""
    store = tmp_path_factory.mktemp("unit") / "drawer.sqlite"
    main(["data", "collect", "task=drawer-open", "episodes=3", "episode_length=60", "segment_length=20", "stride=10",
          "pairing=dense", "group_size=3", "aligned=false", "threads=1", f"out={store}"])
    with PreferenceStore(store, create=False) as s:
        data = OfflineData.from_store(s)
    args = argparse.Namespace(steps=3, bc_steps=None, hidden="16,16", batch_pairs=None, lr=None, std=None,
                              cpl_bc_weight=None, reward_epochs=1, eval_episodes=1, episode_length=60)
    return store, data, args


def _row(method: str, success: float, task: str = "door-open", dataset: str = "dense", seed: int = 0) -> dict:
    return {"task": task, "dataset": dataset, "method": method, "seed": seed, "success": success}


def test_piql_line_reports_paired_gaps_over_tasks_and_seeds(tab) -> None:
    pytest.importorskip("rliable", reason="the CIs need the report extra (pip install 'pbrl[report]')")
    rows = []
    for seed in (0, 1):  # dense CPL: door-open +50 and drawer-open 0 at both seeds -> +25, a zero-width CI
        rows += [_row("P-IQL", 0.5, seed=seed), _row("CPL", 1.0, seed=seed),
                 _row("P-IQL", 0.5, "drawer-open", seed=seed), _row("CPL", 0.5, "drawer-open", seed=seed)]
    rows += [_row("OPPO", 0.25, seed=0), _row("OPPO", 0.75, seed=1)]  # door-open -25 / +25: mean 0, CI [-25, +25]
    rows += [_row("P-IQL", 1.0, dataset="sparse"), _row("PT-IQL", 0.5, dataset="sparse"),  # one seed: -50
             _row("CPL", 0.75, dataset="sparse"),  # door-open seed 0: -25; drawer-open only seed 1: +75
             _row("P-IQL", 0.25, "drawer-open", "sparse", 1), _row("CPL", 1.0, "drawer-open", "sparse", 1)]
    line = tab.piql_line(rows)
    assert "dense CPL - P-IQL = +25 points, 95% CI [+25, +25] over 2 task(s) x 2 seed(s)" in line
    assert "dense OPPO - P-IQL = +0 points, 95% CI [-25, +25] over 1 task(s) x 2 seed(s)" in line
    assert "sparse PT-IQL - P-IQL = -50 points (1 seed: no CI) over 1 task(s) x 1 seed(s)" in line
    # no seed that both tasks have: the plain mean of the two cells, (-25 + 75) / 2, without a CI
    assert "sparse CPL - P-IQL = +25 points over 2 task-seed cell(s) (no seed shared by all tasks: no CI)" in line
    assert "dense PT-IQL" not in line and "sparse OPPO" not in line
    assert tab.piql_line([_row("CPL", 1.0)]) == ""
    assert {"P-IQL", "PT-IQL"} <= set(tab.METHODS) and "P-IQL" in tab.table(rows, None)


@pytest.mark.parametrize("method", ["P-IQL", "PT-IQL", "PT-IQL (return-range r)"])
def test_run_method_trains_iql_on_the_store(piql_bench, tab, tiny_unit, method: str) -> None:
    store, data, args = tiny_unit
    row = piql_bench.run_method("drawer-open", data, method, "dense", args, 3, store)
    assert row["method"] == method and row["seed"] == 3 and 0.0 <= row["success"] <= 1.0 and row["train_s"] > 0
    assert row["reward_epoch_cap"] == 1.0 and row["reward_epochs"] == 1  # the cap is stamped on the row
    mode = tab.METHODS[method][1].get("reward_normalize", "none")  # and what IQL saw of the reward
    assert row["reward_normalize"] == mode and (row["reward_scale"] == 1.0) == (mode == "none")
    assert row.get("pt_version") == (2.0 if method.startswith("PT-") else None)  # and which transformer


def test_pt_rows_from_before_the_reference_check_are_not_mixed_with_new_ones(tab) -> None:
    """PT-IQL rows from before ``pt_version`` (sqrt(d)-scaled attention, GELU, constant rate) cannot share a mean
    with the reference's transformer; P-IQL rows carry no such stamp and merge as before."""
    run = {"tasks": "door-open", "steps": 5000, "seeds": "0"}
    stamp = {"reward_epoch_cap": 5.0, "reward_normalize": "none"}
    old = {"args": run, "rows": [{**_row("PT-IQL", 0.0), **stamp}, {**_row("P-IQL", 0.5), **stamp}]}
    new = {"args": run, "rows": [{**_row("PT-IQL", 1.0, seed=1), **stamp, "pt_version": 2.0},
                                 {**_row("P-IQL", 0.5, seed=1), **stamp}]}
    with pytest.raises(SystemExit, match="PT-IQL rows were trained with different settings"):
        tab.merge_runs([old, new])
    kept = tab.merge_runs([{**old, "rows": old["rows"][1:]}, new])  # without the old PT row: P-IQL merges
    assert tab.settings_of(kept["rows"], "PT-IQL")["pt_version"] == "2" and "pt_version" not in \
        tab.settings_of(kept["rows"], "P-IQL")


def test_iql_variants_of_one_unit_share_their_reward_fit_and_keep_their_rows(piql_bench, tiny_unit,
                                                                          tmp_path: Path) -> None:
    """The variants that fit the same reward fit it once per store and seed; the later ones load it with the torch
    state the fit left, so every row equals that of a fit of its own (the transformer's dropout draws from torch's
    global generator). A reward on other inputs (r(s)) is a fit of its own."""
    store, data, args = tiny_unit
    methods = ["PT-IQL", "PT-IQL (return-range r)", "P-IQL", "P-IQL r(s)"]
    own = {m: piql_bench.run_method("drawer-open", data, m, "dense", args, 3, store) for m in methods}
    fits = tmp_path / "fits"
    shared = {m: piql_bench.run_method("drawer-open", data, m, "dense", args, 3, store, fits) for m in methods}
    keys = ("return", "success", "reward_raw_mean", "reward_scale", "pref_acc")
    assert all(shared[m][k] == own[m][k] for m in methods for k in keys), (own, shared)
    assert [m for m in methods if shared[m].get("reward_fit_shared")] == ["PT-IQL (return-range r)"]
    fitted = sorted(p.name for p in fits.iterdir())
    assert fitted == ["ensemble-obs-e1", "ensemble-obs_act-e1", "transformer-obs_act-e1"]


def test_reward_epochs_default_follows_cpls_piql_schedule(piql_bench) -> None:
    """CPL's P-IQL fits its reward in the first 10% of its steps (50k of 500k) with 96 pairs per batch: at 5000
    steps that is 500 x 96 = 48000 pairs, ~5 passes over a ~10k-pair dataset."""
    assert piql_bench.parse([]).reward_epochs == 5
    assert piql_bench.parse(["--steps", "50000"]).reward_epochs == 48
    assert piql_bench.parse(["--steps", "100"]).reward_epochs == 1  # never 0 epochs
    assert piql_bench.parse(["--reward-epochs", "50"]).reward_epochs == 50


def test_piql_runs_with_other_reward_epochs_merge_but_not_into_one_mean(tab) -> None:
    """The reward fit's cap is a P-IQL setting, not the run's: a P-IQL run merges with a CPL run of other
    --reward-epochs, but two P-IQL cells fitted with different caps never share a mean."""
    args = {"tasks": "door-open", "steps": 5000, "seeds": "0"}
    cpl = {"args": {**args, "reward_epochs": None}, "rows": [{**_row("CPL", 0.9), "std": 0.7071, "bc_weight": 0.0,
                                                               "objective": "cpl-code score"}]}
    piql = {"args": {**args, "reward_epochs": 5}, "rows": [{**_row("P-IQL", 0.6), "reward_epoch_cap": 5.0}]}
    merged = tab.merge_runs([cpl, piql])
    assert {r["method"] for r in merged["rows"]} == {"CPL", "P-IQL"}
    other = {"args": {**args, "reward_epochs": 50}, "rows": [{**_row("P-IQL", 0.7, seed=1), "reward_epoch_cap": 50}]}
    with pytest.raises(SystemExit, match="P-IQL rows were trained with different settings"):
        tab.merge_runs([cpl, piql, other])


def test_piql_rows_from_before_the_raw_reward_default_are_not_mixed_with_new_ones(tab, piql_bench) -> None:
    """P-IQL rows written before ``algo.reward_normalize`` was stamped were trained on the standardised reward:
    they cannot share a mean with the reference's raw-reward P-IQL, only sit under the standardised variant."""
    args = argparse.Namespace(steps=5000, bc_steps=None, hidden=None, batch_pairs=None, lr=None)
    for method, mode in (("P-IQL", "none"), ("P-IQL (standardised r)", "standard")):
        cfg = piql_bench.algo_cfg("iql", tab.METHODS[method][1], args, "dense")
        assert tab.method_settings(cfg) == {"reward_normalize": mode, "steps": 5000}
    run = {"tasks": "door-open", "steps": 5000, "seeds": "0"}
    old = {"args": run, "rows": [{**_row("P-IQL", 0.0), "reward_epoch_cap": 5.0}]}
    new = {"args": run, "rows": [{**_row("P-IQL", 1.0, seed=s), "reward_epoch_cap": 5.0, "reward_normalize": "none"}
                                 for s in (0, 1)]}
    with pytest.raises(SystemExit, match="P-IQL rows were trained with different settings"):
        tab.merge_runs([old, {**new, "rows": new["rows"][1:]}])  # old seed 0 beside new seed 1
    renamed = {"args": run, "rows": [{**r, "method": "P-IQL (standardised r)"} for r in old["rows"]]}
    line = tab.piql_line(tab.merge_runs([renamed, new])["rows"])  # paired on seed 0, the one both have
    assert "dense P-IQL (standardised r) - P-IQL = -100 points (1 seed: no CI) over 1 task(s) x 1 seed(s)" in line


def test_rows_carry_their_step_counts_and_the_50k_columns_are_compared_at_equal_budgets(tab, piql_bench) -> None:
    """P-IQL (50k steps) trains IQL for 50000 steps inside a 5000-step run (its reward fit keeps the run's 5
    epochs), CPL (50k steps) CPL with a 10000-step BC warm-up (the same fifth); IQL and CPL rows written before
    the stamp get the run's --steps / --bc-steps, so rows of different lengths never share a mean; the 50k runs are
    compared with each other and with their 5000-step selves."""
    pytest.importorskip("rliable", reason="the CIs need the report extra (pip install 'pbrl[report]')")
    args = piql_bench.parse(["--methods", "P-IQL (50k steps),CPL (50k steps)"])
    cfg = piql_bench.algo_cfg("iql", tab.METHODS["P-IQL (50k steps)"][1], args, "dense")
    assert cfg.steps == 50000 and args.steps == 5000 and args.reward_epochs == 5
    cpl = piql_bench.algo_cfg("cpl", tab.METHODS["CPL (50k steps)"][1], args, "dense")
    assert (cpl.steps, cpl.bc_steps) == (50000, 10000) and tab.method_settings(cpl)["bc_steps"] == 10000
    run = {"tasks": "door-open", "steps": 5000, "bc_steps": None, "seeds": "0,1"}
    old = {"args": run, "rows": [{**_row("P-IQL", 0.2, seed=s), "reward_epoch_cap": 5.0, "reward_normalize": "none"}
                                 for s in (0, 1)] + [_row("CPL", 1.0, seed=s) for s in (0, 1)]}
    merged = tab.merge_runs([old])["rows"]
    assert {r["steps"] for r in merged} == {5000.0}  # stamped from the run
    assert [r["bc_steps"] for r in merged if r["method"] == "CPL"] == [1000.0, 1000.0]  # --bc-steps None: a fifth
    assert all("bc_steps" not in r for r in merged if r["method"] == "P-IQL")
    long = {"args": run, "rows": [{**_row("P-IQL (50k steps)", 0.6 + 0.2 * s, seed=s), "reward_epoch_cap": 5.0,
                                   "reward_normalize": "none", "steps": 50000} for s in (0, 1)]
            + [{**_row("CPL (50k steps)", 0.9, seed=s), "steps": 50000, "bc_steps": 10000} for s in (0, 1)]}
    line = tab.piql_line(tab.merge_runs([old, long])["rows"])
    assert "dense P-IQL (50k steps) - P-IQL = +50 points, 95% CI [+40, +60] over 1 task(s) x 2 seed(s)" in line
    assert "dense CPL - P-IQL (50k steps) = +30 points, 95% CI [+20, +40]" in line
    assert "dense CPL (50k steps) - P-IQL (50k steps) = +20 points, 95% CI [+10, +30]" in line
    assert "dense CPL (50k steps) - CPL = -10 points" in line and "dense CPL - P-IQL = +80 points" in line
    assert "CPL (50k steps) - P-IQL =" not in line  # unequal budgets are not set against each other
    rows = tab.merge_runs([old, long])["rows"] + [_row("CPL", 0.5, "drawer-open", seed=s) for s in (0, 1)]
    summary = next(r for r in tab.table(rows, None).splitlines() if r.startswith("| **mean"))
    assert "| 75 [75, 75] |" in summary  # CPL over both tasks (no spread within a task: a zero-width CI)
    assert "| 70 [60, 80] (1 of 2 tasks) |" in summary  # P-IQL (50k steps): door-open only, and says so
    assert piql_bench.longer_note(rows, 5000) == ", except P-IQL (50k steps) 50000, CPL (50k steps) 50000 (10000 BC)"
    assert piql_bench.longer_note(old["rows"], 5000) == ""
    wrong = {"args": run, "rows": [{**long["rows"][0], "steps": 5000, "seed": 2}]}  # a 50k row trained for 5000
    with pytest.raises(SystemExit, match="P-IQL \\(50k steps\\) rows were trained with different settings"):
        tab.merge_runs([old, long, wrong])


def test_pt_iql_at_50k_steps_is_a_transformer_reward_set_against_p_iql_at_equal_budgets(tab, piql_bench) -> None:
    """PT-IQL (50k steps): the Preference Transformer reward with IQL at P-IQL (50k steps)'s budget, compared with
    it and with its own 5000-step self, never with a method at the other budget."""
    pytest.importorskip("rliable", reason="the CIs need the report extra (pip install 'pbrl[report]')")
    assert piql_bench.REWARD_IQL["PT-IQL (50k steps)"] == "transformer"
    assert piql_bench.REWARD_IQL["P-IQL (50k steps)"] == "ensemble"
    rows = [{**_row(m, v + 0.1 * s, seed=s), "reward_epoch_cap": 5.0, "reward_normalize": "none", "steps": n}
            for s in (0, 1) for m, v, n in (("P-IQL", 0.2, 5000), ("PT-IQL", 0.0, 5000),
                                            ("P-IQL (50k steps)", 0.9, 50000), ("PT-IQL (50k steps)", 0.5, 50000))]
    line = tab.piql_line(rows)
    assert "dense PT-IQL (50k steps) - P-IQL (50k steps) = -40 points, 95% CI [-40, -40]" in line
    assert "dense PT-IQL (50k steps) - PT-IQL = +50 points" in line and "dense PT-IQL - P-IQL = -20 points" in line
    assert "PT-IQL (50k steps) - P-IQL =" not in line

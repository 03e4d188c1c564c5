"""bench/offline_prefs.py: seeds per cell, CIs, goals judged on the CI, merging and resuming (real rows.json layout)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench_modules import load_bench

pytest.importorskip("rliable", reason="the CIs need the report extra (pip install 'pbrl[report]')")


@pytest.fixture(scope="module")
def tab():
    return load_bench("offline_prefs_table")


@pytest.fixture(scope="module")
def op():
    return load_bench("offline_prefs")


ARGS = {"tasks": "door-open", "steps": 10000, "seed": 0}
NEW = {"std": 0.7071, "bc_weight": 0.0}


def _row(method: str, success: float, task: str = "door-open", seed: int | None = None, **stamp) -> dict:
    row = {"task": task, "dataset": "dense", "method": method, "success": success, **stamp}
    return row if seed is None else {**row, "seed": seed}


def test_goal_is_judged_on_the_ci_of_the_paired_difference(tab) -> None:
    """CPL beats preferred-BC by (20 + 24 - 6) / 3 = +12.7 points on average, but one seed of three is -6: the CI
    reaches below +10, so the goal is not met although the mean is above it."""
    rows = []
    for seed, (cpl, bc) in enumerate([(0.70, 0.50), (0.74, 0.50), (0.50, 0.56)]):
        for task in ("door-open", "drawer-open"):
            rows += [_row("CPL", cpl, task, seed), _row("BC (preferred)", bc, task, seed)]
    text = tab.verdict(rows)
    assert "CPL - BC (preferred) = +13 points" in text and "NOT met" in text
    assert "over 2 task(s) x 3 seed(s)" in text
    steady = [{**r, "success": 0.75 if r["method"] == "CPL" else 0.5} for r in rows]
    assert "CPL - BC (preferred) = +25 points, 95% CI [+25, +25]" in tab.verdict(steady)
    assert "(goal >= +10 on the CI: met)" in tab.verdict(steady)
    one_seed = [r for r in steady if r["seed"] == 0]  # a zero-width CI from one seed proves nothing
    assert "not judged: 1 seed(s) per task, at least 3 needed" in tab.verdict(one_seed)
    assert "(1 seed: no CI)" in tab.table(one_seed, None)


def test_a_task_with_fewer_seeds_is_left_out_of_the_mean_and_named(tab) -> None:
    """A killed run leaves door-open with seeds 0, 1: it must not shrink the other tasks to two seeds."""
    rows = []
    for seed, (cpl, bc) in enumerate([(0.9, 0.5), (0.8, 0.6), (0.7, 0.6)]):
        for task in ("drawer-open", "button-press"):
            rows += [_row("CPL", cpl, task, seed), _row("BC (preferred)", bc, task, seed)]
    rows += [_row("CPL", 0.0, "door-open", s) for s in (0, 1)] + [_row("BC (preferred)", 1.0, "door-open", s)
                                                                  for s in (0, 1)]
    text = tab.verdict(rows)
    # (40 + 20 + 10) / 3 = +23 over the two complete tasks; door-open's -100 is not in it
    assert "CPL - BC (preferred) = +23 points" in text and "over 2 task(s) x 3 seed(s)" in text
    assert "left out of the mean for fewer seeds: door-open (2 seed(s))" in text
    assert "| door-open | dense | 2 |" in tab.table(rows, None)


def test_table_has_mean_over_seeds_ci_and_worst_task(tab) -> None:
    rows = [_row("CPL", s, "door-open", k) for k, s in enumerate([0.4, 0.6, 0.5])]
    rows += [_row("CPL", s, "drawer-open", k) for k, s in enumerate([1.0, 1.0, 1.0])]
    rows += [_row("BC (all)", 0.2, "drawer-open", 0)]
    table = tab.table(rows, None)
    assert table.splitlines()[0] == "| task | dataset | seeds | BC (all) | CPL |"  # only methods with rows
    assert "| door-open | dense | 3 | - | 50 |" in table  # mean over the three seeds
    assert "| **worst task** | dense | | 20 (drawer-open) | 50 (door-open) |" in table
    mean_row = next(line for line in table.splitlines() if line.startswith("| **mean [95% CI]** | dense"))
    assert "75 [" in mean_row  # (50 + 100) / 2
    assert "sparse" not in table  # no sparse rows: no sparse lines


def test_missing_task_dataset_cells_are_named(tab) -> None:
    rows = [{**_row("CPL", 0.5, task, 0), "dataset": d} for task in tab.FULL_TASKS.split(",") for d in ("dense",)]
    rows += [{**_row("CPL", 0.5, "door-open", 0), "dataset": "sparse"}]
    text = tab.coverage(rows)
    assert text.startswith("Not run: sparse on drawer-open, button-press, sweep-into")
    assert "dense" not in text and "door-open" not in text
    assert tab.coverage(rows + [{**r, "dataset": "sparse"} for r in rows]) == ""


def test_cells_one_method_did_not_run_are_named(tab) -> None:
    """A later method (P-IQL) run on part of the tasks: its '-' cells are named, not only shown."""
    tasks = tab.FULL_TASKS.split(",")
    rows = [{**_row(m, 0.5, t, 0), "dataset": d} for m in ("CPL", "OPPO") for t in tasks for d in ("dense", "sparse")]
    rows += [_row("P-IQL", 0.9, t, 0) for t in tasks[:2]]  # dense only, two tasks
    text = tab.coverage(rows)
    assert not text.startswith("Not run:")  # every (task, dataset) has rows
    assert f"P-IQL not run: dense on {', '.join(tasks[2:])}; sparse on {', '.join(tasks)}." in text
    assert "CPL not run" not in text and "OPPO not run" not in text


def test_runs_of_other_seeds_merge_and_later_runs_replace_cells(tab) -> None:
    a = {"args": {**ARGS, "seeds": "0"}, "rows": [_row("CPL", 0.5, seed=0, **NEW), _row("OPPO", 1.0, seed=0)]}
    b = {"args": {**ARGS, "seeds": "1,2"}, "rows": [_row("CPL", 0.7, seed=1, **NEW), _row("CPL", 0.9, seed=2, **NEW)]}
    c = {"args": {**ARGS, "seeds": "0"}, "rows": [_row("CPL", 0.6, seed=0, **NEW)]}
    merged = tab.merge_runs([a, b, c])
    got = {(r["method"], r["seed"]): r["success"] for r in merged["rows"]}
    assert got == {("CPL", 0): 0.6, ("CPL", 1): 0.7, ("CPL", 2): 0.9, ("OPPO", 0): 1.0}
    assert merged["args"]["seeds"] == "0,1,2"
    old = {"args": ARGS, "rows": [_row("BC (all)", 0.2)]}  # written before --seeds: the run's --seed
    assert tab.merge_runs([old])["rows"][0]["seed"] == 0
    with pytest.raises(SystemExit, match="runs differ in steps"):
        tab.merge_runs([a, {**b, "args": {**b["args"], "steps": 300}}])


def test_rows_of_one_method_with_different_settings_are_refused(tab) -> None:
    """An old (learned-std) CPL cell beside a new fixed-std one would mix two CPLs in one mean."""
    old = {"args": ARGS, "rows": [_row("CPL", 0.0), _row("CPL", 0.5, task="drawer-open")]}
    new = {"args": ARGS, "rows": [_row("CPL", 0.64, std=0.7071, bc_weight=0.0)]}
    with pytest.raises(SystemExit, match="CPL rows were trained with different settings"):
        tab.merge_runs([old, new])


def test_cpl_and_oppo_rows_from_before_the_objective_fix_are_not_mixed_with_new_ones(tab) -> None:
    from omegaconf import OmegaConf

    stamp = tab.method_settings(OmegaConf.create({"name": "cpl", "std": 0.7071, "bc_weight": 0.0}))
    assert stamp == {"std": 0.7071, "bc_weight": 0.0, "objective": "cpl-code score"}
    assert tab.method_settings(OmegaConf.create({"name": "oppo"})) == {"objective": "reference losses"}
    before = {"args": ARGS, "rows": [_row("CPL", 0.5, std="0.7071", bc_weight=0)]}
    after = {"args": ARGS, "rows": [_row("CPL", 0.7, task="drawer-open", **stamp)]}
    with pytest.raises(SystemExit, match="CPL rows were trained with different settings"):
        tab.merge_runs([before, after])


def test_a_killed_run_resumes_finished_units_and_refuses_other_settings(op, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["offline_prefs.py", "--quick", "--tasks", "door-open", "--seeds", "0,1",
                                      "--methods", "CPL", "--out", str(tmp_path)])
    args = op.parse()
    assert args.seed_list == [0, 1]
    assert op.load_resume(tmp_path, args) == []
    saved = {k: v for k, v in vars(args).items() if k != "seed_list"}
    rows = [{**_row("CPL", 0.5, seed=0), "dataset": d} for d in ("dense", "sparse")]
    (tmp_path / "rows.json").write_text(json.dumps({"args": saved, "rows": rows}))
    resumed = op.load_resume(tmp_path, args)
    assert op.unit_done(resumed, "door-open", 0, ["CPL"]) and not op.unit_done(resumed, "door-open", 1, ["CPL"])
    assert not op.unit_done(resumed, "door-open", 0, ["CPL", "OPPO"])
    dense_only = [r for r in resumed if r["dataset"] == "dense"]
    assert op.unit_done(dense_only, "door-open", 0, ["CPL"], ("dense",))
    assert not op.unit_done(dense_only, "door-open", 0, ["CPL"], ("dense", "sparse"))
    args.steps = 999
    with pytest.raises(SystemExit, match="holds a run with a different steps"):
        op.load_resume(tmp_path, args)


def test_quick_keeps_the_tasks_asked_for(tab, op, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["offline_prefs.py", "--quick", "--tasks", "door-open"])
    assert op.parse().tasks == "door-open"
    monkeypatch.setattr(sys, "argv", ["offline_prefs.py", "--quick"])
    assert op.parse().tasks == op.QUICK_TASKS
    monkeypatch.setattr(sys, "argv", ["offline_prefs.py"])
    assert op.parse().tasks == tab.FULL_TASKS and op.parse().seed_list == [0, 1, 2]
    assert op.parse().datasets == "dense,sparse"
    monkeypatch.setattr(sys, "argv", ["offline_prefs.py", "--datasets", "dense,medium"])
    with pytest.raises(SystemExit):
        op.parse()


def test_save_rows_publishes_a_side_run_into_the_published_rows(op, tab, tmp_path: Path, monkeypatch,
                                                                 capsys) -> None:
    """The published rows split by seed into two 'runs', merged back into the first file: every cell returns (and
    ``--plot`` draws the merge)."""
    published = json.loads((Path(__file__).parents[2] / "bench/results/offline_prefs/rows.json").read_text())
    main_run, side = tmp_path / "main.json", tmp_path / "side.json"
    for path, keep in ((main_run, lambda s: s != 2), (side, lambda s: s == 2)):
        rows = [r for r in published["rows"] if keep(r["seed"])]
        path.write_text(json.dumps({**published, "rows": rows, "wall_s": 10.0}))
    monkeypatch.setattr(sys, "argv", ["offline_prefs.py", "--from-rows", f"{main_run},{side}",
                                      "--save-rows", str(main_run), "--plot", str(tmp_path / "summary.png")])
    op.main()
    assert (tmp_path / "summary.png").stat().st_size > 10_000
    merged = json.loads(main_run.read_text())
    assert sorted(map(tab.cell_key, merged["rows"])) == sorted(map(tab.cell_key, published["rows"]))
    assert merged["args"]["seeds"] == "0,1,2" and merged["wall_s"] == 20.0
    assert f"{len(published['rows'])} rows merged into {main_run}" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["offline_prefs.py", "--save-rows", str(main_run)])
    with pytest.raises(SystemExit):
        op.parse()
    assert "--save-rows: needs --from-rows" in capsys.readouterr().err


def test_summary_plot_draws_the_tables_means_and_cis_per_dataset(tab, tmp_path: Path) -> None:
    """Hand rows: CPL on 2 tasks x 3 seeds (dense), OPPO on 1 task x 1 seed (sparse: no CI, drawn hollow)."""
    cpl = {("door-open", 0): 0.2, ("door-open", 1): 0.4, ("door-open", 2): 0.6,
           ("drawer-open", 0): 1.0, ("drawer-open", 1): 0.8, ("drawer-open", 2): 0.9}
    rows = [_row("CPL", v, task=t, seed=s) for (t, s), v in cpl.items()]
    rows.append({**_row("OPPO", 0.36, seed=0), "dataset": "sparse"})
    path = tmp_path / "plots" / "summary.png"
    drawn = tab.plot_summary(rows, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not list(path.parent.glob("*.tmp*"))
    mean, lo, hi, tasks, seeds = drawn["dense", "CPL"]
    assert mean == pytest.approx((20 + 40 + 60 + 100 + 80 + 90) / 6) and (tasks, seeds) == (2, 3)
    assert lo < mean < hi and (lo, hi) != (mean, mean)
    assert drawn["sparse", "OPPO"][0] == pytest.approx(36.0) and drawn["sparse", "OPPO"][3:] == (1, 1)
    assert set(drawn) == {("dense", "CPL"), ("sparse", "OPPO")}  # no method drawn where it has no rows

"""bench/pebble_unsup.py: the sweep it launches, how it reads finished runs, and when it calls an effect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench_modules import load_bench

pytest.importorskip("rliable", reason="the CIs need the report extra (pip install 'pbrl[report]')")


@pytest.fixture(scope="module")
def pu():
    return load_bench("pebble_unsup")


def test_one_hydra_sweep_per_task_with_a_run_dir_per_seed_and_unsup(pu, tmp_path: Path) -> None:
    args = pu.parse(["--tasks", "hopper", "--seeds", "0,1,2", "--unsup", "0,9000", "--steps", "100000",
                     "--labels", "500", "--jobs", "2", "--out", str(tmp_path)])
    cmd = pu.sweep_command("hopper", args)
    assert cmd[1:5] == ["-m", "pbrl.cli", "train", "-m"]
    for item in ("task=hopper", "seed=0,1,2", "algo.unsup_steps=0,9000", "budget.env_steps=100000",
                 "budget.labels=500", "feedback.preset=oracle", f"hydra.sweep.dir={tmp_path.resolve()}/hopper",
                 "hydra.sweep.subdir=u${algo.unsup_steps}-s${seed}", "hydra/launcher=joblib",
                 "hydra.launcher.n_jobs=2"):
        assert item in cmd
    assert "algo=sac" in cmd  # the default learner of the measurement; --algo picks another
    one = pu.sweep_command("hopper", pu.parse(["--jobs", "1", "--algo", "crossq", "--out", str(tmp_path)]))
    assert not any(c.startswith("hydra/launcher") for c in one)  # Hydra's basic launcher: one run at a time
    assert "algo=crossq" in one and "algo=sac" not in one


def test_effects_are_paired_by_seed_and_need_three_seeds(pu, tmp_path: Path) -> None:
    args = pu.parse(["--tasks", "t", "--seeds", "0,1,2", "--unsup", "0,9", "--out", str(tmp_path)])
    returns = {(0, 0): 10.0, (0, 1): 20.0, (0, 2): 30.0, (9, 0): 15.0, (9, 1): 26.0, (9, 2): 33.0}
    for (u, s), r in returns.items():
        run = tmp_path / "t" / f"u{u}-s{s}"
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps({"return_mean": r, "success_rate": None}))
    rows = pu.collect("t", args)
    assert len(rows) == 6
    # differences 5, 6, 3 on the same seeds: mean 4.67, every resample mean between 3 and 6
    effect, word = pu.paired_effect(rows, "t", 9, 0, "return")
    assert effect.startswith("+5 [+3") and effect.endswith("+6]") and word == "helps"
    two = [r for r in rows if r["seed"] < 2]
    assert pu.paired_effect(two, "t", 9, 0, "return")[1] == "not judged: 2 paired seeds, 3 needed"
    flat = [{**r, "return": r["return"] - 4 * (r["unsup"] == 9) * (r["seed"] == 1)} for r in rows]  # diffs 5, 2, 3
    assert pu.paired_effect(flat, "t", 9, 0, "return")[1] == "helps"
    mixed = [{**r, "return": r["return"] - 9 * (r["unsup"] == 9) * (r["seed"] == 1)} for r in rows]  # 5, -3, 3
    assert pu.paired_effect(mixed, "t", 9, 0, "return")[1] == "no difference shown"
    table = pu.render(rows, args, {}, 60.0)
    assert "| t | 9 | 25 [" in table and "(helps)" in table

"""pbrl report on run directories: numbers against rliable computed here, grouping, unfinished runs, bad input."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from cli_runs import run_cli
from run_dirs import write_run

rliable = pytest.importorskip("rliable", reason="the report extra (pip install 'pbrl[report]') is not installed")
from rliable import library as rly, metrics  # noqa: E402

A = {0: 1000.0, 1: 1400.0, 2: 900.0, 3: 5000.0, 4: 1200.0}  # 500 labels; seed 3 an outlier the IQM discounts
B = {0: 800.0, 1: 700.0, 2: 1000.0, 3: 650.0}               # 100 labels


def _sweep(root: Path) -> Path:
    for s, v in A.items():
        write_run(root / f"a{s}", seed=s, labels=500, curve=[v / 4, v / 2, v], final=v)
    for s, v in B.items():
        write_run(root / f"b{s}", seed=s, labels=100, curve=[v / 4, v / 2, v], final=v)
    return root


def _rliable_ci(values, agg, reps=500, seed=0):
    np.random.seed(seed)  # rliable 1.2 resamples with the global NumPy RNG
    point, ci = rly.get_interval_estimates({"g": np.array(values, float)[:, None]}, lambda x: np.array([agg(x)]),
                                           reps=reps, random_state=np.random.RandomState(seed))
    return float(point["g"][0]), float(ci["g"][0, 0]), float(ci["g"][1, 0])


def test_final_scores_and_comparison_match_rliable_and_hand_values(tmp_path: Path) -> None:
    root = _sweep(tmp_path / "sweep")
    res = run_cli("report", str(root), "--reps", "500", "--curve-reps", "200", "--compare", "500", "100")
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.loads((root / "report" / "report.json").read_text())
    groups = {g["label"]: g for g in data["metrics"]["return"]}
    assert set(groups) == {"budget.labels=500", "budget.labels=100"}  # seed, out, port: not settings
    a = groups["budget.labels=500"]["final"]
    # IQM by hand: 5 runs, trim 25% = 1 run per side -> mean(1000, 1200, 1400); mean = 9500 / 5
    assert a["iqm"]["value"] == pytest.approx(1200.0) and a["mean"]["value"] == pytest.approx(1900.0)
    assert (a["iqm"]["value"], a["iqm"]["low"], a["iqm"]["high"]) == pytest.approx(
        _rliable_ci(list(A.values()), metrics.aggregate_iqm))
    assert (a["mean"]["value"], a["mean"]["low"], a["mean"]["high"]) == pytest.approx(
        _rliable_ci(list(A.values()), metrics.aggregate_mean))
    assert dict(zip(a["seeds"], a["values"])) == A
    # P(A > B) by the definition: share of (a, b) run pairs with a > b, ties half
    hand = np.mean([[1.0 if x > y else 0.5 if x == y else 0.0 for y in B.values()] for x in A.values()])
    p = data["comparisons"]["return"][0]["p"]
    assert p["value"] == pytest.approx(hand)
    np.random.seed(0)
    point, ci = rly.get_interval_estimates(
        {"ab": (np.array(list(A.values()))[:, None], np.array(list(B.values()))[:, None])},
        metrics.probability_of_improvement, reps=500, random_state=np.random.RandomState(0))
    assert (p["low"], p["high"]) == pytest.approx(tuple(np.ravel(ci["ab"])))
    # learning curve: IQM over seeds at each evaluation step
    curve = groups["budget.labels=100"]["curve"]
    assert curve["steps"] == [100.0, 200.0, 300.0]
    assert curve["iqm"][-1] == pytest.approx(metrics.aggregate_iqm(np.array(list(B.values()))))
    assert all(lo <= m <= hi for lo, m, hi in zip(curve["low"], curve["iqm"], curve["high"]))
    text = (root / "report" / "report.md").read_text()
    assert "| budget.labels=500 | 5 | 1200.0 [" in text and "3: 5000.0" in text
    for fig in ("final_return.png", "curves_return.png"):
        assert (root / "report" / fig).read_bytes()[:4] == b"\x89PNG"


def test_unfinished_runs_are_flagged_not_dropped(tmp_path: Path) -> None:
    root = _sweep(tmp_path / "sweep")
    write_run(root / "live", seed=7, labels=500, curve=[10.0])              # no summary, written just now
    stale = write_run(root / "killed", seed=8, labels=500, curve=[10.0, 20.0])
    old = time.time() - 3600
    for f in stale.iterdir():
        os.utime(f, (old, old))
    (root / "refused" / ".hydra").mkdir(parents=True)                       # a Hydra job pbrl refused
    hydra_cfg = (root / "a0" / "config.yaml").read_text().replace("seed: 0", "seed: 9")
    (root / "refused" / ".hydra" / "config.yaml").write_text(hydra_cfg)
    res = run_cli("report", str(root), "--reps", "200", "--curve-reps", "100", "--stale-after", "600")
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.loads((root / "report" / "report.json").read_text())
    status = {Path(r["path"]).name: r["status"] for r in data["runs"]}
    assert (status["live"], status["killed"], status["refused"], status["a0"]) == ("running", "stale", "failed",
                                                                                    "finished")
    final = {g["label"]: g["final"]["values"] for g in data["metrics"]["return"] if g["final"]}
    assert sorted(final["budget.labels=500"]) == sorted(A.values())  # statistics over finished runs only
    text = res.stdout
    assert "| budget.labels=500 | 5 (+1 failed, +1 running, +1 stale) |" in text
    assert "## Runs without a result" in text and f"{stale} |" in text and "| 200 | 20.0 |" in text


def test_named_groups_and_success_metric(tmp_path: Path) -> None:
    for s in range(3):
        write_run(tmp_path / "x" / f"r{s}", seed=s, labels=500, final=10.0 + s, success=[0.2, 0.4, 0.6][s],
                  task="drawer-open")
        write_run(tmp_path / "y" / f"r{s}", seed=s, labels=500, final=5.0 + s, success=0.0, task="drawer-open")
    res = run_cli("report", f"pebble={tmp_path / 'x'}", f"sac={tmp_path / 'y'}", "--out", str(tmp_path / "rep"),
                  "--reps", "200", "--curve-reps", "100")
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    success = {g["label"]: g["final"] for g in data["metrics"]["success"]}
    assert success["pebble"]["mean"]["value"] == pytest.approx(0.4) and success["sac"]["iqm"]["value"] == 0.0
    assert data["comparisons"]["success"][0]["p"]["value"] == pytest.approx(1.0)  # every pebble run > every sac run
    assert "## Final success rate" in res.stdout


@pytest.mark.parametrize("args, message", [
    (["nowhere"], "nowhere: no such file or directory"),
    (["EMPTY"], "no run directories below it"),
    (["SWEEP", "--compare", "500", "42"], "--compare '42': matches no group"),
    (["SWEEP", "--metric", "speed"], "--metric 'speed': unknown"),
])
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    _sweep(tmp_path / "sweep")
    (tmp_path / "empty").mkdir()
    args = [a.replace("SWEEP", str(tmp_path / "sweep")).replace("EMPTY", str(tmp_path / "empty")) for a in args]
    res = run_cli("report", *args, "--reps", "100", "--curve-reps", "100")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pbrl: error: ") and message in lines[0], res.stderr

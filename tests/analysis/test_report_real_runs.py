"""pbrl report on real tiny `pbrl train` sweeps (2 label budgets x 3 seeds) and a run killed mid-training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cli_runs import TINY_TRAIN, kill_after_first_checkpoint, run_cli

pytest.importorskip("rliable", reason="the report extra (pip install 'pbrl[report]') is not installed")
from rliable import library as rly, metrics  # noqa: E402

TINY = (*TINY_TRAIN, "budget.env_steps=300", "eval.every=150", "checkpoint_every=150", "algo.seed_steps=150",
        "budget.every=100")


@pytest.fixture(scope="session")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six real runs in one sweep dir, plus one SIGKILLed after its first checkpoint."""
    root = tmp_path_factory.mktemp("report") / "sweep"
    res = run_cli("train", "-m", f"hydra.sweep.dir={root}", *TINY, "seed=0,1,2", "budget.labels=10,20", timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    killed = root / "killed"
    kill_after_first_checkpoint(killed, *TINY, "seed=5", "budget.labels=10", "budget.env_steps=3000")
    return root


@pytest.mark.slow
def test_report_on_real_runs_matches_rliable(sweep: Path, tmp_path: Path) -> None:
    res = run_cli("report", str(sweep), "--out", str(tmp_path), "--reps", "300", "--curve-reps", "200",
                  "--stale-after", "0")
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.loads((tmp_path / "report.json").read_text())
    groups = {g["label"]: g for g in data["metrics"]["return"]}
    # the killed run (3000 steps) differs in budget.env_steps too, so it is its own group, flagged stale
    assert set(groups) == {"budget.env_steps=300, budget.labels=10", "budget.env_steps=300, budget.labels=20",
                           "budget.env_steps=3000, budget.labels=10"}
    killed = groups["budget.env_steps=3000, budget.labels=10"]
    assert killed["final"] is None and [r["status"] for r in data["runs"] if "killed" in r["path"]] == ["stale"]
    assert "## Runs without a result" in res.stdout and "stale" in res.stdout
    for labels in (10, 20):
        g = groups[f"budget.env_steps=300, budget.labels={labels}"]
        runs = [json.loads((Path(p) / "summary.json").read_text()) for p in g["runs"]]
        assert sorted(r["seed"] for r in runs) == [0, 1, 2] and all(r["labels_used"] == labels for r in runs)
        values = np.array([r["return_mean"] for r in runs])
        np.random.seed(0)
        point, ci = rly.get_interval_estimates({"g": values[:, None]}, lambda x: np.array([metrics.aggregate_iqm(x)]),
                                               reps=300)
        assert (g["final"]["iqm"]["value"], g["final"]["iqm"]["low"], g["final"]["iqm"]["high"]) == pytest.approx(
            (point["g"][0], ci["g"][0, 0], ci["g"][1, 0]))
        assert g["curve"]["steps"] == [150.0, 300.0]
        last = [float(Path(p, "metrics.csv").read_text().strip().splitlines()[-1].split(",")[3]) for p in g["runs"]]
        assert g["curve"]["iqm"][-1] == pytest.approx(metrics.aggregate_iqm(np.array(last)[:, None]))
    assert (tmp_path / "curves_return.png").stat().st_size > 1000

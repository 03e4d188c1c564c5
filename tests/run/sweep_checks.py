"""What every launcher test checks about a finished 2-seed sweep (shared by the main and the Ray environment)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import yaml

from cli_runs import TINY_TRAIN

#: A 2-seed sweep whose runs take seconds each (300 steps, 10 labels).
SWEEP = (*TINY_TRAIN, "budget.env_steps=300", "eval.every=300", "checkpoint_every=300", "budget.labels=10",
         "algo.seed_steps=150", "seed=0,1")


def check_sweep(sweep: Path, seeds: tuple[int, ...] = (0, 1)) -> list[Path]:
    """One run dir per seed, each complete, with its own config, store and labels; no file shared."""
    runs = sorted(p.parent for p in sweep.glob("*/config.yaml"))
    assert len(runs) == len(seeds), [str(p) for p in sweep.iterdir()]
    found = []
    for run in runs:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        summary = json.loads((run / "summary.json").read_text())
        assert summary["seed"] == cfg["seed"] and summary["env_steps"] == 300 and summary["labels_used"] == 10
        assert Path(cfg["out"]).resolve() == run.resolve()  # ${out} follows the job's own directory
        assert Path(summary["run_dir"]).resolve() == run.resolve()
        with sqlite3.connect(run / "store.sqlite") as db:
            assert db.execute("SELECT COUNT(*) FROM labels").fetchone()[0] == 10
        assert (run / "metrics.csv").read_text().count("\n") >= 2
        found.append(cfg["seed"])
    assert sorted(found) == sorted(seeds)
    stores = [(r / "store.sqlite").read_bytes() for r in runs]
    assert stores[0] != stores[1]  # different seeds, different segments: the runs did not share a store
    return runs

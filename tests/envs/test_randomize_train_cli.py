"""`pbrl train` with domain randomisation switched on, through the real CLI (slow: a tiny SAC run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cli_runs import TINY_TRAIN

TINY = [*TINY_TRAIN, "task=hopper", "episode_length=60", "budget.labels=10", "budget.env_steps=400",
        "eval.every=400", "checkpoint_every=400"]  # later overrides win


@pytest.mark.slow
def test_train_with_randomisation(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "pbrl.cli", "train", f"out={tmp_path}/run", *TINY,
                          "randomisation.enabled=true", "randomisation.mass=[0.5,0.6]"],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["randomisation"]["mass"] == [0.5, 0.6] and cfg["task"]["randomisation"]["friction"] == [0.7, 1.3]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["env_steps"] == 400
    res = subprocess.run([sys.executable, "-m", "pbrl.cli", "train", f"out={tmp_path}/bad", *TINY,
                          "randomisation.mass=[2,1]"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "pbrl: error: randomisation.mass: expected 0 < low <= high" in res.stderr

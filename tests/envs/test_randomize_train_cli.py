"""`pbrl train` with domain randomisation switched on, through the real CLI (slow: a tiny SAC run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TINY = ["task=hopper", "episode_length=60", "segment_length=20", "budget.labels=10", "budget.per_round=10",
        "budget.every=200", "budget.env_steps=400", "eval.every=400", "eval.episodes=1", "eval.final_episodes=1",
        "eval.video=false", "eval.reward_pairs=20", "checkpoint_every=400", "reward.epochs=2",
        "reward.model.hidden=[16,16]", "threads=1", "algo=sac", "algo.seed_steps=200", "algo.sac.batch_size=16",
        "algo.sac.policy_kwargs.net_arch=[16,16]"]


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

"""Train a tiny SAC run with `pbrl train`, then `pbrl export` it (slow: real training through the CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TINY = ["task=halfcheetah", "episode_length=100", "segment_length=20", "budget.labels=10", "budget.per_round=10",
        "budget.every=200", "budget.env_steps=400", "eval.every=400", "eval.episodes=1", "eval.final_episodes=1",
        "eval.video=false", "eval.reward_pairs=20", "checkpoint_every=400", "reward.epochs=2",
        "reward.model.hidden=[16,16]", "threads=1", "algo=sac", "algo.seed_steps=200", "algo.sac.batch_size=16",
        "algo.sac.policy_kwargs.net_arch=[32,32]"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_train_then_export(tmp_path: Path, fmt: str) -> None:
    run = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "pbrl.cli", "train", f"out={run}", *TINY], capture_output=True,
                         text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    res = subprocess.run([sys.executable, "-m", "pbrl.cli", "export", str(run), "--format", fmt],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    meta = json.loads((run / "export" / "policy.json").read_text())
    assert meta["file"] == {"onnx": "policy.onnx", "torchscript": "policy.pt"}[fmt]
    assert meta["parity"]["passed"] and meta["parity"]["max_abs_diff"] < 1e-5 and meta["parity"]["rollout_steps"] == 100
    assert (run / "export" / meta["file"]).is_file()

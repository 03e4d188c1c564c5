"""Train a tiny SAC run with `pbrl train`, then `pbrl export` it (slow: real training through the CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli_runs import TINY_TRAIN

TINY = [*TINY_TRAIN, "budget.labels=10", "budget.env_steps=400", "eval.every=400", "checkpoint_every=400"]  # later overrides win


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
    parity = meta["parity"]
    assert parity["passed"] and parity["max_abs_diff"] < 1e-5 and parity["rollout_steps"] == 10 * 100  # 10 episodes
    assert (run / "export" / meta["file"]).is_file()

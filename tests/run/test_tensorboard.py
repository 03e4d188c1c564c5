"""logger=tensorboard: SB3's logs and pbrl's metrics rows read back from the run's event files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from checks import tensorboard_scalars

from cli_runs import TINY_TRAIN, run_cli

pytest.importorskip("tensorboard", reason="the tensorboard extra (pip install 'pbrl[tensorboard]') is not installed")


def test_tensorboard_holds_sb3_logs_and_every_metrics_row(tmp_path: Path) -> None:
    run = tmp_path / "run"
    res = run_cli("train", f"out={run}", *TINY_TRAIN, "logger=tensorboard", "budget.env_steps=500", "eval.every=250",
                  timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    scalars = tensorboard_scalars(run / "tensorboard")
    with open(run / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2
    logged = dict(scalars["pbrl/return_mean"])
    for row in rows:  # each metrics.csv row at its env step, same value (float32 in the event file)
        assert logged[int(float(row["env_steps"]))] == pytest.approx(float(row["return_mean"]), rel=1e-6, abs=1e-4)
    assert dict(scalars["pbrl/labels_used"])[500] == 20
    # SB3's own logger went there too: SAC's losses and the training-episode returns
    assert {"train/actor_loss", "train/critic_loss", "rollout/ep_rew_mean"} <= set(scalars)


def test_unknown_logger_is_refused_in_one_line(tmp_path: Path) -> None:
    res = run_cli("train", f"out={tmp_path}/run", *TINY_TRAIN, "logger=wandb", timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1] == ("pbrl: error: logger: 'wandb' is not a logger; expected one of "
                                                   "none, tensorboard")
    assert not (tmp_path / "run" / "config.yaml").exists()

"""`pbrl train reward=gaussian` end to end on a tiny budget, then `pbrl eval-reward` on its run dir."""

import json
from pathlib import Path

import pytest
import torch

from cli_runs import TINY_TRAIN, run_cli

TINY = list(TINY_TRAIN)
pbrl = run_cli


@pytest.mark.slow
def test_train_gaussian_reward_then_eval_reward(tmp_path: Path) -> None:
    run = tmp_path / "run"
    # 30 epochs (not TINY's 3): enough for the 20 labels to be learnt, which is what the run must show
    res = pbrl("train", f"out={run}", *TINY, "reward=gaussian", "reward.conservative_k=0.5", "query=entropy",
               "reward.epochs=30")
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["labels_used"] == 20 and 0.0 <= summary["reward_accuracy"] <= 1.0
    state = torch.load(run / "reward_model.pt", weights_only=False)
    assert state["config"]["kind"] == "gaussian"
    assert "_target_: pbrl.rewards.gaussian.GaussianReward" in (run / "config.yaml").read_text()

    res = pbrl("eval-reward", str(run), "--model", str(run / "reward_model.pt"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "in-sample" in res.stdout and "calibration ECE" in res.stdout
    report = json.loads((run / "reward_eval" / "reward_eval.json").read_text())
    assert report["in_sample"] is True and report["n_pairs"] > 0
    # the saved model orders its own training pairs as labelled (the oracle teacher: also as the true return);
    # an untrained or sign-flipped model scores about 0.5 or below
    assert report["accuracy"] >= 0.8 and report["accuracy_vs_true"] >= 0.8, report
    res = pbrl("eval-reward", str(run), "--out", str(tmp_path / "split"), "--epochs", "3")
    assert res.returncode == 0, res.stderr[-2000:]
    split = json.loads((tmp_path / "split" / "reward_eval.json").read_text())
    assert split["mode"] == "heldout_split" and split["n_train"] + split["n_pairs"] == report["n_pairs"]

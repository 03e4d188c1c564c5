"""`pbrl train algo=iql` (P-IQL, PT-IQL) end to end on a tiny Meta-World store, `pbrl export` of its actor, a
SIGKILLed run resuming, and `reward=transformer` driving online PEBBLE."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_runs import TINY_TRAIN, run_cli
from pbrl.cli import main
from pbrl.export import export_run
from pbrl.agents.offline_policy import load_policy

COLLECT = ["task=drawer-open", "episodes=3", "episode_length=60", "segment_length=20", "stride=10",
           "pairing=dense", "group_size=3", "aligned=false", "threads=1"]
TRAIN = ["task=drawer-open", "episode_length=60", "segment_length=20", "eval.every=1000", "eval.episodes=1",
         "eval.final_episodes=1", "eval.video=false", "checkpoint_every=2", "threads=1", "algo=iql", "algo.steps=4",
         "algo.hidden=[16,16]", "algo.batch_size=32", "reward.epochs=2"]
TRANSFORMER = ["reward=transformer", "reward.model.d_model=16", "reward.model.n_heads=2"]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("collect") / "drawer.sqlite"
    main(["data", "collect", *COLLECT, f"out={path}"])
    return path


@pytest.mark.parametrize("reward", ["ensemble", "transformer", "obs-only"])
def test_train_iql_writes_artefacts_and_exports(store_path: Path, tmp_path: Path, reward: str) -> None:
    out = tmp_path / reward
    extra = {"transformer": TRANSFORMER, "obs-only": ["algo.reward_inputs=obs"]}.get(reward, [])
    main(["train", f"data={store_path}", *TRAIN, *extra, f"out={out}"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algo"] == "iql" and summary["grad_steps"] == 4
    # 3 episodes x steps 0..59 stitched from 20-step windows every 10 steps: 3 runs, 3 x 59 transitions
    assert summary["train"]["runs"] == 3 and summary["train"]["transitions"] == 3 * 59
    assert 0.0 <= summary["reward_accuracy"] <= 1.0 and np.isfinite(summary["return_mean"])
    for name in ("config.yaml", "metrics.csv", "curves.png", "policy.pt", "reward_model.pt", "reward_fit.json",
                 "checkpoint/state.json"):
        assert (out / name).is_file(), name
    kind = torch.load(out / "reward_model.pt", weights_only=False)["config"].get("kind", "ensemble")
    assert kind == ("transformer" if reward == "transformer" else "ensemble")
    policy = load_policy(out / "policy.pt")
    obs = np.zeros((2, 39), np.float32)
    assert torch.allclose(policy(torch.as_tensor(obs)), torch.as_tensor(policy.act(obs)))
    meta = json.loads(export_run(out).read_text())
    assert meta["algo"] == "iql" and meta["parity"]["passed"] and meta["policy"]["class"] == "GaussianActor"


def test_iql_run_shows_the_reward_fit_and_gradient_steps(store_path: Path, tmp_path: Path,
                                                          capfd: pytest.CaptureFixture) -> None:
    """A reward fit of a real store takes minutes per epoch at scale: both phases show a progress bar on stderr."""
    main(["train", f"data={store_path}", *TRAIN, f"out={tmp_path / 'run'}"])
    err = capfd.readouterr().err
    pairs = json.loads((tmp_path / "run" / "summary.json").read_text())["pairs"]
    assert f"reward fit ({pairs} pairs)" in err and "2/2 [" in err  # reward.epochs=2
    assert "drawer-open [iql]" in err and "4/4 [" in err  # algo.steps=4


def test_iql_bad_setting_is_a_one_line_error(store_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", f"data={store_path}", *TRAIN, "algo.expectile=1.5", f"out={tmp_path / 'x'}"])
    assert exc.value.code == 2
    assert "algo.expectile: expected a value in (0, 1), got 1.5" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # refused before the reward fit or anything else is written
    with pytest.raises(SystemExit):
        main(["train", f"data={store_path}", *TRAIN, "algo.reward_normalize=minmax", f"out={tmp_path / 'y'}"])
    assert "algo.reward_normalize: expected standard | scale | none | auto | return_range, got 'minmax'" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()
    with pytest.raises(SystemExit):
        main(["train", f"data={store_path}", *TRAIN, "algo.reward_inputs=act", f"out={tmp_path / 'y'}"])
    assert "algo.reward_inputs: expected obs_act (r(s, a)) or obs (r(s)), got 'act'" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()


@pytest.mark.slow
def test_killed_iql_run_resumes_without_refitting_the_reward(store_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    args = [f"data={store_path}", *[a for a in TRAIN if not a.startswith(("algo.steps", "checkpoint_every"))],
            "algo.steps=1000", "checkpoint_every=50", f"out={out}"]
    proc = subprocess.Popen([sys.executable, "-m", "pbrl.cli", "train", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        state = out / "checkpoint" / "state.json"
        deadline = time.time() + 300
        while not (state.is_file() and json.loads(state.read_text())["step"] >= 100):
            assert proc.poll() is None and time.time() < deadline, "training ended or stalled before the kill"
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    fitted = (out / "reward_fit.json").stat().st_mtime_ns
    res = run_cli("train", *args)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["grad_steps"] == 1000 and (out / "reward_fit.json").stat().st_mtime_ns == fitted


@pytest.mark.slow
def test_transformer_reward_drives_online_pebble(tmp_path: Path) -> None:
    run = tmp_path / "pebble"
    tiny = [a for a in TINY_TRAIN if not a.startswith("reward.model.hidden")]
    res = run_cli("train", f"out={run}", *tiny, *TRANSFORMER, "query=uniform")
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["labels_used"] == 20 and 0.0 <= summary["reward_accuracy"] <= 1.0
    assert torch.load(run / "reward_model.pt", weights_only=False)["config"]["kind"] == "transformer"

"""End-to-end `pbrl data collect` + `pbrl train algo=cpl|oppo|bc` on Meta-World with tiny budgets (real CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pbrl.cli import main
from pbrl.data.store import PreferenceStore
from pbrl.agents.offline_policy import load_policy

COLLECT = ["task=drawer-open", "episodes=3", "episode_length=60", "segment_length=20", "stride=20",
           "pairing=dense", "group_size=3", "aligned=false", "threads=1"]
TRAIN = ["task=drawer-open", "episode_length=60", "segment_length=20", "eval.every=1000", "eval.episodes=1",
         "eval.final_episodes=1", "eval.video=false", "checkpoint_every=2", "threads=1", "algo.steps=4",
         "algo.hidden=[16,16]", "algo.batch_pairs=4"]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("collect") / "drawer.sqlite"
    main(["data", "collect", *COLLECT, f"out={path}"])
    return path


def test_collect_writes_a_labelled_store(store_path: Path) -> None:
    with PreferenceStore(store_path, create=False) as store:
        # 3 episodes x 3 segments of 20 steps = 9 segments, dense groups of 3 -> 3 groups x 3 pairs
        assert store.num_segments() == 9 and store.count_labels() == 9
        assert store.get_meta("task") == "drawer-open" and store.get_meta("segment_length") == "20"
        for row in store.labels():  # rational teacher: the label follows the true returns
            a, b = store.get_segments([row.first_id, row.second_id])
            assert row.label == (1.0 if a.true_return > b.true_return else 0.0 if a.true_return < b.true_return else 0.5)


@pytest.mark.parametrize("algo,extra", [("cpl", ["algo.bc_steps=2", "algo.std=0.5"]), ("oppo", ["algo.d_model=16"])])
def test_train_offline_algo_writes_artefacts(store_path: Path, tmp_path: Path, algo: str, extra: list[str]) -> None:
    out = tmp_path / algo
    main(["train", f"algo={algo}", f"data={store_path}", *TRAIN, *extra, f"out={out}"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algo"] == algo and summary["grad_steps"] == 4 and summary["pairs"] == 9
    assert 0.0 <= summary["success_rate"] <= 1.0 and np.isfinite(summary["return_mean"])
    for name in ("config.yaml", "metrics.csv", "curves.png", "policy.pt", "checkpoint/state.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == 4
    policy = load_policy(out / "policy.pt")
    if algo == "cpl":  # the fixed action std reaches the saved actor
        assert policy.config["fixed_std"] == 0.5
    obs = np.zeros((2, 39), np.float32)
    act = policy.act(obs)
    assert act.shape == (2, 4) and np.all(np.abs(act) <= 1.0)
    assert torch.allclose(policy(torch.as_tensor(obs)), torch.as_tensor(act))  # forward == act (export path)


def test_train_offline_without_data_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "algo=cpl", *TRAIN, f"out={tmp_path / 'x'}"])
    assert exc.value.code == 2
    assert "data: algo=cpl learns offline; give data=PATH_TO_STORE" in capsys.readouterr().err


def test_data_without_subcommand_is_a_one_line_error(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["data"])
    assert "pbrl data collect" in capsys.readouterr().err


@pytest.mark.slow
def test_collect_in_train_video_and_resume(tmp_path: Path) -> None:
    """`+data.collect=true`, eval.mp4, BC baselines, and a second identical command resuming the finished run."""
    out = tmp_path / "bc"
    args = ["train", "algo=bc", "algo.preferred_only=true", "+data.collect=true", "+data.episodes=3",
            "+data.stride=20", "+data.aligned=false", *[a for a in TRAIN if not a.startswith(("eval.video",
            "algo.batch_pairs"))], "eval.video_steps=5", f"out={out}"]
    main(args)
    assert (out / "eval.mp4").stat().st_size > 0 and (out / "data.sqlite").is_file()
    first = json.loads((out / "summary.json").read_text())
    main(args)  # resumes from checkpoint/ at step 4: no more training, same policy
    second = json.loads((out / "summary.json").read_text())
    assert second["grad_steps"] == first["grad_steps"] == 4 and second["return_mean"] == first["return_mean"]


def test_offline_run_logs_losses_and_metrics_to_tensorboard(store_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="the tensorboard extra (pip install 'pbrl[tensorboard]') is not installed")
    from checks import tensorboard_scalars

    out = tmp_path / "cpl"
    main(["train", "algo=cpl", f"data={store_path}", *TRAIN, "algo.steps=20", "eval.every=10", "algo.bc_steps=2",
          "logger=tensorboard", f"out={out}"])
    scalars = tensorboard_scalars(out / "tensorboard")
    rows = (out / "metrics.csv").read_text().splitlines()[1:]
    assert sorted(step for step, _ in scalars["pbrl/return_mean"]) == [10, 20] and len(rows) == 2
    # the learner's losses every eval.every // 10 = 1 gradient steps, to the last one
    assert sorted(step for step, _ in scalars["train/loss"]) == list(range(1, 21))

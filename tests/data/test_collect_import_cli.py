"""`pbrl data collect npz_in=FILE` and `minari_in=ID` into stores that `pbrl train algo=iql` learns from (real CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pbrl.cli import main
from pbrl.data.store import PreferenceStore

TRAIN = ["task=drawer-open", "episode_length=40", "segment_length=20", "eval.every=1000", "eval.episodes=1",
         "eval.final_episodes=1", "eval.video=false", "checkpoint_every=10", "threads=1", "algo=iql", "algo.steps=2",
         "algo.hidden=[16,16]", "algo.batch_size=16", "reward.epochs=1"]


def test_npz_in_cpl_scored_dataset_then_iql(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(0)
    f = tmp_path / "mw_drawer-open.npz"
    np.savez_compressed(f, obs=rng.standard_normal((8, 20, 39)).astype(np.float32),
                        action=rng.uniform(-1, 1, (8, 20, 4)).astype(np.float32),
                        reward=rng.standard_normal((8, 20)).astype(np.float32), rl_sum=np.arange(8, dtype=np.float32))
    store = tmp_path / "s.sqlite"
    main(["data", "collect", "task=drawer-open", f"npz_in={f}", "pairing=dense", "group_size=4", f"out={store}"])
    assert "collected 8 segments, 12 pairs" in capsys.readouterr().out
    with PreferenceStore(store, create=False) as s:
        assert s.get_meta("task") == "drawer-open" and json.loads(s.get_meta("import"))["format"] == "cpl_scored"
    out = tmp_path / "run"
    main(["train", f"data={store}", *TRAIN, f"out={out}"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pairs"] == 12 and summary["train"]["transitions"] == 8 * 19  # each segment its own run


def test_npz_in_of_another_task_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = tmp_path / "cheetah.npz"
    np.savez(f, obs=np.zeros((4, 5, 17), np.float32), action=np.zeros((4, 5, 6), np.float32), rl_sum=np.arange(4.0))
    with pytest.raises(SystemExit):
        main(["data", "collect", "task=drawer-open", f"npz_in={f}", f"out={tmp_path / 's.sqlite'}"])
    assert "obs/action sizes (17, 6) (keys 'obs', 'action'); task drawer-open expects (39, 4)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["data", "collect", "task=drawer-open", f"npz_in={tmp_path / 'missing.npz'}", f"out={tmp_path / 't.sqlite'}"])
    assert "npz_in" in capsys.readouterr().err and not (tmp_path / "t.sqlite").exists()


@pytest.mark.slow  # Minari + h5py and rollouts: ~1 min on the shared machine
def test_minari_dataset_without_pbrl_infos_labelled_then_iql(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain Minari dataset (no reward terms, no success infos) gets scripted labels on its rewards; a dataset of
    another environment is refused with one line."""
    minari = pytest.importorskip("minari", reason="Minari I/O needs the 'data' extra")
    from minari.data_collector import EpisodeBuffer

    from pbrl.run.minari_io import export_minari, import_minari
    from pbrl.envs import expert_policy, load_task, make_env, rollout
    from pbrl.types import PbrlError

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    task = load_task("drawer-open")
    env = make_env(task, seed=0, episode_length=40)
    trajs = [rollout(env, expert_policy(task), seed=i, episode_id=i, task_name=task.name) for i in range(3)]
    buffers = [EpisodeBuffer(id=i, observations=t.obs, actions=t.acts, rewards=list(t.rewards.astype(float)),
                             terminations=[False] * len(t), truncations=[False] * (len(t) - 1) + [True])
               for i, t in enumerate(trajs)]
    minari.create_dataset_from_buffers("plain/drawer-open/expert-v0", buffers, action_space=env.action_space,
                                       observation_space=env.observation_space, algorithm_name="scripted")
    env.close()
    store = tmp_path / "m.sqlite"
    main(["data", "collect", "task=drawer-open", "minari_in=plain/drawer-open/expert-v0", "segment_length=20",
          "stride=10", "pairing=dense", "group_size=3", "aligned=false", f"out={store}"])
    with PreferenceStore(store, create=False) as s:
        assert s.num_segments() == 9
        for row in s.labels():  # the rational teacher ranks by the dataset's rewards
            a, b = s.get_segments([row.first_id, row.second_id])
            assert row.label == (1.0 if a.true_return > b.true_return else 0.0 if a.true_return < b.true_return else 0.5)
    out = tmp_path / "run"
    main(["train", f"data={store}", *TRAIN, f"out={out}"])
    assert json.loads((out / "summary.json").read_text())["train"]["transitions"] == 3 * 39

    cheetah = load_task("halfcheetah")
    env = make_env(cheetah, seed=0, episode_length=5)
    export_minari([rollout(env, lambda o: np.zeros(6, np.float32), seed=0, task_name="halfcheetah")],
                  "plain/halfcheetah/zero-v0", cheetah)
    env.close()
    with pytest.raises(PbrlError, match="minari_in plain/halfcheetah/zero-v0: observation/action shapes"):
        import_minari("plain/halfcheetah/zero-v0", task)

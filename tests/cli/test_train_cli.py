"""End-to-end `pbrl train` on tiny budgets through the real CLI (Hydra, SB3, MuJoCo, SQLite)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import pytest

from pbrl.data.store import PreferenceStore

TINY = [
    "task=halfcheetah", "episode_length=100", "segment_length=20", "budget.labels=20", "budget.per_round=10",
    "budget.every=200", "eval.every=300", "eval.episodes=1", "eval.final_episodes=2", "eval.video_steps=5",
    "eval.reward_pairs=50", "checkpoint_every=300", "reward.epochs=3", "reward.model.hidden=[32,32]", "threads=1",
]
TINY_SAC = ["algo=sac", "budget.env_steps=600", "algo.seed_steps=200", "algo.sac.batch_size=32",
            "algo.sac.policy_kwargs.net_arch=[32,32]"]
TINY_PPO = ["algo=ppo", "budget.env_steps=512", "algo.seed_steps=200", "algo.ppo.n_steps=128",
            "algo.ppo.batch_size=32", "algo.ppo.n_epochs=2"]


def pbrl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pbrl.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def check_artefacts(run: Path, *, env_steps: int) -> dict:
    for name in ("config.yaml", "metrics.csv", "summary.json", "curves.png", "eval.mp4", "policy.zip",
                 "reward_model.pt", "store.sqlite"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    for key in ("return_mean", "success_rate", "labels_used", "reward_accuracy", "env_steps", "wall_s"):
        assert key in summary, key
    assert summary["env_steps"] == env_steps
    assert summary["labels_used"] == 20
    assert summary["success_rate"] is None  # HalfCheetah has no success signal
    assert 0.0 <= summary["reward_accuracy"] <= 1.0
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert iio.imread(run / "eval.mp4").shape[0] == 5
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert rows[0].startswith("env_steps,labels_used") and len(rows) >= 3
    assert "seed: 0" in (run / "config.yaml").read_text()
    with PreferenceStore(run / "store.sqlite", create=False) as store:
        assert store.count_labels(include_skipped=True, sources=["scripted"]) == 20
        assert store.pair_batch().obs1.shape[1:] == (20, 17)
    return summary


def test_train_sac_end_to_end(tmp_path: Path) -> None:
    res = pbrl("train", f"out={tmp_path}/sac", *TINY, *TINY_SAC, "algo.unsup_steps=100")  # + entropy pre-training
    assert res.returncode == 0, res.stderr[-2000:]
    check_artefacts(tmp_path / "sac", env_steps=600)
    assert "done: return" in res.stdout


def test_train_ppo_end_to_end(tmp_path: Path) -> None:
    res = pbrl("train", f"out={tmp_path}/ppo", *TINY, *TINY_PPO)
    assert res.returncode == 0, res.stderr[-2000:]
    check_artefacts(tmp_path / "ppo", env_steps=512)


def _labels(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT pair_id, first_id, second_id, label, skipped FROM labels ORDER BY pair_id").fetchall()


def test_killed_run_resumes_without_losing_labels(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", f"out={out}", *TINY, *TINY_SAC, "budget.env_steps=1500", "budget.labels=60"]
    proc = subprocess.Popen([sys.executable, "-m", "pbrl.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not (out / "checkpoint" / "state.json").exists():
        time.sleep(0.5)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "checkpoint" / "state.json").exists(), "no checkpoint was written before the kill"
    before = _labels(out / "store.sqlite")
    assert before, "labels were committed before the kill"
    res = pbrl(*args)
    assert res.returncode == 0, res.stderr[-2000:]
    after = _labels(out / "store.sqlite")
    assert after[: len(before)] == before  # every acknowledged label survives, unchanged
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] == 1500 and summary["labels_used"] == 60 == len(after)


@pytest.mark.parametrize(
    "override, message",
    [
        ("algo=nope", "algo=nope: unknown algo; expected one of: "),
        ("task=mars-rover", "task=mars-rover: unknown task"),
        ("segment_length=500", "segment_length (500) is longer than an episode of halfcheetah (100 steps)"),
        ("budget.labels=0", "budget.labels: expected >= 1"),
        ("feedback.preset=telepathic", "telepathic"),
        ("reward.normalize=cubic", "reward.normalize: expected standard | scale | none"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, override: str, message: str) -> None:
    res = pbrl("train", f"out={tmp_path}/bad", *TINY, *TINY_SAC, override)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.startswith("pbrl: error:")]
    assert len(lines) == 1 and message in lines[0], res.stderr[-1500:]
    assert "Traceback" not in res.stderr


def test_corrupt_store_is_refused_untouched(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    junk = b"this is not sqlite" * 100
    (out / "store.sqlite").write_bytes(junk)
    res = pbrl("train", f"out={out}", *TINY, *TINY_SAC)
    assert res.returncode == 2
    assert "not a pbrl preference store" in res.stderr and "store.sqlite" in res.stderr
    assert (out / "store.sqlite").read_bytes() == junk


def test_help_and_tasks() -> None:
    res = pbrl("--help")
    assert res.returncode == 0 and "pbrl train" in res.stdout and "tasks" in res.stdout
    res = pbrl("train", "--help")
    assert res.returncode == 0 and "budget" in res.stdout and "task:" in res.stdout.lower()
    res = pbrl("tasks")
    assert res.returncode == 0 and "drawer-open" in res.stdout and "reward_forward" in res.stdout


def test_multirun_one_dir_per_seed(tmp_path: Path) -> None:
    res = pbrl("train", "-m", "seed=0,1", f"hydra.sweep.dir={tmp_path}/sweep", *TINY, *TINY_SAC,
               "budget.env_steps=300", "eval.every=300", "budget.labels=10", "algo.seed_steps=150", timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    summaries = sorted((tmp_path / "sweep").glob("*/summary.json"))
    assert len(summaries) == 2
    assert {json.loads(p.read_text())["seed"] for p in summaries} == {0, 1}


def test_same_seed_same_labels_and_numbers(tmp_path: Path) -> None:
    args = [*TINY, *TINY_SAC, "budget.env_steps=400", "eval.every=400", "algo.seed_steps=200", "eval.video=false"]
    for name in ("a", "b"):
        res = pbrl("train", f"out={tmp_path}/{name}", *args)
        assert res.returncode == 0, res.stderr[-2000:]
    a, b = (json.loads((tmp_path / n / "summary.json").read_text()) for n in ("a", "b"))
    assert a["return_mean"] == b["return_mean"] and a["reward_accuracy"] == b["reward_accuracy"]
    assert _labels(tmp_path / "a" / "store.sqlite") == _labels(tmp_path / "b" / "store.sqlite")

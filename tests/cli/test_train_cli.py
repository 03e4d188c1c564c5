"""`pbrl train` end to end on tiny budgets: the real CLI (Hydra, SB3, MuJoCo, SQLite).

Two runs go through a fresh interpreter (what a user types, with its exit code and output); the rest call
`pbrl.cli.main` in this process, which is the same code path without the interpreter start-up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest
import yaml

from cli_runs import TINY_PPO, TINY_RUN, TINY_SAC, run_cli
from pbrl.cli import main
from pbrl.data.store import PreferenceStore
from pbrl.run.config import load_config
from pbrl.run.rundir import write_run_config
from pbrl.run.runner import run_training
from pbrl.types import PbrlError

TINY = [*TINY_RUN, "eval.final_episodes=2", "eval.video=true", "eval.video_steps=5"]  # the final video checked


def check_artefacts(run: Path, *, env_steps: int) -> dict:
    for name in ("config.yaml", ".hydra/config.yaml", ".hydra/overrides.yaml", "train.log", "metrics.csv",
                 "summary.json", "curves.png", "eval.mp4", "policy.zip", "reward_model.pt", "store.sqlite"):
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
    log = (run / "train.log").read_text()
    for line in ("new run in", "feedback round 0 at step", "fitting the reward model", "evaluation at step",
                 "checkpoint at step", "final evaluation", "finished: return"):
        assert line in log, line
    return summary


def test_train_sac_end_to_end(tmp_path: Path, sb3_tempdir: Path) -> None:
    res = run_cli("train", f"out={tmp_path}/sac", *TINY, *TINY_SAC, "algo.unsup_steps=100")  # + entropy pre-training
    assert res.returncode == 0, res.stderr[-2000:]
    check_artefacts(tmp_path / "sac", env_steps=600)
    assert "done: return" in res.stdout
    assert " INFO " not in res.stdout + res.stderr and "OpenGL" not in res.stdout + res.stderr  # no library chatter
    overrides = yaml.safe_load((tmp_path / "sac" / ".hydra" / "overrides.yaml").read_text())
    assert "algo.unsup_steps=100" in overrides
    assert not list(sb3_tempdir.glob("SB3-*"))  # no logger folder per learn() call left in /tmp


def test_train_ppo_end_to_end(tmp_path: Path, sb3_tempdir: Path) -> None:
    main(["train", f"out={tmp_path}/ppo", *TINY, *TINY_PPO])
    check_artefacts(tmp_path / "ppo", env_steps=512)
    assert not list(sb3_tempdir.glob("SB3-*"))


def test_rejected_command_writes_nothing(tmp_path: Path) -> None:
    """Hydra's own suggestion for a typo (`+key=...`) is refused by the real key, before a directory exists."""
    res = run_cli("train", f"out={tmp_path}/bad", *TINY, *TINY_SAC, "+budget.envsteps=5")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "pbrl: error: budget.envsteps: unknown key (did you mean budget.env_steps?); budget has: env_steps, every, "
        "labels, per_round"]
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("algo=nope", "algo=nope: unknown algo; expected one of: "),
        ("task=mars-rover", "task=mars-rover: unknown task"),
        ("segment_length=500", "segment_length=500: longer than an episode of halfcheetah (100 steps)"),
        ("seed=abc", "seed=abc: expected an integer"),
        ("seed=-1", "seed=-1: expected >= 0"),
        ("budget.envsteps=5", "budget.envsteps: unknown key (did you mean budget.env_steps?)"),
        ("+eval.vidoe=false", "eval.vidoe: unknown key (did you mean eval.video?)"),
        ("+algo.sac.foo=1", "algo.sac.foo: unknown key; algo.sac has: "),
        ("+reward.model.hiden=[8]", "reward.model.hiden: unknown key (did you mean reward.model.hidden?)"),
        ("+task.sucess_key=x", "task.sucess_key: unknown key (did you mean 'success_key'?)"),
        ("budget.env_steps=0", "budget.env_steps=0: expected more than algo.seed_steps + algo.unsup_steps = "
                               "200 + 0 = 200, so that preference learning has steps left; the smallest run is "
                               "budget.env_steps=201"),
        ("budget.per_round=0", "budget.per_round=0: expected >= 1"),
        ("budget.every=0", "budget.every=0: expected >= 1"),
        ("budget.labels=-1", "budget.labels=-1: expected >= 1"),
        ("budget.labels=0", "budget.labels=0: expected >= 1"),
        ("reward.epochs=0", "reward.epochs=0: expected >= 1"),
        ("algo.seed_steps=-5", "algo.seed_steps=-5: expected >= 0"),
        ("algo.update_after_reset=-1", "algo.update_after_reset=-1: expected >= 0"),
        ("eval.every=0", "eval.every=0: expected >= 1"),
        ("checkpoint_every=2.5", "checkpoint_every=2.5: expected an integer"),
        ("feedback.preset=telepathic", "feedback.preset=telepathic: expected one of oracle"),
        ("reward.normalize=cubic", "reward.normalize=cubic: expected standard | scale | none | auto"),
        ("randomisation.mass=3", "randomisation.mass=3: expected a list of 2 values"),
        ("+data.episodes=3", "data={'episodes': 3}: expected null: only the offline algos"),
    ],
)
def test_bad_input_is_one_line_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture, override: str,
                                              message: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", f"out={tmp_path}/bad", *TINY, *TINY_SAC, override])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pbrl: error: ") and message in err[0], err
    assert not (tmp_path / "bad").exists()


def test_out_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "f").write_text("mine")
    with pytest.raises(SystemExit):
        main(["train", f"out={tmp_path}/f", *TINY, *TINY_SAC])
    assert f"out={tmp_path}/f: expected a run directory (new, or one to resume), not a file" in capsys.readouterr().err
    assert (tmp_path / "f").read_text() == "mine"


def _fake_run(out: Path, overrides: list[str], *, finished: bool = False) -> None:
    """A run directory as `pbrl train` leaves it: config.yaml, .hydra/, optionally summary.json."""
    write_run_config(load_config("train", [f"out={out}", *overrides]), out)
    (out / ".hydra").mkdir()
    (out / ".hydra" / "overrides.yaml").write_text("- the original overrides\n")
    if finished:
        (out / "summary.json").write_text(json.dumps({"return_mean": 1.5, "random_return": -3.0, "labels_used": 20,
                                                      "success_rate": None, "reward_accuracy": 0.75}))


def test_rejected_resume_leaves_the_run_as_it_was(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    _fake_run(out, [*TINY, *TINY_SAC])
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit):
        main(["train", f"out={out}", *TINY, *TINY_SAC, "budget.labels=30"])
    assert (f"out={out}: holds a run with budget.labels=20, this command has budget.labels=30"
            in capsys.readouterr().err)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_finished_run_is_not_run_again(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    _fake_run(out, [*TINY, *TINY_SAC], finished=True)
    summary = (out / "summary.json").read_bytes()
    main(["train", f"out={out}", *TINY, *TINY_SAC])
    assert capsys.readouterr().out.startswith("already finished (nothing run; summary.json unchanged): return 1.5")
    assert (out / "summary.json").read_bytes() == summary and not (out / "store.sqlite").exists()


def test_corrupt_store_is_refused_untouched(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    junk = b"this is not sqlite" * 100
    (out / "store.sqlite").write_bytes(junk)
    with pytest.raises(PbrlError, match="not a pbrl preference store"):
        run_training(load_config("train", [f"out={out}", *TINY, *TINY_SAC]), out)
    assert (out / "store.sqlite").read_bytes() == junk
    assert sorted(p.name for p in out.iterdir()) == ["store.sqlite"]  # no config.yaml left to refuse a fix


def test_help_and_tasks(capsys: pytest.CaptureFixture) -> None:
    main(["--help"])
    out = capsys.readouterr().out
    assert "pbrl train" in out and "tasks" in out
    main(["train", "--help"])
    out = capsys.readouterr().out
    assert "budget.env_steps=10000" in out and "environment steps for the learner" in out
    assert "feedback=" in out and "*scripted" in out and "*crossq" in out and "algo.crossq.batch_size=256" in out
    assert len(out.splitlines()) < 130
    main(["train", "algo=ppo", "--help"])
    out = capsys.readouterr().out
    assert "*ppo" in out and "algo.ppo.n_steps=1024" in out and "algo.crossq." not in out
    main(["tasks"])
    out = capsys.readouterr().out
    assert "drawer-open" in out and "reward_forward" in out


def test_output_into_a_closed_pipe_ends_without_a_traceback() -> None:
    """`pbrl --help | head -1`: the reader is gone before pbrl writes (the pipe is closed at once)."""
    for args in (["--help"], ["tasks"]):
        proc = subprocess.Popen([sys.executable, "-m", "pbrl.cli", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipeError" not in err, err[-1000:]


def test_multirun_one_dir_per_seed(tmp_path: Path) -> None:
    res = run_cli("train", "-m", "seed=0,1", f"hydra.sweep.dir={tmp_path}/sweep", *TINY, *TINY_SAC,
                  "budget.env_steps=300", "eval.every=300", "budget.labels=10", "algo.seed_steps=150",
                  "eval.video=false")
    assert res.returncode == 0, res.stderr[-2000:]
    summaries = sorted((tmp_path / "sweep").glob("*/summary.json"))
    assert len(summaries) == 2
    assert {json.loads(p.read_text())["seed"] for p in summaries} == {0, 1}


def test_multirun_checks_every_job_first(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["train", "-m", f"hydra.sweep.dir={tmp_path}/sweep", *TINY, *TINY_SAC, "budget.per_round=10,0"])
    assert "budget.per_round=0: expected >= 1" in capsys.readouterr().err
    assert not (tmp_path / "sweep").exists()


def test_checkpoint_of_another_format_is_refused_before_anything_changes(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    _fake_run(out, [*TINY, *TINY_SAC])
    (out / "checkpoint").mkdir()
    (out / "checkpoint" / "state.json").write_text(json.dumps({"env_steps": 300, "next_feedback": 400}))  # format 1
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit):
        main(["train", f"out={out}", *TINY, *TINY_SAC])
    assert "written by another pbrl version (checkpoint format 1, expected 2)" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before

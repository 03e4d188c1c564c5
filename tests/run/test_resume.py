"""A killed `pbrl train` resumes from the labels it already has: no feedback round is asked twice.

The runs are real `pbrl train` processes (Hydra, SB3, MuJoCo, SQLite). Each is SIGKILLed by itself at a named
phase of the run: the test harness adds a logging handler that kills the process when the run logs the n-th
record of that phase (`feedback round ... asked`, `labelled`, `fit`, `train` chunk, `final-eval`), so every
kill lands at the same point of the run on every machine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cli_runs import TINY_RUN
from pbrl.agents.preference import FeedbackLoop, RoundRecord
from pbrl.data.store import PreferenceStore
from pbrl.feedback.teachers import teacher_from_preset
from tiny_parts import tiny_episode, tiny_feedback

#: Runs `pbrl train ARGS` and SIGKILLs itself at the n-th log record of phase PBRL_TEST_KILL_AT=phase:n.
KILLER = r"""
import logging, os, signal, sys
phase, _, nth = os.environ.get("PBRL_TEST_KILL_AT", "").partition(":")
class Kill(logging.Handler):
    seen = 0
    def emit(self, record):
        if phase and getattr(record, "phase", None) == phase:
            Kill.seen += 1
            if Kill.seen == int(nth or 1):
                os.kill(os.getpid(), signal.SIGKILL)
import pbrl.run.runner as runner
train = runner.run_training
def run_training(cfg, run_dir):
    logging.getLogger("pbrl").addHandler(Kill())
    return train(cfg, run_dir)
runner.run_training = run_training
from pbrl.cli import main
main(sys.argv[1:])
"""

# 100-step episodes; rounds of 10 queries at steps 200, 400, 600, 800 spend the 40 labels; checkpoints every 300
# steps, so each round falls between two checkpoints.
RUN = [*TINY_RUN, "eval.reward_pairs=20", "reward.epochs=2", "reward.model.hidden=[16,16]", "algo.seed_steps=200"]
SAC = ["algo=sac", "algo.sac.batch_size=16", "algo.sac.policy_kwargs.net_arch=[16,16]"]
ROUND_STEPS = [200, 400, 600, 800]
LONG = [*SAC, "budget.labels=40", "budget.env_steps=1100"]  # four rounds
SHORT = [*SAC, "budget.labels=20", "budget.env_steps=500"]  # two rounds


def train(out: Path, budget: list[str], kill_at: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PBRL_TEST_KILL_AT": kill_at}
    return subprocess.run([sys.executable, "-c", KILLER, "train", f"out={out}", *RUN, *budget], capture_output=True,
                          text=True, timeout=400, env=env)


def asked_rounds(out: Path) -> list[tuple[int, int]]:
    """(round index, step) of every `feedback round ... asking` line in train.log, across all processes."""
    text = (out / "train.log").read_text()
    return [(int(i), int(s)) for i, s in re.findall(r"feedback round (\d+) at step (\d+): asking", text)]


def check_labels_once(out: Path, n_rounds: int) -> None:
    """The label budget spent exactly once, in the rounds an uninterrupted run holds."""
    with PreferenceStore(out / "store.sqlite", create=False) as store:
        assert store.count_labels(include_skipped=True, sources=["scripted"]) == 10 * n_rounds
        rounds = json.loads(store.get_meta("pbrl.rounds"))
    expected = [(i, s, 10) for i, s in enumerate(ROUND_STEPS[:n_rounds])]
    assert [(r["index"], r["step"], r["asked"]) for r in rounds] == expected


def test_kills_after_rounds_are_labelled_resume_without_asking_them_again(tmp_path: Path) -> None:
    """The issue's case: a round labelled after the last checkpoint (or before the first) is never asked again."""
    out = tmp_path / "run"
    killed = train(out, SHORT, kill_at="labelled:1")  # round 0 (step 200) stored; no checkpoint yet (first at 300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (out / "checkpoint").exists() and asked_rounds(out) == [(0, 200)]
    killed = train(out, SHORT, kill_at="labelled:1")  # restarted from step 0; round 1 (step 400) stored after the
    assert killed.returncode == -9, killed.stderr[-2000:]  # step-300 checkpoint
    assert (out / "checkpoint").exists() and asked_rounds(out) == [(0, 200), (1, 400)]
    done = train(out, SHORT)
    assert done.returncode == 0, done.stderr[-2000:]
    log = (out / "train.log").read_text()
    assert "restarting" in log and "feedback round 1 (step 400) was labelled before the restart" in log
    assert asked_rounds(out) == [(0, 200), (1, 400)]  # each round asked once
    check_labels_once(out, n_rounds=2)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["labels_used"] == 20 and summary["env_steps"] == 500


@pytest.mark.slow
def test_kills_at_every_phase_spend_the_label_budget_once(tmp_path: Path) -> None:
    """Killed during a round, during the fit, during SAC and during the final evaluation, in one run."""
    out = tmp_path / "run"
    for kill_at, rounds_by_then in [
        ("round:2", 2),      # round 1 asked, its labels not yet stored (scripted labels: one transaction)
        ("fit:2", 3),        # resumed: fit 1 = refit on the stored rounds; fit 2 = round 2's fit, killed
        ("train:2", 4),      # during SAC after round 3, before the step-900 checkpoint
        ("final-eval:1", 4),  # after the last checkpoint, during the final evaluation
    ]:
        res = train(out, LONG, kill_at=kill_at)
        assert res.returncode == -9, (kill_at, res.stderr[-2000:])
        assert len({i for i, _ in asked_rounds(out)}) == rounds_by_then, kill_at
        assert not (out / "summary.json").exists()
    done = train(out, LONG)
    assert done.returncode == 0, done.stderr[-2000:]
    log = asked_rounds(out)
    # round 1 was asked twice only where its labels were never stored (killed while asking it)
    assert log == [(0, 200), (1, 400), (1, 400), (2, 600), (3, 800)]
    check_labels_once(out, n_rounds=4)
    summary_bytes = (out / "summary.json").read_bytes()
    again = subprocess.run([sys.executable, "-m", "pbrl.cli", "train", f"out={out}", *RUN, *LONG],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "already finished" in again.stdout, again.stderr[-2000:]
    assert (out / "summary.json").read_bytes() == summary_bytes


# -------------------------------------------------------------------------------------- the feedback loop's round log


def _feedback(store: PreferenceStore, labels: int = 6) -> FeedbackLoop:
    teacher = teacher_from_preset("oracle", rng=np.random.default_rng(0))
    return tiny_feedback(teacher, store, source="scripted", max_labels=labels, per_round=2)


def test_round_log_and_resume_of_a_complete_round(tmp_path: Path) -> None:
    eps = [tiny_episode(i) for i in range(4)]
    with PreferenceStore(tmp_path / "s.sqlite") as store:
        feedback = _feedback(store)
        feedback.round(eps, step=100)
        saved = feedback.state_dict()  # a checkpoint with the next round due at step 200
        feedback.round(eps, step=200)  # ... then the run is killed before its next checkpoint
        restarted = _feedback(store)
        restarted.load_state_dict(saved)
        assert restarted.labels_fitted == 2 and restarted.needs_fit()
        next_round, refit = restarted.resume(200)
        assert (next_round, refit) == (201, True)  # schedule every=1: after the round already labelled
        assert restarted.labels_fitted == 4 and not restarted.needs_fit()
        assert [(r.index, r.step, r.asked, r.labels_before) for r in restarted.rounds()] == [(0, 100, 2, 0),
                                                                                            (1, 200, 2, 2)]


def test_an_unfinished_round_is_finished_under_its_own_index(tmp_path: Path) -> None:
    """A round whose labels were not all stored (a person answered some) asks only the missing ones."""
    eps = [tiny_episode(i) for i in range(4)]
    with PreferenceStore(tmp_path / "s.sqlite") as store:
        feedback = _feedback(store)
        feedback.round(eps, step=10)
        feedback._log_round(RoundRecord(1, 20, 2, feedback.labels_used))  # round 1 begun ...
        first = feedback.cut_segments(eps, 2)
        store.add_pairs(first[:1], first[1:], teacher_from_preset("oracle", rng=np.random.default_rng(1)).label(
            first[:1], first[1:]), source="scripted")  # ... one of its two answers stored, then a kill
        assert feedback.last_complete_round().index == 0
        assert feedback.resume(20) == (20, True)  # the open round is still due at its step
        result = feedback.round(eps, step=20)
        assert result.asked == 1  # only the missing answer
        assert [(r.index, r.step) for r in feedback.rounds()] == [(0, 10), (1, 20)]
        assert feedback.labels_used == 4 and feedback.last_complete_round().index == 1


def test_a_checkpoint_of_the_previous_version_resumes(tmp_path: Path) -> None:
    """Before the feedback loop was renamed (PreferenceLearner) its state was saved as ``learner``, without a
    labeller entry; such a checkpoint still resumes, and its state reaches the feedback loop."""
    from pbrl.run.checkpoint import save_checkpoint
    from pbrl.run.runner import _components

    old = {"learner": {"fitted": True}, "trainer": {"next_feedback": 400}, "venv": {}, "session": {}, "run": {}}
    ckpt = save_checkpoint(tmp_path, components=old, info={"env_steps": 300})
    assert _components(ckpt) == {"feedback": {"fitted": True}, "trainer": {"next_feedback": 400}, "venv": {},
                                 "session": {}, "run": {}}
    assert _components(None) == {}


@pytest.mark.slow
def test_ppo_round_labelled_after_a_checkpoint_is_not_asked_again(tmp_path: Path) -> None:
    """PrefPPO asks at rollout ends: steps 0, 256, 512, 768 (n_steps 128, every 200); checkpoints at 384, 640."""
    out = tmp_path / "run"
    ppo = ["algo=ppo", "algo.ppo.n_steps=128", "algo.ppo.batch_size=32", "algo.ppo.n_epochs=2",
           "budget.labels=40", "budget.env_steps=800"]
    killed = train(out, ppo, kill_at="labelled:3")  # round 2 (step 512) stored after the step-384 checkpoint
    assert killed.returncode == -9, killed.stderr[-2000:]
    done = train(out, ppo)
    assert done.returncode == 0, done.stderr[-2000:]
    assert asked_rounds(out) == [(0, 0), (1, 256), (2, 512), (3, 768)]
    with PreferenceStore(out / "store.sqlite", create=False) as store:
        assert store.count_labels(include_skipped=True, sources=["scripted"]) == 40

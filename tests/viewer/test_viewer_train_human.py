"""`pbrl train feedback=human` end to end: training waits for answers given in the viewer; a killed
run restarted with the same out= loses no label (slow: real SAC, real re-rendering)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from pbrl.data.store import PreferenceStore
from label_fixtures import answer_over_http, free_port

pytest.importorskip("uvicorn", reason="the viewer extra (pip install 'pbrl[viewer]') is not installed")

TINY = ["task=halfcheetah", "episode_length=40", "segment_length=8", "budget.labels=4", "budget.per_round=2",
        "budget.every=120", "budget.env_steps=300", "eval.every=300", "eval.episodes=1", "eval.final_episodes=1",
        "eval.video=false", "eval.reward_pairs=20", "checkpoint_every=100", "reward.epochs=2",
        "reward.model.hidden=[16,16]", "threads=1", "algo=sac", "algo.seed_steps=100", "algo.sac.batch_size=16",
        "algo.sac.policy_kwargs.net_arch=[16,16]", "query=uniform", "feedback=human", "feedback.annotator=pat"]


def _train(out: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pbrl.cli", "train", f"out={out}", *TINY, f"feedback.port={port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _labelled(port: int) -> int:
    """Answered pairs as the viewer reports them (0 while it is not up yet)."""
    try:
        return json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/progress", timeout=2))["labelled"]
    except OSError:
        return 0


@pytest.mark.slow
def test_train_waits_for_viewer_labels_and_survives_a_kill(tmp_path) -> None:
    out, port, stop = tmp_path / "run", free_port(), threading.Event()
    proc = _train(out, port)
    person = answer_over_http(port, ["left"], stop)  # answer one pair of the first round, then stop
    deadline = time.monotonic() + 300
    while _labelled(port) < 1 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.5)
    time.sleep(1.0)
    assert proc.poll() is None  # still waiting for the second pair of the round
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    person.join(5)
    with PreferenceStore(out / "store.sqlite") as store:
        assert store.count_labels(sources=["human"], include_skipped=True) == 1
    proc = _train(out, port)  # resume: the earlier answer is kept; the person answers the rest
    person = answer_over_http(port, ["right", "equal", "skip", "left", "left"], stop)
    try:
        text, _ = proc.communicate(timeout=600)
    finally:
        stop.set()
        proc.kill()
    assert proc.returncode == 0, text[-3000:]
    assert "pair(s) queued for labelling: open http://127.0.0.1" in text
    with PreferenceStore(out / "store.sqlite") as store:
        rows = store.labels(sources=["human"], include_skipped=True)
        assert rows[0].annotator == "pat" and len(rows) >= 4
        assert store._read("SELECT COUNT(*) FROM frames")[0][0] >= 4  # clips were rendered from observations


@pytest.mark.slow
def test_metaworld_queries_are_rendered_from_recorded_states(tmp_path) -> None:
    """Meta-World observations cannot pose the simulator: the run records states and the viewer shows them."""
    out, port, stop = tmp_path / "run", free_port(), threading.Event()
    tiny = [a for a in TINY
            if not a.startswith(("task=", "episode_length=", "segment_length=", "budget.", "algo.seed_steps="))]
    args = ["task=reach", "episode_length=20", "segment_length=4", "budget.labels=2", "budget.per_round=2",
            "budget.every=60", "budget.env_steps=160", "algo.seed_steps=60"]
    proc = subprocess.Popen([sys.executable, "-m", "pbrl.cli", "train", f"out={out}", *tiny, *args,
                             f"feedback.port={port}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    person = answer_over_http(port, ["left", "right"], stop)
    try:
        text, _ = proc.communicate(timeout=600)
    finally:
        stop.set()
        proc.kill()
    person.join(5)
    assert proc.returncode == 0, text[-3000:]
    with PreferenceStore(out / "store.sqlite") as store:
        assert store.count_labels(sources=["human"]) == 2
        ids = [r[0] for r in store._read("SELECT segment_id FROM frames")]
        segs = store.get_segments(ids, with_frames=True)
        assert len(segs) >= 2 and all(s.frames.shape[0] == 4 and s.states.shape[0] == 4 for s in segs)
        assert all(s.frames.std() > 0 for s in segs)  # real pictures, not blank frames

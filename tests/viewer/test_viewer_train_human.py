"""`pbrl train feedback=human` end to end: training waits for answers given in the viewer; a killed
run restarted with the same out= loses no label (slow: real SAC, real re-rendering)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import imageio.v3 as iio
import pytest

from label_fixtures import answer_over_http, free_port, stored_answer

from pbrl.data.label_queue import LabelQueue
from pbrl.data.store import PreferenceStore

pytest.importorskip("uvicorn", reason="the viewer extra (pip install 'pbrl[viewer]') is not installed")

TINY = ["task=halfcheetah", "episode_length=40", "segment_length=8", "budget.labels=4", "budget.per_round=2",
        "budget.every=120", "budget.env_steps=300", "eval.every=300", "eval.episodes=1", "eval.final_episodes=1",
        "eval.video=false", "eval.reward_pairs=20", "checkpoint_every=100", "reward.epochs=2",
        "reward.model.hidden=[16,16]", "threads=1", "algo=sac", "algo.seed_steps=100", "algo.sac.batch_size=16",
        "algo=sac", "algo.sac.policy_kwargs.net_arch=[16,16]", "query=uniform", "feedback=human", "feedback.annotator=pat"]


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
        assert rows[0].annotator == "pat" and len(rows) == 4  # the restarted run queued no extra round
        assert LabelQueue(store).progress()["total"] == 4
    clips = list((out / "store.sqlite.videos").rglob("seg*-256.webm"))  # made in the background while waiting
    assert len(clips) >= 2 and iio.imread(clips[0]).shape[1:3] == (256, 256)  # at the labelling size


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
    watched: list[bytes] = []
    given: list[tuple[int, int, str]] = []
    person = answer_over_http(port, ["left", "right"], stop, watched=watched, given=given)
    try:
        text, _ = proc.communicate(timeout=600)
    finally:
        stop.set()
        proc.kill()
    person.join(5)
    assert proc.returncode == 0, text[-3000:]
    with PreferenceStore(out / "store.sqlite") as store:
        assert store.count_labels(sources=["human"]) == 2
        # every stored label is the answer the person gave for the pair as it was shown (placement is random)
        rows = {frozenset((r.first_id, r.second_id)): r for r in store.labels(sources=["human"])}
        assert len(given) == 2 and all(r.annotator == "pat" for r in rows.values())
        assert [stored_answer(rows[frozenset((a, b))], a, b) for a, b, _ in given] == [c for *_, c in given]
        segs = store.get_segments(store.segment_ids(), with_frames=True)
        assert len(segs) >= 2 and all(s.states is not None and s.states.shape[0] == 4 for s in segs)
    clips = [iio.imread(clip, extension=".webm") for clip in watched]  # what the person was shown
    assert len(clips) == 4 and all(c.shape[0] == 4 and c.std() > 0 for c in clips)  # real pictures, not blank


def _wait(cond, proc: subprocess.Popen, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"training exited while waiting for {what}: {proc.stdout.read()[-3000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def _queued(path: Path) -> int:
    """Queries in the store, read by an outside process-like opener (open, read, close)."""
    if not path.exists():
        return 0
    with PreferenceStore(path) as store:
        return LabelQueue(store).progress()["total"]


@pytest.mark.slow
def test_separate_viewer_outside_readers_and_kills_lose_no_answer(tmp_path) -> None:
    """`feedback.serve=false` + `pbrl label STORE`: SIGINT and SIGKILL of the viewer and of training mid-round,
    outside opens of the store all along; every acknowledged answer reaches training, none is lost, and the
    restarted run waits for its unfinished round instead of queuing another."""
    from label_fixtures import start_viewer, stop as stop_proc

    from pbrl.data.run_status import read_run_status
    from pbrl.viewer.client import ViewerClient

    out, port = tmp_path / "run", free_port()
    path = out / "store.sqlite"
    train = lambda: subprocess.Popen(  # noqa: E731
        [sys.executable, "-m", "pbrl.cli", "train", f"out={out}", *TINY, "feedback.serve=false",
         f"feedback.port={port}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc, viewer, acked = train(), None, []
    client = ViewerClient(f"http://127.0.0.1:{port}", "pat")

    def answer(choice: str) -> None:
        _wait(lambda: client.next(1) != [], proc, "a pending pair")
        (item,) = client.next(1)
        acked.append(client.label(item, choice)["query_id"])

    try:
        _wait(lambda: _queued(path) >= 2, proc, "the first round")
        viewer = start_viewer(path, port, annotator="pat")
        run = client.progress()["run"]
        assert run["phase"] == "labelling" and re.search(r"waiting for labels: step 1\d\d of 300", run["text"])
        answer("left")
        viewer.send_signal(signal.SIGINT)
        viewer.wait(timeout=30)
        os.kill(proc.pid, signal.SIGKILL)  # training dies mid-round, with one of two answers given
        proc.wait()
        restarted = time.time()
        proc = train()
        viewer = start_viewer(path, port, annotator="pat")

        def waiting() -> bool:
            with PreferenceStore(path) as store:
                status = read_run_status(store)
            return status.phase == "labelling" and status.updated_at > restarted

        _wait(waiting, proc, "the resumed run to wait for labels")
        assert _queued(path) == 2  # it waits for the unfinished round; nothing new was queued
        answer("right")  # the old round's second pair: the resumed run waits for exactly this one
        _wait(lambda: _queued(path) >= 4, proc, "the second round")
        os.kill(viewer.pid, signal.SIGKILL)
        viewer.wait()
        viewer = start_viewer(path, port, annotator="pat")
        answer("equal")
        answer("skip")
        text, _ = proc.communicate(timeout=600)
    finally:
        for p in (proc, viewer):
            if p is not None and p.poll() is None:
                stop_proc(p)
    assert proc.returncode == 0, text[-3000:]
    assert "the round queued before the restart" in text, text[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["labels_used"] == 4
    with PreferenceStore(path) as store:
        queue = LabelQueue(store)
        assert sorted(q for q, *_ in queue.answer_rows()) == sorted(acked) == [1, 2, 3, 4]
        assert queue.progress()["total"] == 4 and read_run_status(store).phase == "finished"

"""Every acknowledged answer reaches the waiting trainer and survives SIGKILL, with real processes: a
trainer (the human labeller and the runner's store in one process, serving the viewer or not), a separate
`pbrl label` viewer that is interrupted and killed mid-round, and outside processes opening the store."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="the viewer extra (pip install 'pbrl[viewer]') is not installed")

from label_fixtures import free_port, outside_open_close, pbrl_env, start_viewer, stop  # noqa: E402

from pbrl.data.label_queue import LabelQueue  # noqa: E402
from pbrl.data.store import PreferenceStore  # noqa: E402
from pbrl.viewer.client import ViewerClient  # noqa: E402

# What `pbrl train feedback=human` does around a round: the runner's store, the labeller's (and with serve,
# the viewer's) on the same file; a restarted trainer takes up its unfinished round.
_TRAINER = r"""
import json, os, sys
import numpy as np
sys.path.insert(0, sys.argv[4])
from label_fixtures import framed_segment
from pbrl.data.store import PreferenceStore
from pbrl.envs import load_task
from pbrl.feedback.human import HumanLabeller
from pbrl.viewer.hosted import HostedViewer

runner = PreferenceStore(sys.argv[1])
runner.set_meta("task", "halfcheetah")
lab = HumanLabeller(store_path=sys.argv[1], task=load_task("halfcheetah"), rng=np.random.default_rng(0),
                    viewer=HostedViewer(serve=sys.argv[3] == "serve", port=int(sys.argv[2])), poll_s=0.05, encode=False)
segs = [framed_segment(i) for i in range(8)]
resumed = lab.unfinished_pairs()
first, second = resumed or (segs[:4], segs[4:])
with open(sys.argv[1] + ".took.tmp", "w") as fh:  # the test answers the rest only after this decision
    fh.write("resumed" if resumed else "new")
os.replace(sys.argv[1] + ".took.tmp", sys.argv[1] + ".took")
labels = lab.label(first, second)
print(json.dumps({"p": labels.p.tolist(), "skipped": labels.skipped.tolist(), "seen": runner.count_labels(
    include_skipped=True)}), flush=True)
lab.close()
runner.close()
"""


def _trainer(path: Path, port: int, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _TRAINER, str(path), str(port), mode,
                             str(Path(__file__).parents[1])], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=pbrl_env())


def _wait_queued(path: Path, n: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.exists():
            with PreferenceStore(path) as store:
                if LabelQueue(store).progress()["total"] >= n:
                    return
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)
    raise AssertionError("the trainer did not queue its round")


def _took(path: Path, proc: subprocess.Popen) -> str:
    """Wait until the trainer script decided between taking up the unfinished round and queuing a new one."""
    marker, deadline = Path(f"{path}.took"), time.monotonic() + 120
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text():
            return marker.read_text()
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)
    raise AssertionError("the trainer did not look for an unfinished round")


def _answer(client: ViewerClient, choice: str) -> int:
    (item,) = client.next(1)
    return client.label(item, choice)["query_id"]


def _stored(path: Path) -> list[int]:
    with PreferenceStore(path) as store:
        return sorted(q for q, *_ in LabelQueue(store).answer_rows())


def test_answers_to_the_built_in_viewer_survive_an_outside_open_and_a_sigkill(tmp_path) -> None:
    path, port = tmp_path / "store.sqlite", free_port()
    proc = _trainer(path, port, "serve")
    try:
        _wait_queued(path, 4, proc)
        client = ViewerClient(f"http://127.0.0.1:{port}", "pat")
        for _ in range(100):  # the built-in viewer starts right after queuing
            try:
                client.progress()
                break
            except OSError:
                time.sleep(0.1)
        outside_open_close(path)  # while the trainer waits: the hazard of the bug report
        acked = [_answer(client, "left"), _answer(client, "right")]
        outside_open_close(path)
        acked.append(_answer(client, "equal"))
        assert client.progress()["labelled"] == 3
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert _stored(path) == sorted(acked)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_separate_viewer_interrupted_and_killed_mid_round_trainer_sees_every_answer(tmp_path) -> None:
    """The README's `feedback.serve=false` + `pbrl label STORE` workflow, with SIGINT, SIGKILL and outside opens."""
    path, port = tmp_path / "store.sqlite", free_port()
    trainer = _trainer(path, port, "separate")
    viewer = None
    try:
        _wait_queued(path, 4, trainer)
        outside_open_close(path)
        viewer = start_viewer(path, port, annotator="pat")
        client = ViewerClient(f"http://127.0.0.1:{port}", "pat")
        acked = [_answer(client, "left")]
        viewer.send_signal(signal.SIGINT)  # Ctrl-C mid-round
        viewer.wait(timeout=30)
        outside_open_close(path)
        viewer = start_viewer(path, port, annotator="pat")
        acked.append(_answer(client, "right"))
        os.kill(viewer.pid, signal.SIGKILL)  # killed mid-round
        viewer.wait()
        outside_open_close(path)
        os.kill(trainer.pid, signal.SIGKILL)  # the trainer dies too; restarted, it takes up the same round
        trainer.wait()
        Path(f"{path}.took").unlink()
        trainer = _trainer(path, port, "separate")
        # answering before the restarted trainer looked would finish its round while it was down (the runner's
        # round log covers that case; this script models only the take-up)
        assert _took(path, trainer) == "resumed"
        viewer = start_viewer(path, port, annotator="pat")
        acked += [_answer(client, "skip"), _answer(client, "equal")]
        out, err = trainer.communicate(timeout=60)
        assert trainer.returncode == 0, err[-2000:]
    finally:
        for p in (trainer, viewer):
            if p is not None and p.poll() is None:
                stop(p)
    result = json.loads(out)
    assert result["seen"] == 4 and sorted(result["skipped"]) == [False, False, False, True]
    assert _stored(path) == sorted(acked) == [1, 2, 3, 4]
    with PreferenceStore(path) as store:
        assert LabelQueue(store).progress()["total"] == 4  # the restarted trainer queued no second round
        p_by_query = {q: store.labels(include_skipped=True)[i] for i, (q, *_) in
                      enumerate(LabelQueue(store).answer_rows())}
        assert [p_by_query[q].label for q in (1, 2, 3, 4)] == [
            None if s else p for p, s in zip(result["p"], result["skipped"])]


def test_two_annotators_at_once_are_never_handed_the_same_pair(tmp_path) -> None:
    """Without --overlap, two people labelling as fast as they can answer disjoint pairs, all of them."""
    import threading

    from label_fixtures import make_queued_store

    path, port = tmp_path / "store.sqlite", free_port()
    qids = make_queued_store(path, 30)
    viewer = start_viewer(path, port)
    done: dict[str, list[int]] = {"ann": [], "bea": []}
    errors: list[BaseException] = []

    def person(name: str) -> None:
        client = ViewerClient(f"http://127.0.0.1:{port}", name)
        try:
            while items := client.next(2):
                for item in items:
                    done[name].append(client.label(item, "left")["query_id"])
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=person, args=(n,)) for n in done]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        stop(viewer)
    assert not errors, errors
    assert not set(done["ann"]) & set(done["bea"]) and sorted(done["ann"] + done["bea"]) == qids
    assert done["ann"] and done["bea"]  # both were kept busy
    with PreferenceStore(path) as store:
        assert len(LabelQueue(store).answer_rows()) == 30

"""Helpers of the viewer tests: a real store with small framed segments and a queue of pairs."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Segment


def framed_segment(i: int, length: int = 8, size: int = 32) -> Segment:
    """A tiny segment whose frames are a solid colour (so clips differ per segment)."""
    rng = np.random.default_rng(i)
    frames = np.zeros((length, size, size, 3), np.uint8)
    frames[..., i % 3] = 60 + 20 * np.arange(length)[:, None, None]
    return Segment(obs=rng.normal(size=(length, 3)).astype(np.float32),
                   acts=rng.normal(size=(length, 2)).astype(np.float32),
                   rewards=np.full(length, float(i), np.float32), frames=frames, episode_id=i, task="halfcheetah")


def make_queued_store(path: Path, n_pairs: int, seed: int = 0) -> list[int]:
    """Store ``2 * n_pairs`` framed segments and queue them as pairs; returns the query ids."""
    from pbrl.data.label_queue import LabelQueue

    with PreferenceStore(path) as store:
        ids = store.add_segments([framed_segment(i) for i in range(2 * n_pairs)])
        return LabelQueue(store).queue_pairs(ids[::2], ids[1::2], rng=np.random.default_rng(seed))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answer_over_http(port: int, choices: list[str], stop: threading.Event, annotator: str = "pat",
                     watched: list | None = None, given: list | None = None) -> threading.Thread:
    """A stand-in for a person: answers over the viewer's HTTP API as pairs are queued. With ``watched``
    it first fetches both clips of each pair, as the page does, and appends their bytes there; with ``given``
    it appends ``(left segment id, right segment id, choice)`` for every acknowledged answer."""
    from pbrl.types import PbrlError
    from pbrl.viewer.client import ViewerClient

    def run() -> None:
        base = f"http://127.0.0.1:{port}"
        client, done = ViewerClient(base, annotator, timeout=60), 0
        while not stop.is_set() and done < len(choices):
            try:
                items = client.next(1)
                if items:
                    if watched is not None:
                        watched.extend(urllib.request.urlopen(base + items[0][side]["webm"], timeout=300).read()
                                       for side in ("left", "right"))
                    client.label(items[0], choices[done])
                    if given is not None:
                        given.append((items[0]["left"]["segment_id"], items[0]["right"]["segment_id"], choices[done]))
                    done += 1
                    continue
            except (OSError, PbrlError):  # server not up yet, or restarted
                pass
            time.sleep(0.1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def start_viewer(store: Path, port: int, *args: str, annotator: str = "kb") -> subprocess.Popen:
    """``pbrl label STORE`` in its own process (so it can be SIGKILLed), waiting until it answers."""
    proc = subprocess.Popen([sys.executable, "-m", "pbrl.cli", "label", str(store), "--port", str(port),
                             "--annotator", annotator, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/config", timeout=1)
            return proc
        except urllib.error.HTTPError:  # up, and refusing (token mode)
            return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"viewer exited: {proc.stdout.read().decode()}")
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("viewer did not start")


def stop(proc: subprocess.Popen) -> str:
    """Kill a process started by a test and return what it printed."""
    proc.kill()
    out, _ = proc.communicate(timeout=30)
    return out.decode() if isinstance(out, bytes) else (out or "")


def encoder_processes(parent: int, timeout: float = 60.0) -> list[int]:
    """Pids of the clip encoder processes (``python -m pbrl.viewer.encoder``) started by ``parent``."""
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmd = (entry / "cmdline").read_bytes()
            except (OSError, ValueError, IndexError):
                continue
            if ppid == parent and b"pbrl.viewer.encoder" in cmd:
                found.append(int(entry.name))
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def pbrl_env() -> dict[str, str]:
    """The environment of a subprocess that imports this checkout's pbrl."""
    import os

    import pbrl

    return {**os.environ, "PYTHONPATH": str(Path(pbrl.__file__).parent.parent)}


def outside_open_close(path: Path) -> None:
    """What another `pbrl label`, `sqlite3` or a script does to a store: open read-write, read, close."""
    import sqlite3

    code = "import sys; from pbrl.data import PreferenceStore as P; s = P(sys.argv[1]); s.count_labels(); s.close()"
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=pbrl_env(), timeout=60)
    conn = sqlite3.connect(path)
    conn.execute("SELECT COUNT(*) FROM labels").fetchone()
    conn.close()


def stored_answer(row, left_id: int, right_id: int) -> str:
    """The viewer choice (left / right / equal / skip) a stored label row means for a pair shown as left/right.

    Written from the label convention alone (``p = P(first preferred)``), independent of the viewer's code."""
    assert {row.first_id, row.second_id} == {left_id, right_id}, (row, left_id, right_id)
    if row.skipped:
        return "skip"
    if row.label == 0.5:
        return "equal"
    first_won = row.label == 1.0
    return "left" if first_won == (row.first_id == left_id) else "right"

"""Helpers of the viewer tests: a real store with small framed segments and a queue of pairs."""

from __future__ import annotations

import json
import socket
import threading
import time
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
    from pbrl.viewer.queue import LabelQueue

    with PreferenceStore(path) as store:
        ids = store.add_segments([framed_segment(i) for i in range(2 * n_pairs)])
        return LabelQueue(store).enqueue(ids[::2], ids[1::2], rng=np.random.default_rng(seed))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answer_over_http(port: int, choices: list[str], stop: threading.Event, annotator: str = "pat") -> threading.Thread:
    """A stand-in for a person: answers over the viewer's HTTP API as pairs are queued."""
    def run() -> None:
        base, done = f"http://127.0.0.1:{port}", 0
        while not stop.is_set() and done < len(choices):
            try:
                items = json.load(urllib.request.urlopen(f"{base}/api/next?annotator={annotator}&n=1", timeout=5))["items"]
            except OSError:  # server not up yet
                items = []
            if not items:
                time.sleep(0.1)
                continue
            body = json.dumps({"query_id": items[0]["query_id"], "annotator": annotator, "choice": choices[done]})
            req = urllib.request.Request(f"{base}/api/label", body.encode(), {"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=10)
            done += 1

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread

"""Viewer soak: training + viewers + outside readers under random kills; acknowledged vs stored answers.

Runs for a bounded time:
  * ``pbrl train feedback=human`` (tiny SAC, many small rounds) serving its built-in viewer on one port,
  * a separate ``pbrl label STORE`` viewer on another port,
  * two annotators (threads) answering whatever is pending through either viewer, retrying an answer whose
    acknowledgement was lost until it is acknowledged (answers are idempotent),
  * outside readers: a process that opens and closes the store (PreferenceStore and raw sqlite3) in a loop,
    and raw sqlite3 opens from this process,
  * random SIGKILLs of training (restarted with the same out=, so it resumes) and SIGKILL/SIGINT of the viewer.
At the end the kills stop, the annotators finish, and the acknowledged answers are compared with the
stored ones (they must be equal), both processes' own views with the store, no training round was queued
while an earlier one was still pending, and ``PRAGMA integrity_check``.

    python bench/viewer_soak.py [--seconds 180] [--seed 0] [--update-benchmarks]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

if not __package__:  # run as python bench/<name>.py: bench/_bootstrap.py puts the repository root on sys.path
    import _bootstrap  # noqa: F401
from bench.common import ROOT, publish

MARK = "viewer-soak"
TRAIN = ["task=halfcheetah", "episode_length=40", "segment_length=8", "budget.labels=100000", "budget.per_round=4",
         "budget.every=25", "budget.env_steps=1000000", "eval.every=1000000", "eval.episodes=1", "eval.video=false",
         "eval.reward_pairs=10", "checkpoint_every=100", "reward.epochs=2", "reward.model.hidden=[16,16]",
         "threads=1", "algo=sac", "algo.seed_steps=50", "algo.buffer_size=5000", "algo.sac.batch_size=16",
         "algo.sac.policy_kwargs.net_arch=[16,16]", "query=uniform", "feedback=human", "feedback.annotator=soak",
         "feedback.clip_size=64", "feedback.poll_s=0.1"]
READER = r"""
import pathlib, sqlite3, sys, time
from pbrl.data import PreferenceStore
n = 0
while True:
    with PreferenceStore(sys.argv[1], create=False) as s:
        s.count_labels()
    c = sqlite3.connect(sys.argv[1])
    c.execute("SELECT COUNT(*) FROM labels").fetchone()
    c.close()
    n += 2
    pathlib.Path(sys.argv[2]).write_text(str(n))
    time.sleep(0.2)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Soak:
    """The processes of one soak run and what was observed."""

    def __init__(self, out: Path, seed: int) -> None:
        self.out, self.store = out, out / "store.sqlite"
        self.rng = random.Random(seed)
        self.ports = {"train": _free_port(), "viewer": _free_port()}
        self.procs: dict[str, subprocess.Popen] = {}
        self.counts = {"train SIGKILL": 0, "viewer SIGKILL": 0, "viewer SIGINT": 0, "outside opens": 0}
        self.acked: dict[tuple[int, str], tuple[int, str]] = {}  # (query, annotator) -> (pair_id, choice)
        self.ack_ms: list[float] = []
        self.retries = 0
        self.stop_answering = threading.Event()
        self.sending = {name: threading.Event() for name in self.ports}  # an answer is on its way there
        self.lock = threading.Lock()
        self.logs = open(out.parent / "soak.log", "w")

    def start(self, name: str) -> None:
        if name == "train":
            cmd = ["-m", "pbrl.cli", "train", f"out={self.out}", *TRAIN, f"feedback.port={self.ports['train']}"]
        elif name == "viewer":
            cmd = ["-m", "pbrl.cli", "label", str(self.store), "--port", str(self.ports["viewer"]), "--lease-s", "20"]
        else:
            cmd = ["-c", READER, str(self.store), str(self.out.parent / "reader.count")]
        self.procs[name] = subprocess.Popen([sys.executable, *cmd], stdout=self.logs, stderr=self.logs, text=True)

    def kill(self, name: str, sig: int) -> None:
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(timeout=60)

    def annotator(self, name: str) -> None:
        """Answer pending pairs through either viewer; retry an unacknowledged answer until acknowledged."""
        from pbrl.types import PbrlError
        from pbrl.viewer.client import ViewerClient

        clients = {k: ViewerClient(f"http://127.0.0.1:{p}", name, timeout=30) for k, p in self.ports.items()}
        rng, item, choice = random.Random(name), None, None
        while not (self.stop_answering.is_set() and item is None):
            target = rng.choice(list(clients))
            client = clients[target]
            try:
                if item is None:
                    items = [] if self.stop_answering.is_set() else client.next(1)
                    if not items:
                        time.sleep(0.1)
                        continue
                    item, choice = items[0], rng.choice(["left", "right", "equal", "skip"])
                t0 = time.perf_counter()
                self.sending[target].set()
                try:
                    ack = client.label(item, choice)
                finally:
                    self.sending[target].clear()
                with self.lock:
                    self.ack_ms.append(1e3 * (time.perf_counter() - t0))
                    self.acked[(ack["query_id"], name)] = (ack["pair_id"], ack["choice"])
                item = None
                time.sleep(rng.uniform(0.02, 0.2))
            except (OSError, PbrlError):  # a viewer was killed: the same answer goes again, maybe elsewhere
                self.retries += item is not None
                time.sleep(0.2)

    def outside_opens(self, until: float) -> None:
        while time.monotonic() < until:
            if self.store.exists():
                conn = sqlite3.connect(self.store, timeout=30)
                conn.execute("SELECT COUNT(*) FROM answers").fetchone()
                conn.close()
                with self.lock:
                    self.counts["outside opens"] += 1
            time.sleep(0.3)

    def chaos(self, until: float) -> None:
        """Kill training or the viewer at random moments (half of them while an answer is on its way to
        that process, so acknowledgements get lost) and restart it."""
        while time.monotonic() < until:
            time.sleep(self.rng.uniform(4.0, 12.0))
            if time.monotonic() >= until:
                break
            target = "train" if self.rng.random() < 0.5 else "viewer"
            if self.rng.random() < 0.5 and self.sending[target].wait(timeout=5.0):
                time.sleep(self.rng.uniform(0.0, 0.01))
            if target == "train":
                self.kill("train", signal.SIGKILL)
                self.counts["train SIGKILL"] += 1
                self.start("train")
            else:
                sig = signal.SIGKILL if self.rng.random() < 0.7 else signal.SIGINT
                self.kill("viewer", sig)
                self.counts["viewer SIGKILL" if sig == signal.SIGKILL else "viewer SIGINT"] += 1
                time.sleep(self.rng.uniform(0.0, 2.0))
                self.start("viewer")


def _views(soak: Soak) -> dict[str, int]:
    """Answered queries as each process sees them through its own connection, and as the file holds them."""
    from pbrl.data.label_queue import LabelQueue
    from pbrl.data.store import PreferenceStore
    from pbrl.viewer.client import ViewerClient

    out = {k: ViewerClient(f"http://127.0.0.1:{p}", "soak").progress()["labelled"] for k, p in soak.ports.items()}
    with PreferenceStore(soak.store, create=False) as store:
        out["file"] = LabelQueue(store).progress()["labelled"]
    return out


def _wait_up(port: int, timeout: float = 180.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/config", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"nothing answers on port {port}")


def run(seconds: float, seed: int, workdir: Path) -> dict:
    soak = Soak(workdir / "run", seed)
    soak.start("train")
    while not soak.store.exists():
        time.sleep(0.2)
    soak.start("viewer")
    soak.start("reader")
    _wait_up(soak.ports["viewer"])
    t0 = time.monotonic()
    until = t0 + seconds
    threads = [threading.Thread(target=soak.annotator, args=(n,)) for n in ("ann", "bea")]
    threads += [threading.Thread(target=soak.outside_opens, args=(until,))]
    for t in threads:
        t.start()
    soak.chaos(until)
    _wait_up(soak.ports["train"])
    _wait_up(soak.ports["viewer"])
    soak.stop_answering.set()
    for t in threads:
        t.join(timeout=300)
    time.sleep(1.0)
    views = _views(soak)
    for name in ("reader", "viewer", "train"):
        soak.kill(name, signal.SIGKILL)
    count = soak.out.parent / "reader.count"
    soak.counts["outside opens"] += int(count.read_text() or 0) if count.exists() else 0
    return _verdict(soak, views, time.monotonic() - t0)


def _verdict(soak: Soak, views: dict[str, int], wall: float) -> dict:
    from pbrl.data.label_queue import LabelQueue
    from pbrl.data.store import PreferenceStore

    with PreferenceStore(soak.store, create=False) as store:
        queue = LabelQueue(store)
        stored = {(q, a): (p, c) for q, a, p, c in queue.answer_rows()}
        history = [r for r in queue.round_history() if r["origin"] == "training"]
        labels = store.count_labels(sources=["human"], include_skipped=True)
    overlapping = sum(1 for a, b in zip(history, history[1:])
                      if a["answered_at"] is None or a["answered_at"] > b["queued_at"])
    conn = sqlite3.connect(soak.store)
    integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    conn.close()
    lat = np.asarray(soak.ack_ms)
    return {"wall_s": wall, **soak.counts, "acked": len(soak.acked), "stored": len(stored), "labels": labels,
            "acked_not_stored": len(set(soak.acked) - set(stored)),
            "stored_not_acked": len(set(stored) - set(soak.acked)),
            "mismatched": sum(stored.get(k) != v for k, v in soak.acked.items()),
            "retried": soak.retries, "rounds": len(history), "rounds_queued_while_one_pending": overlapping,
            "views": views, "integrity": integrity,
            "ack_ms": (float(np.percentile(lat, 50)), float(np.percentile(lat, 95)), float(lat.max()))
            if lat.size else (float("nan"),) * 3}


def render_md(r: dict, args) -> str:
    equal = r["acked_not_stored"] == r["stored_not_acked"] == r["mismatched"] == 0 and r["acked"] == r["stored"]
    views_ok = len(set(r["views"].values())) == 1
    ok = equal and views_ok and r["integrity"] == "ok" and r["rounds_queued_while_one_pending"] == 0
    rows = [("answers acknowledged (HTTP 200)", r["acked"]), ("answers stored", r["stored"]),
            ("acknowledged but not stored", r["acked_not_stored"]),
            ("stored but never acknowledged", r["stored_not_acked"]),
            ("stored differently than acknowledged", r["mismatched"]),
            ("answers re-sent after a lost acknowledgement", r["retried"]),
            ("human label rows", r["labels"]),
            ("training SIGKILLs (each resumed)", r["train SIGKILL"]), ("viewer SIGKILLs", r["viewer SIGKILL"]),
            ("viewer SIGINTs", r["viewer SIGINT"]), ("outside opens + closes of the store", r["outside opens"]),
            ("training rounds", r["rounds"]),
            ("rounds queued while the previous one was pending", r["rounds_queued_while_one_pending"]),
            ("answered pairs seen by training / viewer / file", " / ".join(str(r["views"][k]) for k in
                                                                            ("train", "viewer", "file"))),
            ("ack latency p50 / p95 / max (ms)", " / ".join(f"{x:.0f}" for x in r["ack_ms"])),
            ("`PRAGMA integrity_check`", r["integrity"])]
    return "\n".join([
        "## Labelling under kills (`bench/viewer_soak.py`)",
        "",
        f"{r['wall_s']:.0f} s of `pbrl train feedback=human` (tiny SAC, rounds of 4 pairs every 25 steps) serving its "
        "own viewer, a separate `pbrl label` viewer, two annotators answering through either one (re-sending an "
        "answer whose acknowledgement was lost until it is acknowledged), a process opening and closing the store "
        "in a loop (PreferenceStore and raw sqlite3) plus raw sqlite3 opens, and SIGKILL/SIGINT of training and "
        "the viewer every 4-12 s, half of them while an answer is on its way to the killed process "
        f"(seed {args.seed}). Goal: acknowledged == stored, both processes see every "
        f"answer, no second round while one is pending, integrity ok: **{'met' if ok else 'NOT met'}**.",
        "",
        "| measure | value |",
        "|---|---:|",
        *(f"| {k} | {v} |" for k, v in rows),
        "",
        f"Command: `python bench/viewer_soak.py --seconds {args.seconds:g} --seed {args.seed} --update-benchmarks`. "
        f"Machine: {platform.machine()}, Python {platform.python_version()}, shared 2-core CPU "
        f"(load average {os.getloadavg()[0]:.1f} at the end). Date {datetime.date.today()}.",
    ])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=180.0, help="how long the kills go on (default 3 minutes)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill schedule and of the answers")
    p.add_argument("--keep", type=Path, default=None, help="keep the run directory here (default: a temp dir)")
    p.add_argument("--update-benchmarks", action="store_true")
    args = p.parse_args()
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        result = run(args.seconds, args.seed, workdir)
    publish(render_md(result, args), MARK, args.update_benchmarks)
    equal = result["acked"] == result["stored"] and result["acked_not_stored"] == result["mismatched"] == 0
    sys.exit(0 if equal and result["integrity"] == "ok" else 1)


if __name__ == "__main__":
    main()

"""Several stores on one file in one process keep their SQLite locks: an outside open+close never
checkpoints the WAL away under a live writer (real processes, real files, SIGKILL)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
from label_fixtures import outside_open_close, pbrl_env

from pbrl.data import PreferenceStore, Segment
from pbrl.types import Labels

# The pattern of `pbrl train feedback=human`: the runner, the labeller and the built-in viewer each open
# the run's store; then it writes one label per line of stdin and acknowledges it on stdout.
_TRAINER = r"""
import sys
import numpy as np
from pbrl.data import PreferenceStore, Segment
from pbrl.types import Labels

path = sys.argv[1]
runner, labeller = PreferenceStore(path), PreferenceStore(path)
viewer = PreferenceStore(path)
seg = Segment(obs=np.zeros((4, 2), np.float32), acts=np.zeros((4, 1), np.float32), rewards=np.zeros(4, np.float32))
a, b = runner.add_segments([seg, seg])
print("ready", flush=True)
for line in sys.stdin:
    (pid,) = viewer.add_labels([a], [b], Labels(np.ones(1, np.float32), np.zeros(1, bool)), source="human",
                               annotator=line.strip())
    print(pid, runner.count_labels(), flush=True)
"""


def test_outside_open_close_never_loses_acknowledged_labels(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", _TRAINER, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=pbrl_env())
    acked = []
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        for k in range(6):
            if k in (2, 4):  # another process opens and closes the store while the trainer holds it
                outside_open_close(path)
            proc.stdin.write(f"a{k}\n")
            proc.stdin.flush()
            pid, seen = map(int, proc.stdout.readline().split())
            acked.append(pid)
            assert seen == k + 1  # the trainer's own connections see every label
        # the WAL is still the one the trainer writes to: nothing was checkpointed away under it
        wal_kept = Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    with PreferenceStore(path, create=False) as store:
        assert [r.pair_id for r in store.labels()] == acked
    assert wal_kept
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_stores_on_one_file_share_one_connection(tmp_path: Path) -> None:
    from pbrl.data.sqlite import holders

    path = tmp_path / "s.sqlite"
    a = PreferenceStore(path)
    b = PreferenceStore(tmp_path / "." / "s.sqlite")  # another spelling of the same file
    c = PreferenceStore(tmp_path / "other.sqlite")
    assert holders(path) == 2 and holders(tmp_path / "other.sqlite") == 1  # one connection per file
    seg = Segment(obs=np.zeros((3, 2), np.float32), acts=np.zeros((3, 1), np.float32), rewards=np.zeros(3, np.float32))
    ids = a.add_segments([seg, seg])
    b.add_labels([ids[0]], [ids[1]], Labels(np.ones(1, np.float32), np.zeros(1, bool)), source="human")
    a.close()
    assert b.count_labels() == 1 and holders(path) == 1  # b still uses the shared connection
    b.close()
    c.close()
    assert holders(path) == 0 and not Path(f"{path}-wal").exists()  # the last close checkpoints


def test_threads_opening_and_closing_stores_while_another_writes(tmp_path: Path) -> None:
    """Open/close churn in one process (viewer requests, labeller polls) beside a writer loses nothing."""
    path = tmp_path / "s.sqlite"
    writer = PreferenceStore(path)
    seg = Segment(obs=np.zeros((3, 2), np.float32), acts=np.zeros((3, 1), np.float32), rewards=np.zeros(3, np.float32))
    a, b = writer.add_segments([seg, seg])
    stop, errors = threading.Event(), []

    def churn() -> None:
        try:
            while not stop.is_set():
                with PreferenceStore(path) as s:
                    s.count_labels()
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=churn) for _ in range(2)]
    for t in threads:
        t.start()
    for _ in range(30):
        writer.add_labels([a], [b], Labels(np.ones(1, np.float32), np.zeros(1, bool)), source="human")
    outside_open_close(path)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert writer.count_labels() == 30
    writer.close()
    with PreferenceStore(path) as s:
        assert s.count_labels() == 30


def test_opening_reads_no_file_outside_sqlite(tmp_path: Path, monkeypatch) -> None:
    """Opening a store never open()s the database file itself (closing such a descriptor drops SQLite's locks)."""
    import builtins

    path = tmp_path / "store.sqlite"
    PreferenceStore(path).close()
    opened: list[str] = []
    real_open, real_os_open = builtins.open, os.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: opened.append(str(f)) or real_open(f, *a, **k))
    monkeypatch.setattr(os, "open", lambda f, *a, **k: opened.append(str(f)) or real_os_open(f, *a, **k))
    with PreferenceStore(path) as s, PreferenceStore(path) as t:
        s.count_labels()
        t.count_labels()
    assert str(path) not in opened

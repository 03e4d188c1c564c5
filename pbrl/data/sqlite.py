"""One SQLite connection per process and database file, shared and reference-counted.

Why: POSIX advisory locks belong to a process, and closing *any* descriptor of a file drops every lock
the process holds on it (https://www.sqlite.org/howtocorrupt.html, section 2.2). A process that opened
the store twice and read its header with a plain ``open()``/``close()`` held no lock afterwards, so another
process closing its own connection believed it was the last user and checkpointed the WAL away under a
live writer: acknowledged labels vanished, or a waiting trainer never saw new ones. Here the file is only
ever opened by SQLite, and every :class:`~pbrl.data.store.PreferenceStore` of one process on one file
(runner, labeller, built-in viewer) shares one connection, found by the file's ``(st_dev, st_ino)``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Callable, Optional

BUSY_TIMEOUT_S = 30.0
_PRAGMAS = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"


def connect(path: Path) -> sqlite3.Connection:
    """A raw connection (``isolation_level=None``: callers issue ``BEGIN IMMEDIATE`` themselves, so the
    write lock is taken up front and a read-then-write transaction never fails on upgrade)."""
    return sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)


class SharedConnection:
    """A connection, the lock that serialises its users (threads and stores) and its reference count."""

    def __init__(self, key: tuple[int, int, int], conn: sqlite3.Connection) -> None:
        self.key = key
        self.conn = conn
        self.lock = threading.RLock()
        self.refs = 1


_REGISTRY: dict[tuple[int, int, int], SharedConnection] = {}
_GUARD = threading.Lock()


def _key(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)  # stat opens no descriptor: it cannot drop a lock
    return os.getpid(), st.st_dev, st.st_ino  # the pid: a forked child must never reuse its parent's connection


def acquire(path: Path, check: Callable[[sqlite3.Connection], None]) -> SharedConnection:
    """The process's connection to the existing file ``path``, opened (and ``check``ed) on first use.

    ``check`` runs read-only on a fresh connection before any pragma may write to the file; it raises to
    refuse the file. Errors of ``os.stat``/SQLite propagate to the caller, who names the store.
    """
    for _ in range(3):  # the file may be replaced between stat and connect: retry on a changed identity
        key = _key(path)
        with _GUARD:
            shared = _REGISTRY.get(key)
            if shared is not None:
                shared.refs += 1
                return shared
        conn = connect(path)  # outside the guard: a busy file must not stall other stores of the process
        try:
            check(conn)
            conn.executescript(_PRAGMAS)
        except BaseException:
            conn.close()
            raise
        try:
            same_file = _key(path) == key
        except OSError:
            same_file = False
        with _GUARD:
            shared = _REGISTRY.get(key) if same_file else None
            if same_file and shared is None:
                _REGISTRY[key] = shared = SharedConnection(key, conn)
                return shared
            if shared is not None:
                shared.refs += 1  # another thread opened the file meanwhile: share theirs
        conn.close()  # closed by SQLite itself, which keeps the process's other locks on the file
        if shared is not None:
            return shared
    raise sqlite3.OperationalError(f"{path} keeps being replaced while it is opened")


def release(shared: SharedConnection) -> None:
    """Drop one reference; the last one closes the connection (SQLite then checkpoints the WAL)."""
    with _GUARD:
        shared.refs -= 1
        if shared.refs > 0:
            return
        if _REGISTRY.get(shared.key) is shared:
            del _REGISTRY[shared.key]
    with shared.lock:  # a thread still inside a transaction finishes it first
        shared.conn.close()


def holders(path: Path) -> int:
    """How many stores of this process share the connection to ``path`` (0: the file is not open here)."""
    try:
        key = _key(Path(path))
    except OSError:
        return 0
    with _GUARD:
        shared: Optional[SharedConnection] = _REGISTRY.get(key)
        return shared.refs if shared else 0

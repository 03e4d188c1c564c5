"""Clips for the viewer: a segment's frames (stored, or re-rendered for labelling), encoded once as WebM/VP9
(mp4/H.264 as fallback) and cached on disk next to the store.

A clip's file name carries the store's identity, the segment's content hash and the render size, so a
store replaced at the same path, or a copy that grew differently, never gets another store's clips. Only
regular files inside the cache directory are served (a symlink planted there is replaced, never followed),
and temp files of encoders that were killed are removed at start-up. Encoding itself is :mod:`pbrl.viewer.video`.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Optional, Sequence

from pbrl.data.store import PreferenceStore
from pbrl.envs.render import label_size
from pbrl.types import PbrlError
from pbrl.viewer.video import FORMATS, TEMP_NAME

MEDIA_TYPES = {"webm": "video/webm", "mp4": "video/mp4"}
_STALE_S = 3600.0  # a temp file this old is abandoned even if its pid was reused by another process
_WAIT_S = 600.0


def clip_dir(store_path: Path) -> Path:
    """Where a store's clips are cached: ``<store>.videos/`` beside the store file."""
    return Path(store_path).with_name(Path(store_path).name + ".videos")


def remove_stale_temps(directory: Path) -> int:
    """Delete temp files left by encoders that died (their pid is gone, or they are over an hour old)."""
    removed = 0
    for sub in (directory, *(p for p in directory.glob("*") if p.is_dir() and not p.is_symlink())):
        for entry in sub.glob(".*.tmp.*"):
            m = TEMP_NAME.fullmatch(entry.name)
            if m is None or not entry.is_file() or entry.is_symlink():
                continue
            if _pid_alive(int(m.group(1))) and time.time() - entry.stat().st_mtime < _STALE_S:
                continue
            entry.unlink(missing_ok=True)
            removed += 1
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


class ClipCache:
    """Segment id + format -> encoded clip on disk, made at most once by a background worker process.

    Args:
        store: the store the segments come from.
        directory: cache directory (default ``<store>.videos/``).
        size: longer side (px) of re-rendered clips (default: the store's ``clip_size`` meta, else 256).
        fps: clip frame rate.
    """

    def __init__(self, store: PreferenceStore, directory: Optional[Path] = None, *, size: Optional[int] = None,
                 fps: int = 20) -> None:
        from pbrl.viewer.encoder import ClipWorker

        self.store = store
        self.dir = Path(directory) if directory else clip_dir(store.path)
        stored = store.get_meta("clip_size")
        self.size = label_size(None, size if size is not None else (int(stored) if stored else None))
        self.fps = fps
        self._uid = store.uid()
        self._digests: dict[int, str] = {}
        self._inflight: dict[tuple[int, str], Future] = {}
        self._guard = threading.Lock()
        self._worker = ClipWorker(store.path)
        if self.dir.is_dir():
            remove_stale_temps(self.dir)

    def path(self, segment_id: int, fmt: str) -> Path:
        """The clip's file: ``<dir>/<store uid>/seg<id>-<content hash>-<size>.<fmt>`` (KeyError: unknown segment)."""
        if fmt not in FORMATS:
            raise PbrlError(f"clip format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
        sid = int(segment_id)
        if sid not in self._digests:
            try:
                self._digests.update(self.store.segment_digests([sid]))
            except PbrlError:
                raise KeyError(sid) from None
        return self.dir / self._uid / f"seg{sid:08d}-{self._digests[sid][:16]}-{self.size}.{fmt}"

    def ready(self, segment_id: int, fmt: str) -> bool:
        return _regular_file(self.path(segment_id, fmt))

    def request(self, segment_id: int, fmt: str) -> Future:
        """Start making the clip unless it exists or is being made; the future resolves to its path."""
        path = self.path(segment_id, fmt)
        key = (int(segment_id), fmt)
        with self._guard:
            fut = self._inflight.get(key)
            if fut is None or (fut.done() and (fut.exception() is not None or not _regular_file(path))):
                if _regular_file(path):
                    fut = Future()
                    fut.set_result(path)
                    return fut
                fut = self._worker.submit(int(segment_id), fmt, path, self.size, self.fps)
                self._inflight[key] = fut
                fut.add_done_callback(lambda f, k=key: self._forget(k, f))
        return fut

    def _forget(self, key: tuple[int, str], fut: Future) -> None:
        with self._guard:
            if self._inflight.get(key) is fut:
                del self._inflight[key]

    def prefetch(self, segment_ids: Sequence[int], fmt: str = "webm") -> None:
        """Queue clips to be made in the background (the caller does not wait)."""
        for sid in segment_ids:
            self.request(sid, fmt)

    def get(self, segment_id: int, fmt: str, timeout: float = _WAIT_S) -> Path:
        """The clip's path, waiting for the worker if it is not made yet (KeyError: unknown segment)."""
        return self.request(segment_id, fmt).result(timeout=timeout)

    def read(self, segment_id: int, fmt: str) -> bytes:
        """The clip's bytes, read only from a regular file inside the cache directory (no symlink followed)."""
        path = self.get(segment_id, fmt)
        if os.path.realpath(path.parent) != os.path.join(os.path.realpath(self.dir), self._uid):
            raise PbrlError(f"clip cache: {path.parent} resolves outside {self.dir}; refusing to serve it")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            raise PbrlError(f"clip cache: cannot read {path} ({exc.strerror}); expected a regular file") from None
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise PbrlError(f"clip cache: {path} is not a regular file; refusing to serve it")
            return fh.read()

    def status(self, segment_ids: Sequence[int], fmt: str = "webm") -> tuple[int, int]:
        """(ready, total) clips among ``segment_ids`` (for "preparing clips (n/m)")."""
        missing = [int(s) for s in segment_ids if int(s) not in self._digests]
        if missing:
            self._digests.update(self.store.segment_digests(missing))
        return sum(self.ready(s, fmt) for s in segment_ids), len(segment_ids)

    def close(self) -> None:
        self._worker.close()

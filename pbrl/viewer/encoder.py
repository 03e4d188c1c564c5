"""Rendering and encoding clips in a separate, lower-priority process.

Re-rendering a segment and running ffmpeg take seconds of CPU. Done in the process that commits labels
(the viewer, or ``pbrl train`` serving it) they delayed a label commit by seconds (GIL and CPU), and done
in the training loop they held back the first pair until the whole round was encoded. One worker process
per clip cache does it instead: jobs go in as JSON lines on its stdin, results come back on its stdout,
and it exits when its parent goes away (stdin closes), so a SIGKILLed viewer leaves no worker behind.

    python -m pbrl.viewer.encoder STORE   # the worker's side; started by :class:`ClipWorker`
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Optional

from pbrl.types import PbrlError

NICE = 10  # the worker yields the CPU to label commits and to training


class ClipWorker:
    """The parent's handle on one worker process (started on first use, restarted if it dies)."""

    def __init__(self, store_path: Path) -> None:
        self.store_path = Path(store_path)
        self._proc: Optional[subprocess.Popen] = None
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[Future, subprocess.Popen]] = {}
        self._next = 0

    def submit(self, segment_id: int, fmt: str, path: Path, size: int, fps: int) -> Future:
        """Queue one clip; the future resolves to ``path`` once the clip is there (PbrlError otherwise)."""
        job = {"segment_id": int(segment_id), "fmt": fmt, "path": str(path), "size": int(size), "fps": int(fps)}
        fut: Future = Future()
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            job["id"], self._next = self._next, self._next + 1
            self._pending[job["id"]] = (fut, self._proc)
            try:
                self._proc.stdin.write(json.dumps(job) + "\n")
                self._proc.stdin.flush()
            except (OSError, ValueError):  # the worker just died: its reader fails every pending job
                pass
        return fut

    def _start(self) -> None:
        self._proc = subprocess.Popen([sys.executable, "-m", "pbrl.viewer.encoder", str(self.store_path)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        threading.Thread(target=self._results, args=(self._proc,), daemon=True, name="pbrl-clip-results").start()

    def _results(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                fut, _ = self._pending.pop(int(msg.get("id", -1)), (None, None))
            if fut is not None:
                if "error" in msg:
                    fut.set_exception(PbrlError(msg["error"]))
                else:
                    fut.set_result(Path(msg["path"]))
        code = proc.wait()
        with self._lock:  # jobs this process took and never finished fail (a later request starts another)
            failed = [jid for jid, (_, owner) in self._pending.items() if owner is proc]
            futures = [self._pending.pop(jid)[0] for jid in failed]
        for fut in futures:
            fut.set_exception(PbrlError(f"clip worker: exited with code {code} before finishing the clip"))

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:  # queued clips are not worth waiting for: the next start makes them
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdin.close()


def _serve(store_path: str, jobs: IO[str], out: IO[str]) -> None:
    """The worker's loop: one JSON job per line in, one JSON result per line out, until stdin closes."""
    from pbrl.data.store import PreferenceStore
    from pbrl.envs.render import RenderEnvs
    from pbrl.viewer.video import encode_segment

    tasks: dict = {}
    envs = RenderEnvs()  # one model + GL context per task and size for the worker's lifetime
    with PreferenceStore(store_path, create=False) as store:
        for line in jobs:
            job = json.loads(line)
            _CURRENT[:] = [Path(job["path"])]
            try:
                encode_segment(store, job["segment_id"], job["fmt"], Path(job["path"]), size=job["size"],
                               fps=job["fps"], tasks=tasks, envs=envs)
                reply = {"id": job["id"], "path": job["path"]}
            except Exception as exc:  # reported to the parent, who answers the HTTP request with it
                reply = {"id": job["id"], "error": str(exc) if isinstance(exc, PbrlError)
                         else f"segment {job['segment_id']}: cannot make its clip ({type(exc).__name__}: {exc})"}
            try:
                out.write(json.dumps(reply) + "\n")
                out.flush()
            except BrokenPipeError:  # the parent is gone: nobody waits for clips any more
                return


_CURRENT: list[Path] = []  # the clip being written, whose temp file a SIGTERM removes


def _exit(signum: int, frame: object) -> None:
    from pbrl.viewer.video import temp_path

    for path in _CURRENT:
        temp_path(path).unlink(missing_ok=True)
    os._exit(0)


if __name__ == "__main__":
    os.nice(NICE)
    signal.signal(signal.SIGTERM, _exit)
    _serve(sys.argv[1], sys.stdin, sys.stdout)

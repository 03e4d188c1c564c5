"""``pbrl label STORE``: serve the labelling viewer for a store (offline, or beside a running ``pbrl train``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from pbrl.data.store import PreferenceStore
from pbrl.types import PbrlError
from pbrl.viewer.queue import LabelQueue, check_annotator


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one-line PbrlError instead of argparse's exit
        raise PbrlError(f"pbrl label: {message}")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pbrl label", description="Label clip pairs of a preference store in the browser.")
    p.add_argument("store", type=Path, help="preference store (.sqlite), e.g. runs/<run>/store.sqlite")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1; others need --token)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--annotator", default=os.environ.get("USER") or "anonymous", help="default annotator name")
    p.add_argument("--token", default=os.environ.get("PBRL_LABEL_TOKEN"), help="access token (or PBRL_LABEL_TOKEN)")
    p.add_argument("--queue", type=int, default=0, metavar="N",
                   help="first queue N random pairs of the store's segments (offline labelling)")
    p.add_argument("--seed", type=int, default=0, help="seed of --queue pairs and left/right placement")
    p.add_argument("--overlap", action="store_true",
                   help="also serve pairs others answered (several annotators per pair, see /agreement)")
    p.add_argument("--question", default=None, help="question shown above the clips")
    return p


def queue_random_pairs(store: PreferenceStore, queue: LabelQueue, n: int, rng: np.random.Generator) -> list[int]:
    """Queue ``n`` random pairs of distinct stored segments of the same length (offline labelling)."""
    rows = store._read("SELECT id, length FROM segments ORDER BY id")
    by_len: dict[int, list[int]] = {}
    for sid, length in rows:
        by_len.setdefault(int(length), []).append(int(sid))
    pool = max(by_len.values(), key=len, default=[])
    if len(pool) < 2:
        raise PbrlError(f"store {store.path}: --queue needs >= 2 segments of equal length, found {len(pool)}")
    first, second = [], []
    for _ in range(n):
        a, b = rng.choice(len(pool), size=2, replace=False)
        first.append(pool[a])
        second.append(pool[b])
    return queue.enqueue(first, second, rng=rng)


def main(args: Sequence[str]) -> None:
    opts = parser().parse_args(list(args))
    from pbrl.viewer.server import QUESTION, ViewerConfig, check_bind, create_app, viewer_url

    check_annotator(opts.annotator)
    check_bind(opts.host, opts.token)
    if not 0 < opts.port < 65536:
        raise PbrlError(f"--port: expected 1-65535, got {opts.port}")
    if opts.queue < 0:
        raise PbrlError(f"--queue: expected >= 0, got {opts.queue}")
    store = PreferenceStore(opts.store, create=False)
    try:
        queue = LabelQueue(store)
        if opts.queue:
            queue_random_pairs(store, queue, opts.queue, np.random.default_rng(opts.seed))
        prog = queue.progress()
        app = create_app(store, ViewerConfig(annotator=opts.annotator, question=opts.question or QUESTION,
                                             token=opts.token, overlap=opts.overlap))
        print(f"pbrl label: {prog['queued']} pair(s) queued, {prog['labelled']} labelled in {opts.store}"
              + ("" if prog["total"] else " (nothing queued: add --queue N, or run `pbrl train feedback=human`)"))
        print(f"open {viewer_url(opts.host, opts.port, opts.token, opts.annotator)}  (Ctrl-C to stop)", flush=True)
        import uvicorn

        uvicorn.run(app, host=opts.host, port=opts.port, log_level="warning", lifespan="off")
    finally:
        store.close()

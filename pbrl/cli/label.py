"""``pbrl label STORE``: serve the labelling viewer for a store (offline, or beside a running ``pbrl train``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from pbrl.data.label_queue import LEASE_S, LabelQueue, check_annotator
from pbrl.data.store import PreferenceStore
from pbrl.types import PbrlError


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
    p.add_argument("--lease-s", type=float, default=LEASE_S, metavar="S",
                   help=f"without --overlap, a pair handed to one annotator is kept from others this long "
                        f"(default {LEASE_S:g}; renewed while their page is open)")
    p.add_argument("--size", type=int, default=None, metavar="PX",
                   help="longer side of re-rendered clips (default: the run's feedback.clip_size, else 256)")
    p.add_argument("--question", default=None, help="question shown above the clips")
    return p


def _check(opts: argparse.Namespace) -> None:
    from pbrl.viewer.server import check_bind

    check_annotator(opts.annotator)
    check_bind(opts.host, opts.token)
    if not 0 < opts.port < 65536:
        raise PbrlError(f"--port: expected 1-65535, got {opts.port}")
    if opts.queue < 0:
        raise PbrlError(f"--queue: expected >= 0, got {opts.queue}")
    if not opts.lease_s > 0:
        raise PbrlError(f"--lease-s: expected > 0 seconds, got {opts.lease_s}")


def main(args: Sequence[str]) -> None:
    opts = parser().parse_args(list(args))
    from pbrl.viewer.server import QUESTION, ViewerConfig, create_app, viewer_urls

    _check(opts)
    store = PreferenceStore(opts.store, create=False)
    app = None
    try:
        queue = LabelQueue(store)
        if opts.queue:
            queue.queue_random_pairs(opts.queue, np.random.default_rng(opts.seed))
        prog = queue.progress()
        app = create_app(store, ViewerConfig(annotator=opts.annotator, question=opts.question or QUESTION,
                                             token=opts.token, overlap=opts.overlap, lease_s=opts.lease_s,
                                             clip_size=opts.size))
        print(f"pbrl label: {prog['queued']} pair(s) queued, {prog['labelled']} labelled in {opts.store}"
              + ("" if prog["total"] else " (nothing queued: add --queue N, or run `pbrl train feedback=human`)"))
        for url in viewer_urls(opts.host, opts.port, opts.token, opts.annotator):
            print(f"open {url}")
        print("(Ctrl-C to stop)", flush=True)
        import uvicorn

        uvicorn.run(app, host=opts.host, port=opts.port, log_level="warning", lifespan="off")
    finally:
        if app is not None:
            app.state.close()
        store.close()

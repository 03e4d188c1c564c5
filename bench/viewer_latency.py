"""Viewer latency: time from an answer (key press) to the next pair's first frames, and clip costs.

Builds a store of real HalfCheetah segments (random policy, frames re-rendered from the observations as
``feedback=human`` does), serves it with ``pbrl label`` in its own process and labels every pair in
headless Debian chromium (Playwright) at a human-like pace. The page records, per answer, the ms from
the key handler until both next clips (prefetched, decoding in hidden video elements) are playing, which is
when the page accepts the next answer. Also times re-rendering (at the labelling size) and encoding
(WebM/VP9, mp4/H.264) per segment. Goal: p95 < 150 ms.

    python bench/viewer_latency.py [--pairs 30] [--segments 8] [--length 50] [--size 256] [--pace-ms 400]
        [--screenshot docs/viewer.png] [--update-benchmarks]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

if not __package__:  # run as python bench/<name>.py: bench/_bootstrap.py puts the repository root on sys.path
    import _bootstrap  # noqa: F401
from bench.common import publish  # noqa: E402

MARK = "viewer-latency"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def build_store(path: Path, n_pairs: int, n_unique: int, length: int, seed: int, size: int) -> dict[str, list[float]]:
    """Real segments (rendered from observations at ``size`` px) in a store, ``n_pairs`` queued; returns timings."""
    from pbrl.data.label_queue import LabelQueue
    from pbrl.data.store import PreferenceStore
    from pbrl.envs import load_task, make_env, rollout
    from pbrl.envs.render import render_from_obs
    from pbrl.viewer.clips import ClipCache

    task, rng = load_task("halfcheetah"), np.random.default_rng(seed)
    env = make_env(task, seed=seed, episode_length=length * n_unique)
    ep = rollout(env, lambda o: rng.uniform(-1, 1, 6).astype(np.float32), seed=seed, task_name=task.name)
    env.close()
    segs, t = [], {"render_frame_ms": [], "webm_s": [], "mp4_s": []}
    for k in range(n_unique):
        seg = ep.segment(k * length, length)
        t0 = time.perf_counter()
        frames = render_from_obs(task, seg.obs, size)
        t["render_frame_ms"].append(1e3 * (time.perf_counter() - t0) / length)
        segs.append(seg.__class__(**{**seg.__dict__, "frames": frames}))
    with PreferenceStore(path) as store:
        ids = store.add_segments(segs)
        clips = ClipCache(store, size=size)
        clips.get(ids[0], "mp4")  # the encoder process starts (imports) once; not a per-clip cost
        for sid in ids:
            for fmt in ("webm", "mp4"):
                t0 = time.perf_counter()
                clips.get(sid, fmt)
                t[f"{fmt}_s"].append(time.perf_counter() - t0)
        clips.close()
        pairs = [rng.choice(len(ids), 2, replace=False) for _ in range(n_pairs)]
        LabelQueue(store).queue_pairs([ids[a] for a, _ in pairs], [ids[b] for _, b in pairs], rng=rng)
    return t


def label_in_browser(store: Path, n_pairs: int, pace_ms: int, port: int, screenshot: Path | None) -> list[float]:
    from playwright.sync_api import sync_playwright

    proc = subprocess.Popen([sys.executable, "-m", "pbrl.cli", "label", str(store), "--port", str(port),
                             "--annotator", "bench"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/progress", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
            ctx = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True, args=ARGS,
                                                        viewport={"width": 1000, "height": 640})
            page = ctx.new_page()
            page.goto(f"http://127.0.0.1:{port}/?annotator=bench")
            page.wait_for_function("document.getElementById('pair').dataset.query !== ''", timeout=60_000)
            page.wait_for_timeout(1500)
            if screenshot:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot))
            for i in range(n_pairs):
                page.keyboard.press(["ArrowLeft", "ArrowRight", "ArrowDown", "1", "2"][i % 5])
                page.wait_for_timeout(pace_ms)  # a person watches the clips before answering
            page.wait_for_function(f"window.pbrlAcked.length >= {n_pairs}", timeout=60_000)
            timings = page.evaluate("window.pbrlTimings")
            ctx.close()
    finally:
        proc.kill()
        proc.wait()
    return timings


def render_md(t: dict, lat: list[float], args) -> str:
    lat_a = np.asarray(lat)
    pct = lambda a, q: f"{np.percentile(a, q):.1f}"  # noqa: E731
    rows = [
        f"| label -> next pair shown (ms) | {len(lat_a)} | {pct(lat_a, 50)} | {pct(lat_a, 95)} | {lat_a.max():.1f} |",
        *(f"| {name} | {len(v)} | {pct(v, 50)} | {pct(v, 95)} | {np.max(v):.1f} |" for name, v in [
            ("re-render from obs, per frame (ms)", t["render_frame_ms"]),
            (f"encode WebM/VP9, per {args.length}-frame segment (s)", t["webm_s"]),
            (f"encode mp4/H.264, per {args.length}-frame segment (s)", t["mp4_s"])]),
    ]
    verdict = "met" if np.percentile(lat_a, 95) < 150 else "NOT met"
    return "\n".join([
        "## Labelling viewer latency (`bench/viewer_latency.py`)",
        "",
        f"HalfCheetah segments of {args.length} frames at {args.size}x{args.size} (random policy, re-rendered from "
        f"observations at the labelling size), {args.pairs} pairs labelled by key presses in headless Debian chromium "
        f"(Playwright) every {args.pace_ms} ms; latency = key handler -> both next clips playing (a frame presented; "
        "answers are accepted from then on; clips prefetched and pre-decoded). Encoding runs in the viewer's "
        "background encoder process (timings include handing the job over). "
        f"Goal p95 < 150 ms: **{verdict}**.",
        "",
        "| measure | n | p50 | p95 | max |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
        f"Command: `python bench/viewer_latency.py --pairs {args.pairs} --segments {args.segments} --length "
        f"{args.length} --pace-ms {args.pace_ms} --size {args.size} --update-benchmarks`. "
        f"Machine: {platform.machine()}, {platform.python_version()}, software MuJoCo rendering (EGL/Mesa) on a "
        f"shared 2-core CPU. Date {datetime.date.today()}.",
    ])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=30)
    p.add_argument("--segments", type=int, default=8, help="distinct segments rendered and encoded")
    p.add_argument("--length", type=int, default=50)
    p.add_argument("--size", type=int, default=256, help="render size (px) of the clips, as labelling uses")
    p.add_argument("--pace-ms", type=int, default=400)
    p.add_argument("--port", type=int, default=8799)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--screenshot", type=Path, default=None)
    p.add_argument("--update-benchmarks", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store.sqlite"
        t = build_store(store, args.pairs, args.segments, args.length, args.seed, args.size)
        lat = label_in_browser(store, args.pairs, args.pace_ms, args.port, args.screenshot)
    publish(render_md(t, lat, args), MARK, args.update_benchmarks)


if __name__ == "__main__":
    main()

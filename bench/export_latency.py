"""Single-observation inference latency of an exported policy on CPU (goal: p99 < 100 us, default MLP).

Exports an SB3 SAC policy with pbrl's default actor (``configs/algo/sac.yaml``: 256x256 ReLU) on HalfCheetah,
then times, one observation at a time on one thread: the sim2real runtime's ``act`` (validation + ONNX Runtime +
clip), the bare ONNX Runtime call, and SB3's ``predict`` (the training-time path, for comparison).

    python bench/export_latency.py [--n 20000] [--update-benchmarks]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
from omegaconf import OmegaConf

if not __package__:  # run as python bench/<name>.py: bench/_bootstrap.py puts the repository root on sys.path
    import _bootstrap  # noqa: F401
from bench.common import ROOT, publish  # noqa: E402
sys.path.insert(0, str(ROOT / "sim2real"))
MARK = "export-latency"
BLOCKS = 10



def time_calls(fn: Callable[[np.ndarray], object], obs: np.ndarray) -> np.ndarray:
    """Microseconds per call, one observation each (after 200 warm-up calls)."""
    for o in obs[:200]:
        fn(o)
    out = np.empty(len(obs))
    clock = time.perf_counter_ns
    for i, o in enumerate(obs):
        t0 = clock()
        fn(o)
        out[i] = (clock() - t0) / 1000.0
    return out


def quietest_block_p99(us: np.ndarray) -> float:
    """p99 within the least-disturbed of ``BLOCKS`` consecutive blocks of calls."""
    return float(min(np.percentile(block, 99) for block in np.array_split(us, BLOCKS)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000, help="timed calls per path")
    p.add_argument("--update-benchmarks", action="store_true")
    ns = p.parse_args()
    import torch
    from stable_baselines3 import SAC

    from pbrl.export import export_run
    from pbrl.resources import resource_dir
    from pbrl_sim2real import PolicyRuntime
    from bench.sb3_runs import write_sb3_run

    torch.set_num_threads(1)  # a benchmark script, not library code
    net = list(OmegaConf.load(resource_dir("configs") / "algo" / "sac.yaml").sac.policy_kwargs.net_arch)
    with tempfile.TemporaryDirectory() as tmp:
        run = write_sb3_run(Path(tmp), task="halfcheetah", algo="sac", net_arch=net, episode_length=100)
        bundle = export_run(run, n_obs=1000).parent
        runtime = PolicyRuntime(bundle)
        model = SAC.load(run / "policy.zip", device="cpu")
        obs = np.random.default_rng(0).standard_normal((ns.n, runtime.bundle.obs_dim)).astype(np.float32)
        session, name = runtime.session, runtime.bundle.input_name
        paths = {
            "sim2real `PolicyRuntime.act` (validate + ORT + clip)": runtime.act,
            "bare `onnxruntime` session.run": lambda o: session.run(None, {name: o[None]}),
            "SB3 `predict(deterministic=True)` (torch, training-time)": lambda o: model.predict(o, deterministic=True),
        }
        rows = {label: time_calls(fn, obs if "SB3" not in label else obs[: max(2000, ns.n // 10)])
                for label, fn in paths.items()}
    import onnxruntime

    p99 = np.percentile(rows[next(iter(rows))], 99)
    quiet = quietest_block_p99(rows[next(iter(rows))])
    lines = ["## Export: single-observation inference latency (`bench/export_latency.py`)", "",
             f"Default SAC actor ({'x'.join(map(str, net))} ReLU, HalfCheetah 17 -> 6), one observation per call, "
             f"one CPU thread, {ns.n} timed calls after warm-up; microseconds. The last column is the p99 of the "
             f"quietest of {BLOCKS} consecutive blocks of calls (discounts preemption by other processes).", "",
             "| path | p50 | p90 | p99 | mean | p99 quietest block |", "|---|---:|---:|---:|---:|---:|"]
    for label, us in rows.items():
        q = np.percentile(us, [50, 90, 99])
        lines.append(f"| {label} | {q[0]:.1f} | {q[1]:.1f} | {q[2]:.1f} | {us.mean():.1f} | "
                     f"{quietest_block_p99(us):.1f} |")
    lines += ["", f"Goal p99 < 100 us for the runtime path: **{'met' if p99 < 100 else 'not met'}** over all calls "
              f"({p99:.1f} us); {'met' if quiet < 100 else 'not met'} in the quietest block ({quiet:.1f} us). "
              f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with other "
              f"jobs (load average {os.getloadavg()[0]:.1f} at the end); "
              f"onnxruntime {onnxruntime.__version__}, torch {torch.__version__}. "
              f"Date {time.strftime('%Y-%m-%d', time.gmtime())}."]
    block = "\n".join(lines)
    publish(block, MARK, ns.update_benchmarks)


if __name__ == "__main__":
    main()

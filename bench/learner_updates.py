"""What one env step of the PEBBLE loop costs, part by part, per candidate learner (CPU time, one process).

Measured in one process, one after the other, as CPU seconds (``time.process_time``: robust to the machine's load;
a learner that spreads over several threads pays for all of them):

* one gradient update (critic + actor + temperature, batch 256, 2x256 networks) for SB3 SAC, sbx SAC,
  sb3-contrib CrossQ and sbx CrossQ, each with ``gradient_steps`` updates per call (1 = ``train_freq=1``; k = k env
  steps collected, then k updates in one call: the same update-to-data ratio, fewer calls);
* the per-env-step parts around it: the MuJoCo step through pbrl's wrappers, the learned reward of one step
  (3-member ensemble), the policy's action for one observation (SB3 / sbx);
* the dense float32 matmul rate of this core (torch, 256x256x256), which bounds an update from below: its
  floating-point work divided by that rate.

    python bench/learner_updates.py [--updates 64] [--update-benchmarks]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

if not __package__:  # run as python bench/<name>.py: bench/_bootstrap.py puts the repository root on sys.path
    import _bootstrap  # noqa: F401
from bench.common import publish  # noqa: E402
from bench.online_pbrl import machine_info  # noqa: E402
from pbrl.agents.pebble import silent_logger  # noqa: E402

MARK = "learner-updates"
ARCH = [256, 256]
BATCH = 256


def cpu_ms(fn: Callable[[], Any], n: int) -> float:
    """CPU milliseconds per call of ``fn`` (after one warm-up call)."""
    fn()
    c = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - c) / n * 1000


def make_learner(name: str) -> Any:
    """A learner on HalfCheetah with the PEBBLE settings (2x256, batch 256) and 1100 stored transitions."""
    import gymnasium as gym

    env = gym.make("HalfCheetah-v5")
    kw: dict[str, Any] = dict(learning_starts=1000, buffer_size=5000, seed=0, verbose=0, batch_size=BATCH,
                              policy_kwargs={"net_arch": ARCH})
    if name == "SB3 SAC":
        from stable_baselines3 import SAC
        model = SAC("MlpPolicy", env, device="cpu", **kw)
    elif name == "sbx SAC":
        from sbx import SAC as SbxSAC
        model = SbxSAC("MlpPolicy", env, **kw)
    elif name == "sb3-contrib CrossQ":
        from sb3_contrib import CrossQ
        model = CrossQ("MlpPolicy", env, device="cpu", **kw)
    elif name == "sbx CrossQ":
        from sbx import CrossQ as SbxCrossQ
        model = SbxCrossQ("MlpPolicy", env, **kw)
    else:
        raise ValueError(name)
    silent_logger(model)  # no /tmp/SB3-<time> folder per run
    model.learn(1100)  # 1000 random steps, then 100 with updates (compiles the JAX ones)
    return model


def update_ms(model: Any, gradient_steps: int, repeats: int) -> float:
    """CPU ms per gradient update, ``gradient_steps`` updates per ``train`` call (best of ``repeats`` calls)."""
    model.train(gradient_steps=gradient_steps, batch_size=BATCH)  # compile this shape
    best = float("inf")
    for _ in range(repeats):
        c = time.process_time()
        model.train(gradient_steps=gradient_steps, batch_size=BATCH)
        best = min(best, time.process_time() - c)
    return best / gradient_steps * 1000


def sac_update_gflop(obs_dim: int = 17, act_dim: int = 6) -> float:
    """Floating-point work of one SAC update (2 critics, target critics, actor; forward = 2 flop per weight per
    sample, backward ~2x forward), in GFLOP."""
    def weights(sizes: list[int]) -> int:
        return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    critic = 2 * weights([obs_dim + act_dim, *ARCH, 1])
    actor = weights([obs_dim, *ARCH, 2 * act_dim])
    fwd = 2 * BATCH  # flop per weight per batch
    critic_update = fwd * (actor + critic + critic) + 2 * fwd * critic  # next action, target Q, Q; backward of Q
    actor_update = fwd * (actor + critic) + 2 * fwd * (actor + critic)
    return (critic_update + actor_update) / 1e9


def matmul_gflops(repeats: int = 2000) -> float:
    a, b = torch.randn(256, 256), torch.randn(256, 256)
    return 2 * 256 ** 3 / cpu_ms(lambda: a @ b, repeats) / 1e6


def step_parts() -> list[tuple[str, float]]:
    """CPU ms of the per-env-step work around the update."""
    from pbrl.envs import load_task
    from pbrl.rewards.ensemble import EnsembleReward
    from pbrl.run.builder import make_venv

    venv = make_venv(load_task("halfcheetah"), seed=0)
    obs = venv.reset()
    act = np.zeros((1, 6), np.float32)
    reward = EnsembleReward(obs_dim=17, act_dim=6, n_members=3, hidden=[256, 256, 256], seed=0)
    rows = [("MuJoCo step through pbrl's wrappers", cpu_ms(lambda: venv.step(act), 2000)),
            ("learned reward of one step (3-member ensemble)", cpu_ms(lambda: reward.predict(obs, act), 500))]
    for name, model in (("SB3 SAC", make_learner("SB3 SAC")), ("sbx SAC", make_learner("sbx SAC"))):
        rows.append((f"{name} action for one observation", cpu_ms(lambda: model.predict(obs), 1000)))
    venv.close()
    return rows


def render(updates: list[tuple[str, int, float]], parts: list[tuple[str, float]], gflops: float, work: float,
           machine: dict) -> str:
    base = next(ms for name, k, ms in updates if name == "SB3 SAC" and k == 1)
    lines = ["| learner | updates per call | CPU ms / update | vs SB3 SAC (1 per call) |", "|---|---|---|---|"]
    lines += [f"| {name} | {k} | {ms:.2f} | {base / ms:.2f}x |" for name, k, ms in updates]
    plines = ["| per env step | CPU ms |", "|---|---|"] + [f"| {n} | {ms:.3f} |" for n, ms in parts]
    return f"""\
## Cost of one PEBBLE env step, part by part (`bench/learner_updates.py`)

{chr(10).join(lines)}

{chr(10).join(plines)}

Lower bound for one SAC update at these sizes: {work:.2f} GFLOP / {gflops:.0f} GFLOP/s (this core's float32
256x256 matmul rate, torch, one thread) = **{1000 * work / gflops:.1f} ms**. An update is dense matmuls on
256-wide layers, so at the same networks, batch and one update per env step no library gets far below that: the
4x goal at equal settings is bounded by compute, and the remaining levers are fewer updates per env step (a
different algorithm: CrossQ's actor updates every 3rd step, no target network) or more return per step.
CrossQ rows use each library's CrossQ defaults except 2x256 networks (sb3-contrib/sbx default critics are wider).
One process, CPU time (`time.process_time`), best of the repeated calls; date {machine['date']}, {machine['cpu']},
load average at start {', '.join(f'{x:.1f}' for x in machine['loadavg_start'])}.
"""


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--updates", type=int, default=64, help="updates per timed call for the batched rows")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--update-benchmarks", action="store_true", help=f"rewrite the {MARK} section of BENCHMARKS.md")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    machine = machine_info()
    updates = []
    for name in ("SB3 SAC", "sbx SAC", "sb3-contrib CrossQ", "sbx CrossQ"):
        model = make_learner(name)
        for k in (1, 8, args.updates):
            updates.append((name, k, update_ms(model, k, args.repeats if k > 1 else 4 * args.repeats)))
            print(f"{name}: {k} per call: {updates[-1][2]:.2f} ms", flush=True)
    block = render(updates, step_parts(), matmul_gflops(), sac_update_gflop(), machine)
    publish(block, MARK, args.update_benchmarks)
    return 0


if __name__ == "__main__":
    sys.exit(main())

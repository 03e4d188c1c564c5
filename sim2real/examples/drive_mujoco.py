"""Drive the MuJoCo simulation of a task through the sim2real runtime, as a robot would be driven.

Only numpy, onnxruntime, gymnasium and mujoco are imported (the script checks that torch and pbrl are not):

    python sim2real/examples/drive_mujoco.py RUN_DIR/export --steps 1000 [--realtime] [--nan-at 10]

``--realtime`` paces the loop with :class:`Rate` at the bundle's control period; ``--nan-at K`` corrupts
observation K to show the configured safe action taking over.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from pbrl_sim2real import PolicyRuntime, Rate  # noqa: E402


def drive(bundle_dir: str, *, steps: int, seed: int = 0, realtime: bool = False, nan_at: int = -1) -> dict:
    """One episode of the bundle's ``env_id``; returns return, steps, and safe-action count."""
    runtime = PolicyRuntime(bundle_dir, safe_action="hold")
    env = gym.make(runtime.bundle.meta["env_id"], max_episode_steps=steps)
    rate = Rate(runtime.bundle.control_period_s or 0.01) if realtime else None
    obs, _ = env.reset(seed=seed)
    total, t, done = 0.0, 0, False
    while not done:
        if t == nan_at:
            obs = np.full_like(obs, np.nan)
        obs, reward, terminated, truncated, _ = env.step(runtime.act(obs))
        total, t, done = total + float(reward), t + 1, terminated or truncated
        if rate is not None:
            rate.sleep()
    env.close()
    return {"return": total, "steps": t, "safe_actions": runtime.n_unsafe,
            "overruns": None if rate is None else rate.overruns}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", help="directory with policy.onnx + policy.json")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--realtime", action="store_true")
    parser.add_argument("--nan-at", type=int, default=-1)
    ns = parser.parse_args()
    result = drive(ns.bundle, steps=ns.steps, seed=ns.seed, realtime=ns.realtime, nan_at=ns.nan_at)
    assert "torch" not in sys.modules and "pbrl" not in sys.modules, "the runtime must not pull torch/pbrl"
    print(" ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()

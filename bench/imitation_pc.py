"""imitation's preference comparisons on a MuJoCo env, as a Hydra app writing a run directory ``pbrl report`` reads.

Runs in imitation's own environment (imitation 1.0.1 pins gymnasium 0.29 and SB3 2.2; ``make setup-imitation``),
so it imports nothing from pbrl. It calls imitation's own ``train_preference_comparisons`` experiment with its
defaults (fragment length 100, 5 iterations, hyperbolic query schedule with 10% of the comparisons up front,
a 32x32 reward net with running output normalisation, PPO on 8 envs), changing only the env, steps, label count,
seed and (``sample_labels``) the teacher, then evaluates the final policy with pbrl's protocol: deterministic
actions, episodes seeded 10000+seed, 10000+seed+1, ... Writes config.yaml, metrics.csv, summary.json.

    .venv-imitation/bin/python bench/imitation_pc.py -m hydra/launcher=joblib seed=0,1,2,3,4
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

#: pbrl.envs.rollout.EVAL_SEED_OFFSET (episode i of seed s is seeded EVAL_SEED_OFFSET + s + i); this script runs
#: in imitation's environment without pbrl, so tests/bench check that the two agree
EVAL_SEED_OFFSET = 10_000
COLUMNS = ("env_steps", "labels_used", "return_mean", "return_std", "success_rate", "wall_s")


def env_fingerprint(env_id: str, steps: int = 1000) -> float:
    """Return of a fixed random action sequence from ``reset(seed=0)`` (bench/headline.py compares env versions)."""
    env = gym.make(env_id)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    total = 0.0
    for _ in range(steps):
        _, r, term, trunc, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
        total += float(r)
        if term or trunc:
            break
    env.close()
    return total


def agent_budget(steps: int, iterations: int, rollout: int = 2048) -> int:
    """imitation's ``total_timesteps`` that trains the agent for about ``steps`` env steps.

    ``PreferenceComparisons.train`` trains the agent ``total_timesteps // num_iterations`` steps in each of
    ``num_iterations + 1`` rounds (the initial comparisons get a round of their own), each rounded up to whole
    PPO rollouts (``rollout`` = rl.batch_size steps), so ``total_timesteps=100000`` trains 6 x 20480 = 122880
    steps. This returns the budget whose rounds are the whole number of rollouts closest to ``steps`` in total
    (100000 -> 81920: 6 x 16384 = 98304 steps). The summary records the agent's actual ``num_timesteps``.
    """
    per_round = max(1, round(steps / (iterations + 1) / rollout)) * rollout
    return per_round * iterations


def evaluate(policy, env_id: str, episodes: int, seed: int) -> np.ndarray:
    env = gym.make(env_id)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED_OFFSET + seed + i)
        done, ret = False, 0.0
        while not done:
            act, _ = policy.predict(obs, deterministic=True)
            obs, r, term, trunc, _ = env.step(act)
            ret, done = ret + float(r), term or trunc
        returns.append(ret)
    env.close()
    return np.array(returns)


def train(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    # importing the script module registers its main function on the experiment
    from imitation.scripts.train_preference_comparisons import train_preference_comparisons_ex
    from stable_baselines3 import PPO

    extra = OmegaConf.to_container(cfg.overrides, resolve=True)
    iterations = int(extra.get("num_iterations", 5))  # imitation's default
    rollout = int(extra.get("rl", {}).get("batch_size", 2048))  # imitation's default PPO rollout (8 envs x 256)
    updates = {"environment": {"gym_id": str(cfg.env_id), "parallel": False}, "seed": int(cfg.seed),
               "total_timesteps": agent_budget(int(cfg.steps), iterations, rollout), "total_comparisons": int(cfg.labels),
               "gatherer_kwargs": {"sample": bool(cfg.sample_labels)},
               "logging": {"log_dir": str(run_dir / "imitation")}, "checkpoint_interval": 0, **extra}
    t0 = time.perf_counter()
    run = train_preference_comparisons_ex.run(config_updates=updates, options={"--loglevel": "ERROR"})
    wall = time.perf_counter() - t0
    policy = PPO.load(run_dir / "imitation" / "checkpoints" / "final" / "policy" / "model.zip", device="cpu")
    returns = evaluate(policy, str(cfg.env_id), int(cfg.final_episodes), int(cfg.seed))
    return {"task": str(cfg.env_id), "algo": "imitation-preference-comparisons", "seed": int(cfg.seed),
            "return_mean": float(returns.mean()), "return_std": float(returns.std()), "success_rate": None,
            "labels_used": int(cfg.labels), "env_steps": int(policy.num_timesteps), "wall_s": wall,
            "total_timesteps_setting": updates["total_timesteps"],
            "imitation_result": {k: v for k, v in (run.result or {}).items() if isinstance(v, (int, float))},
            "imitation_version": __import__("imitation").__version__, "run_dir": str(run_dir)}


def write(run_dir: Path, name: str, text: str) -> None:
    tmp = run_dir / f".{name}.tmp"
    tmp.write_text(text)
    os.replace(tmp, run_dir / name)


@hydra.main(version_base="1.3", config_path="configs", config_name="imitation_pc")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    OmegaConf.set_struct(cfg, False)
    cfg.out = str(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write(run_dir, "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    torch.set_num_threads(int(cfg.threads))
    summary = train(cfg, run_dir)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerow({**summary, "success_rate": ""})
    write(run_dir, "metrics.csv", buf.getvalue())
    write(run_dir, "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"done: return {summary['return_mean']:.1f}; results in {run_dir}")
    return summary["return_mean"]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--fingerprint":
        print(json.dumps({"return": env_fingerprint(sys.argv[2])}))
    else:
        main()

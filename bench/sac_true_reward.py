"""Baseline for the online PbRL benchmark: plain stable-baselines3 SAC on the task's TRUE reward.

Same environment factory, SAC hyperparameters (read from ``configs/algo/sac.yaml``) and final
evaluation protocol as ``pbrl train``, so its numbers sit next to pbrl's in one table:

    python bench/sac_true_reward.py --task halfcheetah --steps 100000 --seed 0 --out runs/bench/sac

Writes ``<out>/summary.json`` with return_mean, return_std, success_rate, env_steps and wall_s
(seconds spent inside ``SAC.learn()`` only; evaluation and start-up are timed separately).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from omegaconf import OmegaConf
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.utils import set_random_seed

from pbrl.agents.pebble import sac_policy_fn, silent_logger
from pbrl.envs import eval_seed, evaluate, load_task, make_env
from pbrl.resources import resource_dir
from pbrl.utils import atomic_write_json


def load_sac_config(path: Optional[Path] = None) -> dict[str, Any]:
    """The ``algo=sac`` config group as a plain dict (the single source of the SAC numbers)."""
    path = path or resource_dir("configs") / "algo" / "sac.yaml"
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)  # type: ignore[return-value]


def default_final_episodes() -> int:
    """``eval.final_episodes`` of ``configs/train.yaml``: how many episodes pbrl's final evaluation runs."""
    return int(OmegaConf.load(resource_dir("configs") / "train.yaml").eval.final_episodes)


class ProgressPrinter(BaseCallback):
    """Prints a line every ``every`` env steps with the mean of the last 10 training-episode returns."""

    def __init__(self, every: int, total: int) -> None:
        super().__init__()
        self.every, self.total = max(1, every), total
        self.t0 = time.perf_counter()

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every == 0:
            returns = [ep["r"] for ep in list(self.model.ep_info_buffer)[-10:]]
            mean = sum(returns) / len(returns) if returns else float("nan")
            print(f"sac: {self.num_timesteps}/{self.total} steps, {time.perf_counter() - self.t0:.0f}s, "
                  f"train return (last 10 ep) {mean:.1f}", flush=True)
        return True


def build_model(task_name: str, seed: int, steps: int, sac_cfg: dict[str, Any]) -> SAC:
    """SB3 SAC on the Monitor-wrapped task env, configured exactly like pbrl's ``build_sac``."""
    env = Monitor(make_env(load_task(task_name), seed=seed))
    return SAC("MlpPolicy", env, learning_starts=int(sac_cfg["seed_steps"]),
               buffer_size=min(int(sac_cfg["buffer_size"]), steps), seed=seed, device="cpu", verbose=0,
               **sac_cfg["sac"])


def run(task_name: str, steps: int, seed: int, out: Path, *, eval_episodes: int, threads: int = 1,
        sac_cfg: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Train for ``steps`` env steps, evaluate like pbrl's final evaluation, write and return the summary."""
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    set_random_seed(seed)
    sac_cfg = sac_cfg or load_sac_config()
    model = build_model(task_name, seed, steps, copy.deepcopy(sac_cfg))  # SB3 edits policy_kwargs in place
    silent_logger(model)  # no /tmp/SB3-<time> folder per run
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, callback=ProgressPrinter(max(1, steps // 10), steps))
    wall_s = time.perf_counter() - t0
    task = load_task(task_name)
    t1 = time.perf_counter()
    res = evaluate(task, sac_policy_fn(model), n_episodes=eval_episodes, seed=eval_seed(seed))
    summary = {
        "task": task.name, "algo": "sb3-sac-true-reward", "seed": seed, "env_steps": int(model.num_timesteps),
        "return_mean": res.return_mean, "return_std": float(res.returns.std()), "success_rate": res.success_rate,
        "eval_episodes": eval_episodes, "eval_s": time.perf_counter() - t1, "wall_s": wall_s, "threads": threads,
        "sac": sac_cfg, "train_episodes": int(model._episode_num),
    }
    model.save(out / "policy.zip")
    atomic_write_json(out / "summary.json", summary)
    return summary


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Plain SB3 SAC on a pbrl task's true reward (baseline for bench/online_pbrl.py).")
    parser.add_argument("--task", required=True, help="pbrl task name (see `pbrl tasks`)")
    parser.add_argument("--steps", type=int, required=True, help="environment steps to train for")
    parser.add_argument("--seed", type=int, default=0, help="seed (env, SAC, evaluation seed 10000+seed)")
    parser.add_argument("--out", type=Path, required=True, help="output directory for summary.json, policy.zip")
    parser.add_argument("--eval-episodes", type=int, default=None,
                        help="final evaluation episodes (default: eval.final_episodes of configs/train.yaml)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    episodes = args.eval_episodes or default_final_episodes()
    summary = run(args.task, args.steps, args.seed, args.out, eval_episodes=episodes, threads=args.threads)
    keys = ("return_mean", "return_std", "success_rate", "env_steps", "wall_s")
    print(json.dumps({k: summary[k] for k in keys}), flush=True)


if __name__ == "__main__":
    sys.exit(main())

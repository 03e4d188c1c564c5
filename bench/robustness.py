"""Robustness table: SAC trained with and without domain randomisation, evaluated under randomised dynamics.

Both policies train on the task's TRUE reward (this isolates randomisation from preference learning) with
the same seed, network and step budget; each is then evaluated on nominal dynamics, on the task's own
``randomisation:`` ranges, and on a harsher dynamics-only setting (mass/friction/damping/gain x [0.6, 1.4]).

    python bench/robustness.py --task hopper --steps 30000 --seeds 0,1 --update-benchmarks
"""

from __future__ import annotations

import argparse
import time
from typing import Optional

import numpy as np
from omegaconf import OmegaConf

if not __package__:  # run as python bench/<name>.py: bench/_bootstrap.py puts the repository root on sys.path
    import _bootstrap  # noqa: F401
from bench.common import publish
from pbrl.agents.pebble import silent_logger

MARK = "robustness"


def conditions(task) -> dict[str, Optional[object]]:
    from pbrl.envs.randomize import RandomisationSpec, parse_randomisation

    wide = (0.6, 1.4)
    return {"nominal": None, "task ranges": parse_randomisation(task.extra["randomisation"]),
            "harsh dynamics x[0.6,1.4]": RandomisationSpec(mass=wide, friction=wide, damping=wide, actuator_gain=wide)}


def train(task, randomisation, *, steps: int, seed: int, episode_length: int, net: list[int]):
    from stable_baselines3 import SAC
    from stable_baselines3.common.monitor import Monitor

    from pbrl.envs import make_env
    from pbrl.resources import resource_dir

    sac = OmegaConf.to_container(OmegaConf.load(resource_dir("configs") / "algo" / "sac.yaml"), resolve=True)
    kwargs = {**sac["sac"], "policy_kwargs": {"net_arch": net}}
    env = Monitor(make_env(task, seed=seed, episode_length=episode_length, randomisation=randomisation))
    model = SAC("MlpPolicy", env, learning_starts=min(int(sac["seed_steps"]), steps // 5), seed=seed, device="cpu",
                verbose=0, **kwargs)
    t0 = time.perf_counter()
    silent_logger(model)  # no /tmp/SB3-<time> folder per run
    model.learn(total_timesteps=steps)
    return model, time.perf_counter() - t0


def evaluate_under(model, task, randomisation, *, episodes: int, episode_length: int) -> np.ndarray:
    from pbrl.agents.pebble import sac_policy_fn
    from pbrl.envs import make_env, rollout
    from pbrl.envs.rollout import EVAL_SEED_OFFSET

    # every policy on the same evaluation episodes (seeds apart from any training seed), whatever it trained on
    env = make_env(task, seed=EVAL_SEED_OFFSET, episode_length=episode_length, randomisation=randomisation)
    try:
        return np.array([rollout(env, sac_policy_fn(model), seed=EVAL_SEED_OFFSET + i).true_return
                         for i in range(episodes)])
    finally:
        env.close()


POLICIES = {"trained nominal": None, "trained randomised (task ranges)": "task ranges"}


def run_policy(task_name: str, policy: str, seed: int, steps: int, episode_length: int, net: list[int],
               episodes: int) -> tuple[str, int, float, dict[str, float]]:
    """Train one policy (one process, one torch thread) and return its mean return under every condition."""
    import torch

    from pbrl.envs import load_task

    torch.set_num_threads(1)
    task = load_task(task_name)
    conds = conditions(task)
    train_on = conds[POLICIES[policy]] if POLICIES[policy] else None
    model, wall = train(task, train_on, steps=steps, seed=seed, episode_length=episode_length, net=net)
    means = {c: float(evaluate_under(model, task, spec, episodes=episodes, episode_length=episode_length).mean())
             for c, spec in conds.items()}
    print(f"{policy}, seed {seed}: trained {steps} steps in {wall:.0f}s; "
          + ", ".join(f"{c} {m:.1f}" for c, m in means.items()), flush=True)
    return policy, seed, wall, means


def table(results: list[tuple[str, int, float, dict[str, float]]], conds: list[str]) -> list[str]:
    """Rows: policies; cells: mean ± std over seeds of the per-seed mean return; last: harsh / nominal."""
    lines = ["| policy | " + " | ".join(conds) + " | harsh / nominal |", "|---|" + "---:|" * (len(conds) + 1)]
    for policy in POLICIES:
        per_seed = [r[3] for r in results if r[0] == policy]
        cells = [np.array([m[c] for m in per_seed]) for c in conds]
        kept = np.mean([m[conds[-1]] / m[conds[0]] for m in per_seed if m[conds[0]] > 0] or [np.nan])
        lines.append(f"| {policy} | " + " | ".join(f"{v.mean():.1f} ± {v.std():.1f}" for v in cells)
                     + f" | {kept:.2f} |")
    return lines


def main() -> None:
    from concurrent.futures import ProcessPoolExecutor

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="halfcheetah")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--seeds", default="0", help="comma-separated seeds; each trains both policies")
    p.add_argument("--episode-length", type=int, default=200)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--net", default="256,256")
    p.add_argument("--workers", type=int, default=2, help="policies trained at once (one process and thread each)")
    p.add_argument("--update-benchmarks", action="store_true")
    ns = p.parse_args()
    from pbrl.envs import load_task

    net = [int(x) for x in ns.net.split(",")]
    seeds = [int(x) for x in ns.seeds.split(",")]
    conds = list(conditions(load_task(ns.task)))
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=ns.workers) as pool:
        jobs = [pool.submit(run_policy, ns.task, policy, seed, ns.steps, ns.episode_length, net, ns.eval_episodes)
                for seed in seeds for policy in POLICIES]
        results = [j.result() for j in jobs]
    lines = [f"## Robustness to dynamics (`bench/robustness.py`, {ns.task})", "",
             f"SAC on the true reward, {ns.steps} env steps, net {ns.net}, episodes of {ns.episode_length} steps; "
             f"seeds {ns.seeds}; each cell is the mean ± std over seeds of a policy's mean return over "
             f"{ns.eval_episodes} evaluation episodes; the last column is the return kept under harsh dynamics "
             "(mean over seeds of harsh / nominal).", "", *table(results, conds), "",
             "Dynamics randomisation during training should raise the last column (robustness) at some cost or "
             "gain on nominal dynamics; with few seeds and small budgets, differences of a few points are noise.",
             "", f"Command: `python bench/robustness.py --task {ns.task} --steps {ns.steps} --seeds {ns.seeds} "
             f"--net {ns.net} --episode-length {ns.episode_length} --eval-episodes {ns.eval_episodes}`; "
             f"{len(results)} trainings in {time.perf_counter() - t0:.0f} s wall with {ns.workers} workers. "
             f"Date {time.strftime('%Y-%m-%d', time.gmtime())}."]
    block = "\n".join(lines)
    publish(block, MARK, ns.update_benchmarks)


if __name__ == "__main__":
    main()

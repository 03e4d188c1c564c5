"""Robustness table: SAC trained with and without domain randomisation, evaluated under randomised dynamics.

Both policies train on the task's TRUE reward (this isolates randomisation from preference learning) with
the same seed, network and step budget; each is then evaluated on nominal dynamics, on the task's own
``randomisation:`` ranges, and on a harsher dynamics-only setting (mass/friction/damping/gain x [0.6, 1.4]).

    python bench/robustness.py --task halfcheetah --steps 20000 --update-benchmarks
"""

from __future__ import annotations

import argparse
import time
from typing import Optional

import numpy as np
from omegaconf import OmegaConf

from common import ROOT, update_section

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
    model.learn(total_timesteps=steps)
    return model, time.perf_counter() - t0


def evaluate_under(model, task, randomisation, *, episodes: int, episode_length: int) -> np.ndarray:
    from pbrl.agents.pebble import sac_policy_fn
    from pbrl.envs import make_env, rollout

    env = make_env(task, seed=10_000, episode_length=episode_length, randomisation=randomisation)
    try:
        return np.array([rollout(env, sac_policy_fn(model), seed=10_000 + i).true_return for i in range(episodes)])
    finally:
        env.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="halfcheetah")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--episode-length", type=int, default=200)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--net", default="256,256")
    p.add_argument("--update-benchmarks", action="store_true")
    ns = p.parse_args()
    import torch

    from pbrl.envs import load_task

    torch.set_num_threads(1)
    task = load_task(ns.task)
    net = [int(x) for x in ns.net.split(",")]
    conds = conditions(task)
    table = {}
    for label, spec in (("trained nominal", None), ("trained randomised (task ranges)", conds["task ranges"])):
        model, wall = train(task, spec, steps=ns.steps, seed=ns.seed, episode_length=ns.episode_length, net=net)
        table[label] = {c: evaluate_under(model, task, s, episodes=ns.eval_episodes, episode_length=ns.episode_length)
                        for c, s in conds.items()}
        print(f"{label}: trained {ns.steps} steps in {wall:.0f}s; " +
              ", ".join(f"{c} {r.mean():.1f}" for c, r in table[label].items()), flush=True)
    lines = [f"## Robustness to dynamics (`bench/robustness.py`, {task.name})", "",
             f"SAC on the true reward, {ns.steps} env steps, net {ns.net}, episodes of {ns.episode_length} steps, "
             f"seed {ns.seed}; mean ± std return over {ns.eval_episodes} evaluation episodes per cell.", "",
             "| policy | " + " | ".join(conds) + " |", "|---|" + "---:|" * len(conds)]
    for label, row in table.items():
        lines.append(f"| {label} | " + " | ".join(f"{r.mean():.1f} ± {r.std():.1f}" for r in row.values()) + " |")
    lines += ["", "One seed per row: at small budgets the gap between rows mixes training noise with robustness; "
              "read it as a smoke test of the pipeline unless --steps is in the 1e5-1e6 range.",
              "", f"Command: `python bench/robustness.py --task {ns.task} --steps {ns.steps} --net {ns.net} "
              f"--episode-length {ns.episode_length} --eval-episodes {ns.eval_episodes}`. "
              f"Date {time.strftime('%Y-%m-%d', time.gmtime())}."]
    block = "\n".join(lines)
    print(block)
    if ns.update_benchmarks:
        update_section(ROOT / "BENCHMARKS.md", MARK, block)


if __name__ == "__main__":
    main()

"""SB3 SAC on a pbrl task's TRUE reward as a Hydra app, so baselines sweep through the same launchers as
``pbrl train -m`` and land in run directories ``pbrl report`` reads (config.yaml, metrics.csv, summary.json).

    python bench/baseline_sac.py -m hydra/launcher=local seed=0,1,2,3,4 task=halfcheetah settings=pbrl,sb3

``settings=pbrl`` trains with configs/algo/sac.yaml (PEBBLE's SB3 SAC learner and settings, no learned reward);
``settings=crossq`` with configs/algo/crossq.yaml (sbx CrossQ, the default ``pbrl train`` learner);
``settings=sb3`` with SB3 SAC's own defaults. All use pbrl's env factory and evaluation protocol
(deterministic policy, episodes seeded 10000+seed, ...), so their returns sit next to pbrl's in one table.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.utils import set_random_seed

if not __package__:  # run as python bench/<name>.py: bench/_bootstrap.py puts the repository root on sys.path
    import _bootstrap  # noqa: F401
from bench.sac_true_reward import build_model, load_sac_config  # noqa: E402

from pbrl.agents.pebble import sac_policy_fn, silent_logger  # noqa: E402
from pbrl.envs import eval_seed, evaluate, load_task, make_env  # noqa: E402
from pbrl.report import MetricsLog  # noqa: E402
from pbrl.resources import resource_dir  # noqa: E402
from pbrl.run.sweep import hydra_job  # noqa: E402
from pbrl.types import PbrlError  # noqa: E402
from pbrl.utils import atomic_write_json, atomic_write_text  # noqa: E402

SETTINGS = ("pbrl", "crossq", "sb3")


class PeriodicEval(BaseCallback):
    """Every ``every`` env steps: pbrl's evaluation protocol, one row of metrics.csv."""

    def __init__(self, task, log: MetricsLog, *, every: int, episodes: int, seed: int, t0: float) -> None:
        super().__init__()
        self.task, self.log, self.every, self.episodes, self.seed, self.t0 = task, log, every, episodes, seed, t0

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every == 0:
            row = evaluate_row(self.task, self.model, self.num_timesteps, self.episodes, self.seed)
            self.log.append({**row, "wall_s": time.perf_counter() - self.t0})
        return True


def evaluate_row(task, model: Any, step: int, episodes: int, seed: int) -> dict[str, Any]:
    res = evaluate(task, sac_policy_fn(model), n_episodes=episodes, seed=eval_seed(seed))
    return {"env_steps": step, "labels_used": 0, "return_mean": res.return_mean,
            "return_std": float(res.returns.std()), "success_rate": res.success_rate}


def build(cfg: DictConfig, task) -> Any:
    if cfg.settings == "pbrl":
        return build_model(task.name, int(cfg.seed), int(cfg.steps), load_sac_config())
    if cfg.settings == "crossq":
        return build_crossq(task, int(cfg.seed), int(cfg.steps))
    return SAC("MlpPolicy", Monitor(make_env(task, seed=int(cfg.seed))), seed=int(cfg.seed), device="cpu")


def build_crossq(task, seed: int, steps: int) -> Any:
    """sbx CrossQ with configs/algo/crossq.yaml's numbers (what ``algo=crossq`` builds, minus the learned reward)."""
    from pbrl.agents.backends.sbx import sbx_class, use_device

    cfg = load_sac_config(resource_dir("configs") / "algo" / "crossq.yaml")
    use_device("cpu")  # as the PEBBLE runs it is compared with (and their compilation cache)
    env = Monitor(make_env(task, seed=seed))
    return sbx_class("crossq")("MlpPolicy", env, learning_starts=int(cfg["seed_steps"]), buffer_size=min(int(cfg["buffer_size"]), steps),
                  seed=seed, verbose=0, **cfg["crossq"])


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    if cfg.settings not in SETTINGS:
        raise PbrlError(f"settings: {cfg.settings!r}; expected one of {', '.join(SETTINGS)}")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    torch.set_num_threads(int(cfg.threads))
    set_random_seed(int(cfg.seed))
    task = load_task(str(cfg.task))
    model = build(cfg, task)
    silent_logger(model)  # no /tmp/SB3-<time> folder per run
    log = MetricsLog(run_dir / "metrics.csv")
    t0 = time.perf_counter()
    model.learn(int(cfg.steps), callback=PeriodicEval(task, log, every=int(cfg.eval.every),
                                                       episodes=int(cfg.eval.episodes), seed=int(cfg.seed), t0=t0))
    wall = time.perf_counter() - t0
    row = evaluate_row(task, model, int(model.num_timesteps), int(cfg.eval.final_episodes), int(cfg.seed))
    log.append({**row, "wall_s": wall})
    model.save(run_dir / "policy.zip")
    summary = {**row, "task": task.name, "algo": f"sac-true-reward-{cfg.settings}", "seed": int(cfg.seed),
               "wall_s": wall, "run_dir": str(run_dir)}
    atomic_write_json(run_dir / "summary.json", summary)
    return summary


@hydra.main(version_base="1.3", config_path="configs", config_name="baseline_sac")
def main(cfg: DictConfig) -> float:
    run_dir, _ = hydra_job()
    OmegaConf.set_struct(cfg, False)
    cfg.out = str(run_dir)
    summary = run(cfg, run_dir)
    print(f"done: return {summary['return_mean']:.1f}, success {summary['success_rate']}; results in {run_dir}")
    return summary["return_mean"]


if __name__ == "__main__":
    main()

"""The training loop of offline runs (``pbrl train algo=cpl|oppo|bc|iql data=STORE``).

An offline run trains on a fixed preference dataset (:mod:`pbrl.run.datasets`; the learner from
:mod:`pbrl.run.offline_learners`), evaluates in the task's environment every ``eval.every`` gradient steps,
checkpoints atomically every ``checkpoint_every`` gradient steps (a killed run resumes), and writes the same
artefacts as an online run: ``config.yaml``, ``metrics.csv`` (its ``env_steps`` column counts gradient steps),
``summary.json``, ``curves.png``, ``eval.mp4`` and ``policy.pt`` (:func:`~pbrl.agents.offline_policy.save_policy`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from omegaconf import DictConfig

from pbrl.agents.offline_data import OfflineLearner
from pbrl.agents.offline_policy import save_policy
from pbrl.envs.rollout import eval_seed, evaluate
from pbrl.envs.tasks import TaskSpec
from pbrl.report import MetricsLog, plot_curves
from pbrl.run import builder, tblog
from pbrl.run.checkpoint import find_checkpoint, read_components, read_info, save_checkpoint
from pbrl.run.datasets import load_data
from pbrl.run.offline_learners import build_learner, offline_learner
from pbrl.run.rundir import write_run_config, write_summary
from pbrl.run.progress import progress_bar
from pbrl.run.session import random_policy_return


def _save_checkpoint(run_dir: Path, learner: OfflineLearner, rng: np.random.Generator, step: int) -> None:
    components = {"learner": learner.state_dict(), "torch_rng": torch.get_rng_state(), "rng": rng.bit_generator.state}
    save_checkpoint(run_dir, components=components, info={"step": step, "time": time.time()})


def _restore(run_dir: Path, learner: OfflineLearner, rng: np.random.Generator) -> int:
    """Load the last complete checkpoint (if any); returns the gradient step to continue from."""
    ckpt = find_checkpoint(run_dir)
    if ckpt is None:
        return 0
    step = int(read_info(ckpt)["step"])
    saved = read_components(ckpt)
    learner.load_state_dict(saved["learner"])
    torch.set_rng_state(saved["torch_rng"])
    rng.bit_generator.state = saved["rng"]
    return step


def _eval_row(cfg: DictConfig, task: TaskSpec, learner: OfflineLearner, step: int, n_pairs: int, episodes: int,
              t0: float, video: Optional[Path] = None) -> dict[str, Any]:
    res = evaluate(task, learner.policy.act, n_episodes=episodes, seed=eval_seed(int(cfg.seed)),
                   episode_length=cfg.episode_length, video_path=video, video_steps=int(cfg.eval.video_steps))
    return {"env_steps": step, "labels_used": n_pairs, "labels_answered": n_pairs, "return_mean": res.return_mean,
            "return_std": float(res.returns.std()), "success_rate": res.success_rate, "wall_s": time.time() - t0}


def _row_writer(metrics: MetricsLog, tb: Any) -> Callable[[dict[str, Any]], None]:
    """Append a row to metrics.csv and, with ``logger=tensorboard``, record it under ``pbrl/<column>``."""
    sink = tblog.row_sink(tb) if tb is not None else None

    def append(row: dict[str, Any]) -> None:
        metrics.append(row)
        if sink is not None:
            sink(row)
    return append


def _train_steps(cfg: DictConfig, task: TaskSpec, learner: OfflineLearner, span: tuple[int, int], n_pairs: int,
                 run_dir: Path, rng: np.random.Generator, append: Callable[[dict[str, Any]], None], tb: Any
                 ) -> dict[str, float]:
    """Gradient steps ``span`` = [start, total) with their evaluation rows, TensorBoard stats and checkpoints;
    returns the last update's metrics."""
    (start, total), t0 = span, time.time()
    every, ckpt_every, last = int(cfg.eval.every), int(cfg.checkpoint_every), {}
    with progress_bar(total, f"{task.name} [{cfg.algo.name}]", initial=start) as bar:
        for step in range(start, total):
            last = learner.update(step)
            done = step + 1
            bar.update(1)
            if tb is not None and (done % max(1, every // 10) == 0 or done == total):
                tblog.record_stats(tb, "train", last, done)
            if done % every == 0 and done < total:
                row = _eval_row(cfg, task, learner, done, n_pairs, int(cfg.eval.episodes), t0)
                append(row)
                bar.set_postfix(ret=f"{row['return_mean']:.1f}", success=f"{row['success_rate']:.2f}", refresh=False)
            if done % ckpt_every == 0 or done == total:
                _save_checkpoint(run_dir, learner, rng, done)
    return last


def run_offline(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train (or resume) an offline run in ``run_dir``; returns its summary."""
    torch.set_num_threads(int(cfg.threads))
    torch.manual_seed(int(cfg.seed))
    task = builder.build_task(cfg)
    rng = np.random.default_rng([int(cfg.seed), 4])
    collect = isinstance(cfg.get("data"), DictConfig)
    learner: Optional[OfflineLearner] = None
    if not collect:  # a given store is read (and a reward-free learner built) before anything is written
        data, data_path = load_data(cfg, task, run_dir)
        if cfg.algo.name != "iql":
            learner = build_learner(cfg.algo, data, rng)
    write_run_config(cfg, run_dir)
    if collect:  # collecting into the run dir is part of the run
        data, data_path = load_data(cfg, task, run_dir)
    if learner is None:  # so is algo=iql's reward fit (reward_model.pt; its settings were checked by check_train)
        learner = offline_learner(cfg, task, data, data_path, run_dir, rng)
    start, total = _restore(run_dir, learner, rng), int(cfg.algo.steps)
    metrics = MetricsLog(run_dir / "metrics.csv")
    metrics.truncate_after(start)
    tb = tblog.make_logger(str(cfg.get("logger", "none")), run_dir)  # logger=tensorboard: losses and metrics rows
    append = _row_writer(metrics, tb)
    t0 = time.time()
    last = _train_steps(cfg, task, learner, (start, total), len(data.p), run_dir, rng, append, tb)
    video = run_dir / "eval.mp4" if cfg.eval.video else None
    row = _eval_row(cfg, task, learner, total, len(data.p), int(cfg.eval.final_episodes), t0, video)
    append(row)
    if tb is not None:
        tb.close()
    save_policy(learner.policy, run_dir / "policy.pt")
    random_return = random_policy_return(task, -np.ones(data.dims[1]), np.ones(data.dims[1]), seed=int(cfg.seed),
                                         episode_length=cfg.episode_length)
    plot_curves(metrics, run_dir / "curves.png", baseline=random_return,
                title=f"{task.name} · {cfg.algo.name} (offline; x = gradient steps) · seed {cfg.seed}")
    summary = {"task": task.name, "algo": cfg.algo.name, "seed": int(cfg.seed), "data": str(data_path),
               "pairs": int(len(data.p)), "segments": int(len(data.obs)), "grad_steps": total,
               "labels_used": int(len(data.p)), "random_return": random_return,
               "reward_accuracy": last.get("pref_acc"),
               "return_mean": row["return_mean"], "return_std": row["return_std"],
               "success_rate": row["success_rate"], "train": last, "wall_s": time.time() - t0, "run_dir": str(run_dir)}
    write_summary(run_dir, summary)
    return summary

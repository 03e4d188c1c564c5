"""Offline runs (``pbrl train algo=cpl|oppo|bc|iql data=STORE``) and ``pbrl data collect``.

An offline run trains on a fixed preference dataset, evaluates in the task's environment every ``eval.every``
gradient steps, checkpoints atomically every ``checkpoint_every`` gradient steps (a killed run resumes), and
writes the same artefacts as an online run: ``config.yaml``, ``metrics.csv`` (its ``env_steps`` column counts
gradient steps), ``summary.json``, ``curves.png``, ``eval.mp4`` and ``policy.pt`` (see :func:`~pbrl.agents.offline_policy.save_policy`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from omegaconf import DictConfig

from pbrl.agents.offline_data import OfflineData, OfflineLearner
from pbrl.agents.offline_policy import save_policy
from pbrl.run.collect import (CollectSpec, build_dataset, collect_episodes, critic_advantage, load_expert)
from pbrl.data.store import PreferenceStore
from pbrl.envs.rollout import eval_seed, evaluate
from pbrl.envs.tasks import TaskSpec
from pbrl.feedback.teachers import teacher_from_preset
from pbrl.report import MetricsLog, plot_curves
from pbrl.run import builder, tblog
from pbrl.run.checkpoint import find_checkpoint, read_components, read_info, save_checkpoint
from pbrl.run.rundir import write_run_config
from pbrl.run.session import random_policy_return
from pbrl.types import PbrlError
from pbrl.utils import atomic_write_json



# ----------------------------------------------------------------------------------------------- dataset


def collect_spec(node: Any) -> CollectSpec:
    """A :class:`CollectSpec` from the config keys that name its fields (others are ignored)."""
    import dataclasses

    raw = builder.container(node) or {}
    return CollectSpec(**{f.name: raw[f.name] for f in dataclasses.fields(CollectSpec) if f.name in raw})


def collect_to_store(task: TaskSpec, node: Any, feedback: Any, *, seed: int, path: Path) -> dict[str, int]:
    """Roll out, label and store an offline dataset described by config ``node`` (see configs/collect.yaml)."""
    spec = collect_spec(node)
    with PreferenceStore(path) as existing:
        used = existing.num_segments() > 0
    if used:
        raise PbrlError(f"collect out: {path} already holds segments; choose a new out= path")
    if node.get("npz_in"):  # labelled pairs from a file (pbrl.run.datasets): no rollouts, no teacher
        from pbrl.run.datasets import import_to_store

        return {**import_to_store(task, node, seed=seed, path=path), "episode_success": float("nan")}
    if node.get("minari_in"):
        from pbrl.run.minari_io import import_minari

        trajs = import_minari(str(node.minari_in), task)
    else:
        trajs = collect_episodes(task, load_expert(task, node.get("expert")), spec, seed)
    if node.get("minari_out"):
        from pbrl.run.minari_io import export_minari

        export_minari(trajs, str(node.minari_out), task)
    critic = node.get("critic")
    rng = np.random.default_rng([seed, 13])
    overrides = builder.container(feedback.get("overrides")) or {}
    if critic:
        teacher = teacher_from_preset(str(feedback.preset), rng=rng, reward_key="advantage", **overrides)
        score_fn = critic_advantage(str(critic))
    else:
        teacher, _ = builder.LABELLERS["scripted"](feedback, task, rng)
        score_fn = None
    with PreferenceStore(path) as store:
        store.set_meta("task", task.name)
        stats = build_dataset(store, trajs, spec, teacher.label, seed=seed, score_fn=score_fn)
    successes = [bool(t.success.any()) for t in trajs if t.success is not None]
    stats["episode_success"] = float(np.mean(successes)) if successes else float("nan")
    return stats


def collect_job(cfg: DictConfig) -> dict[str, Any]:
    """``pbrl data collect``: one dataset from a resolved configs/collect.yaml."""
    from pbrl.run.config import check_collect

    check_collect(cfg)
    torch.set_num_threads(int(cfg.threads))
    task = builder.build_task(cfg)
    path = Path(str(cfg.out))
    stats = collect_to_store(task, cfg, cfg.feedback, seed=int(cfg.seed), path=path)
    return {**stats, "task": task.name, "out": str(path)}


def load_data(cfg: DictConfig, task: TaskSpec, run_dir: Path) -> tuple[OfflineData, Path]:
    """The run's dataset: ``data=PATH`` (a store) or ``+data.collect=true`` (collected into the run dir)."""
    node = cfg.get("data")
    if node is None:
        raise PbrlError(f"data: algo={cfg.algo.name} learns offline; give data=PATH_TO_STORE or +data.collect=true")
    if isinstance(node, str):
        path = Path(node)
        if not path.is_file():
            raise PbrlError(f"data: {path} not found; expected a preference store (`pbrl data collect`)")
    else:
        path = run_dir / "data.sqlite"
        if not node.get("collect", False):
            raise PbrlError("data: expected a store path, or a mapping with collect: true")
        if path.exists():
            with PreferenceStore(path, create=False) as existing:
                complete = existing.count_labels() > 0
            if not complete:  # a collection killed before its labels were written: start it again
                path.unlink()
        if not path.exists():
            collect_to_store(task, node, cfg.feedback, seed=int(cfg.seed), path=path)
    with PreferenceStore(path, create=False) as store:
        stored_task = store.get_meta("task")
        if stored_task and stored_task != task.name:
            raise PbrlError(f"data: {path} was collected on task {stored_task!r}, but task={task.name}")
        return OfflineData.from_store(store), path


# ----------------------------------------------------------------------------------------------- learners


def build_learner(algo: DictConfig, data: OfflineData, rng: np.random.Generator) -> OfflineLearner:
    """The learner named by ``algo.name`` with its config's settings."""
    common = dict(hidden=list(algo.hidden), lr=float(algo.lr))
    std = algo.get("std", "learned")  # a config written before ``algo.std`` existed meant the learned std
    if algo.name == "cpl":
        from pbrl.agents.cpl import CPLLearner

        return CPLLearner(data, alpha=float(algo.alpha), bias=float(algo.bias), bc_weight=float(algo.bc_weight),
                          bc_data=str(algo.get("bc_data", "all")), bc_steps=int(algo.bc_steps),
                          pairing=str(algo.pairing), dropout=float(algo.dropout),
                          batch_pairs=int(algo.batch_pairs), rng=rng, std=std, **common)
    if algo.name == "oppo":
        from pbrl.agents.oppo import OPPOLearner

        return OPPOLearner(data, z_dim=int(algo.z_dim), d_model=int(algo.d_model), n_layers=int(algo.n_layers),
                           n_heads=int(algo.n_heads), margin=float(algo.margin), pref_weight=float(algo.pref_weight),
                           norm_weight=float(algo.norm_weight), z_lr=float(algo.get("z_lr", 1e-3)),
                           batch_pairs=int(algo.batch_pairs),
                           pairing=str(algo.pairing), rng=rng, **common)
    from pbrl.agents.bc import BCLearner

    return BCLearner(data, preferred_only=bool(algo.preferred_only), dropout=float(algo.dropout),
                     batch_segments=int(algo.batch_segments), rng=rng, std=std, **common)


def _run_learner(cfg: DictConfig, task: TaskSpec, data: OfflineData, data_path: Path, run_dir: Path,
                 rng: np.random.Generator) -> OfflineLearner:
    """The learner of ``cfg.algo``; algo=iql fits its reward on the store first (:mod:`pbrl.run.iql`)."""
    if cfg.algo.name == "iql":
        from pbrl.run.iql import build_iql

        return build_iql(cfg, task, data_path, run_dir, rng)
    return build_learner(cfg.algo, data, rng)


# ----------------------------------------------------------------------------------------------- the run


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
        learner = _run_learner(cfg, task, data, data_path, run_dir, rng)
    start, total = _restore(run_dir, learner, rng), int(cfg.algo.steps)
    metrics = MetricsLog(run_dir / "metrics.csv")
    metrics.truncate_after(start)
    tb = tblog.make_logger(str(cfg.get("logger", "none")), run_dir)  # logger=tensorboard: losses and metrics rows
    append = _row_writer(metrics, tb)
    t0, every, ckpt_every, last = time.time(), int(cfg.eval.every), int(cfg.checkpoint_every), {}
    for step in range(start, total):
        last = learner.update(step)
        done = step + 1
        if tb is not None and (done % max(1, every // 10) == 0 or done == total):
            tblog.record_stats(tb, "train", last, done)
        if done % every == 0 and done < total:
            append(_eval_row(cfg, task, learner, done, len(data.p), int(cfg.eval.episodes), t0))
        if done % ckpt_every == 0 or done == total:
            _save_checkpoint(run_dir, learner, rng, done)
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
    atomic_write_json(run_dir / "summary.json", summary)
    return summary

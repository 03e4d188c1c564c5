"""Offline preference datasets as stores: ``pbrl data collect`` and the dataset of an offline run (``data=``).

A store is collected (expert rollouts labelled by a scripted teacher or an SB3 critic, :mod:`pbrl.run.collect`),
read from a Minari dataset (:mod:`pbrl.run.minari_io`), or imported from a preference file users already have
(``npz_in``; formats and their label conventions are in :mod:`pbrl.data.io`: CPL / B-Pref pairs, CPL's released
scored-segment datasets, imitation's preferences; the file is checked against the task's spaces and the store
records where it came from, meta ``import``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from pbrl.agents.offline_data import OfflineData
from pbrl.data.io import import_npz
from pbrl.data.store import PreferenceStore
from pbrl.envs.make import make_env
from pbrl.envs.tasks import TaskSpec
from pbrl.feedback.teachers import teacher_from_preset
from pbrl.run import builder
from pbrl.run.collect import CollectSpec, build_dataset, collect_episodes, critic_advantage, load_expert
from pbrl.types import PbrlError


def import_to_store(task: TaskSpec, node: Any, *, seed: int, path: Path) -> dict[str, Any]:
    """Import ``node.npz_in`` (``npz_format``, ``label_key``, ``pairing``, ``group_size``) into the new store ``path``."""
    env = make_env(task, seed=seed)
    try:
        dims = (int(env.observation_space.shape[0]), int(env.action_space.shape[0]))
    finally:
        env.close()
    with PreferenceStore(path) as store:
        fmt, pairs = import_npz(str(node.npz_in), store, task=task.name, fmt=str(node.get("npz_format", "auto")),
                                dims=dims, label_key=str(node.get("label_key", "rl_sum")),
                                pairing=str(node.get("pairing", "sparse")), group_size=int(node.get("group_size", 8)),
                                seed=seed)
        store.set_meta("task", task.name)
        store.set_meta("import", json.dumps({"file": str(node.npz_in), "format": fmt}))
        segments = store.num_segments()
    return {"segments": segments, "pairs": pairs, "answered": pairs, "format": fmt}


def collect_spec(node: Any) -> CollectSpec:
    """A :class:`CollectSpec` from the config keys that name its fields (others are ignored)."""
    raw = builder.container(node) or {}
    return CollectSpec(**{f.name: raw[f.name] for f in dataclasses.fields(CollectSpec) if f.name in raw})


def collect_to_store(task: TaskSpec, node: Any, feedback: Any, *, seed: int, path: Path) -> dict[str, int]:
    """Roll out, label and store an offline dataset described by config ``node`` (see configs/collect.yaml)."""
    spec = collect_spec(node)
    with PreferenceStore(path) as existing:
        used = existing.num_segments() > 0
    if used:
        raise PbrlError(f"collect out: {path} already holds segments; choose a new out= path")
    if node.get("npz_in"):  # labelled pairs from a file: no rollouts, no teacher
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

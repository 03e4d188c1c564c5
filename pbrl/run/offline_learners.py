"""The learner of an offline run (``pbrl train algo=cpl|oppo|bc|iql``) from its ``algo`` config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pbrl.agents.offline_data import OfflineData, OfflineLearner
from pbrl.envs.tasks import TaskSpec


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


def offline_learner(cfg: DictConfig, task: TaskSpec, data: OfflineData, data_path: Path, run_dir: Path,
                 rng: np.random.Generator) -> OfflineLearner:
    """The learner of ``cfg.algo``; algo=iql fits its reward on the store first (:mod:`pbrl.run.iql`)."""
    if cfg.algo.name == "iql":
        from pbrl.run.iql import build_iql

        return build_iql(cfg, task, data_path, run_dir, rng)
    return build_learner(cfg.algo, data, rng)

"""``pbrl eval-reward RUN_DIR_OR_STORE [--model reward_model.pt] [--out DIR]``.

- a run dir (``config.yaml``, ``store.sqlite``, ``reward_model.pt``) without ``--model``: a fresh model
  built from the run's config (:func:`pbrl.run.builder.build_reward_model`) is fitted on a random
  ``1 - split`` of the store's labels and evaluated on the held-out rest;
- ``--model``: that checkpoint is evaluated on *all* answered labels (for a run dir with its own
  ``reward_model.pt`` those are its training labels, flagged ``in_sample`` in the JSON);
- a store alone without ``--model``: as a run dir, with ``configs/reward/<--reward>.yaml``.

Writes ``reward_eval.json``, ``reliability.png`` and ``returns_scatter.png`` and prints a short table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

from pbrl.data.store import PreferenceStore
from pbrl.rewards import evaluation as ev
from pbrl.types import PbrlError, RewardModel
from pbrl.utils import atomic_write_json


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pbrl eval-reward", description=__doc__.split("\n\n")[0])
    ap.add_argument("path", help="run directory (config.yaml + store.sqlite) or a store .sqlite file")
    ap.add_argument("--model", help="reward_model.pt to evaluate on all labels (default: fit on a split)")
    ap.add_argument("--out", help="output directory (default: <run dir or store dir>/reward_eval)")
    ap.add_argument("--reward", default="ensemble", help="reward config for a store without a run (default ensemble)")
    ap.add_argument("--split", type=float, default=0.2, help="held-out fraction of the labels (default 0.2)")
    ap.add_argument("--epochs", type=int, help="fit epochs (default: the config's reward.epochs)")
    ap.add_argument("--seed", type=int, default=0, help="split and model seed (default 0)")
    return ap


def _reward_cfg(run_dir: Optional[Path], name: str) -> DictConfig:
    """The run's config, or a minimal one holding ``configs/reward/<name>.yaml``."""
    if run_dir is not None:
        return OmegaConf.load(run_dir / "config.yaml")  # type: ignore[return-value]
    from pbrl.resources import resource_dir

    path = resource_dir("configs") / "reward" / f"{name}.yaml"
    if not path.is_file():
        options = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise PbrlError(f"--reward {name}: unknown reward config; expected one of: {', '.join(options)}")
    return OmegaConf.create({"reward": OmegaConf.load(path), "seed": 0})


def model_from_checkpoint(path: Path, cfg: Optional[DictConfig], obs_dim: int, act_dim: int) -> RewardModel:
    """Rebuild a reward model for ``path`` (from the run config, else from the checkpoint's own config)."""
    import torch

    from pbrl.rewards.ensemble import EnsembleReward
    from pbrl.rewards.gaussian import GaussianReward
    from pbrl.run.builder import build_reward_model

    try:
        state = torch.load(path, weights_only=False, map_location="cpu")
        arch = dict(state["config"])
    except Exception as exc:  # any unreadable file: say which one and what was expected
        raise PbrlError(f"--model {path}: not a pbrl reward-model checkpoint ({type(exc).__name__}: {exc})") from None
    if (arch["obs_dim"], arch["act_dim"]) != (obs_dim, act_dim):
        raise PbrlError(f"--model {path}: built for obs_dim={arch['obs_dim']}, act_dim={arch['act_dim']}; "
                        f"the store's segments have obs_dim={obs_dim}, act_dim={act_dim}")
    if cfg is not None:
        model = build_reward_model(cfg, obs_dim, act_dim, int(cfg.get("seed", 0)))
    elif arch.get("kind") == "gaussian":
        model = GaussianReward(obs_dim, act_dim, hidden=arch["hidden"], kl_weight=arch["kl_weight"],
                               members=arch.get("members", 1))
    else:
        model = EnsembleReward(obs_dim, act_dim, n_members=arch["n_members"], hidden=arch["hidden"])
    model.load_state_dict(state)  # type: ignore[attr-defined]
    return model


def evaluate_path(path: Path, *, model_path: Optional[Path] = None, out: Optional[Path] = None,
                  reward: str = "ensemble", split: float = 0.2, epochs: Optional[int] = None,
                  seed: int = 0) -> dict[str, Any]:
    """Run the whole evaluation, write its artefacts and return the report (without plot arrays)."""
    path = Path(path)
    run_dir = path if path.is_dir() else None
    store_path = path / "store.sqlite" if run_dir else path
    if run_dir is not None and not (run_dir / "config.yaml").is_file():
        raise PbrlError(f"{run_dir}: not a run directory (no config.yaml); give a run dir or a store .sqlite file")
    cfg = _reward_cfg(run_dir, reward)
    with PreferenceStore(store_path, create=False) as store:
        data = ev.load_labelled_pairs(store)
    obs_dim, act_dim = data.batch.obs1.shape[-1], data.batch.act1.shape[-1]
    info: dict[str, Any] = {"path": str(path), "store": str(store_path)}
    if model_path is not None:
        model = model_from_checkpoint(Path(model_path), cfg if run_dir else None, obs_dim, act_dim)
        test = data
        info.update(mode="given_model", model=str(model_path),
                    in_sample=run_dir is not None and Path(model_path).resolve() == (run_dir / "reward_model.pt").resolve())
    else:
        from pbrl.run.builder import build_reward_model

        train, test = ev.split_pairs(data, split, np.random.default_rng(seed))
        model = build_reward_model(cfg, obs_dim, act_dim, seed)
        n_epochs = int(epochs if epochs is not None else cfg.reward.get("epochs", 50))
        t0 = time.perf_counter()
        fit = model.fit(train.batch, epochs=n_epochs)
        info.update(mode="heldout_split", split=split, n_train=train.batch.n_pairs, epochs=n_epochs,
                    fit_s=time.perf_counter() - t0, train_acc=fit.get("train_acc"), in_sample=False,
                    reward_model=str(cfg.reward.model.get("_target_")))
    report = ev.reward_report(model, test)
    out = Path(out) if out else (run_dir or store_path.parent) / "reward_eval"
    out.mkdir(parents=True, exist_ok=True)
    title = f"{path.name} ({info['mode']})"
    ev.plot_reliability(report, out / "reliability.png", title=title)
    ev.plot_scatter(report, out / "returns_scatter.png", title=title)
    report.pop("_plot")
    report.update(info, out=str(out))
    atomic_write_json(out / "reward_eval.json", report)
    return report


def main(args: Sequence[str]) -> None:
    """Entry point registered as ``pbrl eval-reward``."""
    ns = _parser().parse_args(list(args))
    report = evaluate_path(Path(ns.path), model_path=Path(ns.model) if ns.model else None,
                           out=Path(ns.out) if ns.out else None, reward=ns.reward, split=ns.split,
                           epochs=ns.epochs, seed=ns.seed)
    where = "held-out" if report["mode"] == "heldout_split" else ("in-sample" if report["in_sample"] else "all labels")
    print(ev.format_table(report, heading=f"reward evaluation of {ns.path} ({where})"))
    print(f"wrote {Path(report['out']) / 'reward_eval.json'}, reliability.png, returns_scatter.png")

"""``pbrl train algo=iql data=STORE``: learned reward + IQL (P-IQL; PT-IQL with ``reward=transformer``).

Two steps, as the offline-PbRL papers' baseline: (1) fit the ``reward=`` model on every answered label of the
store (``reward.epochs``, ``reward.stop_at_acc``), save it as ``reward_model.pt`` with its fit metrics in
``reward_fit.json`` and torch's random state after the fit in ``reward_rng.pt`` (a resumed run loads them instead of
fitting again, and builds IQL from the same random state as the run that fitted); (2) relabel every stored step with it,
normalise it (``algo.reward_normalize``) and train IQL (:class:`~pbrl.agents.iql.IQLLearner`) on the transitions.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
import numpy as np
import torch
from omegaconf import DictConfig

from pbrl.agents.iql import IQLLearner
from pbrl.agents.transitions import Run, TransitionData, relabel_runs, store_runs
from pbrl.data.store import PreferenceStore
from pbrl.envs.tasks import TaskSpec
from pbrl.rewards.obs_only import ObsOnlyReward
from pbrl.run import builder
from pbrl.run.config import iql_reward_normalize, reward_inputs
from pbrl.run.progress import progress_bar
from pbrl.types import PbrlError, RewardModel
from pbrl.utils import atomic_write_json

REWARD_FILE, RNG_FILE, FIT_FILE = "reward_model.pt", "reward_rng.pt", "reward_fit.json"


def fitted_reward(cfg: DictConfig, store: PreferenceStore, dims: tuple[int, int], run_dir: Path) -> tuple[RewardModel, dict]:
    """The ``reward=`` model fitted on the store's labels (or loaded from a previous attempt of this run, with the
    global torch random state the fit left behind, so what is built next starts as it did after the fit)."""
    model = builder.build_reward_model(cfg, dims[0], dims[1], int(cfg.seed))
    if reward_inputs(cfg) == "obs":
        model = ObsOnlyReward(model)
    saved, fit_file = run_dir / REWARD_FILE, run_dir / FIT_FILE
    if saved.is_file() and fit_file.is_file():  # fit_file is written last: both present = a finished fit
        model.load_state_dict(torch.load(saved, weights_only=False))  # type: ignore[attr-defined]
        if (run_dir / RNG_FILE).is_file():  # absent in run directories from before it was saved
            set_rng_states(torch.load(run_dir / RNG_FILE))
        return model, json.loads(fit_file.read_text())
    stop, epochs = cfg.reward.get("stop_at_acc"), int(cfg.reward.epochs)
    pairs = store.pair_batch()
    with progress_bar(epochs, f"reward fit ({len(pairs.p)} pairs)", "epoch") as bar:
        def shown(metrics: dict[str, float]) -> None:
            bar.set_postfix(acc=f"{metrics['train_acc']:.3f}", loss=f"{metrics['loss']:.3f}", refresh=False)
            bar.update(1)

        fit = model.fit(pairs, epochs=epochs, stop_at_acc=None if stop is None else float(stop), on_epoch=shown)
    for path, value in ((saved, model.state_dict()), (run_dir / RNG_FILE, rng_states())):  # type: ignore[attr-defined]
        tmp = path.with_name(path.name + ".tmp")
        torch.save(value, tmp)
        tmp.replace(path)
    atomic_write_json(fit_file, fit)
    return model, fit


def rng_states() -> dict[str, object]:
    """torch's global generators: the CPU one, and CUDA's where there is CUDA (a fit on the GPU draws its dropout
    there)."""
    return {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_states(states: dict) -> None:
    """Restore :func:`rng_states` (the CUDA part only where this machine has as many devices)."""
    torch.set_rng_state(states["cpu"])
    if states["cuda"] and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def relabelled(cfg: DictConfig, task: TaskSpec, model: RewardModel, runs: list[Run]
               ) -> tuple[TransitionData, dict[str, float]]:
    """Transitions with the model's rewards normalised by ``algo.reward_normalize`` (``auto`` resolved for ``task``),
    and what the relabelling did (for the summary)."""
    raw = relabel_runs(model, runs)
    flat = np.concatenate(raw) if raw else np.zeros(0, np.float32)
    mode = iql_reward_normalize(cfg)
    if mode == "return_range":
        shift, scale = 0.0, 1.0 / return_range_scale(raw)
    else:
        normalizer = builder.build_normalizer(cfg, task, mode=mode)
        normalizer.fit(flat)
        shift, scale = normalizer.shift, normalizer.scale
    data = TransitionData.from_runs(runs, [((r - shift) / scale).astype(np.float32) for r in raw])
    return data, {"reward_raw_mean": float(flat.mean()), "reward_raw_std": float(flat.std()),
                  "reward_shift": float(shift), "reward_scale": float(scale),
                  "transitions": float(len(data.obs)), "runs": float(len(runs))}


def return_range_scale(raw: list[np.ndarray]) -> float:
    """The factor of ``algo.reward_normalize=return_range``: IQL's D4RL scaling (Kostrikov et al. 2022), which the
    Preference Transformer code also applies to its relabelled rewards, ``r * T / (max return - min return)`` over
    the dataset's episodes of length ``T``. A store's runs of consecutive steps can be partial episodes of unequal
    length, so the range is that of each run's mean step reward: the same factor for whole episodes of one length,
    and no bias towards long runs otherwise."""
    means = np.array([float(np.mean(r)) for r in raw if len(r)])
    spread = float(means.max() - means.min()) if len(means) else 0.0
    if not spread > 1e-8:
        raise PbrlError(f"algo.reward_normalize=return_range: the store's {len(means)} run(s) of consecutive steps "
                        "have the same mean learned reward, so there is no return range to scale by; "
                        "expected runs that differ, or another mode (none | standard | scale)")
    return 1.0 / spread


def build_iql(cfg: DictConfig, task: TaskSpec, data_path: Path, run_dir: Path, rng: np.random.Generator) -> IQLLearner:
    """Fit (or load) the reward, relabel the store's steps of ``task``, and build the IQL learner from ``cfg.algo``."""
    algo, t0 = cfg.algo, time.time()
    with PreferenceStore(data_path, create=False) as store:
        runs = store_runs(store)
        dims = (int(runs[0][0].shape[1]), int(runs[0][1].shape[1]))
        model, fit = fitted_reward(cfg, store, dims, run_dir)
    data, info = relabelled(cfg, task, model, runs)
    info.update({"pref_acc": float(fit.get("train_acc", float("nan"))), "reward_loss": float(fit.get("loss", float("nan"))),
                 "reward_epochs": float(fit.get("epochs", float("nan"))), "reward_s": time.time() - t0})
    try:
        return IQLLearner(data, hidden=list(algo.hidden), dropout=float(algo.dropout), std=algo.std, lr=float(algo.lr),
                          gamma=float(algo.gamma), expectile=float(algo.expectile), temperature=float(algo.temperature),
                          tau=float(algo.tau), batch_size=int(algo.batch_size), steps=int(algo.steps),
                          actor_cosine=bool(algo.actor_cosine), rng=rng, reward_info=info)
    except ImportError as exc:  # the optional extra is missing: one line for the CLI, naming it
        raise PbrlError(f"algo=iql: {exc}") from None


"""The one place where a Hydra config becomes typed components (and derived values are filled in)."""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from pbrl.agents.preference import FeedbackSchedule, Labeller
from pbrl.envs.make import make_env
from pbrl.envs.tasks import TaskSpec, task_from_dict
from pbrl.rewards.wrappers import LearnedRewardVecEnv, RewardNormalizer
from pbrl.types import PbrlError, RewardModel


def container(node: Any) -> Any:
    """Plain Python containers from a config node (resolved)."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def build_task(cfg: DictConfig) -> TaskSpec:
    task = task_from_dict(container(cfg.task), source=f"task={cfg.task.get('name', '?')}")
    horizon = cfg.get("episode_length") or task.episode_length
    if cfg.segment_length > horizon:
        raise PbrlError(
            f"segment_length ({cfg.segment_length}) is longer than an episode of {task.name} "
            f"({horizon} steps); expected segment_length <= episode_length"
        )
    return task


def build_schedule(cfg: DictConfig) -> FeedbackSchedule:
    if int(cfg.budget.labels) < 1:
        raise PbrlError("budget.labels: expected >= 1 with a learned reward (got 0); give a label budget")
    return FeedbackSchedule(
        max_labels=int(cfg.budget.labels),
        per_round=int(cfg.budget.per_round),
        every=int(cfg.budget.every),
        segment_length=int(cfg.segment_length),
        strategy=str(cfg.query.strategy),
        oversample=int(cfg.query.oversample),
        reward_epochs=int(cfg.reward.epochs),
        candidate_episodes=int(cfg.query.candidate_episodes),
    )


def _scripted(fb: DictConfig, task: TaskSpec, rng: np.random.Generator) -> tuple[Labeller, str]:
    from pbrl.feedback.teachers import teacher_from_preset

    key = fb.get("reward_key")
    if key is not None and key not in task.reward_terms:
        raise PbrlError(f"feedback.reward_key: {key!r} is not a reward term of {task.name} {task.reward_terms}")
    return teacher_from_preset(str(fb.preset), rng=rng, reward_key=key, **container(fb.overrides)), "scripted"


#: Online feedback sources: ``feedback.name`` -> builder(feedback cfg, task, rng) -> (labeller, store source).
LABELLERS: dict[str, Callable[[DictConfig, TaskSpec, np.random.Generator], tuple[Labeller, str]]] = {
    "scripted": _scripted,
}


def build_labeller(cfg: DictConfig, task: TaskSpec, rng: np.random.Generator) -> tuple[Labeller, str]:
    """The feedback source and the name stored in the label rows' ``source`` column."""
    name = str(cfg.feedback.name)
    if name not in LABELLERS:
        raise PbrlError(f"feedback: {name!r} cannot drive online training; expected one of: {', '.join(LABELLERS)}")
    return LABELLERS[name](cfg.feedback, task, rng)


def build_reward_model(cfg: DictConfig, obs_dim: int, act_dim: int, seed: int) -> RewardModel:
    from hydra.utils import instantiate

    try:
        return instantiate(cfg.reward.model, obs_dim=obs_dim, act_dim=act_dim, seed=seed)
    except Exception as exc:  # Hydra wraps the real error; show its last line
        raise PbrlError(f"reward.model: cannot build {cfg.reward.model.get('_target_')} ({_last_line(exc)})") from None


def build_normalizer(cfg: DictConfig) -> RewardNormalizer:
    mode = str(cfg.reward.normalize)
    if mode not in ("standard", "scale", "none"):
        raise PbrlError(f"reward.normalize: expected standard | scale | none, got {mode!r}")
    return RewardNormalizer(mode=mode)


def make_venv(task: TaskSpec, *, seed: int, n_envs: int = 1,
              episode_length: Optional[int] = None) -> LearnedRewardVecEnv:
    """SB3 VecEnv of the task with the learned-reward wrapper on top."""
    def factory(i: int):
        return lambda: Monitor(make_env(task, seed=seed + i, episode_length=episode_length))

    venv = DummyVecEnv([factory(i) for i in range(n_envs)])
    venv.seed(seed)
    return LearnedRewardVecEnv(venv, task_name=task.name, term_names=task.reward_terms,
                               has_success=task.success_key is not None)


def _last_line(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__

"""The one place where a Hydra config becomes typed components (and derived values are filled in)."""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from pbrl.agents.backends import OFF_POLICY_ALGOS
from pbrl.agents.preference import FeedbackSchedule
from pbrl.devices import check_device, torch_device
from pbrl.envs.make import make_env
from pbrl.envs.randomize import RandomisationSpec, resolve_randomisation
from pbrl.envs.simstate import obs_renderable
from pbrl.envs.tasks import TaskSpec, task_from_dict
from pbrl.feedback.labeller import Labeller
from pbrl.rewards.wrappers import LearnedRewardVecEnv, RewardNormalizer, resolve_normalize
from pbrl.types import PbrlError, RewardModel


def container(node: Any) -> Any:
    """Plain Python containers from a config node (resolved)."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def build_task(cfg: DictConfig) -> TaskSpec:
    from pbrl.run.config import check_segment_length

    task = task_from_dict(container(cfg.task), source="task")
    check_segment_length(cfg, task)
    return task


def build_schedule(cfg: DictConfig) -> FeedbackSchedule:
    if int(cfg.budget.labels) < 1:
        raise PbrlError(f"budget.labels={cfg.budget.labels}: expected >= 1 (an online run learns its reward from "
                        f"labels)")
    return FeedbackSchedule(
        max_labels=int(cfg.budget.labels),
        per_round=int(cfg.budget.per_round),
        every=int(cfg.budget.every),
        segment_length=int(cfg.segment_length),
        strategy=str(cfg.query.strategy),
        oversample=int(cfg.query.oversample),
        reward_epochs=int(cfg.reward.epochs),
        reward_stop_acc=None if cfg.reward.get("stop_at_acc") is None else float(cfg.reward.stop_at_acc),
        candidate_episodes=int(cfg.query.candidate_episodes),
    )


def _scripted(fb: DictConfig, task: TaskSpec, rng: np.random.Generator) -> tuple[Labeller, str]:
    from pbrl.feedback.teachers import teacher_from_preset

    key = fb.get("reward_key")
    if key is not None and key not in task.reward_terms:
        raise PbrlError(f"feedback.reward_key: {key!r} is not a reward term of {task.name} {task.reward_terms}")
    teacher = teacher_from_preset(str(fb.preset), rng=rng, reward_key=key, **container(fb.overrides))
    if fb.get("target_pool") is None and not fb.get("pool_pairs"):
        return teacher, "scripted"
    from pbrl.feedback.pool import PoolPairs, load_target_pool

    pool = load_target_pool(fb.target_pool, max_segments=10**9, rng=rng) if fb.get("target_pool") else []
    return PoolPairs(teacher, pool, int(fb.get("pool_pairs", 0))), "scripted"


def _vlm(fb: DictConfig, task: TaskSpec, rng: np.random.Generator) -> tuple[Labeller, str]:
    from pbrl.feedback.vlm import VLMLabeller

    # Scores come from the episodes' ``vlm`` term, computed by the env wrapper (see build_vlm_reward).
    return VLMLabeller(None, margin=float(fb.get("margin", 0.0))), "vlm"


def vlm_frame_stride(cfg: DictConfig) -> int:
    """``reward.vlm.frame_stride``: render and score every k-th step, interpolate in between (1 = all)."""
    vlm = cfg.reward.get("vlm") if "reward" in cfg else None
    return int(vlm.get("frame_stride", 1)) if vlm is not None else 1


def vlm_weight(cfg: DictConfig) -> float:
    """``reward.vlm.weight``: how much of the VLM-RM term is added to the agent's reward (0 = none)."""
    vlm = cfg.reward.get("vlm") if "reward" in cfg else None
    return float(vlm.get("weight", 0.0)) if vlm is not None else 0.0


def build_vlm_reward(cfg: DictConfig, task: TaskSpec):
    """The CLIP reward (``reward.vlm`` settings, task prompts) when a run needs one, else None.

    Needed for a dense term (``reward.vlm.weight != 0``) or ``feedback=vlm``; the env is then rendered
    every step and each finished episode is scored in one batch (:class:`LearnedRewardVecEnv`).
    """
    if vlm_weight(cfg) == 0.0 and str(cfg.feedback.name) != "vlm":
        return None
    if vlm_weight(cfg) != 0.0 and "algo" in cfg and str(cfg.algo.name) not in OFF_POLICY_ALGOS:
        raise PbrlError(f"reward.vlm.weight: the dense VLM term is written into SAC's replay buffer; "
                        f"algo={cfg.algo.name} supports feedback=vlm only (set reward.vlm.weight=0)")
    from pbrl.rewards.vlm import clip_reward_from_config

    if not task.prompts.get("goal") or not task.prompts.get("baseline"):
        raise PbrlError(f"task {task.name}: the VLM reward needs prompts.goal and prompts.baseline in its YAML")
    vlm = dict(container(cfg.reward.get("vlm")) or {})
    setting = device_setting(cfg) if vlm.get("device") is None else vlm["device"]  # null: the run's device
    vlm["device"] = torch_device(setting, "device" if vlm.get("device") is None else "reward.vlm.device")
    try:
        return clip_reward_from_config(vlm, task.prompts)
    except ImportError as exc:  # the optional extra is missing: one line for the CLI, naming it
        raise PbrlError(f"reward.vlm / feedback=vlm: {exc}") from None


def _human(fb: DictConfig, task: TaskSpec, rng: np.random.Generator) -> tuple[Labeller, str]:
    from pbrl.feedback.human import HumanLabeller
    from pbrl.viewer.hosted import HostedViewer

    size = fb.get("clip_size")
    viewer = HostedViewer(annotator=str(fb.annotator), serve=bool(fb.serve), host=str(fb.host), port=int(fb.port),
                          token=fb.token)
    return HumanLabeller(store_path=fb.store, task=task, rng=rng, viewer=viewer, poll_s=float(fb.poll_s),
                         timeout_s=fb.timeout_s, clip_size=None if size is None else int(size)), "human"


def _heron(fb: DictConfig, task: TaskSpec, rng: np.random.Generator) -> tuple[Labeller, str]:
    from pbrl.feedback.heron import heron_labeller

    return heron_labeller(container(fb.get("ranking")), sigma=float(fb.get("sigma", 0.1)), task_name=task.name,
                          terms=task.reward_terms, has_success=task.success_key is not None,
                          task_extra=task.extra), "heron"


def _transfer(fb: DictConfig, task: TaskSpec, rng: np.random.Generator) -> tuple[Labeller, str]:
    from pbrl.feedback.teachers import teacher_from_preset
    from pbrl.feedback.transfer import transfer_labeller

    opts = {k: v for k, v in container(fb).items() if k != "name"}  # the keys of configs/feedback/transfer.yaml
    k = int(opts.get("target_labels", 0))
    return transfer_labeller(**opts, target_task=task, rng=rng,
                             target_teacher=teacher_from_preset("oracle", rng=rng) if k else None), "transfer"


#: Online feedback sources: ``feedback.name`` -> builder(feedback cfg, task, rng) -> (labeller, store source).
LABELLERS: dict[str, Callable[[DictConfig, TaskSpec, np.random.Generator], tuple[Labeller, str]]] = {
    "scripted": _scripted, "heron": _heron, "transfer": _transfer, "human": _human, "vlm": _vlm,
}


def build_labeller(cfg: DictConfig, task: TaskSpec, rng: np.random.Generator) -> tuple[Labeller, str]:
    """The feedback source and the name stored in the label rows' ``source`` column."""
    name = str(cfg.feedback.name)
    if name not in LABELLERS:
        raise PbrlError(f"feedback: {name!r} cannot drive online training; expected one of: {', '.join(LABELLERS)}")
    return LABELLERS[name](cfg.feedback, task, rng)


def device_setting(cfg: DictConfig) -> str:
    """``device`` (auto | cpu | cuda), checked; each library resolves ``auto`` itself (:mod:`pbrl.devices`)."""
    return check_device(cfg.get("device", "cpu"))


def build_reward_model(cfg: DictConfig, obs_dim: int, act_dim: int, seed: int) -> RewardModel:
    from hydra.utils import instantiate

    extra = {} if "device" in cfg.reward.model else {"device": torch_device(device_setting(cfg))}
    try:
        return instantiate(cfg.reward.model, obs_dim=obs_dim, act_dim=act_dim, seed=seed, **extra)
    except Exception as exc:  # Hydra wraps the real error; show its last line
        raise PbrlError(f"reward.model: cannot build {cfg.reward.model.get('_target_')} ({_last_line(exc)})") from None


def build_normalizer(cfg: DictConfig, task: TaskSpec, mode: Optional[str] = None) -> RewardNormalizer:
    """``mode`` (default ``reward.normalize``; ``auto`` resolved for the task:
    :func:`~pbrl.rewards.wrappers.resolve_normalize`)."""
    mode = str(cfg.reward.normalize) if mode is None else mode
    return RewardNormalizer(mode=resolve_normalize(mode, early_termination=task.early_termination))


def build_randomisation(cfg: DictConfig, task: TaskSpec) -> Optional[RandomisationSpec]:
    """Domain randomisation of the training envs (``randomisation:`` block over the task's ranges), or None."""
    return resolve_randomisation(task, container(cfg.get("randomisation")))


def make_venv(task: TaskSpec, *, seed: int, n_envs: int = 1, episode_length: Optional[int] = None,
              frame_reward: Optional[Callable[[np.ndarray], np.ndarray]] = None,
              vlm_weight: float = 0.0, randomisation: Optional[RandomisationSpec] = None,
              record_states: bool = False, frame_stride: int = 1) -> LearnedRewardVecEnv:
    """SB3 VecEnv of the task with the learned-reward wrapper on top (rendering when a VLM scores frames;
    simulator states recorded with ``record_states``, for showing queried segments to a person)."""
    render = frame_reward is not None

    def factory(i: int):
        return lambda: Monitor(make_env(task, seed=seed + i, episode_length=episode_length, render=render,
                                        randomisation=randomisation, record_states=record_states))

    venv = DummyVecEnv([factory(i) for i in range(n_envs)])
    venv.seed(seed)
    return LearnedRewardVecEnv(venv, task_name=task.name, term_names=task.reward_terms,
                               has_success=task.success_key is not None, frame_reward=frame_reward,
                               vlm_weight=vlm_weight, frame_stride=frame_stride)


def needs_states(cfg: DictConfig, task: TaskSpec) -> bool:
    """A person labels this run's queries and the task's observations cannot be re-rendered (Meta-World)."""
    return str(cfg.feedback.name) == "human" and not obs_renderable(task)


def _last_line(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__

"""A run's config, composed and checked before anything is written.

``pbrl train`` and ``pbrl data collect`` compose their config here (Hydra's compose API, the same config
files and task registry as the Hydra entry point), check it against the schema (:mod:`pbrl.run.schema`) and
check the values and their relations by their real keys (:func:`check_train`, :func:`check_collect`). Only a
config that passes starts a run, so a rejected command leaves no run directory, store or ``.hydra/`` behind.
"""

from __future__ import annotations

import functools
import itertools
import math
from pathlib import Path
from typing import Any, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from pbrl.agents.backends import OFF_POLICY_ALGOS
from pbrl.run.schema import check_tree, fail, is_open, unknown_key
from pbrl.types import PbrlError

#: Config groups a user chooses on the command line (``task=`` options come from tasks/*.yaml).
GROUPS = ("task", "feedback", "reward", "algo", "query")
ONLINE_ALGOS = (*OFF_POLICY_ALGOS, "ppo")  # OFF_POLICY_ALGOS: PEBBLE's replay buffer (seed + unsupervised steps)
OFFLINE_ALGOS = ("cpl", "oppo", "bc", "iql")


def group_options(group: str) -> list[str]:
    """Valid choices of a config group (tasks come from tasks/*.yaml, others from configs/<group>/)."""
    from pbrl.envs.tasks import list_tasks
    from pbrl.resources import resource_dir

    if group == "task":
        return list_tasks()
    return sorted(p.stem for p in (resource_dir("configs") / group).glob("*.yaml"))


def register_tasks() -> None:
    """Expose every valid tasks/*.yaml as an option of the ``task`` config group (once per process and folder)."""
    from pbrl.resources import resource_dir

    _register_tasks(str(resource_dir("tasks")))


@functools.lru_cache(maxsize=None)
def _register_tasks(folder: str) -> None:
    from hydra.core.config_store import ConfigStore

    from pbrl.envs.tasks import list_tasks, read_task_file

    store = ConfigStore.instance()
    for name in list_tasks():
        try:
            store.store(group="task", name=name, node=read_task_file(name))
        except PbrlError:  # a broken task file is reported when it is chosen (and by `pbrl tasks`)
            continue


def _is_group(key: str) -> bool:
    return key in GROUPS or "@" in key or key.startswith("hydra/") or key.split("@")[0] in GROUPS


def split_overrides(overrides: Sequence[str]) -> tuple[list[str], list[str]]:
    """(group choices such as ``algo=ppo``, key overrides such as ``budget.labels=20``)."""
    groups, keys = [], []
    for item in overrides:
        key = item.lstrip("+~").partition("=")[0]
        (groups if _is_group(key) else keys).append(item)
    return groups, keys


def check_group_overrides(overrides: Sequence[str]) -> None:
    """One-line error for ``group=unknown`` (Hydra's own is many lines)."""
    for item in overrides:
        key, sep, value = item.lstrip("+~").partition("=")
        if not sep or key not in GROUPS:
            continue
        options = group_options(key)
        for choice in value.split(","):  # multirun sweeps: task=a,b
            if choice and choice not in options:
                raise PbrlError(f"{key}={choice}: unknown {key}; expected one of: {', '.join(options)}")


def expand_sweep(overrides: Sequence[str]) -> list[list[str]]:
    """The override lists of every job of a ``-m`` sweep (Hydra's basic sweeper: the cartesian product)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = _parse(OverridesParser.create().parse_overrides, list(overrides))
    axes = []
    for item, ov in zip(overrides, parsed):
        if ov.is_sweep_override():
            prefix = "+" if item.startswith("+") else ""
            axes.append([f"{prefix}{ov.key_or_group}={v}" for v in ov.sweep_string_iterator()])
        else:
            axes.append([item])
    return [list(combo) for combo in itertools.product(*axes)]


def _parse(fn, *args):
    from hydra.errors import HydraException

    try:
        return fn(*args)
    except HydraException as exc:
        raise PbrlError(f"config: {str(exc).strip().splitlines()[0]}") from None


def compose(config_name: str, overrides: Sequence[str]) -> DictConfig:
    """The config ``pbrl`` would run with (Hydra compose API; ``hydra`` node removed)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    from pbrl.resources import resource_dir

    check_group_overrides(overrides)
    register_tasks()
    with initialize_config_dir(config_dir=str(resource_dir("configs")), version_base="1.3"):
        try:
            return hydra_compose(config_name=config_name, overrides=[_open_override(o) for o in overrides])
        except HydraException as exc:
            raise _composition_error(exc) from None


def _open_override(item: str) -> str:
    """``algo.sac.ent_coef=auto`` -> ``++algo.sac.ent_coef=auto``: a node whose keys belong to SB3, the reward
    model or the teacher takes new keys without Hydra's ``+`` (they are checked against their owner instead)."""
    key = item.partition("=")[0]
    return item if item.startswith(("+", "~")) or not is_open(key) else "++" + item


def _composition_error(exc: BaseException) -> PbrlError:
    """Hydra's error as one line; an unknown key is named with the keys its parent has."""
    cause = exc.__cause__
    full_key = getattr(cause, "full_key", None)
    if full_key and "not in struct" in str(cause):
        parent = getattr(cause, "parent_node", None)
        known = list(parent.keys()) if parent is not None and hasattr(parent, "keys") else []
        return unknown_key(str(full_key), known)
    return PbrlError(f"config: {str(exc).strip().splitlines()[0]}")


def load_config(config_name: str, overrides: Sequence[str]) -> DictConfig:
    """Compose ``overrides`` and check them against the schema (the defaults of the same group options)."""
    from pbrl.envs.tasks import task_from_dict

    groups, _ = split_overrides(overrides)
    cfg = compose(config_name, overrides)
    default = _defaults(config_name, tuple(groups))
    value = OmegaConf.to_container(cfg, resolve=True)
    special = {"task": lambda v, p: task_from_dict(v, source="task") and None,
               "data": _check_data}
    check_tree(value, default, special=special)
    return cfg


@functools.lru_cache(maxsize=32)
def _defaults(config_name: str, groups: tuple[str, ...]) -> dict[str, Any]:
    """The shipped defaults for the chosen group options: what :func:`load_config` checks against."""
    return OmegaConf.to_container(compose(config_name, groups), resolve=False)


def _check_data(value: Any, path: str) -> None:
    """``data``: null, a store path, or a mapping of configs/collect.yaml keys with ``collect: true``."""
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, dict):
        raise fail(path, value, "a store path or a mapping (+data.collect=true)")
    known = [k for k in _collect_keys()] + ["collect"]
    for key in value:
        if key not in known:
            raise unknown_key(f"{path}.{key}", known)


def _collect_keys() -> list[str]:
    import yaml

    from pbrl.resources import resource_dir

    raw = yaml.safe_load((resource_dir("configs") / "collect.yaml").read_text())
    return [k for k in raw if k not in ("defaults", "hydra", "out", "seed", "threads")]


# ----------------------------------------------------------------------------------------------- values


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None)


def _at_least(cfg: DictConfig, key: str, minimum: int, why: str = "") -> None:
    value = _get(cfg, key)
    if value is not None and value < minimum:
        raise fail(key, value, f">= {minimum}{why}")


def check_common(cfg: DictConfig) -> None:
    """Checks shared by ``pbrl train`` and ``pbrl data collect``: seed, horizon, segment length."""
    from pbrl.envs.tasks import task_from_dict

    _at_least(cfg, "seed", 0, " (numpy seeds are non-negative)")
    _at_least(cfg, "threads", 1)
    _at_least(cfg, "episode_length", 1)
    _at_least(cfg, "segment_length", 1)
    task = task_from_dict(OmegaConf.to_container(cfg.task, resolve=True), source="task")
    check_segment_length(cfg, task)


def check_segment_length(cfg: DictConfig, task: Any) -> None:
    """A segment must fit in an episode (``episode_length``, else the task's horizon)."""
    horizon = _get(cfg, "episode_length") or task.episode_length
    if cfg.segment_length > horizon:
        raise PbrlError(f"segment_length={cfg.segment_length}: longer than an episode of {task.name} "
                        f"({horizon} steps); expected segment_length <= episode_length")


def check_train(cfg: DictConfig) -> list[str]:
    """Values and their relations, each error naming its real key and the value given; returns warnings."""
    check_common(cfg)
    for key in ("eval.every", "eval.episodes", "eval.final_episodes", "eval.video_steps", "eval.reward_pairs",
                "checkpoint_every"):
        _at_least(cfg, key, 1)
    _check_logger(cfg)
    algo = str(cfg.algo.name)
    data = _get(cfg, "data")
    if algo in OFFLINE_ALGOS:
        _at_least(cfg, "algo.steps", 1)
        if data is None:
            raise PbrlError(f"data: algo={algo} learns offline; give data=PATH_TO_STORE or +data.collect=true")
        if not isinstance(data, str) and not data.get("collect", False):
            raise fail("data", OmegaConf.to_container(data), "a store path, or a mapping with collect: true")
        if isinstance(data, str) and not Path(data).is_file():
            raise fail("data", data, "a preference store file (`pbrl data collect` writes one); it does not exist")
        if algo == "iql":  # its reward is fitted inside the run: settings checked before anything is written
            check_iql(cfg)
        return []
    if data is not None:
        raise fail("data", OmegaConf.to_container(data) if not isinstance(data, str) else data,
                   f"null: only the offline algos ({', '.join(OFFLINE_ALGOS)}) read a dataset, algo={algo} collects "
                   f"its own")
    if algo not in ONLINE_ALGOS:
        raise PbrlError(f"algo.name={algo}: expected one of {', '.join(ONLINE_ALGOS + OFFLINE_ALGOS)}")
    _at_least(cfg, "budget.labels", 1, " (an online run learns its reward from labels)")
    for key in ("budget.per_round", "budget.every", "reward.epochs"):
        _at_least(cfg, key, 1)
    for key in ("algo.seed_steps", "algo.unsup_steps", "algo.update_after_reset"):
        _at_least(cfg, key, 0)
    _check_choices(cfg)
    first = feedback_start(cfg)
    if cfg.budget.env_steps <= first:
        raise fail("budget.env_steps", cfg.budget.env_steps,
                   f"more than {_start_keys(cfg)} = {first}, so that preference learning has steps left; "
                   f"the smallest run is budget.env_steps={first + 1}")
    warning = label_budget_warning(cfg)
    return [warning] if warning else []



def check_iql(cfg: DictConfig) -> None:
    """``algo=iql``'s settings and its reward's, each error naming the key (before a run starts)."""
    from pbrl.agents.iql import check_settings
    from pbrl.rewards.wrappers import resolve_normalize

    algo = cfg.algo
    check_settings(gamma=float(algo.gamma), expectile=float(algo.expectile), temperature=float(algo.temperature),
                   tau=float(algo.tau), batch_size=int(algo.batch_size))
    reward_inputs(cfg)
    if int(cfg.reward.epochs) < 1:
        raise PbrlError(f"reward.epochs: expected >= 1 (algo=iql fits its reward first), got {cfg.reward.epochs}")
    resolve_normalize(str(cfg.reward.normalize), early_termination=False)  # the mode's name; `auto` is per task
    iql_reward_normalize(cfg)


def iql_reward_normalize(cfg: DictConfig) -> str:
    """What IQL sees of the learned reward: ``algo.reward_normalize`` (``none`` by default: the CPL code's P-IQL
    uses the reward model's output as is; ``return_range``: IQL's and the Preference Transformer code's scaling,
    :func:`pbrl.run.iql.return_range_scale`); a run configured before that key existed used ``reward.normalize``."""
    from pbrl.rewards.wrappers import NORMALIZE_MODES

    modes = (*NORMALIZE_MODES, "return_range")
    mode = str(cfg.algo.get("reward_normalize", cfg.reward.normalize))
    if mode not in modes:
        raise PbrlError(f"algo.reward_normalize: expected {' | '.join(modes)}, got {mode!r}")
    return mode


def reward_inputs(cfg: DictConfig) -> str:
    """``algo.reward_inputs``: ``obs_act`` (r(s, a), the papers') or ``obs`` (r(s), :class:`~pbrl.rewards.obs_only.ObsOnlyReward`)."""
    inputs = str(cfg.algo.get("reward_inputs", "obs_act"))
    if inputs not in ("obs_act", "obs"):
        raise PbrlError(f"algo.reward_inputs: expected obs_act (r(s, a)) or obs (r(s)), got {inputs!r}")
    return inputs

def _check_logger(cfg: DictConfig) -> None:
    from pbrl.run.tblog import check_logger

    try:
        check_logger(str(_get(cfg, "logger") or "none"))
    except ImportError as exc:  # the optional extra is missing: one line, naming it
        raise PbrlError(f"logger={cfg.logger}: {exc}") from None


def _check_choices(cfg: DictConfig) -> None:
    from pbrl.feedback.teachers import PRESETS
    from pbrl.rewards.wrappers import NORMALIZE_MODES

    choices = {"reward.normalize": NORMALIZE_MODES,
               "query.strategy": ("uniform", "disagreement", "entropy")}
    for key, allowed in choices.items():
        value = _get(cfg, key)
        if value is not None and value not in allowed:
            raise fail(key, value, " | ".join(allowed))
    preset = _get(cfg, "feedback.preset")
    if cfg.feedback.name == "scripted" and preset not in (*PRESETS, "rational"):
        raise fail("feedback.preset", preset, f"one of {', '.join([*PRESETS, 'rational'])}")


def _start_keys(cfg: DictConfig) -> str:
    if cfg.algo.name in OFF_POLICY_ALGOS:
        return f"algo.seed_steps + algo.unsup_steps = {cfg.algo.seed_steps} + {cfg.algo.unsup_steps}"
    return "algo.seed_steps"


def feedback_start(cfg: DictConfig) -> int:
    """The env step of the first feedback round (PEBBLE: after the seed and unsupervised steps)."""
    if cfg.algo.name in OFF_POLICY_ALGOS:
        return int(cfg.algo.seed_steps) + int(cfg.algo.unsup_steps)
    return int(cfg.algo.seed_steps)


def feedback_steps(cfg: DictConfig) -> list[int]:
    """Env steps at which the schedule holds feedback rounds (while labels remain).

    SAC: every ``budget.every`` steps from :func:`feedback_start`. PPO: at rollout boundaries, the first
    right after its warm-up (``num_timesteps`` 0), then the first boundary ``budget.every`` steps later.
    """
    total, every = int(cfg.budget.env_steps), int(cfg.budget.every)
    if cfg.algo.name in OFF_POLICY_ALGOS:
        return list(range(feedback_start(cfg), total, every))
    rollout = int(cfg.algo.ppo.n_steps) * int(cfg.algo.get("n_envs", 1))
    steps, due = [], 0
    for step in range(0, total, rollout):
        if step >= due:
            steps.append(step)
            due = step + every
    return steps


def label_budget_warning(cfg: DictConfig) -> Optional[str]:
    """A warning when the schedule cannot ask ``budget.labels`` queries before ``budget.env_steps``."""
    labels, per_round = int(cfg.budget.labels), int(cfg.budget.per_round)
    rounds = feedback_steps(cfg)
    if len(rounds) * per_round >= labels:
        return None
    needed = math.ceil(labels / per_round)
    if cfg.algo.name in OFF_POLICY_ALGOS:
        min_steps = feedback_start(cfg) + (needed - 1) * int(cfg.budget.every) + 1
        hint = f"budget.env_steps >= {min_steps}"
    else:
        hint = "a larger budget.env_steps"
    return (f"budget.labels={labels} cannot be spent: the schedule holds {len(rounds)} feedback round(s) "
            f"(every budget.every={cfg.budget.every} steps from step {rounds[0] if rounds else '-'} until "
            f"budget.env_steps={cfg.budget.env_steps}) of budget.per_round={per_round} queries, "
            f"{len(rounds) * per_round} labels; give {hint} or a larger budget.per_round")


def check_collect(cfg: DictConfig) -> None:
    """``pbrl data collect``: counts, fractions and the output file."""
    check_common(cfg)
    for key in ("episodes", "stride", "group_size"):
        _at_least(cfg, key, 1)
    _at_least(cfg, "n_segments", 2)
    for key in ("random_frac", "suboptimal_frac"):
        value = _get(cfg, key)
        if not 0.0 <= value <= 1.0:
            raise fail(key, value, "a fraction in [0, 1]")
    if cfg.random_frac + cfg.suboptimal_frac > 1.0:
        raise PbrlError(f"random_frac + suboptimal_frac = {cfg.random_frac} + {cfg.suboptimal_frac}: "
                        f"expected <= 1 (the rest are expert episodes)")
    for key in ("noise_std", "suboptimal_noise", "suboptimal_bias"):
        _at_least(cfg, key, 0)
    if cfg.pairing not in ("sparse", "dense"):
        raise fail("pairing", cfg.pairing, "sparse | dense")
    npz = _get(cfg, "npz_in")
    if npz is not None and not Path(str(npz)).is_file():
        raise fail("npz_in", str(npz), "a preference file (.npz); it does not exist")
    if _get(cfg, "npz_format") not in (None, "auto", "cpl", "cpl_scored", "imitation"):
        raise fail("npz_format", cfg.npz_format, "auto | cpl | cpl_scored | imitation")
    out = Path(str(cfg.out))
    if out.is_dir():
        raise fail("out", str(out), "a store file path, not a directory")

"""The config tree's schema: the shipped YAML files, plus the types their null defaults stand for.

Every key a run accepts is a key of the default config composed for the chosen group options
(``configs/train.yaml``, ``configs/<group>/<option>.yaml``); a value must have its default's type. So adding
an option is one line in its YAML file (with its comment, which ``pbrl train --help`` shows). Two kinds of
key need more than their default says, and are declared here in one place:

* :data:`NULLABLE`: keys whose default is ``null`` (the type a value must have when one is given);
* :data:`OPEN`: nodes whose keys belong to someone else (SB3's ``SAC``/``PPO`` keyword arguments, the reward
  model's constructor, the B-Pref teacher's fields, the task YAML, the offline ``data`` block): keys beyond
  the default ones are checked against that owner's signature.

A test walks every config file and fails on a null default without a declared type.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from typing import Any, Callable, Mapping, Optional, Sequence

from pbrl.types import PbrlError

#: A check of one value at a dotted path; raises :class:`PbrlError` naming the path.
Check = Callable[[Any, str], None]


def show(value: Any) -> str:
    """A value as the user typed it (``abc``, ``1.5``, ``[1, 2]``)."""
    return repr(value) if isinstance(value, str) and (not value or " " in value) else str(value)


def fail(path: str, value: Any, expected: str) -> PbrlError:
    return PbrlError(f"{path}={show(value)}: expected {expected}")


def integer(value: Any, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(path, value, "an integer")


def number(value: Any, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(path, value, "a number")


def boolean(value: Any, path: str) -> None:
    if not isinstance(value, bool):
        raise fail(path, value, "true or false")


def string(value: Any, path: str) -> None:
    """Any scalar reads as a string (``out=123`` is a directory name)."""
    if isinstance(value, (Mapping, list, tuple)) or value is None:
        raise fail(path, value, "a string")


def anything(value: Any, path: str) -> None:
    return None


def list_of(item: Check, length: Optional[int] = None) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, (list, tuple)) or (length is not None and len(value) != length):
            raise fail(path, value, f"a list of {length} values" if length else "a list, e.g. [a,b]")
        for i, v in enumerate(value):
            item(v, f"{path}[{i}]")
    return check


def either(*checks: Check, expected: str) -> Check:
    def check(value: Any, path: str) -> None:
        for c in checks:
            try:
                c(value, path)
                return
            except PbrlError:
                continue
        raise fail(path, value, expected)
    return check


def _type_of_default(default: Any) -> Check:
    """What a value must be, read from the shipped default's type."""
    if isinstance(default, bool):
        return boolean
    if isinstance(default, int):
        return integer
    if isinstance(default, float):
        return number
    if isinstance(default, str):
        return string
    if isinstance(default, (list, tuple)):
        return list_of(_type_of_default(default[0])) if default else list_of(anything)
    return anything


_PAIR = list_of(number, 2)
#: Keys whose default is null: the type of a value when one is given (``null`` is always accepted).
NULLABLE: dict[str, Check] = {
    # train.yaml
    "episode_length": integer,
    "randomisation.mass": _PAIR, "randomisation.friction": _PAIR, "randomisation.damping": _PAIR,
    "randomisation.actuator_gain": _PAIR, "randomisation.action_delay": list_of(integer, 2),
    "randomisation.obs_noise": number,
    # reward/*.yaml, vlm/clip.yaml
    "reward.stop_at_acc": number,
    "reward.model.attn_dim": integer, "reward.model.context": integer,  # reward/transformer.yaml
    "reward.vlm.checkpoint": string, "reward.vlm.cache_dir": string, "reward.vlm.device": string,
    # feedback/*.yaml
    "feedback.reward_key": string, "feedback.target_pool": string, "feedback.source_store": string,
    "feedback.source_sources": list_of(string), "feedback.ranking": list_of(anything),
    "feedback.token": string, "feedback.timeout_s": number, "feedback.clip_size": integer,
    # collect.yaml
    "expert": string, "minari_in": string, "minari_out": string, "critic": string, "n_segments": integer,
    "npz_in": string,
}


def _signature_keys(target: Callable, exclude: Sequence[str]) -> Optional[set[str]]:
    """Keyword names ``target`` accepts (None when it takes ``**kwargs``: anything goes)."""
    params = inspect.signature(target).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and not p.name.startswith("_")} - set(exclude)


def _sb3_keys(algo: str) -> Callable[[], Optional[set[str]]]:
    def keys() -> Optional[set[str]]:
        import stable_baselines3

        # set by pbrl itself (agents/pebble.py build_sac, agents/pref_ppo.py build_ppo)
        fixed = ("policy", "env", "replay_buffer_class", "learning_starts", "buffer_size", "seed", "device", "verbose")
        return _signature_keys(getattr(stable_baselines3, algo), fixed)
    return keys


def _target_keys(node: Mapping[str, Any]) -> Optional[set[str]]:
    from hydra.utils import get_class

    try:
        cls = get_class(str(node.get("_target_")))
    except Exception:  # noqa: BLE001  (reported with the key below)
        raise PbrlError(f"reward.model._target_={node.get('_target_')}: expected an importable class") from None
    keys = _signature_keys(cls.__init__, ("self", "obs_dim", "act_dim", "in_dim", "seed"))
    return None if keys is None else keys | {"_target_"}


def _teacher_keys() -> set[str]:
    from pbrl.feedback.teachers import TeacherSpec

    return {f.name for f in dataclasses.fields(TeacherSpec)}


@dataclasses.dataclass(frozen=True)
class Open:
    """A node whose extra keys (beyond the shipped defaults) are checked against ``keys()``.

    Attributes:
        owner: who takes the keys, for the error message.
        keys: the accepted names (None = any), from the owner's signature.
        free_below: the values under the node are not checked further (they go to the owner as they are).
    """

    owner: str
    keys: Callable[[], Optional[set[str]]]
    free_below: bool = False


#: Nodes whose keys belong to a library or a component (path -> where their names come from).
OPEN: dict[str, Open] = {
    "algo.sac": Open("stable_baselines3.SAC", _sb3_keys("SAC")),
    "algo.ppo": Open("stable_baselines3.PPO", _sb3_keys("PPO")),
    "algo.sac.policy_kwargs": Open("the SB3 policy", lambda: None, free_below=True),
    "algo.ppo.policy_kwargs": Open("the SB3 policy", lambda: None, free_below=True),
    "feedback.overrides": Open("the B-Pref teacher (TeacherSpec)", _teacher_keys),
}


#: Nodes that take keys beyond their defaults (checked against their owner by :func:`check_tree`).
OPEN_PATHS: tuple[str, ...] = (*OPEN, "reward.model")


def is_open(key: str) -> bool:
    """``key`` is one of :data:`OPEN_PATHS` or lies below one (``algo.sac.ent_coef``)."""
    return any(key == p or key.startswith(p + ".") for p in OPEN_PATHS)


def unknown_key(path: str, known: Sequence[str]) -> PbrlError:
    """``budget.envsteps: unknown key (did you mean budget.env_steps?); budget has: ...``."""
    parent, _, leaf = path.rpartition(".")
    prefix = f"{parent}." if parent else ""
    close = difflib.get_close_matches(leaf, list(known), n=1)
    hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
    where = parent or "the config"
    return PbrlError(f"{path}: unknown key{hint}; {where} has: {', '.join(sorted(known))}")


def check_tree(value: Any, default: Any, path: str = "", *, special: Optional[Mapping[str, Check]] = None) -> None:
    """Check ``value`` (plain containers) against the shipped ``default`` tree; raise on the first problem.

    Args:
        value: the composed config (or one of its nodes).
        default: the config composed from the same group options without key overrides.
        path: dotted path of this node ("" at the root).
        special: checks that replace the walk at given paths (e.g. ``task``, ``data``).
    """
    special = special or {}
    if path in special:
        special[path](value, path)
        return
    if isinstance(default, Mapping):
        _check_mapping(value, default, path, special)
    elif default is None:
        if value is not None:
            NULLABLE.get(path, anything)(value, path)
    elif value is None:
        raise fail(path, value, f"a value like the default {show(default)} (null is not allowed here)")
    else:
        _type_of_default(default)(value, path)


def _check_mapping(value: Any, default: Mapping[str, Any], path: str, special: Mapping[str, Check]) -> None:
    if not isinstance(value, Mapping):
        raise fail(path, value, f"a mapping with keys {', '.join(sorted(default))}")
    rule = OPEN.get(path)
    if rule is not None and rule.free_below:
        return
    extra = [k for k in value if k not in default]
    if path == "reward.model" and extra:
        allowed = _target_keys(value)
        owner = f"{value.get('_target_')}"
    elif rule is not None and extra:
        allowed, owner = rule.keys(), rule.owner
    else:
        allowed, owner = set(), ""
    for key in extra:
        if allowed is not None and key not in allowed:
            child = f"{path}.{key}" if path else str(key)
            err = unknown_key(child, sorted({*default, *(allowed or ())}))
            raise PbrlError(f"{err} (from {owner})" if owner else str(err))
    for key, sub in default.items():
        child = f"{path}.{key}" if path else str(key)
        if key not in value:
            raise PbrlError(f"{child}: missing; the config needs it (default {show(sub)})")
        check_tree(value[key], sub, child, special=special)

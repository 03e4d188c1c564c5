"""Tasks as data: one YAML per task under ``tasks/`` (env id, horizon, named reward terms, camera, ...).

A task file is checked against :data:`TASK_SCHEMA` when it is read: a misspelled key, a wrong type or a
missing required key is refused with the file and the key named. Blocks read by a later stage (the HERON
ranking, randomisation ranges, ...) are declared in :data:`EXTRA_BLOCKS` and kept in ``TaskSpec.extra``;
a new per-task block is one line there.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import yaml

from pbrl.resources import resource_dir
from pbrl.types import PbrlError

SUITES = ("mujoco", "metaworld")


@dataclasses.dataclass(frozen=True)
class CameraSpec:
    """Camera used for clips and evaluation videos (None = the env's default camera).

    ``name`` is a camera of the model's XML: gymnasium's locomotion models have ``track``, which follows the
    robot's centre of mass (the default camera of HalfCheetah does not, and the robot runs out of view).
    ``flip`` turns frames upside down: Meta-World's cameras render with OpenGL's bottom-left origin.
    ``label_size`` is the longer side (px) of clips re-rendered for a person to label (None: the viewer's
    default); ``width``/``height`` stay what training and evaluation videos use.
    """

    name: Optional[str] = None
    width: int = 128
    height: int = 128
    flip: bool = False
    label_size: Optional[int] = None

    def __post_init__(self) -> None:
        for key in ("width", "height"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PbrlError(f"camera.{key}: expected an integer >= 1 (pixels), got {value!r}")
        size = self.label_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise PbrlError(f"camera.label_size: expected an integer >= 1 (pixels) or null, got {size!r}")
        if not isinstance(self.flip, bool) or not (self.name is None or isinstance(self.name, str)):
            raise PbrlError(f"camera: expected name: string or null and flip: true/false, got {self.name!r}, "
                            f"{self.flip!r}")


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """Everything pbrl needs to know about one task.

    Attributes:
        name: short name used on the command line (``task=drawer-open``).
        suite: ``"mujoco"`` (gymnasium v5) or ``"metaworld"`` (Meta-World v3 MT1).
        env_id: gymnasium id.
        env_kwargs: extra keyword arguments for ``gym.make``.
        episode_length: steps per episode (TimeLimit).
        early_termination: an episode can end before ``episode_length`` (Hopper/Walker2d fall over); then a
            constant shift of the reward changes what is optimal (the incentive to stay alive), which the
            default reward normalisation respects (``reward.normalize: auto``).
        description: what a person should look for; shown in the viewer.
        reward_terms: names of the reward terms read from ``info`` each step.
        success_key: ``info`` key of the success flag, or None.
        camera: camera for rendering.
        expert: Meta-World scripted policy class name (``metaworld.policies``), or None.
        prompts: VLM prompts (``goal``, ``baseline``).
        obs_slices: named observation slices ``{name: (start, stop)}`` (e.g. ``hand``, ``object``, ``goal``):
            what some observation indices mean in *this* task (:func:`parse_obs_slices`). Only PEARL transfer
            reads them, and only names that both of its tasks declare.
        extra: the optional blocks of :data:`EXTRA_BLOCKS` present in the file (HERON ranking, ...).
    """

    name: str
    suite: str
    env_id: str
    env_kwargs: dict[str, Any]
    episode_length: int
    description: str
    reward_terms: tuple[str, ...]
    success_key: Optional[str]
    camera: CameraSpec
    expert: Optional[str] = None
    early_termination: bool = False
    prompts: dict[str, str] = dataclasses.field(default_factory=dict)
    obs_slices: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.suite not in SUITES:
            raise PbrlError(f"task {self.name}: suite must be one of {SUITES}, got {self.suite!r}")
        if int(self.episode_length) < 1:
            raise PbrlError(f"task {self.name}: episode_length must be >= 1, got {self.episode_length}")
        parse_obs_slices(self.obs_slices, source=f"task {self.name}")


def parse_obs_slices(raw: Any, *, source: str) -> dict[str, tuple[int, int]]:
    """Validate the optional ``obs_slices:`` field: ``{name: [start, stop)}`` with ``0 <= start < stop``.

    Names are lower-case identifiers; a slice is half-open like Python's, in observation coordinates.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise PbrlError(f"{source}: obs_slices must be a mapping name -> [start, stop], got {type(raw).__name__}")
    out = {}
    for name, value in raw.items():
        ok_value = (isinstance(value, (list, tuple)) and len(value) == 2
                    and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
        if not (isinstance(name, str) and name.isidentifier() and name.islower()) or not ok_value \
                or not 0 <= value[0] < value[1]:
            raise PbrlError(f"{source}: obs_slices.{name}: expected [start, stop] with 0 <= start < stop "
                            f"(integers), got {value!r}")
        out[name] = (int(value[0]), int(value[1]))
    return out


# ----------------------------------------------------------------------------------------------- schema

Check = Callable[[Any], Optional[str]]  # None when fine, else what was expected


def _is(kind: type, expected: str, *, optional: bool = False) -> Check:
    def check(value: Any) -> Optional[str]:
        if value is None and optional:
            return None
        if isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool):
            return None
        return expected + (" or null" if optional else "")
    return check


def _str_list(value: Any) -> Optional[str]:
    ok = isinstance(value, list) and value and all(isinstance(v, str) for v in value)
    return None if ok else "a non-empty list of reward-term names"


#: Keys of a task file with what each value must be (required keys in :data:`REQUIRED`).
TASK_SCHEMA: dict[str, Check] = {
    "name": _is(str, "a string"),
    "suite": lambda v: None if v in SUITES else f"one of {', '.join(SUITES)}",
    "env_id": _is(str, "a gymnasium id"),
    "env_kwargs": _is(dict, "a mapping of gym.make keyword arguments", optional=True),
    "episode_length": lambda v: (None if isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                 else "an integer >= 1"),
    "description": _is(str, "a string", optional=True),
    "reward_terms": _str_list,
    "success_key": _is(str, "an info key", optional=True),
    "camera": _is(dict, "a mapping (name, width, height, flip)", optional=True),
    "expert": _is(str, "a metaworld.policies class name", optional=True),
    "early_termination": _is(bool, "true or false (episodes can end before episode_length)"),
    "prompts": _is(dict, "a mapping (goal, baseline)", optional=True),
    # PEARL transfer's declared features; the values are checked by parse_obs_slices
    "obs_slices": _is(dict, "a mapping name -> [start, stop] (named observation slices)", optional=True),
}
REQUIRED = ("name", "suite", "env_id", "episode_length", "reward_terms")
#: Optional per-task blocks read by later stages, kept in ``TaskSpec.extra``: key -> check.
EXTRA_BLOCKS: dict[str, Check] = {
    "heron": _is(list, "a list of ranking entries (feedback=heron)", optional=True),
    "randomisation": _is(dict, "a mapping of randomisation ranges", optional=True),
}
#: Keys of the nested mappings.
SUB_KEYS: dict[str, tuple[str, ...]] = {
    "camera": tuple(f.name for f in dataclasses.fields(CameraSpec)),
    "prompts": ("goal", "baseline"),
}


def _where(source: str, key: str) -> str:
    """``task file tasks/x.yaml: key 'k'`` for files, ``task.k`` for a config node."""
    return f"task file {source}: key {key!r}" if source.endswith((".yaml", ".yml")) else f"{source}.{key}"


def _unknown(source: str, key: str, known: list[str]) -> PbrlError:
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return PbrlError(f"{_where(source, key)}: unknown key{hint}; a task has: {', '.join(sorted(known))}")


def check_task_dict(raw: Any, source: str) -> None:
    """Refuse unknown, missing and mistyped keys of a task mapping, naming ``source`` and the key."""
    if not isinstance(raw, Mapping):
        raise PbrlError(f"task file {source}: expected a mapping of task keys, got {type(raw).__name__}")
    for key in REQUIRED:
        if key not in raw:
            raise PbrlError(f"{_where(source, key)}: missing (required)")
    known = [*TASK_SCHEMA, *EXTRA_BLOCKS]
    for key, value in raw.items():
        check = TASK_SCHEMA.get(key) or EXTRA_BLOCKS.get(key)
        if check is None:
            raise _unknown(source, key, known)
        expected = check(value)
        if expected is not None:
            raise PbrlError(f"{_where(source, key)}: expected {expected}, got {value!r}")
        for sub in value if key in SUB_KEYS and isinstance(value, Mapping) else ():
            if sub not in SUB_KEYS[key]:
                close = difflib.get_close_matches(str(sub), SUB_KEYS[key], n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise PbrlError(f"{_where(source, f'{key}.{sub}')}: unknown key{hint}; expected: "
                                f"{', '.join(SUB_KEYS[key])}")


# ----------------------------------------------------------------------------------------------- loading


def list_tasks() -> list[str]:
    """Names of all shipped task files, sorted (a broken file is listed too; reading it says why)."""
    return sorted(p.stem for p in resource_dir("tasks").glob("*.yaml"))


def task_path(name: str) -> Path:
    path = Path(name) if name.endswith((".yaml", ".yml")) else resource_dir("tasks") / f"{name}.yaml"
    if not path.is_file():
        raise PbrlError(f"task: unknown task {name!r}; expected one of {', '.join(list_tasks())}")
    return path


def read_task_file(name: str) -> dict[str, Any]:
    """The checked mapping of ``tasks/<name>.yaml`` (or a path to a YAML file)."""
    path = task_path(name)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise PbrlError(f"task file {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    check_task_dict(raw, str(path))
    if path.parent == resource_dir("tasks") and raw["name"] != path.stem:
        raise PbrlError(f"task file {path}: key 'name': expected {path.stem!r} (the file name), got {raw['name']!r}")
    return raw


def load_task(name: str, overrides: Optional[dict[str, Any]] = None) -> TaskSpec:
    """Load ``tasks/<name>.yaml`` (or a path to a YAML file) and apply ``overrides``."""
    raw = read_task_file(name)
    raw.update(overrides or {})
    return task_from_dict(raw, source=str(task_path(name)))


def task_from_dict(raw: dict[str, Any], *, source: str = "<dict>") -> TaskSpec:
    """Build a :class:`TaskSpec` from a plain mapping, checked against the schema (errors name the key)."""
    check_task_dict(raw, source)
    known = {k: v for k, v in raw.items() if k in TASK_SCHEMA}
    known["camera"] = CameraSpec(**(raw.get("camera") or {}))
    known["reward_terms"] = tuple(raw["reward_terms"])
    known["env_kwargs"] = dict(raw.get("env_kwargs") or {})
    known["prompts"] = dict(raw.get("prompts") or {})
    known["obs_slices"] = parse_obs_slices(raw.get("obs_slices"), source=f"task file {source}")
    known.setdefault("description", "")
    known["description"] = known["description"] or ""
    known.setdefault("success_key", None)
    return TaskSpec(**known, extra={k: raw[k] for k in EXTRA_BLOCKS if raw.get(k) is not None})

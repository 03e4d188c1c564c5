"""Tasks as data: one YAML per task under ``tasks/`` (env id, horizon, named reward terms, camera, ...)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

import yaml

from pbrl.resources import resource_dir
from pbrl.types import PbrlError

SUITES = ("mujoco", "metaworld")


@dataclasses.dataclass(frozen=True)
class CameraSpec:
    """Camera used for clips and evaluation videos (None = the env's default camera).

    ``flip`` turns frames upside down: Meta-World's cameras render with OpenGL's bottom-left origin.
    ``label_size`` is the longer side (px) of clips re-rendered for a person to label (None: the viewer's
    default); ``width``/``height`` stay what training and evaluation videos use.
    """

    name: Optional[str] = None
    width: int = 128
    height: int = 128
    flip: bool = False
    label_size: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """Everything pbrl needs to know about one task.

    Attributes:
        name: short name used on the command line (``task=drawer-open``).
        suite: ``"mujoco"`` (gymnasium v5) or ``"metaworld"`` (Meta-World v3 MT1).
        env_id: gymnasium id.
        env_kwargs: extra keyword arguments for ``gym.make``.
        episode_length: steps per episode (TimeLimit).
        description: what a person should look for; shown in the viewer.
        reward_terms: names of the reward terms read from ``info`` each step.
        success_key: ``info`` key of the success flag, or None.
        camera: camera for rendering.
        expert: Meta-World scripted policy class name (``metaworld.policies``), or None.
        prompts: VLM prompts (``goal``, ``baseline``).
        extra: any other YAML keys (HERON ranking, randomisation ranges), kept for later stages.
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
    prompts: dict[str, str] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.suite not in SUITES:
            raise PbrlError(f"task {self.name}: suite must be one of {SUITES}, got {self.suite!r}")
        if int(self.episode_length) < 1:
            raise PbrlError(f"task {self.name}: episode_length must be >= 1, got {self.episode_length}")


_FIELDS = {f.name for f in dataclasses.fields(TaskSpec)}


def list_tasks() -> list[str]:
    """Names of all shipped tasks, sorted."""
    return sorted(p.stem for p in resource_dir("tasks").glob("*.yaml"))


def load_task(name: str, overrides: Optional[dict[str, Any]] = None) -> TaskSpec:
    """Load ``tasks/<name>.yaml`` (or a path to a YAML file) and apply ``overrides``."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else resource_dir("tasks") / f"{name}.yaml"
    if not path.is_file():
        raise PbrlError(f"task: unknown task {name!r}; expected one of {', '.join(list_tasks())}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise PbrlError(f"task file {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    raw.update(overrides or {})
    return task_from_dict(raw, source=str(path))


def task_from_dict(raw: dict[str, Any], *, source: str = "<dict>") -> TaskSpec:
    """Build a :class:`TaskSpec` from a plain mapping, with one-line errors naming the missing field."""
    for key in ("name", "suite", "env_id", "episode_length", "reward_terms"):
        if key not in raw:
            raise PbrlError(f"task file {source}: missing required field {key!r}")
    known = {k: v for k, v in raw.items() if k in _FIELDS and k != "extra"}
    extra = {k: v for k, v in raw.items() if k not in _FIELDS}
    cam = raw.get("camera") or {}
    known["camera"] = CameraSpec(**cam) if isinstance(cam, dict) else cam
    known["reward_terms"] = tuple(raw["reward_terms"])
    known["env_kwargs"] = dict(raw.get("env_kwargs") or {})
    known["prompts"] = dict(raw.get("prompts") or {})
    known.setdefault("description", "")
    known.setdefault("success_key", None)
    known["episode_length"] = int(raw["episode_length"])
    return TaskSpec(**known, extra=extra)

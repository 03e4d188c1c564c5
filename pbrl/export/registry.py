"""Exporters by algorithm, and what they get to see of a run directory.

An exporter is ``fn(run: RunInfo) -> ExportablePolicy``: it loads the run's policy file, wraps the deterministic
path from observation to action in an :class:`~pbrl.export.policy.ExportModule` (its ``core``; squashing,
scaling and clipping are the module's job) and returns the training-time action function for the parity
check. Entries are dotted paths imported on first use, so adding an algorithm is one line here and one module
(e.g. ``"sac": "pbrl.export.sb3:export_sac"``) without import cycles. OPPO bakes its learned z* into the
core (a buffer concatenated to the observation), so the exported graph still takes the raw observation only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from pbrl.envs.tasks import TaskSpec, task_from_dict
from pbrl.export.policy import ExportablePolicy
from pbrl.types import PbrlError

#: algo name (``config.yaml: algo.name``) -> ``"module:function"`` of its exporter.
EXPORTERS: dict[str, str] = {
    "sac": "pbrl.export.sbx:export_sac",  # SB3 or sbx SAC, by algo.backend
    "crossq": "pbrl.export.sbx:export_crossq",
    "ppo": "pbrl.export.sb3:export_ppo",
    "cpl": "pbrl.export.offline:export_offline",
    "oppo": "pbrl.export.offline:export_offline",
    "bc": "pbrl.export.offline:export_offline",
    "iql": "pbrl.export.offline:export_offline",
}


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """A finished run directory as the exporters see it.

    Attributes:
        run_dir: the directory (holds ``config.yaml`` and the algorithm's policy file).
        config: the resolved training config as plain containers.
        config_hash: ``sha256:<hex>`` of ``config.yaml``'s bytes, recorded in ``policy.json``.
        task: the task the policy was trained on.
        algo: ``config.algo.name``.
        seed: ``config.seed``.
        episode_length: ``config.episode_length`` or the task's horizon.
    """

    run_dir: Path
    config: dict[str, Any]
    config_hash: str
    task: TaskSpec
    algo: str
    seed: int
    episode_length: int

    def file(self, name: str) -> Path:
        """A file of the run, with a one-line error when it is missing."""
        path = self.run_dir / name
        if not path.is_file():
            raise PbrlError(f"{path}: missing; expected a finished {self.algo} run (pbrl train writes {name})")
        return path


def load_run(run_dir: Path) -> RunInfo:
    """Read ``run_dir/config.yaml`` into a :class:`RunInfo`."""
    run_dir = Path(run_dir)
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise PbrlError(f"{path}: missing; expected a pbrl run directory (written by `pbrl train`)")
    data = path.read_bytes()
    try:
        cfg = yaml.safe_load(data) or {}
    except yaml.YAMLError as exc:
        raise PbrlError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    for key in ("task", "algo"):
        if not isinstance(cfg.get(key), dict):
            raise PbrlError(f"{path}: missing mapping {key!r}; expected a resolved pbrl train config")
    task = task_from_dict(cfg["task"], source=str(path))
    algo = str(cfg["algo"].get("name", ""))
    return RunInfo(run_dir=run_dir, config=cfg, config_hash="sha256:" + hashlib.sha256(data).hexdigest(), task=task,
                   algo=algo, seed=int(cfg.get("seed", 0)),
                   episode_length=int(cfg.get("episode_length") or task.episode_length))


def get_exporter(algo: str) -> Callable[[RunInfo], ExportablePolicy]:
    """The exporter registered for ``algo``."""
    target: Optional[str] = EXPORTERS.get(algo)
    if target is None:
        raise PbrlError(f"config.yaml algo.name: no exporter for {algo!r}; "
                        f"expected one of: {', '.join(sorted(EXPORTERS))}")
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)

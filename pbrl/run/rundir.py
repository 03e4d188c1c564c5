"""The run directory: whether it is new, a run to resume or a finished run, and its config files.

``config.yaml`` (the resolved config) and ``.hydra/`` (Hydra's record of the job: unresolved config, Hydra's
own settings, the command-line overrides) are written only once the config has passed its checks, so a
refused command leaves nothing behind and a refused resume leaves the existing run's files as they were.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from pbrl.run.checkpoint import find_checkpoint, read_info
from pbrl.run.schema import fail, show
from pbrl.types import PbrlError
from pbrl.utils import atomic_write_json, atomic_write_text

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
HYDRA_DIR = ".hydra"


def run_dir_state(cfg: DictConfig, run_dir: Path) -> str:
    """``"new"``, ``"resume"`` (same config, not finished) or ``"finished"``.

    Raises when ``run_dir`` is a file or holds a run with a different config (naming the first differing key
    with both values).
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise fail("out", str(run_dir), "a run directory (new, or one to resume), not a file")
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return "new"
    try:
        old = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as exc:  # noqa: BLE001  (any unreadable file: refuse with its name)
        raise PbrlError(f"{path}: cannot read the existing run's config ({str(exc).splitlines()[0]})") from None
    diff = first_difference(old, OmegaConf.to_container(cfg, resolve=True), skip=("out",))
    if diff is not None:
        key, was, now = diff
        raise PbrlError(f"out={run_dir}: holds a run with {key}={show(was)}, this command has {key}={show(now)}; "
                        f"give a new out= to start a new run, or the run's own settings to resume it")
    if (run_dir / SUMMARY_FILE).is_file():
        return "finished"
    ckpt = find_checkpoint(run_dir)
    if ckpt is not None:
        read_info(ckpt)  # a checkpoint this pbrl cannot resume is refused before anything is touched
    return "resume"


def first_difference(old: Any, new: Any, path: str = "", skip: Sequence[str] = ()) -> Optional[tuple[str, Any, Any]]:
    """The first dotted key whose values differ between two config trees, with both values."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            child = f"{path}.{key}" if path else str(key)
            if child in skip:
                continue
            diff = first_difference(old.get(key), new.get(key), child, skip)
            if diff is not None:
                return diff
        return None
    return None if old == new else (path, old, new)


def write_run_config(cfg: DictConfig, run_dir: Path) -> None:
    """``config.yaml`` (resolved) and, inside a Hydra job, ``.hydra/`` as Hydra would have written it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True))
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    out = run_dir / HYDRA_DIR
    out.mkdir(exist_ok=True)
    atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg))
    atomic_write_text(out / "hydra.yaml", OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg})))
    atomic_write_text(out / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(list(hydra_cfg.overrides.task))))


def read_summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / SUMMARY_FILE).read_text())


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """``summary.json``, atomically and last: its presence marks a finished run (:func:`run_dir_state`)."""
    atomic_write_json(run_dir / SUMMARY_FILE, summary)


def remove_if_empty(run_dir: Path) -> None:
    """Remove a run directory that holds nothing (Hydra creates it before the job's checks run)."""
    try:
        run_dir.rmdir()
    except OSError:  # not empty, or gone: leave it
        pass

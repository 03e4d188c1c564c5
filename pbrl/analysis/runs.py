"""Run directories on disk: find them, read what each run wrote, say whether it finished, group them.

A run directory is one that holds a ``config.yaml`` (``pbrl train`` writes it before training starts);
``summary.json`` appears only when the run finished. A Hydra job directory with only ``.hydra/config.yaml``
is a job that failed before pbrl started it. Nothing is dropped silently: every directory found is a
:class:`RunRecord` with a status.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from pbrl.types import PbrlError

#: Keys that differ between the seeds of one setting by construction (the run's own paths and viewer port).
DEFAULT_IGNORE = ("seed", "out", "feedback.port", "feedback.store")
FINISHED, RUNNING, STALE, FAILED = "finished", "running", "stale", "failed"
_ACTIVITY_FILES = ("metrics.csv", "checkpoint/state.json", "train.log", "config.yaml", "store.sqlite")


@dataclasses.dataclass
class RunRecord:
    """What one run directory says about its run.

    Attributes:
        path: the run directory.
        config: the resolved config flattened to dotted keys (``budget.labels``), values as YAML scalars.
        status: ``finished`` (summary.json), ``running`` (written to within ``stale_after`` seconds),
            ``stale`` (no summary and silent for longer: killed, crashed or hung) or ``failed`` (a Hydra job
            without pbrl's config.yaml: refused before it started).
        summary: summary.json, or None.
        metrics: rows of metrics.csv as floats (NaN for empty cells); ``[]`` when absent.
        last_write: newest modification time (epoch seconds) of the files a live run keeps writing.
        group: the group label, set by :func:`group_runs`.
    """

    path: Path
    config: dict[str, Any]
    status: str
    summary: Optional[dict[str, Any]]
    metrics: list[dict[str, float]]
    last_write: float
    group: str = ""

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    def final(self, metric: str) -> Optional[float]:
        """The final value of ``metric`` (a summary.json key), or None (unfinished, or no such signal)."""
        value = (self.summary or {}).get(metric)
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)

    def last_row(self) -> dict[str, float]:
        return self.metrics[-1] if self.metrics else {}


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values (compared whole)."""
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def read_metrics(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [{k: _to_float(v) for k, v in row.items() if k} for row in csv.DictReader(fh)]


def _to_float(value: Optional[str]) -> float:
    try:
        return float(value) if value not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PbrlError(f"{path}: not a readable YAML config ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise PbrlError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def read_run(path: Path, *, stale_after: float = 900.0, now: Optional[float] = None) -> RunRecord:
    """Read one run directory (``config.yaml``, ``summary.json``, ``metrics.csv``) and decide its status."""
    path = Path(path)
    now = time.time() if now is None else now
    pbrl_cfg = path / "config.yaml"
    cfg_path = pbrl_cfg if pbrl_cfg.is_file() else path / ".hydra" / "config.yaml"
    config = flatten(_read_yaml(cfg_path))
    summary = None
    if (path / "summary.json").is_file():
        try:
            summary = json.loads((path / "summary.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise PbrlError(f"{path / 'summary.json'}: not valid JSON ({exc})") from None
    stamps = [(path / f).stat().st_mtime for f in _ACTIVITY_FILES if (path / f).exists()]
    last = max(stamps, default=cfg_path.stat().st_mtime)
    if summary is not None:
        status = FINISHED
    elif not pbrl_cfg.is_file():
        status = FAILED
    else:
        status = RUNNING if now - last <= stale_after else STALE
    return RunRecord(path=path, config=config, status=status, summary=summary,
                     metrics=read_metrics(path / "metrics.csv"), last_write=last)


def find_run_dirs(root: Path) -> list[Path]:
    """Run directories at or below ``root``: pbrl's ``config.yaml``, or a Hydra job that never got that far."""
    root = Path(root)
    if not root.exists():
        raise PbrlError(f"{root}: no such file or directory; expected a run directory or a sweep directory")
    if not root.is_dir():
        raise PbrlError(f"{root}: expected a run directory or a sweep directory, got a file")
    found = {p.parent for p in root.rglob("config.yaml") if ".hydra" not in p.parts[len(root.parts):]
             and ".submitit" not in p.parts}
    if (root / "config.yaml").is_file():
        found.add(root)
    found |= {p.parent.parent for p in root.rglob(".hydra/config.yaml")
              if not (p.parent.parent / "config.yaml").is_file() and ".submitit" not in p.parts}
    return sorted(found)


def load_runs(paths: Sequence[Path], *, stale_after: float = 900.0) -> list[RunRecord]:
    """Every run under ``paths`` (each found once); a path with none is an error."""
    runs: dict[Path, RunRecord] = {}
    for root in paths:
        dirs = find_run_dirs(root)
        if not dirs:
            raise PbrlError(f"{root}: no run directories below it (a run directory holds config.yaml)")
        for d in dirs:
            runs.setdefault(d.resolve(), read_run(d, stale_after=stale_after))
    return list(runs.values())


def varying_keys(runs: Sequence[RunRecord], ignore: Sequence[str] = DEFAULT_IGNORE) -> list[str]:
    """Config keys whose value is not the same in every run (a key missing from a run counts as a value)."""
    keys = sorted({k for r in runs for k in r.config})
    skip = set(ignore)
    return [k for k in keys if k not in skip and len({_show(r.config.get(k, "<unset>")) for r in runs}) > 1]


def _show(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...")


def group_runs(runs: Sequence[RunRecord], *, by: Optional[Sequence[str]] = None,
               ignore: Sequence[str] = DEFAULT_IGNORE) -> dict[str, list[RunRecord]]:
    """Group runs by their config differences: everything but the seed (and ``ignore``), or only ``by``.

    Labels read ``key=value, key=value`` over the keys that vary; runs that agree on everything form one
    group labelled by their task and algorithm. Sets :attr:`RunRecord.group` and returns label -> runs in
    first-seen order.
    """
    keys = list(by) if by else varying_keys(runs, ignore)
    groups: dict[str, list[RunRecord]] = {}
    for run in runs:
        if keys:
            label = ", ".join(f"{k}={_show(run.config.get(k, '<unset>'))}" for k in keys)
        else:
            label = " · ".join(str(run.config[k]) for k in ("task.name", "algo.name", "feedback.name")
                               if k in run.config) or "all runs"
        run.group = label
        groups.setdefault(label, []).append(run)
    return groups

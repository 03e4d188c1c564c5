"""Run directories written the way ``pbrl train`` writes them (config.yaml, metrics.csv, summary.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import yaml

from pbrl.report import MetricsLog
from pbrl.utils import atomic_write_json


def write_run(path: Path, *, seed: int, labels: int = 500, curve: Sequence[float] = (),
              final: Optional[float] = None, success: Optional[float] = None, task: str = "halfcheetah") -> Path:
    """A run of ``task`` with ``budget.labels=labels``; ``final`` None = no summary.json (unfinished)."""
    path.mkdir(parents=True)
    cfg = {"seed": seed, "out": str(path), "task": {"name": task}, "algo": {"name": "sac"},
           "feedback": {"name": "scripted", "port": 8765 + seed}, "budget": {"labels": labels, "env_steps": 1000}}
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    log = MetricsLog(path / "metrics.csv")
    for i, value in enumerate(curve):
        log.append({"env_steps": 100 * (i + 1), "return_mean": value, "success_rate": success})
    if final is not None:
        atomic_write_json(path / "summary.json", {"seed": seed, "return_mean": final, "success_rate": success})
    return path

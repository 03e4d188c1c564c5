"""One job of a Hydra multirun (``pbrl train -m ...``): its own run directory, store and viewer port.

Hydra launchers (joblib, submitit, Ray) run every job of a sweep in its own process, with its own output
directory (``hydra.sweep.dir``/``hydra.sweep.subdir``). Everything a run writes must follow that directory,
and nothing two concurrent jobs use may be shared: ``out`` (and so every ``${out}/...`` path, such as the
human viewer's store) is rebound to the job's directory, and the viewer port is offset by the job number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from omegaconf import DictConfig, open_dict


def bind_job(cfg: DictConfig, run_dir: Path, job_num: Optional[int]) -> None:
    """Point ``cfg.out`` at ``run_dir`` and, in a multirun (``job_num`` given), offset ``feedback.port``.

    Job ``k`` of a sweep with ``feedback=human`` serves its viewer on ``feedback.port + k``, so concurrent
    jobs never compete for one port (resuming such a job alone needs ``feedback.port=`` its config's port).
    """
    with open_dict(cfg):
        cfg.out = str(run_dir)
        if job_num is not None and cfg.get("feedback") is not None and cfg.feedback.get("port") is not None:
            cfg.feedback.port = int(cfg.feedback.port) + int(job_num)


def hydra_job() -> tuple[Path, Optional[int]]:
    """The running Hydra job's output directory and, in a multirun, its number (None in a single run)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    job_num = int(hc.job.num) if hc.mode == RunMode.MULTIRUN else None
    return Path(hc.runtime.output_dir), job_num

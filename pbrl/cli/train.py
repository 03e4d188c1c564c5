"""``pbrl train [OVERRIDES]``: one run, or a ``-m`` sweep of runs, from the ``train`` Hydra config."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from pbrl.cli.common import fail, run_hydra
from pbrl.types import PbrlError


def _train_precheck(cfg, multirun: bool) -> bool:
    """Checks of a ``pbrl train`` job before Hydra starts it; False when there is nothing to run."""
    from pbrl.run.config import check_train
    from pbrl.run.rundir import read_summary, run_dir_state

    check_train(cfg)  # warnings are logged by the run itself
    if multirun:
        return True
    run_dir = Path(str(cfg.out))
    if run_dir_state(cfg, run_dir) == "finished":
        print(_done_line({**read_summary(run_dir), "already_finished": True}, run_dir))
        return False
    return True


def _done_line(summary: dict, run_dir: Path) -> str:
    head = "already finished (nothing run; summary.json unchanged)" if summary.get("already_finished") else "done"
    return (f"{head}: return {summary['return_mean']:.1f} (random policy {summary['random_return']:.1f}), "
            f"success {_fmt(summary.get('success_rate'))}, labels {summary['labels_used']}, "
            f"reward accuracy {_fmt(summary.get('reward_accuracy'))}; results in {run_dir}")


def _train_job(cfg) -> Optional[float]:
    from pbrl.run.rundir import remove_if_empty
    from pbrl.run.runner import run_training
    from pbrl.run.sweep import bind_job, hydra_job

    run_dir, job_num = hydra_job()
    bind_job(cfg, run_dir, job_num)  # a sweep's jobs share no store, port or file
    try:
        summary = run_training(cfg, run_dir)
    except PbrlError as exc:
        remove_if_empty(run_dir)  # Hydra made it before the run's own checks: leave nothing behind
        fail(exc)
    print(_done_line(summary, run_dir))
    return summary["return_mean"]


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main(args: Sequence[str]) -> None:
    run_hydra(_train_job, "train", args, "pbrl train", precheck=_train_precheck)

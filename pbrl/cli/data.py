"""``pbrl data collect [OVERRIDES]``: an offline preference dataset (a store) from the ``collect`` Hydra config."""

from __future__ import annotations

from typing import Sequence

from pbrl.cli.common import fail, run_hydra
from pbrl.types import PbrlError


def _collect_job(cfg) -> None:
    from pbrl.run.datasets import collect_job

    try:
        stats = collect_job(cfg)
    except PbrlError as exc:
        fail(exc)
    print(f"collected {stats['segments']} segments, {stats['pairs']} pairs ({stats['answered']} answered) on "
          f"{stats['task']}, expert-mix episode success {stats['episode_success']:.2f}; store {stats['out']}")


def _collect_precheck(cfg, multirun: bool) -> bool:
    from pbrl.run.config import check_collect

    check_collect(cfg)
    return True


def main(args: Sequence[str]) -> None:
    if not args or args[0] != "collect":
        raise PbrlError("data: expected a subcommand: `pbrl data collect [task=NAME] [key=value ...]`")
    run_hydra(_collect_job, "collect", args[1:], "pbrl data collect", precheck=_collect_precheck)

"""``pbrl tasks``: the shipped tasks with their reward terms and success signals."""

from __future__ import annotations

import sys
from typing import Sequence

from pbrl.types import PbrlError


def print_tasks() -> None:
    """The good tasks as a table; a broken task file is reported (stderr) without hiding the others."""
    from pbrl.envs.tasks import list_tasks, load_task

    rows, broken = [], []
    for name in list_tasks():
        try:
            rows.append(load_task(name))
        except PbrlError as exc:
            broken.append(str(exc))
    print(f"{'task':22} {'suite':10} {'horizon':>7}  {'success':8} reward terms")
    for t in rows:
        print(f"{t.name:22} {t.suite:10} {t.episode_length:>7}  {t.success_key or '-':8} {', '.join(t.reward_terms)}")
    example = f"; use e.g. `pbrl train task={rows[0].name}`" if rows else ""
    print(f"\n{len(rows)} tasks{example}")
    for line in broken:
        print(f"pbrl: warning: broken task file, not usable: {line}", file=sys.stderr)


def main(args: Sequence[str]) -> None:
    print_tasks()

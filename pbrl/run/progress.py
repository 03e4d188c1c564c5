"""The progress bars of long phases (environment steps, reward fits, offline gradient steps), on stderr."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress_bar(total: int, desc: str, unit: str = "step", initial: int = 0) -> tqdm:
    """A bar that redraws twice a second on a terminal and every 15 s in a log file (a sweep's stderr)."""
    return tqdm(total=total, initial=initial, unit=unit, dynamic_ncols=True, desc=desc,
                mininterval=0.5 if sys.stderr.isatty() else 15.0)

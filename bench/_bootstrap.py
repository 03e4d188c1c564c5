"""Make ``python bench/<name>.py`` import like ``python -m bench.<name>``.

Run as a file, a script's own directory (``bench/``) is first on ``sys.path`` and the repository root is not, so
``bench.common`` (and this checkout's ``pbrl``) would not be found. Every script that imports ``bench.*`` starts with::

    if not __package__:  # run as python bench/<name>.py
        import _bootstrap  # noqa: F401

which replaces ``bench/`` by the repository root, so each module is imported once, under one name.
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(ROOT))

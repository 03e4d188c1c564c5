"""What every benchmark script shares: where things go, and the one writer of BENCHMARKS.md sections.

Each benchmark owns the ``<!-- name -->`` ... ``<!-- /name -->`` sections it rewrites; text outside the markers
is edited by hand. Raw outputs of a new run go to ``RAW`` (under ``runs/``, ignored by git); ``bench/results/`` (tracked)
keeps only the raw results that published tables are re-rendered from (e.g. ``--from-rows``, ``--render``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "BENCHMARKS.md"
RAW = ROOT / "runs" / "bench"


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(re.escape(f"<!-- {name} -->") + r"\n?(.*?)" + re.escape(f"<!-- /{name} -->"), re.DOTALL)


def read_section(path: Path, name: str) -> Optional[str]:
    """The text between the ``<!-- name -->`` markers of a markdown file (None if the file or section is missing)."""
    match = _pattern(name).search(path.read_text()) if path.exists() else None
    return match.group(1) if match else None


def update_section(path: Path, name: str, block: str) -> None:
    """Replace (or append) the ``<!-- name -->`` ... ``<!-- /name -->`` section of a markdown file, atomically."""
    from pbrl.utils import atomic_write_text

    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = f"<!-- {name} -->\n{block.strip()}\n<!-- /{name} -->"
    pattern = _pattern(name)
    text = pattern.sub(lambda _: section, text, count=1) if pattern.search(text) else \
        text.rstrip("\n") + "\n\n" + section + "\n"
    atomic_write_text(path, text)


def publish(block: str, mark: str, update: bool, path: Path = BENCHMARKS) -> None:
    """Print a benchmark's markdown block and, with ``update``, write it into its section of ``path``."""
    print(block, flush=True)
    if update:
        update_section(path, mark, block)
        print(f"updated the {mark} section of {path}")

"""What every benchmark script shares: the repository root and the BENCHMARKS.md section writer."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "BENCHMARKS.md"


def update_section(path: Path, name: str, block: str) -> None:
    """Replace (or append) the ``<!-- name -->`` ... ``<!-- /name -->`` section of a markdown file, atomically."""
    from pbrl.utils import atomic_write_text

    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = f"{start}\n{block.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: section, text, count=1) if pattern.search(text) else \
        text.rstrip("\n") + "\n\n" + section + "\n"
    atomic_write_text(path, text)


def publish(block: str, mark: str, update: bool) -> None:
    """Print a benchmark's markdown block and, with ``update``, write it into its BENCHMARKS.md section."""
    print(block)
    if update:
        update_section(BENCHMARKS, mark, block)

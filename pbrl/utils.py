"""Small durable-IO helpers: nothing a run writes is left half-written (files, JSON, directories, figures)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any


def fsync_path(path: Path) -> None:
    """fsync a file or a directory entry so a rename survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write temp, fsync, rename: readers see the old file or the new one, never a torn one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def swap_in_directory(tmp_dir: Path, final_dir: Path) -> None:
    """Replace ``final_dir`` by the fully written ``tmp_dir`` (both fsynced), keeping the old one until done.

    A crash at any point leaves either ``final_dir`` or ``final_dir.old`` complete; see :func:`find_directory`.
    """
    for f in tmp_dir.iterdir():
        fsync_path(f)
    fsync_path(tmp_dir)
    old = final_dir.with_name(final_dir.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final_dir.exists():
        os.replace(final_dir, old)
    os.replace(tmp_dir, final_dir)
    fsync_path(final_dir.parent)
    if old.exists():
        shutil.rmtree(old)


def find_directory(final_dir: Path) -> Path | None:
    """The last complete directory written by :func:`swap_in_directory`, or None."""
    old = final_dir.with_name(final_dir.name + ".old")
    if final_dir.is_dir():
        return final_dir
    return old if old.is_dir() else None


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend (headless machines, worker processes), imported late so
    that importing pbrl never pulls in matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path, *, dpi: int = 100, rect: tuple = (0, 0, 1, 1)) -> Path:
    """Lay out (within ``rect`` of the figure: room left for a figure legend), write ``fig`` to ``path`` atomically
    (a reader never sees half a PNG) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(rect=rect)
    tmp = path.with_suffix(".tmp" + path.suffix)
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    tmp.replace(path)
    return path

"""Find the shipped ``configs/`` and ``tasks/`` folders, from a checkout or an installed wheel.

In a checkout they live at the repository root; ``setup.py`` copies them into ``pbrl/_resources/``
when a wheel is built, so a plain ``pip install .`` works too. Everything looks them up here.
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def resource_dir(kind: str) -> Path:
    """Directory holding ``kind`` (``"configs"`` or ``"tasks"``)."""
    if kind not in ("configs", "tasks"):
        raise ValueError(f"resource kind must be 'configs' or 'tasks', got {kind!r}")
    for candidate in (_PKG.parent / kind, _PKG / "_resources" / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"pbrl {kind}/ not found next to the package or in pbrl/_resources; reinstall pbrl")

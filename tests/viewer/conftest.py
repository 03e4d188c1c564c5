"""Fixtures of the viewer tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from viewer_fixtures import make_queued_store


@pytest.fixture
def queued_store(tmp_path: Path) -> tuple[Path, list[int]]:
    path = tmp_path / "store.sqlite"
    return path, make_queued_store(path, 4)

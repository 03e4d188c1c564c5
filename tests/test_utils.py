"""Durable writes: which files and directory entries are fsynced before a rename is trusted."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from pbrl import utils
from pbrl.types import PbrlError


@pytest.fixture
def synced(monkeypatch) -> list[Path]:
    """Paths of every descriptor passed to os.fsync (read back through /proc), in call order."""
    seen: list[Path] = []
    real = os.fsync

    def record(fd: int) -> None:
        seen.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    return seen


def test_fsync_path_syncs_files_and_directories(tmp_path: Path, synced: list[Path]) -> None:
    (tmp_path / "f").write_text("x")
    utils.fsync_path(tmp_path / "f")
    utils.fsync_path(tmp_path)
    assert synced == [tmp_path / "f", tmp_path]
    with pytest.raises(FileNotFoundError):
        utils.fsync_path(tmp_path / "missing")


def test_atomic_write_syncs_the_data_then_the_rename(tmp_path: Path, synced: list[Path]) -> None:
    utils.atomic_write_text(tmp_path / "a.json", "{}")
    assert synced == [tmp_path / "a.json.tmp", tmp_path] and (tmp_path / "a.json").read_text() == "{}"


def test_npz_export_is_synced_before_it_replaces_the_file(tmp_path: Path, synced: list[Path]) -> None:
    from pbrl.data.io import _write_npz

    _write_npz(tmp_path / "d.npz", {"a": np.arange(3)})
    assert len(synced) == 1 and synced[0].parent == tmp_path and synced[0].name.endswith(".tmp.npz")
    np.testing.assert_array_equal(np.load(tmp_path / "d.npz")["a"], np.arange(3))
    with pytest.raises(PbrlError, match="expected a path ending in .npz"):
        _write_npz(tmp_path / "d.zip", {"a": np.arange(3)})

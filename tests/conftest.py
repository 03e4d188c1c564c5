"""Shared fixtures: small real tasks and seeded generators."""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pytest
import torch

#: per-session directories, set before pytest-xdist starts its workers so that workers and the pbrl processes of
#: tests inherit them: JAX's compilation cache (CrossQ's update compiled once per session, not once per process; not
#: the user's ~/.cache) and SB3's logger folder (SB3 makes one for a model that has no logger: not in /tmp)
_SESSION_DIRS = {"PBRL_JAX_CACHE": "jax", "SB3_LOGDIR": "sb3"}


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    root = config._pbrl_session_root = tempfile.mkdtemp(prefix="pbrl-test-session-")
    config._pbrl_session_env = [name for name in _SESSION_DIRS if name not in os.environ]
    for name in config._pbrl_session_env:
        os.environ[name] = os.path.join(root, _SESSION_DIRS[name])


def pytest_unconfigure(config: pytest.Config) -> None:
    root = getattr(config, "_pbrl_session_root", None)
    if root:
        shutil.rmtree(root, ignore_errors=True)
        for name in config._pbrl_session_env:
            os.environ.pop(name, None)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def sb3_tempdir(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """The process's temporary directory for one test, where SB3 makes a logger folder for a model without a logger
    (``/tmp/SB3-<time>``); the session's SB3_LOGDIR, which would take those folders instead, is unset."""
    path = tmp_path / "tmp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def queued_store(tmp_path):
    """A store of 8 framed segments with 4 pairs queued for labelling: (path, query ids)."""
    from label_fixtures import make_queued_store

    path = tmp_path / "store.sqlite"
    return path, make_queued_store(path, 4)

"""Shared fixtures: small real tasks and seeded generators."""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pytest
import torch

_JAX_CACHE_ENV = "PBRL_JAX_CACHE"


def pytest_configure(config: pytest.Config) -> None:
    """One JAX compilation cache per test session (not the user's ~/.cache): set in the main process before
    pytest-xdist starts its workers, so workers and the pbrl subprocesses of tests inherit it and compile CrossQ's
    update once per session instead of once per process."""
    if hasattr(config, "workerinput") or _JAX_CACHE_ENV in os.environ:
        return
    os.environ[_JAX_CACHE_ENV] = config._pbrl_jax_cache = tempfile.mkdtemp(prefix="pbrl-test-jax-")


def pytest_unconfigure(config: pytest.Config) -> None:
    path = getattr(config, "_pbrl_jax_cache", None)
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.environ.pop(_JAX_CACHE_ENV, None)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def queued_store(tmp_path):
    """A store of 8 framed segments with 4 pairs queued for labelling: (path, query ids)."""
    from label_fixtures import make_queued_store

    path = tmp_path / "store.sqlite"
    return path, make_queued_store(path, 4)

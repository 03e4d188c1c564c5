"""Shared fixtures: small real tasks and seeded generators."""

from __future__ import annotations

import numpy as np
import pytest
import torch


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

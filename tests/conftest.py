"""Shared fixtures: small real tasks and seeded generators."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pbrl  # noqa: F401  (selects the headless GL backend before MuJoCo loads)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)

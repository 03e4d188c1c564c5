"""The reward fit's per-epoch hook (what the progress bars of `pbrl train algo=iql` show): called once per epoch
that ran, with that epoch's metrics, also when the fit stops early, and through the observation-only wrapper."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pbrl.rewards.ensemble import EnsembleReward
from pbrl.rewards.obs_only import ObsOnlyReward
from pbrl.rewards.transformer import PreferenceTransformerReward
from pbrl.types import PairBatch


def _pairs(n: int = 96, length: int = 4) -> PairBatch:
    """The preferred segment has the larger first observation feature at every step: easy to fit."""
    rng = np.random.default_rng(0)
    good = rng.normal(1.0, 0.1, (n, length, 2)).astype(np.float32)
    bad = rng.normal(-1.0, 0.1, (n, length, 2)).astype(np.float32)
    acts = np.zeros((n, length, 1), np.float32)
    return PairBatch(good, acts, bad, acts.copy(), np.ones(n, np.float32), np.ones(n, np.float32))


MODELS = {
    "ensemble": lambda: EnsembleReward(2, 1, n_members=2, hidden=(16,), lr=1e-2, batch_size=32, seed=0),
    "transformer": lambda: PreferenceTransformerReward(2, 1, d_model=16, n_heads=2, dropout=0.0, lr=1e-2,
                                                       batch_size=32, seed=0),
    "obs-only": lambda: ObsOnlyReward(EnsembleReward(2, 1, n_members=2, hidden=(16,), lr=1e-2, batch_size=32, seed=0)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_on_epoch_sees_every_epoch_that_ran(name: str) -> None:
    seen: list[dict[str, float]] = []
    last = MODELS[name]().fit(_pairs(), epochs=4, on_epoch=lambda m: seen.append(dict(m)))
    assert [m["epochs"] for m in seen] == [1.0, 2.0, 3.0, 4.0]
    assert seen[-1] == last  # the hook's last metrics are the fit's result
    assert all(math.isfinite(m["loss"]) and 0.0 <= m["train_acc"] <= 1.0 for m in seen)


@pytest.mark.parametrize("name", list(MODELS))
def test_on_epoch_stops_with_an_early_stopped_fit(name: str) -> None:
    seen: list[float] = []
    last = MODELS[name]().fit(_pairs(), epochs=50, stop_at_acc=0.9, on_epoch=lambda m: seen.append(m["epochs"]))
    assert last["epochs"] < 50 and last["train_acc"] > 0.9  # separable pairs: the fit stops early
    assert seen == [float(e) for e in range(1, int(last["epochs"]) + 1)]


def test_the_hook_does_not_change_the_fit() -> None:
    a, b = MODELS["ensemble"](), MODELS["ensemble"]()
    a.fit(_pairs(), epochs=3)
    b.fit(_pairs(), epochs=3, on_epoch=lambda m: None)
    obs = np.random.default_rng(1).normal(size=(5, 2)).astype(np.float32)
    np.testing.assert_array_equal(a.predict(obs, np.zeros((5, 1), np.float32)),
                                  b.predict(obs, np.zeros((5, 1), np.float32)))

"""ObsOnlyReward: the wrapped model never sees actions, in fitting or prediction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pbrl.rewards.ensemble import EnsembleReward
from pbrl.rewards.obs_only import ObsOnlyReward
from pbrl.types import PairBatch


def test_actions_cannot_explain_preferences_and_do_not_change_rewards() -> None:
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((64, 5, 3)).astype(np.float32)
    good, bad = np.ones((64, 5, 2), np.float32), -np.ones((64, 5, 2), np.float32)
    pairs = PairBatch(obs, good, obs.copy(), bad, np.ones(64, np.float32), np.ones(64, np.float32))
    plain = EnsembleReward(3, 2, n_members=1, hidden=(16,), lr=1e-2, seed=0)
    assert plain.fit(pairs, epochs=30)["loss"] < 0.1  # r(s, a) explains the labels by the actions alone
    wrapped = ObsOnlyReward(EnsembleReward(3, 2, n_members=1, hidden=(16,), lr=1e-2, seed=0))
    assert wrapped.fit(pairs, epochs=30)["loss"] == pytest.approx(math.log(2.0), abs=1e-5)  # identical segments
    np.testing.assert_array_equal(wrapped.predict(obs, good), wrapped.predict(obs, bad))
    np.testing.assert_array_equal(wrapped.segment_return_samples(obs, good), wrapped.segment_return_samples(obs, bad))
    mean, std = wrapped.predict_std(obs, good)
    assert mean.shape == std.shape == (64, 5)
    again = ObsOnlyReward(EnsembleReward(3, 2, n_members=1, hidden=(16,), lr=1e-2, seed=5))
    again.load_state_dict(wrapped.state_dict())
    np.testing.assert_array_equal(again.predict(obs, bad), wrapped.predict(obs, good))

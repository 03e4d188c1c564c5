"""Trajectory / Segment validation and stack_pairs."""

from __future__ import annotations

import numpy as np
import pytest

from pbrl.data import Segment, Trajectory, stack_pairs
from pbrl.types import PbrlError


def make_traj(T: int = 10, obs_dim: int = 3, act_dim: int = 2, *, frames: bool = True) -> Trajectory:
    rng = np.random.default_rng(0)
    return Trajectory(
        obs=rng.normal(size=(T + 1, obs_dim)).astype(np.float32),
        acts=rng.normal(size=(T, act_dim)).astype(np.float32),
        rewards=np.arange(T, dtype=np.float32),
        terms={"reward_forward": np.ones(T, np.float32), "reward_ctrl": -np.arange(T, dtype=np.float32)},
        success=np.arange(T) >= T - 2,
        frames=np.zeros((T, 4, 4, 3), np.uint8) if frames else None,
        episode_id=7,
        task="toy",
    )


def test_segment_cuts_every_field() -> None:
    traj = make_traj()
    seg = traj.segment(3, 4)
    assert len(seg) == 4 and seg.start == 3 and seg.episode_id == 7 and seg.task == "toy"
    np.testing.assert_array_equal(seg.obs, traj.obs[3:7])
    np.testing.assert_array_equal(seg.acts, traj.acts[3:7])
    np.testing.assert_array_equal(seg.rewards, [3, 4, 5, 6])
    assert seg.true_return == pytest.approx(18.0)
    assert seg.term_totals() == {"reward_forward": 4.0, "reward_ctrl": -18.0}
    np.testing.assert_array_equal(seg.success, [False, False, False, False])
    assert seg.frames.shape == (4, 4, 4, 3)
    assert seg.segment_id is None and seg.with_id(5).segment_id == 5


@pytest.mark.parametrize("start,length", [(-1, 2), (8, 3), (0, 0)])
def test_segment_out_of_range(start: int, length: int) -> None:
    with pytest.raises(PbrlError, match="does not fit in an episode of length 10"):
        make_traj().segment(start, length)


def test_trajectory_obs_must_have_final_observation() -> None:
    t = make_traj(frames=False)
    with pytest.raises(PbrlError, match=r"Trajectory.obs: expected shape \(T\+1=11"):
        Trajectory(obs=t.obs[:-1], acts=t.acts, rewards=t.rewards)


def test_segment_rejects_bad_shapes_and_nan() -> None:
    obs, acts, rew = np.zeros((4, 3), np.float32), np.zeros((4, 2), np.float32), np.zeros(4, np.float32)
    with pytest.raises(PbrlError, match="Segment.rewards: expected shape"):
        Segment(obs=obs, acts=acts, rewards=rew[:3])
    with pytest.raises(PbrlError, match=r"terms\['x'\]"):
        Segment(obs=obs, acts=acts, rewards=rew, terms={"x": np.zeros(5)})
    bad = obs.copy()
    bad[1, 1] = np.nan
    with pytest.raises(PbrlError, match="Segment.obs: 1 NaN/inf"):
        Segment(obs=bad, acts=acts, rewards=rew)


def test_stack_pairs_shapes_and_label_check() -> None:
    traj = make_traj()
    first, second = [traj.segment(0, 4), traj.segment(2, 4)], [traj.segment(5, 4), traj.segment(6, 4)]
    batch = stack_pairs(first, second, np.array([1.0, 0.0]))
    assert batch.obs1.shape == (2, 4, 3) and batch.act2.shape == (2, 4, 2) and batch.n_pairs == 2
    assert batch.p.dtype == np.float32 and batch.weight.tolist() == [1.0, 1.0]
    with pytest.raises(PbrlError, match=r"P\(first preferred\) in \[0, 1\]"):
        stack_pairs(first, second, np.array([1.0, 2.0]))
    with pytest.raises(PbrlError, match="mismatched lengths"):
        stack_pairs([traj.segment(0, 3)], [traj.segment(0, 4)], np.array([1.0]))

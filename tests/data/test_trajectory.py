"""Trajectory / Segment validation and stack_pairs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pbrl.data import Segment, Trajectory, stack_pairs
from pbrl.data.trajectory import random_segments, random_start, random_windows
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


# ------------------------------------------------------------------------------------------- random windows


def test_random_start_covers_every_window_and_only_those() -> None:
    rng = np.random.default_rng(0)
    # 5 steps, windows of 2: starts 0, 1, 2, 3 (the last window is steps 3-4), each about 1/4 of 4000 draws
    starts = random_start(5, 2, rng, size=4000)
    counts = np.bincount(starts, minlength=5)
    assert counts[4] == 0 and all(900 < c < 1100 for c in counts[:4]), counts
    assert random_start(4, 4, rng) == 0 and isinstance(random_start(4, 4, rng), int)  # exactly one window
    with pytest.raises(PbrlError, match="5 steps do not fit in an episode of 4 steps"):
        random_start(4, 5, rng)
    with pytest.raises(PbrlError, match="0 steps do not fit"):
        random_start(4, 0, rng)


def test_random_windows_pick_episodes_uniformly_then_starts() -> None:
    rng = np.random.default_rng(1)
    windows = random_windows([6, 3, 4], 3000, 3, rng)
    which = np.array([i for i, _ in windows])
    assert all(800 < c < 1200 for c in np.bincount(which, minlength=3))
    by_episode = {e: {s for i, s in windows if i == e} for e in range(3)}
    assert by_episode == {0: {0, 1, 2, 3}, 1: {0}, 2: {0, 1}}  # every start of each episode, none beyond
    state = rng.bit_generator.state
    assert random_windows([], 5, 3, rng) == [] and rng.bit_generator.state == state  # nothing drawn


def test_random_segments_draw_as_the_pebble_candidates_did() -> None:
    """The helper replaced inline cuts (PEBBLE candidates, reward alignment, bench data): the same seed must give
    the same segments as the inline expression it replaced, so runs reproduce their old numbers."""
    episodes = [dataclasses.replace(make_traj(T, frames=False), episode_id=k) for k, T in enumerate((10, 6, 8))]
    old = np.random.default_rng(3)
    which = old.integers(0, len(episodes), size=7)
    expected = [(int(i), int(old.integers(0, len(episodes[i]) - 4 + 1))) for i in which]
    segs = random_segments(episodes, 7, 4, np.random.default_rng(3))
    assert [(seg.episode_id, seg.start) for seg in segs] == expected
    assert len({i for i, _ in expected}) > 1  # the draw spans several episodes
    for (i, start), seg in zip(expected, segs):
        np.testing.assert_array_equal(seg.rewards, episodes[i].rewards[start:start + 4])

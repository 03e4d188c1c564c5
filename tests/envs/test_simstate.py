"""Recorded simulator states re-render Meta-World segments exactly (what the viewer shows a person)."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from pbrl.run.collect import CollectSpec, collect_episodes, cut_segments
from pbrl.data.store import PreferenceStore
from pbrl.envs import load_task, make_env
from pbrl.envs.rollout import rollout
from pbrl.envs.simstate import obs_renderable
from pbrl.types import PbrlError
from pbrl.envs.render import render_from_states, segment_frames
from pbrl.viewer.clips import ClipCache

STEPS = 5


def _random_policy(seed: int):
    rng = np.random.default_rng(seed)
    return lambda obs: rng.uniform(-1, 1, 4).astype(np.float32)


@pytest.fixture(scope="module")
def episodes():
    """Two drawer-open episodes with different object placements, rendered live and with states recorded."""
    task = load_task("drawer-open")
    env = make_env(task, seed=0, render=True, episode_length=STEPS, record_states=True)
    try:
        return task, [rollout(env, _random_policy(s), seed=s, render=True, task_name=task.name) for s in (3, 4)]
    finally:
        env.close()


def _changed(a: np.ndarray, b: np.ndarray) -> float:
    """Share of pixels whose colour differs by more than 20 in some channel."""
    return float((np.abs(a.astype(int) - b.astype(int)).max(axis=-1) > 20).mean())


def test_states_are_recorded_per_step_with_the_episode_scene(episodes) -> None:
    task, (ep, other) = episodes
    assert not obs_renderable(task)  # Meta-World observations cannot pose the simulator on their own
    assert ep.states.shape[0] == len(ep) == STEPS and ep.states.dtype == np.float64
    assert not np.allclose(ep.states[0], ep.states[-1])  # the arm moved
    assert ep.scene.shape == other.scene.shape and not np.allclose(ep.scene, other.scene)  # drawer placed anew
    seg = ep.segment(1, 3)
    np.testing.assert_array_equal(seg.states, ep.states[1:4])
    assert seg.scene is ep.scene


def test_rerendered_frames_match_the_live_frames(episodes) -> None:
    task, (ep, other) = episodes
    again = render_from_states(task, other.states, other.scene)
    assert again.shape == other.frames.shape
    assert _changed(again, other.frames) < 0.001
    # The per-episode scene matters: the other episode's drawer placement shows a different picture.
    wrong_scene = render_from_states(task, other.states, ep.scene)
    assert _changed(wrong_scene, other.frames) > 10 * max(_changed(again, other.frames), 1e-5)


def test_mismatched_states_are_a_clear_error(episodes) -> None:
    task, (ep, _) = episodes
    with pytest.raises(PbrlError, match="drawer-open: recorded simulator state does not fit this model"):
        render_from_states(task, ep.states[:, :-1], ep.scene)
    with pytest.raises(PbrlError, match="Segment: states and scene go together"):
        ep.segment(0, 2).__class__(obs=ep.obs[:2], acts=ep.acts[:2], rewards=ep.rewards[:2], states=ep.states[:2])


def test_collected_metaworld_store_gives_viewer_clips(tmp_path) -> None:
    """`pbrl data collect` on Meta-World keeps states, so `pbrl label` can show segments without frames."""
    task = load_task("reach")
    spec = CollectSpec(episodes=1, episode_length=4, segment_length=3, stride=3)
    trajs = collect_episodes(task, _random_policy(0), spec, seed=0)
    segs = cut_segments(trajs, spec.segment_length, spec.stride)
    assert trajs[0].frames is None and segs[0].states is not None
    with PreferenceStore(tmp_path / "store.sqlite") as store:
        (sid,) = store.add_segments(segs[:1])
        stored = store.get_segments([sid], with_frames=True)[0]
        np.testing.assert_array_equal(stored.states, segs[0].states)
        np.testing.assert_array_equal(stored.scene, segs[0].scene)
        assert store.get_segments([sid])[0].states is None  # media only when asked for
        clips = ClipCache(store, size=160)  # re-rendered at the labelling size, not the training camera's
        frames = iio.imread(clips.get(sid, "mp4"))
        clips.close()
        assert frames.shape[0] == 3 and frames.shape[1:3] == (160, 160) != (task.camera.height, task.camera.width)
        assert _changed(frames[0], segment_frames(stored, task, 160)[0]) < 0.05  # lossy codec, same picture

"""The human labeller of the online loop: queue, serve, wait for answers given over HTTP; re-rendering."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from pbrl.agents.preference import FeedbackLoop, FeedbackSchedule
from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Trajectory
from pbrl.envs import load_task, make_env
from pbrl.feedback.human import HumanLabeller
from pbrl.viewer.hosted import HostedViewer
from pbrl.types import PbrlError
from pbrl.data.label_queue import LabelQueue
from pbrl.envs.render import render_from_obs
from label_fixtures import answer_over_http, framed_segment, free_port

pytest.importorskip("uvicorn", reason="the viewer extra (pip install 'pbrl[viewer]') is not installed")


def test_human_labeller_blocks_until_answered_over_http(tmp_path) -> None:
    port, stop = free_port(), threading.Event()
    labeller = HumanLabeller(store_path=tmp_path / "store.sqlite", task=load_task("halfcheetah"),
                             rng=np.random.default_rng(0), viewer=HostedViewer(port=port), poll_s=0.05, timeout_s=60,
                             encode=False)
    segs = [framed_segment(i) for i in range(4)]
    person = answer_over_http(port, ["left", "equal", "skip"], stop)
    try:
        labels = labeller.label([segs[0], segs[1], segs[2]], [segs[3], segs[3], segs[0]])  # segs reused: stored once
    finally:
        stop.set()
        person.join(5)
        labeller.close()
    with PreferenceStore(tmp_path / "store.sqlite") as store:
        queue = LabelQueue(store)
        assert store.num_segments() == 4
        q0 = queue.get(1)
        assert labels.p[0] == (1.0 if q0.first_left else 0.0) and labels.p[1] == 0.5
        assert list(labels.skipped) == [False, False, True]
        assert store.count_labels(sources=["human"], include_skipped=True) == 3


def test_feedback_loop_does_not_store_human_answers_twice(tmp_path) -> None:
    class Answered(HumanLabeller):
        def _announce(self, n: int, resumed: bool = False) -> None:  # a person answered at once (all "equal")
            _, queue = self._open()
            for q in queue.next_for("pat", n):
                queue.answer(q.query_id, "pat", "equal")

    rng = np.random.default_rng(0)
    eps = [Trajectory(obs=rng.normal(size=(11, 3)).astype(np.float32), acts=rng.normal(size=(10, 2)).astype(np.float32),
                      rewards=rng.normal(size=10).astype(np.float32),
                      frames=np.zeros((10, 16, 16, 3), np.uint8), episode_id=i) for i in range(3)]
    path = tmp_path / "store.sqlite"
    labeller = Answered(store_path=path, task=load_task("halfcheetah"), rng=rng, viewer=HostedViewer(), encode=False)

    class Model:
        def fit(self, pairs, *, epochs, stop_at_acc=None):
            return {"loss": 0.0, "n": pairs.n_pairs}

    with PreferenceStore(path) as store:
        feedback = FeedbackLoop(reward_model=Model(), labeller=labeller, store=store, source="human",
                                schedule=FeedbackSchedule(max_labels=4, per_round=4, every=1, segment_length=5,
                                                          strategy="uniform", reward_epochs=1), rng=rng)
        result = feedback.round(eps)
        assert (result.asked, result.answered) == (4, 4)
        assert feedback.labels_used == 4 and store.pair_batch(sources=["human"]).n_pairs == 4
    labeller.close()


def test_timeout_leaves_queries_queued(tmp_path) -> None:
    labeller = HumanLabeller(store_path=tmp_path / "s.sqlite", task=load_task("halfcheetah"),
                             viewer=HostedViewer(serve=False), rng=np.random.default_rng(0), poll_s=0.01, timeout_s=0.05, encode=False)
    with pytest.raises(PbrlError, match=r"feedback.timeout_s: 1 pair\(s\) still unlabelled"):
        labeller.label([framed_segment(0)], [framed_segment(1)])
    _, queue = labeller._open()
    assert queue.progress()["queued"] == 1
    labeller.close()


def test_rerender_from_observations_matches_the_live_render() -> None:
    task = load_task("halfcheetah")
    env = make_env(task, seed=0, render=True)
    obs, _ = env.reset(seed=0)
    base = env.unwrapped
    base.set_state(np.concatenate([[0.0], base.data.qpos[1:]]), base.data.qvel.copy())  # x is not observed
    live = env.render()
    env.close()
    frames = render_from_obs(task, np.asarray([obs], np.float32))
    assert frames.shape == (1, 128, 128, 3)
    assert np.abs(frames[0].astype(int) - live.astype(int)).mean() < 1.0  # same pose, same camera
    with pytest.raises(PbrlError, match="task reach: segments without frames or simulator states cannot be re-rendered"):
        render_from_obs(load_task("reach"), np.zeros((2, 39), np.float32))


def test_pairs_are_queued_and_answers_commit_while_the_encoder_is_stuck(tmp_path) -> None:
    """Rendering/encoding happens in its own process: a frozen encoder delays neither queuing nor a commit."""
    import os
    import signal

    from label_fixtures import encoder_processes

    from pbrl.viewer.client import ViewerClient

    port, out = free_port(), {}
    labeller = HumanLabeller(store_path=tmp_path / "store.sqlite", task=load_task("halfcheetah"),
                             rng=np.random.default_rng(0), viewer=HostedViewer(port=port), poll_s=0.05, timeout_s=120)
    segs = [framed_segment(i) for i in range(6)]
    worker = threading.Thread(target=lambda: out.setdefault("labels", labeller.label(segs[:3], segs[3:])))
    worker.start()
    (encoder,) = encoder_processes(os.getpid())
    os.kill(encoder, signal.SIGSTOP)  # stuck for as long as this test likes
    try:
        client = ViewerClient(f"http://127.0.0.1:{port}", "pat", timeout=30)
        for _ in range(300):
            try:
                items = client.next(3)
                break
            except (OSError, PbrlError):
                threading.Event().wait(0.1)
        assert len(items) == 3
        assert client.progress()["clips"] == {"ready": 0, "total": 6}  # the page says "preparing clips (0/6)"
        for item, choice in zip(items, ["left", "right", "equal"]):
            assert client.label(item, choice)["ok"]
        worker.join(timeout=60)
        assert out["labels"].p.shape == (3,) and not out["labels"].skipped.any()
    finally:
        os.kill(encoder, signal.SIGCONT)
        worker.join(timeout=60)
        labeller.close()


def test_labelling_render_size_is_chosen_by_viewer_or_task_not_the_training_camera() -> None:
    import dataclasses

    from pbrl.envs.render import LABEL_SIZE, label_size

    cheetah = load_task("halfcheetah")
    assert cheetah.camera.width == 128 and label_size(cheetah) == LABEL_SIZE == 256
    wide = dataclasses.replace(cheetah, camera=dataclasses.replace(cheetah.camera, width=160, height=90,
                                                                   label_size=320))
    assert label_size(wide) == 320 and label_size(wide, 192) == 192
    obs = np.zeros((2, 17), np.float32)
    assert render_from_obs(wide, obs, 320).shape == (2, 180, 320, 3)  # aspect of the task camera kept
    assert render_from_obs(cheetah, obs).shape == (2, 128, 128, 3)  # training/evaluation size unchanged
    for bad in (8, 1000, 2.5, True, "256"):
        with pytest.raises(PbrlError, match="clip size: expected an integer number of pixels in \\[16, 640\\]"):
            label_size(cheetah, bad)
    labeller = HumanLabeller(store_path="unused.sqlite", task=wide, rng=np.random.default_rng(0),
                             viewer=HostedViewer(serve=False))
    assert labeller.size == 320


def test_kept_render_envs_give_the_same_frames_as_fresh_ones() -> None:
    from pbrl.envs.render import RenderEnvs

    task = load_task("halfcheetah")
    rng = np.random.default_rng(0)
    a, b = (rng.normal(scale=0.3, size=(3, 17)).astype(np.float32) for _ in range(2))
    envs = RenderEnvs()
    try:
        first_a = render_from_obs(task, a, 64, envs)
        render_from_obs(task, b, 64, envs)  # another segment in between moves the simulator elsewhere
        again_a = render_from_obs(task, a, 64, envs)
    finally:
        envs.close()
    fresh_a = render_from_obs(task, a, 64)
    np.testing.assert_array_equal(first_a, fresh_a)
    np.testing.assert_array_equal(again_a, fresh_a)
    assert first_a.shape == (3, 64, 64, 3) and first_a.std() > 0

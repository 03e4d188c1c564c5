"""feedback=vlm: prefer the segment with the higher mean VLM score, equal within a margin."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from pbrl.data.trajectory import Segment
from pbrl.feedback.vlm import VLMLabeller
from pbrl.run.builder import LABELLERS, build_labeller, build_vlm_reward, vlm_weight
from pbrl.types import PbrlError


def segment(vlm: list[float] | None = None, brightness: int | None = None, length: int = 4) -> Segment:
    terms = {"vlm": np.asarray(vlm, np.float32)} if vlm is not None else {}
    frames = None if brightness is None else np.full((length, 8, 8, 3), brightness, np.uint8)
    return Segment(obs=np.zeros((length, 3), np.float32), acts=np.zeros((length, 2), np.float32),
                   rewards=np.zeros(length, np.float32), terms=terms, frames=frames)


def test_labels_follow_mean_vlm_term_with_margin_for_ties() -> None:
    hi, lo, near = segment([0.30] * 4), segment([0.20] * 4), segment([0.2995] * 4)
    labels = VLMLabeller(None, margin=0.001).label([hi, lo, hi, segment()], [lo, hi, near, hi])
    np.testing.assert_array_equal(labels.p[:3], np.float32([1.0, 0.0, 0.5]))
    np.testing.assert_array_equal(labels.skipped, [False, False, False, True])  # no score: skipped, not guessed
    assert labels.p.dtype == np.float32
    strict = VLMLabeller(None, margin=0.0).label([hi], [near])
    assert strict.p[0] == 1.0


def test_segments_with_frames_are_scored_in_one_batch() -> None:
    calls: list[int] = []

    def brightness(frames: np.ndarray) -> np.ndarray:
        calls.append(len(frames))
        return frames.reshape(len(frames), -1).mean(1) / 255.0

    labeller = VLMLabeller(brightness, margin=0.01)
    labels = labeller.label([segment(brightness=200), segment(brightness=10)],
                            [segment(brightness=100), segment(vlm=[0.5] * 4)])
    assert calls == [12]  # three segments with frames, four frames each, one call
    np.testing.assert_array_equal(labels.p, np.float32([1.0, 0.0]))


def test_vlm_labeller_errors_are_one_line() -> None:
    with pytest.raises(PbrlError, match="no segment has VLM scores or frames"):
        VLMLabeller(None).label([segment()], [segment()])
    with pytest.raises(PbrlError, match="no VLM model was given"):
        VLMLabeller(None).label([segment(brightness=1)], [segment(brightness=2)])
    with pytest.raises(PbrlError, match="feedback.margin: expected a number >= 0"):
        VLMLabeller(None, margin=-1.0)


def test_builder_registers_vlm_feedback_and_only_builds_a_model_when_needed() -> None:
    from pbrl.envs.tasks import load_task

    task = load_task("halfcheetah")
    cfg = OmegaConf.create({"feedback": {"name": "vlm", "margin": 0.002},
                            "reward": {"vlm": {"weight": 0.0, "model": "tiny"}}})
    assert "vlm" in LABELLERS
    labeller, source = build_labeller(cfg, task, np.random.default_rng(0))
    assert isinstance(labeller, VLMLabeller) and labeller.margin == 0.002 and source == "vlm"
    plain = OmegaConf.create({"feedback": {"name": "scripted"}, "reward": {"vlm": {"weight": 0.0}}})
    assert build_vlm_reward(plain, task) is None and vlm_weight(plain) == 0.0
    ppo = OmegaConf.create({"feedback": {"name": "scripted"}, "algo": {"name": "ppo"},
                            "reward": {"vlm": {"weight": 0.5}}})
    with pytest.raises(PbrlError, match="reward.vlm.weight: the dense VLM term .* algo=ppo supports feedback=vlm"):
        build_vlm_reward(ppo, task)
    no_prompts = load_task("halfcheetah", {"prompts": {}})
    with pytest.raises(PbrlError, match="needs prompts.goal and prompts.baseline"):
        build_vlm_reward(cfg, no_prompts)

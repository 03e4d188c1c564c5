"""VLM-RM reward: the projection formula, preprocessing, batching, open_clip loading, and the dense term.

open_clip does not import in the main (CPU torch 2.13) environment: it imports torchvision, whose PyPI
wheels are CUDA builds that do not load beside torch's CPU wheel. Most tests therefore drive the reward
through a small CLIP-shaped torch model (``encode_image``/``encode_text``), and ``make test`` runs this file a
second time in ``.venv-vlm`` (torch 2.14.1 + torchvision 0.29.1 + open_clip, ``make test-vlm``), where the
real open_clip path runs with a tiny random model. Each environment skips the one test meant for the other.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pbrl.rewards.vlm import (CLIP_MEAN, CLIP_STD, ClipBackbone, ClipReward, load_open_clip, preprocess_frames,
                              projection_reward)
from pbrl.types import PbrlError

HAS_OPEN_CLIP = importlib.util.find_spec("open_clip") is not None


class TinyClip(torch.nn.Module):
    """CLIP-shaped: a linear image tower on 4x4-pooled pixels and a mean-of-embeddings text tower."""

    def __init__(self, dim: int = 16, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.image = torch.nn.Linear(3 * 16, dim)
        self.text = torch.nn.Embedding(1000, dim)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.image(F.adaptive_avg_pool2d(images, 4).flatten(1))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text(tokens).mean(1)


def tiny_tokenizer(texts: list[str]) -> torch.Tensor:
    ids = [[sum(map(ord, w)) % 1000 for w in t.split()][:8] for t in texts]
    return torch.tensor([row + [0] * (8 - len(row)) for row in ids])


def tiny_reward(alpha: float = 0.5, batch_size: int = 64) -> ClipReward:
    backbone = ClipBackbone(model=TinyClip().eval(), tokenizer=tiny_tokenizer, image_size=32)
    return ClipReward(backbone, goal="a robot running fast", baseline="a robot", alpha=alpha, batch_size=batch_size)


def random_frames(n: int, h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_projection_reward_hand_computed() -> None:
    # g=(1,0), b=(0,1), x=(0.6,0.8): d=(1,-1), x-g=(-0.4,0.8), projection on d = -0.6*(1,-1).
    x, g, b = torch.tensor([[0.6, 0.8]]), torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    got = [projection_reward(x, g, b, a).item() for a in (0.0, 0.5, 1.0)]
    # alpha=0: cosine 0.6; alpha=1: 1 - |(-0.6, 0.6)|^2/2 = 0.64; alpha=.5: 1 - |(-0.5, 0.7)|^2/2 = 0.63
    assert got == pytest.approx([0.6, 0.63, 0.64], abs=1e-6)


def test_alpha_zero_is_cosine_similarity_and_scale_free() -> None:
    gen = torch.Generator().manual_seed(0)
    x, g, b = torch.randn(5, 8, generator=gen), torch.randn(8, generator=gen), torch.randn(8, generator=gen)
    expected = F.cosine_similarity(x, g[None], dim=-1)
    assert torch.allclose(projection_reward(x, g, b, 0.0), expected, atol=1e-6)
    assert torch.allclose(projection_reward(3.0 * x, g, b, 0.7), projection_reward(x, g, b, 0.7), atol=1e-6)
    with pytest.raises(PbrlError, match=r"reward.vlm.alpha: expected a number in \[0, 1\]"):
        projection_reward(x, g, b, 1.5)


def test_preprocess_resizes_crops_and_normalises() -> None:
    frames = np.full((2, 48, 64, 3), 200, dtype=np.uint8)
    frames[:, :, :8] = 0  # a dark left border that the centre crop removes
    out = preprocess_frames(torch.from_numpy(frames), 32, CLIP_MEAN, CLIP_STD)
    assert out.shape == (2, 3, 32, 32)
    expected = (200 / 255 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    assert torch.allclose(out[0, :, 16, 16], expected, atol=1e-4)
    assert torch.allclose(out[:, :, :, 2:], expected.view(1, 3, 1, 1).expand(2, 3, 32, 30), atol=2e-2)
    with pytest.raises(PbrlError, match=r"vlm frames: expected shape \(B, H, W, 3\)"):
        preprocess_frames(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), 32, CLIP_MEAN, CLIP_STD)


def test_clip_reward_equals_formula_and_batching_does_not_change_it() -> None:
    reward, frames = tiny_reward(batch_size=3), random_frames(10)
    got = reward(frames)
    assert got.shape == (10,) and got.dtype == np.float32 and np.isfinite(got).all()
    np.testing.assert_allclose(got, tiny_reward(batch_size=64)(frames), atol=1e-6)
    bb = reward.backbone
    with torch.no_grad():
        emb = bb.model.encode_image(preprocess_frames(torch.from_numpy(frames), 32, bb.mean, bb.std))
        text = bb.model.encode_text(tiny_tokenizer([reward.goal, reward.baseline]))
    np.testing.assert_allclose(got, projection_reward(emb, text[0], text[1], 0.5).numpy(), atol=1e-6)
    assert len(np.unique(got)) == 10  # different frames, different rewards
    assert reward(frames[:0]).shape == (0,)


def test_clip_reward_bad_input_is_one_line() -> None:
    with pytest.raises(PbrlError, match="prompts.goal and prompts.baseline"):
        ClipReward(tiny_reward().backbone, goal="run", baseline="")
    with pytest.raises(PbrlError, match="reward.vlm.batch_size: expected >= 1"):
        ClipReward(tiny_reward().backbone, goal="run", baseline="robot", batch_size=0)
    with pytest.raises(PbrlError, match=r"vlm frames: expected \(B, H, W, 3\) uint8"):
        tiny_reward()(random_frames(2).astype(np.float32))


@pytest.mark.skipif(HAS_OPEN_CLIP, reason="open_clip is installed here (.venv-vlm): the tiny-model test below runs instead")
def test_missing_open_clip_names_the_extra() -> None:
    from omegaconf import OmegaConf

    from pbrl.envs.tasks import load_task
    from pbrl.run.builder import build_vlm_reward

    with pytest.raises(ImportError, match=r"pip install 'pbrl\[vlm\]'"):
        load_open_clip("tiny", device="cpu")
    cfg = OmegaConf.create({"feedback": {"name": "vlm"}, "reward": {"vlm": {"model": "tiny"}}})
    with pytest.raises(PbrlError, match=r"feedback=vlm: the VLM reward needs open_clip: pip install 'pbrl\[vlm\]'"):
        build_vlm_reward(cfg, load_task("halfcheetah"))  # the CLI's one-line error


@pytest.mark.skipif(not HAS_OPEN_CLIP, reason="open_clip not installed here: `make test-vlm` runs this in .venv-vlm")
def test_tiny_open_clip_model_gives_rewards_and_offline_error_says_what_to_download() -> None:
    torch.manual_seed(0)
    backbone = load_open_clip("tiny", device="cpu")
    reward = ClipReward(backbone, goal="a robot running fast", baseline="a robot", batch_size=4)
    got = reward(random_frames(6, 128, 128))
    assert got.shape == (6,) and np.isfinite(got).all() and len(np.unique(got)) == 6
    with pytest.raises(PbrlError, match="reward.vlm.checkpoint: .* is not a file"):
        load_open_clip("ViT-B-32", checkpoint="/nonexistent/open_clip_model.bin", device="cpu")
    with pytest.raises(PbrlError, match="reward.vlm.model: 'no-such-net' is not an open_clip model"):
        load_open_clip("no-such-net", device="cpu")


@pytest.mark.skipif(not HAS_OPEN_CLIP, reason="open_clip not installed here: `make test-vlm` runs this in .venv-vlm")
def test_weights_missing_offline_fail_fast_naming_the_file(tmp_path) -> None:
    import time

    before, t0 = os.environ.get("HF_HUB_OFFLINE"), time.monotonic()
    with pytest.raises(PbrlError, match=r"no weights for ViT-B-32/laion2b_s34b_b79k here .* download "
                                        r"hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K \(open_clip_pytorch_model.bin\) "
                                        r"and set reward.vlm.checkpoint="):
        load_open_clip("ViT-B-32", pretrained="laion2b_s34b_b79k", cache_dir=str(tmp_path), device="cpu")
    assert time.monotonic() - t0 < 30  # the cache is asked, the network is not retried for a minute
    assert os.environ.get("HF_HUB_OFFLINE") == before  # the offline switch is put back


def test_dense_term_is_scored_per_episode_and_written_into_the_replay_buffer() -> None:
    from pbrl.agents.pebble import build_sac
    from pbrl.envs.tasks import load_task
    from pbrl.run.builder import make_venv

    calls: list[int] = []
    clip = tiny_reward()

    def frame_reward(frames: np.ndarray) -> np.ndarray:
        calls.append(len(frames))
        return clip(frames)

    task = load_task("halfcheetah", {"camera": {"width": 32, "height": 32}})
    venv = make_venv(task, seed=0, episode_length=5, frame_reward=frame_reward, vlm_weight=2.0)
    model = build_sac(venv, seed=0, seed_steps=100, buffer_size=100, sac_kwargs={})
    model.learn(12)  # 2 full episodes + 2 steps of a third, no gradient step (learning_starts=100)
    buf = model.replay_buffer
    assert calls == [5, 5]  # one batch per finished episode, never per step
    vlm = np.concatenate([ep.terms["vlm"] for ep in venv.episodes])
    np.testing.assert_allclose(buf.vlm_rewards[:10, 0], 2.0 * vlm, atol=1e-6)
    np.testing.assert_allclose(buf.rewards[:10, 0], 2.0 * vlm, atol=1e-6)  # no learned reward yet: 0 + term
    assert np.all(buf.vlm_rewards[10:12] == 0.0)  # the open episode has no term yet
    buf.relabel(lambda obs, act: np.ones(len(obs), dtype=np.float32))
    np.testing.assert_allclose(buf.rewards[:10, 0], 1.0 + 2.0 * vlm, atol=1e-6)
    venv.close()


def test_frame_stride_renders_every_kth_step_and_interpolates_between() -> None:
    from pbrl.envs.tasks import load_task
    from pbrl.run.builder import make_venv

    seen: list[np.ndarray] = []
    clip = tiny_reward()

    def frame_reward(frames: np.ndarray) -> np.ndarray:
        seen.append(frames)
        return clip(frames)

    task = load_task("halfcheetah", {"camera": {"width": 32, "height": 32}})
    strided = make_venv(task, seed=0, episode_length=7, frame_reward=frame_reward, frame_stride=3)
    every = make_venv(task, seed=0, episode_length=7, frame_reward=clip)
    for venv in (strided, every):
        venv.reset()
        rng = np.random.default_rng(0)  # the same actions in both
        for _ in range(7):
            venv.step(rng.uniform(-1, 1, (1, 6)).astype(np.float32))
    assert [len(f) for f in seen] == [3]  # steps 0, 3, 6 of the 7-step episode, in one batch
    full = every.episodes[0].terms["vlm"]
    got = strided.episodes[0].terms["vlm"]
    np.testing.assert_allclose(got[[0, 3, 6]], full[[0, 3, 6]], atol=1e-5)  # same frames, same scores
    np.testing.assert_allclose(got[1], (2 * full[0] + full[3]) / 3, atol=1e-5)  # linear in between
    np.testing.assert_allclose(got[5], (full[3] + 2 * full[6]) / 3, atol=1e-5)
    with pytest.raises(PbrlError, match="reward.vlm.frame_stride: expected an integer >= 1, got 0"):
        make_venv(task, seed=0, frame_reward=clip, frame_stride=0)
    strided.close()
    every.close()


def test_buffer_writes_an_episode_term_across_the_ring_wraparound() -> None:
    import gymnasium as gym

    from pbrl.agents.buffer import PreferenceReplayBuffer

    box = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    buf = PreferenceReplayBuffer(5, box, box, device="cpu", n_envs=1)
    zeros = np.zeros((1, 2), np.float32)
    for t in range(8):
        info = {"vlm_reward_term": np.array([1.0, 2.0, 3.0, 4.0], np.float32)} if t == 7 else {}
        buf.add(zeros, zeros, zeros, np.array([10.0]), np.array([t == 7]), [info])
    # step 7 lands in row 2; its episode's last 4 steps are rows 4, 0, 1, 2
    np.testing.assert_allclose(buf.vlm_rewards[[4, 0, 1, 2], 0], [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(buf.rewards[[4, 0, 1, 2], 0], [11.0, 12.0, 13.0, 14.0])
    assert buf.vlm_rewards[3, 0] == 0.0 and buf.rewards[3, 0] == 10.0


@pytest.mark.slow  # renders every env step (software MuJoCo rendering: 50-200 ms a frame on this CPU)
def test_pebble_run_with_vlm_feedback_and_dense_term(tmp_path, monkeypatch) -> None:
    """`pbrl train feedback=vlm reward.vlm.weight=0.5` in-process, the open_clip loader swapped for TinyClip."""
    import json

    from hydra import compose, initialize_config_dir

    import pbrl.rewards.vlm as vlm_mod
    from pbrl.run.config import register_tasks
    from pbrl.data.store import PreferenceStore
    from pbrl.resources import resource_dir
    from pbrl.run.runner import run_training

    monkeypatch.setattr(vlm_mod, "load_open_clip", lambda *a, **k: tiny_reward().backbone)
    # record simulator states with each segment (as feedback=human does), so the test can reproduce the
    # exact frames the camera saw and score them again below
    import pbrl.run.builder as builder_mod
    monkeypatch.setattr(builder_mod, "needs_states", lambda cfg, task: True)
    register_tasks()
    overrides = [
        # Meta-World: its cameras are fixed, so frames re-rendered from recorded states are the live ones
        "task=reach", "feedback=vlm", "reward.vlm.weight=0.5", "reward.vlm.model=tiny", "feedback.margin=0.0",
        "task.camera.width=32", "task.camera.height=32", "episode_length=20", "segment_length=5",
        "budget.env_steps=120", "algo.seed_steps=40", "budget.every=40", "budget.labels=10", "budget.per_round=5",
        "algo=sac", "algo.sac.batch_size=16", "algo.sac.policy_kwargs.net_arch=[16,16]", "reward.epochs=2",
        "reward.model.hidden=[16,16]", "eval.every=120", "eval.episodes=1", "eval.final_episodes=1",
        "eval.video=false", "eval.reward_pairs=20", "checkpoint_every=120", "threads=1",
    ]
    with initialize_config_dir(str(resource_dir("configs")), version_base=None):
        cfg = compose("train", overrides=[f"out={tmp_path}/run", *overrides])
    summary = run_training(cfg, tmp_path / "run")
    assert summary["env_steps"] == 120 and summary["labels_used"] == 10
    with PreferenceStore(tmp_path / "run" / "store.sqlite", create=False) as store:
        assert store.count_labels(include_skipped=True, sources=["vlm"]) == 10
        batch = store.pair_batch(sources=["vlm"])
    assert set(np.unique(batch.p)) <= {0.0, 1.0} and len(batch.p) == 10  # margin 0: every pair decided
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["labels_used"] == 10
    # the stored `vlm` column is the CLIP score of what the camera saw: re-render the labelled segments from
    # their recorded states and score them with a fresh copy of the run's reward; the labels follow its means
    from pbrl.run import builder
    from pbrl.envs.render import render_from_states

    task = builder.build_task(cfg)
    clip = builder.build_vlm_reward(cfg, task)
    with PreferenceStore(tmp_path / "run" / "store.sqlite", create=False) as store:
        rows = store.labels(sources=["vlm"])
        segs = store.get_segments([i for r in rows for i in (r.first_id, r.second_id)], with_frames=True)
    for seg in segs[:6]:
        np.testing.assert_allclose(seg.terms["vlm"], clip(render_from_states(task, seg.states, seg.scene)), atol=1e-4)
    means = np.array([s.terms["vlm"].mean() for s in segs]).reshape(-1, 2)
    np.testing.assert_array_equal([r.label for r in rows], (means[:, 0] > means[:, 1]).astype(np.float32))

"""PebbleTrainer's phases on a real run: a real MuJoCo env, real SB3 SAC, ensemble, scripted teacher and store.

The env is Pusher (actions in [-2, 2], so the buffer's [-1, 1] actions must be unscaled before the reward model sees
them). Phases checked against the schedule worked out by hand for this config: seed steps 0-100, unsupervised
pre-training 100-200, feedback sessions at 200, 300 and 400 (10 queries each, 30 in all), training to 500.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pbrl.agents import pebble
from pbrl.agents.pebble import PebbleConfig, PebbleTrainer, build_sac
from pbrl.agents.preference import FeedbackLoop, FeedbackSchedule
from pbrl.data.store import PreferenceStore
from pbrl.feedback.teachers import teacher_from_preset
from pbrl.rewards.ensemble import EnsembleReward
from pbrl.rewards.wrappers import RewardNormalizer
from pbrl.run.builder import make_venv
from tiny_parts import pusher_task

SEED_STEPS, UNSUP_STEPS, EVERY, TOTAL, PER_ROUND, LABELS, AFTER_RESET = 100, 100, 100, 500, 10, 30, 7


class Recorder:
    """What happened, and when, in one run (filled by spies that call the real functions)."""

    def __init__(self) -> None:
        self.rounds: list[tuple[int, int]] = []  # (env step at the session, queries asked)
        self.resets: list[int] = []
        self.entropy_steps: list[int] = []
        self.chunks: list[tuple[int, bool]] = []  # (env step after the chunk, a session started it)
        self.checked_fits = 0


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[PebbleTrainer, Recorder]:
    torch.set_num_threads(1)  # module-scoped: runs before the autouse one-thread fixture
    torch.manual_seed(0)
    venv = make_venv(pusher_task(), seed=0)
    model = build_sac(venv, seed=0, seed_steps=SEED_STEPS, buffer_size=1000,
                      sac_kwargs={"batch_size": 32, "policy_kwargs": {"net_arch": [32, 32]}})
    store = PreferenceStore(Path(tmp_path_factory.mktemp("pebble")) / "store.sqlite")
    feedback = FeedbackLoop(
        reward_model=EnsembleReward(23, 7, n_members=3, hidden=(32, 32), seed=0),
        labeller=teacher_from_preset("oracle", rng=np.random.default_rng(1)), store=store,
        schedule=FeedbackSchedule(max_labels=LABELS, per_round=PER_ROUND, every=EVERY, segment_length=10,
                                  strategy="disagreement", reward_epochs=5),
        source="scripted", rng=np.random.default_rng(2), normalizer=RewardNormalizer("standard"))
    rec = Recorder()
    cfg = PebbleConfig(total_steps=TOTAL, seed_steps=SEED_STEPS, unsup_steps=UNSUP_STEPS, entropy_k=5,
                       update_after_reset=AFTER_RESET, chunk_steps=50)
    trainer = PebbleTrainer(model, venv, feedback, cfg,
                            on_chunk=lambda step, res: rec.chunks.append((step, res is not None)))
    _spy(trainer, rec)
    mp = pytest.MonkeyPatch()
    real_reset = pebble.reset_critic

    def counting_reset(m):
        before = [p.detach().clone() for p in m.critic.parameters()]
        real_reset(m)
        rec.resets.append(m.num_timesteps)
        assert not any(torch.equal(a, b) for a, b in zip(before, m.critic.parameters()) if a.dim() > 1)

    mp.setattr(pebble, "reset_critic", counting_reset)
    try:
        trainer.train()
    finally:
        mp.undo()
        venv.close()
    yield trainer, rec
    store.close()


def _spy(trainer: PebbleTrainer, rec: Recorder) -> None:
    """Wrap the feedback loop's round, the buffer's entropy reward and the trainer's reward refresh (real calls)."""
    feedback, model = trainer.feedback, trainer.model
    real_round, real_entropy = feedback.round, trainer.buffer._state_entropy_reward
    real_refresh = trainer.refresh_reward

    def round_(episodes, **kw):
        result = real_round(episodes, **kw)
        rec.rounds.append((model.num_timesteps, 0 if result is None else result.asked))
        return result

    def entropy(states):
        rec.entropy_steps.append(model.num_timesteps)
        return real_entropy(states)

    def refresh():
        n_before = trainer.buffer.size_now
        old = trainer.buffer.rewards[:n_before, 0].copy()
        real_refresh()
        _check_whole_buffer_is_the_new_models(trainer, old)
        rec.checked_fits += 1

    feedback.round = round_
    trainer.buffer._state_entropy_reward = entropy
    trainer.refresh_reward = refresh


def _check_whole_buffer_is_the_new_models(trainer: PebbleTrainer, old: np.ndarray | None = None) -> None:
    """Every stored reward is the new model's normalised prediction on (obs, env action), worked out here: Pusher's
    env action is 2 x SAC's [-1, 1] action, and right after a fit the standard normaliser is (r - mean) / std over
    the buffer (later rows reuse that fitted shift and scale)."""
    buf, model, norm = trainer.buffer, trainer.feedback.reward_model, trainer.feedback.normalizer
    n = buf.size_now
    raw = model.predict(buf.observations[:n, 0], 2.0 * buf.actions[:n, 0])
    shift, scale = (raw.mean(), raw.std() + 1e-8) if old is not None else (norm.shift, norm.scale)
    expected = (raw - shift) / scale
    np.testing.assert_allclose(buf.rewards[:n, 0], expected, rtol=1e-4, atol=1e-4)
    if old is not None:  # rows written before the fit changed: all of them were relabelled
        assert not np.allclose(old, expected, atol=1e-3)


def test_feedback_sessions_follow_the_schedule(run) -> None:
    trainer, rec = run
    assert rec.rounds == [(200, PER_ROUND), (300, PER_ROUND), (400, PER_ROUND)]
    assert trainer.feedback.labels_used == LABELS and trainer.feedback.budget_left == 0
    assert trainer.feedback.store.count_labels(sources=["scripted"], include_skipped=True) == LABELS
    assert trainer.model.num_timesteps == TOTAL
    assert [step for step, session in rec.chunks if session] == [250, 350, 450]  # hooks see each session's chunk


def test_whole_buffer_is_relabelled_with_the_new_model_after_every_fit(run) -> None:
    trainer, rec = run
    assert rec.checked_fits == 3  # the check inside the spy ran (and passed) after each of the three fits
    _check_whole_buffer_is_the_new_models(trainer)  # and at the end, rows added since with the same reward
    assert trainer.venv.reward_fn == trainer.feedback.reward_fn  # new transitions get the same reward


def test_critic_is_reset_once_then_trained_update_after_reset_steps(run) -> None:
    trainer, rec = run
    assert rec.resets == [SEED_STEPS + UNSUP_STEPS] and trainer.critic_was_reset
    # SB3 trains once per env step after learning_starts (steps 101..500), plus BPref's reset_update steps
    assert trainer.model._n_updates == (TOTAL - SEED_STEPS) + AFTER_RESET
    for a, b in zip(trainer.model.critic.parameters(), trainer.model.critic_target.parameters()):
        assert a.shape == b.shape


def test_intrinsic_reward_only_inside_the_unsupervised_window(run) -> None:
    trainer, rec = run
    # one entropy-rewarded batch per gradient step while 100 < t <= 200; none later (not in the reset updates)
    assert len(rec.entropy_steps) == UNSUP_STEPS
    assert min(rec.entropy_steps) == SEED_STEPS + 1 and max(rec.entropy_steps) == SEED_STEPS + UNSUP_STEPS
    assert trainer.buffer.intrinsic_k is None
    sample = trainer.buffer.sample(64)
    stored = torch.as_tensor(trainer.buffer.rewards[: trainer.buffer.size_now, 0])
    assert all(bool((stored == r).any()) for r in sample.rewards.flatten())  # rewards come from the buffer now


def test_first_session_after_a_resume_resets_and_trains_the_loaded_model(tmp_path: Path) -> None:
    """A run killed during its seed steps resumes from SAC.load, which has no SB3 logger until learn(): the
    critic reset and its update_after_reset steps must still run there."""
    from stable_baselines3 import SAC

    torch.set_num_threads(1)
    venv = make_venv(pusher_task(), seed=0)
    kwargs = {"batch_size": 16, "policy_kwargs": {"net_arch": [16, 16]}}
    model = build_sac(venv, seed=0, seed_steps=100, buffer_size=500, sac_kwargs=kwargs)
    model.learn(100)  # the seed steps, then "killed" right at the first feedback step
    model.save(tmp_path / "agent.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    loaded = SAC.load(tmp_path / "agent.zip", env=venv, device="cpu")
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    with PreferenceStore(tmp_path / "store.sqlite") as store:
        feedback = FeedbackLoop(
            reward_model=EnsembleReward(23, 7, n_members=2, hidden=(16,), seed=0),
            labeller=teacher_from_preset("oracle", rng=np.random.default_rng(1)), store=store,
            schedule=FeedbackSchedule(max_labels=10, per_round=10, every=100, segment_length=10, reward_epochs=2),
            source="scripted", rng=np.random.default_rng(2))
        cfg = PebbleConfig(total_steps=300, seed_steps=100, update_after_reset=5)
        trainer = PebbleTrainer(loaded, venv, feedback, cfg, on_chunk=lambda step, res: None)
        updates = loaded._n_updates
        assert trainer.feedback_session() is not None
    assert trainer.critic_was_reset and loaded._n_updates == updates + 5
    venv.close()

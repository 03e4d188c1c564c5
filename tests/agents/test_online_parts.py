"""The learner-side pieces of PEBBLE on real SB3 objects: wrapper, relabelled buffer, critic reset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pbrl.agents.pebble import build_sac, reset_critic
from pbrl.envs import load_task
from pbrl.rewards.wrappers import RewardNormalizer
from pbrl.run.builder import make_venv
from pbrl.types import PbrlError


def _venv(episode_length: int = 30, seed: int = 0):
    return make_venv(load_task("halfcheetah"), seed=seed, episode_length=episode_length)


def test_wrapper_replaces_reward_and_records_episodes() -> None:
    venv = _venv()
    venv.reward_fn = lambda obs, act: obs[:, 0] + 10.0 * act[:, 0]
    obs = venv.reset()
    for t in range(65):
        act = np.full((1, 6), 0.1 * ((t % 3) - 1), np.float32)
        new_obs, rew, done, info = venv.step(act)
        assert rew[0] == np.float32(obs[0, 0] + 10.0 * act[0, 0])
        assert "true_reward" in info[0] and "reward_terms" in info[0]
        obs = new_obs
    assert venv.episodes_done == 2 and len(venv.episodes) == 2
    ep = venv.episodes[0]
    assert len(ep) == 30 and ep.obs.shape == (31, 17)
    np.testing.assert_allclose(ep.terms["reward_forward"] + ep.terms["reward_ctrl"], ep.rewards, atol=1e-5)
    assert ep.success is None
    venv.close()


def test_relabel_whole_buffer_with_env_unit_actions_and_keep_true_rewards() -> None:
    """Pusher's actions live in [-2, 2]: the reward model must see 2 x SAC's stored [-1, 1] action."""
    from tiny_parts import pusher_task

    venv = make_venv(pusher_task(), seed=0)
    model = build_sac(venv, seed=0, seed_steps=100, buffer_size=500, sac_kwargs={})
    model.learn(60)  # random actions only: fills the buffer
    buf = model.replay_buffer
    assert buf.size_now == 60
    assert np.any(buf.true_rewards[:60] != 0) and np.all(buf.rewards[:60] == 0)  # reward_fn is None: zeros
    n = buf.relabel(lambda obs, act: obs.sum(-1) + act.sum(-1))
    assert n == 60
    env_act = 2.0 * buf.actions[:60, 0]  # low + (a + 1) / 2 * (high - low) with low = -2, high = 2
    assert np.abs(env_act).max() > 1.0  # the test would not see a missing unscaling otherwise
    np.testing.assert_allclose(buf.rewards[:60, 0], buf.observations[:60, 0].sum(-1) + env_act.sum(-1), rtol=1e-5)
    assert np.all(buf.rewards[60:] == 0)
    obs, acts, true = buf.stored_transitions()
    np.testing.assert_allclose(acts, env_act, atol=1e-6)
    ep = venv.episodes[0]  # true rewards are the env's own, step by step
    np.testing.assert_allclose(true[: len(ep)], ep.rewards, atol=1e-6)
    venv.close()


def test_state_entropy_reward_is_bprefs_knn_distance_over_a_running_std() -> None:
    """Worked out with numpy: distance to the (k+1)-th nearest stored observation (the first is the state
    itself), divided by the std of a running estimate started at mean 0, variance 1, count 1e-4 (BPref)."""
    venv = _venv()
    model = build_sac(venv, seed=0, seed_steps=100, buffer_size=500, sac_kwargs={})
    model.learn(50)
    buf = model.replay_buffer
    buf.intrinsic_k = 3
    stored = buf.observations[:50, 0].astype(np.float64)
    batch = stored[[0, 7, 21, 40]]
    knn = np.array([np.sort(np.sqrt(((stored - s) ** 2).sum(-1)))[3] for s in batch])  # 4th smallest: k = 3
    b_mean, b_var, count = knn.mean(), knn.var(ddof=1), 4 + 1e-4  # Chan's update from (0, 1, 1e-4)
    var = (1.0 * 1e-4 + b_var * 4 + b_mean**2 * 1e-4 * 4 / count) / count
    got = buf._state_entropy_reward(torch.as_tensor(batch, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(got, knn / np.sqrt(var), rtol=1e-4)
    assert np.all(got > 0)  # no mean subtracted: the reward keeps its sign
    far = torch.as_tensor(np.concatenate([batch, batch + 100.0]), dtype=torch.float32)
    reward = buf._state_entropy_reward(far)
    assert reward[4:].min() > reward[:4].max()  # a far-away state is rewarded more than the stored ones
    # while pre-training, sampled batches carry the entropy reward of their observations, not the stored reward
    sample = buf.sample(8)
    assert torch.all(sample.rewards > 0) and not np.any(np.isin(sample.rewards.numpy(), buf.rewards[:50]))
    venv.close()


def test_running_std_matches_the_pooled_std_and_knn_scans_chunks(monkeypatch) -> None:
    from pbrl.agents import buffer as buffer_mod
    from pbrl.agents.buffer import RunningStd, knn_distance

    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0 + k, 2.0, size=256) for k in range(5)]
    stats = RunningStd()
    for b in batches:
        stats.update(b)
    assert stats.std == pytest.approx(np.concatenate(batches).std(), rel=1e-2)
    assert stats.mean == pytest.approx(np.concatenate(batches).mean(), rel=1e-4)
    states, pool = torch.randn(6, 3), torch.randn(50, 3)
    whole = knn_distance(states, pool, 4)
    monkeypatch.setattr(buffer_mod, "KNN_CHUNK", 7)
    np.testing.assert_allclose(knn_distance(states, pool, 4).numpy(), whole.numpy(), rtol=1e-6)
    by_hand = np.sort(np.sqrt(((states.numpy()[:, None] - pool.numpy()[None]) ** 2).sum(-1)), axis=1)[:, 3]
    np.testing.assert_allclose(whole.numpy(), by_hand, rtol=1e-5)


def test_reset_critic_keeps_actor_and_syncs_target() -> None:
    venv = _venv()
    model = build_sac(venv, seed=0, seed_steps=20, buffer_size=500, sac_kwargs={"batch_size": 16})
    model.learn(80)
    actor = [p.clone() for p in model.actor.parameters()]
    critic = [p.clone() for p in model.critic.parameters()]
    reset_critic(model)
    assert all(torch.equal(a, b) for a, b in zip(actor, model.actor.parameters()))
    assert not any(torch.equal(a, b) for a, b in zip(critic, model.critic.parameters()) if a.dim() > 1)
    assert all(torch.equal(a, b) for a, b in zip(model.critic.parameters(), model.critic_target.parameters()))
    assert not model.critic.optimizer.state  # fresh optimiser
    model.learn(10, reset_num_timesteps=False)  # training goes on with the new critic
    venv.close()


def test_normalizer_modes() -> None:
    r = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    std = RewardNormalizer("standard")
    std.fit(r)
    assert abs(std(r).mean()) < 1e-6 and abs(std(r).std() - 1) < 1e-5
    scale = RewardNormalizer("scale")
    scale.fit(r)
    assert np.all(scale(r) > 0) and abs(scale(r).std() - 1) < 1e-5
    none = RewardNormalizer("none")
    none.fit(r)
    np.testing.assert_array_equal(none(r), r)


def test_short_episodes_are_padded_with_their_absorbing_state() -> None:
    from pbrl.agents.preference import FeedbackLoop, FeedbackSchedule
    from pbrl.data.trajectory import Trajectory
    from pbrl.feedback.teachers import teacher_from_preset

    ep = Trajectory(obs=np.arange(8, dtype=np.float32).reshape(4, 2), acts=np.ones((3, 1), np.float32),
                    rewards=np.ones(3, np.float32), terms={"alive": np.ones(3, np.float32)})
    padded = ep.padded(6)
    assert len(padded) == 6 and padded.obs.shape == (7, 2)
    np.testing.assert_array_equal(padded.obs[3:], np.repeat(ep.obs[-1:], 4, axis=0))
    np.testing.assert_array_equal(padded.rewards, [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(padded.terms["alive"], [1, 1, 1, 0, 0, 0])
    feedback = FeedbackLoop(reward_model=None, labeller=teacher_from_preset("oracle", rng=np.random.default_rng(0)),
                            store=None, rng=np.random.default_rng(0), source="scripted",
                            schedule=FeedbackSchedule(max_labels=10, per_round=5, every=10, segment_length=6))
    segs = feedback.cut_segments([ep], 4)
    assert len(segs) == 4 and all(len(s) == 6 and s.true_return == 3.0 for s in segs)


def test_auto_normalisation_keeps_the_raw_mean_where_episodes_end_early() -> None:
    from pbrl.rewards.wrappers import resolve_normalize
    from pbrl.run.builder import build_normalizer
    from omegaconf import OmegaConf

    assert resolve_normalize("auto", early_termination=True) == "none"
    assert resolve_normalize("auto", early_termination=False) == "standard"
    assert resolve_normalize("scale", early_termination=True) == "scale"
    cfg = OmegaConf.create({"reward": {"normalize": "auto"}})
    assert build_normalizer(cfg, load_task("hopper")).mode == "none"
    assert build_normalizer(cfg, load_task("walker2d")).mode == "none"
    assert build_normalizer(cfg, load_task("halfcheetah")).mode == "standard"
    assert build_normalizer(cfg, load_task("drawer-open")).mode == "standard"
    cfg.reward.normalize = "cubic"
    with pytest.raises(PbrlError, match=r"reward.normalize: expected standard \| scale \| none \| auto, got 'cubic'"):
        build_normalizer(cfg, load_task("hopper"))


def test_update_after_reset_is_checked() -> None:
    from pbrl.agents.pebble import PebbleConfig

    assert PebbleConfig(total_steps=2000).update_after_reset == 100  # BPref's reset_update
    with pytest.raises(PbrlError, match="algo.update_after_reset: expected an integer >= 0, got -1"):
        PebbleConfig(total_steps=2000, update_after_reset=-1)

"""The learner-side pieces of PEBBLE on real SB3 objects: wrapper, relabelled buffer, critic reset."""

from __future__ import annotations

import numpy as np
import torch

from pbrl.agents.pebble import build_sac, reset_critic
from pbrl.envs import load_task
from pbrl.rewards.wrappers import RewardNormalizer
from pbrl.run.builder import make_venv


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


def test_relabel_whole_buffer_and_keep_true_rewards() -> None:
    venv = _venv()
    model = build_sac(venv, seed=0, seed_steps=100, buffer_size=500, sac_kwargs={})
    model.learn(60)  # random actions only: fills the buffer
    buf = model.replay_buffer
    assert buf.size_now == 60
    assert np.any(buf.true_rewards[:60] != 0) and np.all(buf.rewards[:60] == 0)  # reward_fn is None: zeros
    n = buf.relabel(lambda obs, act: obs.sum(-1) + act.sum(-1))
    obs, acts, true = buf.stored_transitions()
    assert n == 60
    np.testing.assert_allclose(buf.rewards[:60, 0], obs.sum(-1) + acts.sum(-1), rtol=1e-5)
    assert np.all(buf.rewards[60:] == 0)
    # actions handed to the reward are in env units: here the env's range equals SAC's [-1, 1]
    np.testing.assert_allclose(acts, buf.actions[:60, 0], atol=1e-6)
    venv.close()


def test_state_entropy_reward_prefers_novel_states() -> None:
    venv = _venv()
    model = build_sac(venv, seed=0, seed_steps=100, buffer_size=500, sac_kwargs={})
    model.learn(50)
    buf = model.replay_buffer
    buf.intrinsic_k = 5
    stored = torch.as_tensor(buf.next_observations[:10, 0])
    far = stored + 100.0
    reward = buf._state_entropy_reward(torch.cat([stored, far]))
    assert reward[10:].min() > reward[:10].max()
    venv.close()


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
    from pbrl.agents.preference import FeedbackSchedule, PreferenceLearner
    from pbrl.data.trajectory import Trajectory

    ep = Trajectory(obs=np.arange(8, dtype=np.float32).reshape(4, 2), acts=np.ones((3, 1), np.float32),
                    rewards=np.ones(3, np.float32), terms={"alive": np.ones(3, np.float32)})
    padded = ep.padded(6)
    assert len(padded) == 6 and padded.obs.shape == (7, 2)
    np.testing.assert_array_equal(padded.obs[3:], np.repeat(ep.obs[-1:], 4, axis=0))
    np.testing.assert_array_equal(padded.rewards, [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(padded.terms["alive"], [1, 1, 1, 0, 0, 0])
    learner = PreferenceLearner(reward_model=None, labeller=None, store=None, rng=np.random.default_rng(0),
                                schedule=FeedbackSchedule(max_labels=10, per_round=5, every=10, segment_length=6),
                                source="scripted")
    segs = learner.cut_segments([ep], 4)
    assert len(segs) == 4 and all(len(s) == 6 and s.true_return == 3.0 for s in segs)

"""PEBBLE's learner-side phases on both SAC backends (SB3 torch, sbx JAX), on real envs and real updates.

Each check reads the backend's own parameters (torch modules / flax pytrees), so what is asserted is the state of
the library's model, not pbrl's view of it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pbrl.agents.backends import backend_of, get_backend
from pbrl.agents.pebble import PebbleConfig, PebbleTrainer, build_sac, reset_critic
from pbrl.agents.preference import FeedbackSchedule, PreferenceLearner
from pbrl.data.store import PreferenceStore
from pbrl.envs import load_task
from pbrl.feedback.teachers import teacher_from_preset
from pbrl.rewards.ensemble import EnsembleReward
from pbrl.run.builder import make_venv
from pbrl.types import PbrlError

BACKENDS = ["sb3", "sbx"]
SMALL = {"batch_size": 16, "policy_kwargs": {"net_arch": [32, 32]}}


def _venv(episode_length: int = 30):
    return make_venv(load_task("halfcheetah"), seed=0, episode_length=episode_length)


def _params(model, which: str) -> list[np.ndarray]:
    """Flat copies of the actor / critic / critic-target parameters, whatever the library."""
    if backend_of(model).name == "sb3":
        module = {"actor": model.actor, "critic": model.critic, "target": model.critic_target}[which]
        return [p.detach().numpy().copy() for p in module.parameters()]
    import jax

    state = {"actor": model.policy.actor_state, "critic": model.policy.qf_state, "target": model.policy.qf_state}[which]
    tree = state.target_params if which == "target" else state.params
    return [np.asarray(x).copy() for x in jax.tree_util.tree_leaves(tree)]


def _critic_optimizer_is_fresh(model) -> bool:
    if backend_of(model).name == "sb3":
        return not model.critic.optimizer.state
    import jax

    # optax adam: step count 0 and zero moments
    leaves = jax.tree_util.tree_leaves(model.policy.qf_state.opt_state)
    return int(model.policy.qf_state.step) == 0 and all(not np.any(np.asarray(x)) for x in leaves
                                                         if np.asarray(x).dtype != np.int32 and np.asarray(x).ndim > 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_relabel_rewrites_the_whole_buffer_and_keeps_true_rewards(backend: str) -> None:
    venv = _venv()
    model = build_sac(venv, seed=0, seed_steps=100, buffer_size=500, sac_kwargs=SMALL, backend=backend)
    model.learn(60)
    buf = model.replay_buffer
    assert type(buf).__name__ == "PreferenceReplayBuffer" and buf.size_now == 60
    assert np.any(buf.true_rewards[:60] != 0) and np.all(buf.rewards[:60] == 0)
    assert buf.relabel(lambda obs, act: obs[:, 0] * 2.0 - act[:, 1]) == 60
    expected = buf.observations[:60, 0, 0] * 2.0 - buf.actions[:60, 0, 1]  # halfcheetah's bounds are SAC's [-1, 1]
    np.testing.assert_allclose(buf.rewards[:60, 0], expected, rtol=1e-5, atol=1e-6)
    venv.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_reset_critic_keeps_actor_syncs_target_and_refreshes_optimiser(backend: str) -> None:
    venv = _venv()
    model = build_sac(venv, seed=0, seed_steps=20, buffer_size=500, sac_kwargs=SMALL, backend=backend)
    model.learn(80)
    actor, critic = _params(model, "actor"), _params(model, "critic")
    assert not _critic_optimizer_is_fresh(model)
    reset_critic(model)
    assert all(np.array_equal(a, b) for a, b in zip(actor, _params(model, "actor")))
    new = _params(model, "critic")
    assert not any(np.array_equal(a, b) for a, b in zip(critic, new) if a.ndim > 1)  # weights re-drawn
    assert all(np.array_equal(a, b) for a, b in zip(new, _params(model, "target")))
    assert _critic_optimizer_is_fresh(model)
    model.learn(10, reset_num_timesteps=False)  # training goes on with the new critic
    assert not any(np.array_equal(a, b) for a, b in zip(new, _params(model, "critic")) if a.ndim > 1)
    venv.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_updates_train_on_the_intrinsic_reward_in_the_entropy_window(backend: str, monkeypatch) -> None:
    venv = _venv()
    model = build_sac(venv, seed=0, seed_steps=20, buffer_size=500, sac_kwargs=SMALL, backend=backend)
    model.learn(40)
    buf = model.replay_buffer
    seen: list[torch.Tensor] = []
    original = type(buf)._get_samples

    def spy(self, inds, env=None):
        samples = original(self, inds, env)
        seen.append(samples.rewards.detach().clone())
        return samples

    monkeypatch.setattr(type(buf), "_get_samples", spy)
    buf.intrinsic_k = 5
    model.learn(5, reset_num_timesteps=False)
    assert seen, "the update drew no batch"
    # standardised k-NN distances over the batch (stored rewards are all zero before any reward fit)
    assert all(abs(float(r.mean())) < 1e-4 and abs(float(r.std()) - 1.0) < 1e-3 for r in seen)
    seen.clear()
    buf.intrinsic_k = None
    model.learn(5, reset_num_timesteps=False)
    assert seen and all(float(r.abs().max()) == 0.0 for r in seen)
    venv.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_save_load_round_trip_keeps_policy_buffer_and_counters(backend: str, tmp_path) -> None:
    venv = _venv()
    model = build_sac(venv, seed=0, seed_steps=20, buffer_size=500, sac_kwargs=SMALL, backend=backend)
    model.learn(60)
    model.replay_buffer.relabel(lambda obs, act: obs[:, 1])
    model.save(tmp_path / "agent.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    loaded = get_backend(backend).load(tmp_path / "agent.zip", venv, "cpu")
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    assert backend_of(loaded).name == backend and loaded.num_timesteps == 60
    obs = np.random.default_rng(0).normal(size=(8, 17)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0],
                               atol=1e-6)
    np.testing.assert_array_equal(loaded.replay_buffer.rewards[:60], model.replay_buffer.rewards[:60])
    np.testing.assert_array_equal(loaded.replay_buffer.true_rewards[:60], model.replay_buffer.true_rewards[:60])
    loaded.learn(10, reset_num_timesteps=False)
    assert loaded.num_timesteps == 70
    venv.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_pebble_trainer_phases(backend: str, tmp_path) -> None:
    """The whole loop: entropy window, first fit -> whole-buffer relabel + one critic reset, later refits."""
    venv = _venv(episode_length=50)
    model = build_sac(venv, seed=0, seed_steps=100, buffer_size=1000, sac_kwargs=SMALL, backend=backend)
    rng = np.random.default_rng(0)
    learner = PreferenceLearner(
        reward_model=EnsembleReward(17, 6, n_members=2, hidden=(16,), seed=0),
        labeller=teacher_from_preset("oracle", rng=rng), store=PreferenceStore(tmp_path / "s.sqlite"),
        schedule=FeedbackSchedule(max_labels=12, per_round=6, every=100, segment_length=10, strategy="uniform",
                                  reward_epochs=2), source="scripted", rng=rng)
    resets: list[int] = []
    original_reset = type(backend_of(model)).reset_critic

    def counting_reset(self, m):
        resets.append(m.num_timesteps)
        original_reset(self, m)

    entropy_steps: list[int] = []
    chunks: list[int] = []

    def on_chunk(step, result):
        chunks.append(step)
        if model.replay_buffer.intrinsic_k is not None:
            entropy_steps.append(step)

    cfg = PebbleConfig(total_steps=400, seed_steps=100, unsup_steps=100, chunk_steps=50)
    trainer = PebbleTrainer(model, venv, learner, cfg, on_chunk=on_chunk)
    type(backend_of(model)).reset_critic = counting_reset
    try:
        trainer.train()
    finally:
        type(backend_of(model)).reset_critic = original_reset
    assert model.num_timesteps == 400 and chunks[-1] == 400
    assert entropy_steps and max(entropy_steps) <= 200  # intrinsic reward only inside [seed, seed + unsup)
    assert resets == [200]  # once, at the first fit, right after the entropy window
    assert learner.labels_used == 12 and trainer.critic_was_reset
    obs, acts, _ = model.replay_buffer.stored_transitions()
    fresh = learner.reward_fn(obs, acts)
    n_relabelled = 300  # the last refit at step 300 relabelled rows [0, 300); later rows got the same reward online
    np.testing.assert_allclose(model.replay_buffer.rewards[:n_relabelled, 0], fresh[:n_relabelled], rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(model.replay_buffer.rewards[n_relabelled:400, 0], fresh[n_relabelled:400], rtol=1e-4,
                               atol=1e-5)
    learner.store.close()
    venv.close()


def test_unknown_backend_is_a_one_line_error() -> None:
    with pytest.raises(PbrlError, match="algo.backend: 'torchrl' is not a learner backend; expected one of: sb3, sbx"):
        get_backend("torchrl")
    with pytest.raises(PbrlError, match="no learner backend for a builtins.object model"):
        backend_of(object())

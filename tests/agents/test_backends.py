"""PEBBLE's learner-side phases on every learner (SB3 SAC, sbx SAC, sbx CrossQ), on real envs and real updates.

Each check reads the backend's own parameters (torch modules / flax pytrees), so what is asserted is the state of
the library's model, not pbrl's view of it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pbrl.agents.backends import backend_of, get_backend
from pbrl.agents.pebble import PebbleConfig, PebbleTrainer, reset_critic
from pbrl.agents.preference import FeedbackLoop, FeedbackSchedule
from pbrl.data.store import PreferenceStore
from pbrl.envs import load_task
from pbrl.feedback.teachers import teacher_from_preset
from pbrl.rewards.ensemble import EnsembleReward
from pbrl.run.builder import make_venv
from pbrl.types import PbrlError

LEARNERS = [("sb3", "sac"), ("sbx", "sac"), ("sbx", "crossq")]
SMALL = {"batch_size": 16, "policy_kwargs": {"net_arch": [32, 32]}}


def build(learner: tuple[str, str], venv, *, seed_steps: int, buffer_size: int = 500):
    backend, algo = learner
    return get_backend(backend, algo).build(venv, algo=algo, seed=0, seed_steps=seed_steps, buffer_size=buffer_size,
                                            kwargs=dict(SMALL), device="cpu")


def _venv(episode_length: int = 30):
    return make_venv(load_task("halfcheetah"), seed=0, episode_length=episode_length)


def _params(model, which: str) -> list[np.ndarray]:
    """Flat copies of the actor / critic / critic-target / critic-statistics arrays, whatever the library."""
    if backend_of(model).name == "sb3":
        module = {"actor": model.actor, "critic": model.critic, "target": model.critic_target}[which]
        return [p.detach().numpy().copy() for p in module.parameters()]
    import jax

    state = model.policy.actor_state if which == "actor" else model.policy.qf_state
    tree = {"actor": "params", "critic": "params", "target": "target_params", "stats": "batch_stats"}[which]
    return [np.asarray(x).copy() for x in jax.tree_util.tree_leaves(getattr(state, tree))]


def _renorm_layers(tree) -> list[dict]:
    """The BatchRenorm statistics dicts (mean, var, steps, ...) in a flax batch_stats tree, as numpy."""
    if isinstance(tree, dict) and "mean" in tree:
        return [{k: np.asarray(v) for k, v in tree.items()}]
    return [lay for sub in (tree.values() if isinstance(tree, dict) else []) for lay in _renorm_layers(sub)]


def _critic_optimizer_is_fresh(model) -> bool:
    if backend_of(model).name == "sb3":
        return not model.critic.optimizer.state
    import jax

    # optax adam: step 0, zero moments (scalar leaves are counts and injected hyperparameters)
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(model.policy.qf_state.opt_state)]
    return int(model.policy.qf_state.step) == 0 and all(not np.any(x) for x in leaves if x.ndim > 0)


@pytest.mark.parametrize("learner", LEARNERS, ids="-".join)
def test_relabel_rewrites_the_whole_buffer_and_keeps_true_rewards(learner) -> None:
    venv = _venv()
    model = build(learner, venv, seed_steps=100)
    model.learn(60)
    buf = model.replay_buffer
    assert type(buf).__name__ == "PreferenceReplayBuffer" and buf.size_now == 60
    assert np.any(buf.true_rewards[:60] != 0) and np.all(buf.rewards[:60] == 0)
    assert buf.relabel(lambda obs, act: obs[:, 0] * 2.0 - act[:, 1]) == 60
    expected = buf.observations[:60, 0, 0] * 2.0 - buf.actions[:60, 0, 1]  # halfcheetah's bounds are SAC's [-1, 1]
    np.testing.assert_allclose(buf.rewards[:60, 0], expected, rtol=1e-5, atol=1e-6)
    venv.close()


def _spy_rewards(buf, monkeypatch) -> list[torch.Tensor]:
    """The reward column of every batch the learner's updates draw from ``buf`` from now on."""
    seen: list[torch.Tensor] = []
    original = type(buf)._get_samples

    def spy(self, inds, env=None):
        samples = original(self, inds, env)
        seen.append(samples.rewards.detach().clone())
        return samples

    monkeypatch.setattr(type(buf), "_get_samples", spy)
    return seen


@pytest.mark.parametrize("learner", LEARNERS, ids="-".join)
def test_entropy_window_then_critic_reset(learner, monkeypatch) -> None:
    """Updates see the k-NN reward only inside the window; the reset re-draws the critic and nothing else.

    One model per learner for both phases: every new sbx model compiles its update again (seconds of CPU).
    """
    venv = _venv()
    model = build(learner, venv, seed_steps=20)
    model.learn(40)
    buf = model.replay_buffer
    seen = _spy_rewards(buf, monkeypatch)
    buf.intrinsic_k = 5
    model.learn(5, reset_num_timesteps=False)
    assert seen, "the update drew no batch"
    # k-NN distances / their running std (BPref: positive, no mean subtracted; stored rewards are all zero here)
    assert all(float(r.min()) > 0.0 and float(r.std()) > 0.0 for r in seen)
    seen.clear()
    buf.intrinsic_k = None
    model.learn(35, reset_num_timesteps=False)
    assert seen and all(float(r.abs().max()) == 0.0 for r in seen)

    actor, critic = _params(model, "actor"), _params(model, "critic")
    assert not _critic_optimizer_is_fresh(model)
    if learner[1] == "crossq":
        assert all(int(np.max(lay["steps"])) > 0 for lay in _renorm_layers(model.policy.qf_state.batch_stats))
    reset_critic(model)
    assert all(np.array_equal(a, b) for a, b in zip(actor, _params(model, "actor")))
    new = _params(model, "critic")
    assert not any(np.array_equal(a, b) for a, b in zip(critic, new) if a.ndim > 1)  # weights re-drawn
    if learner[1] == "crossq":  # no target network; the BatchRenorm running statistics start again
        layers = _renorm_layers(model.policy.qf_state.batch_stats)
        assert layers and all(int(np.max(lay["steps"])) == 0 and not np.any(lay["mean"]) and np.all(lay["var"] == 1)
                              for lay in layers)
    else:
        assert all(np.array_equal(a, b) for a, b in zip(new, _params(model, "target")))
    assert _critic_optimizer_is_fresh(model)
    model.learn(10, reset_num_timesteps=False)  # training goes on with the new critic
    assert not any(np.array_equal(a, b) for a, b in zip(new, _params(model, "critic")) if a.ndim > 1)
    venv.close()


@pytest.mark.parametrize("learner", LEARNERS, ids="-".join)
def test_save_load_round_trip_keeps_policy_buffer_and_counters(learner, tmp_path) -> None:
    venv = _venv()
    model = build(learner, venv, seed_steps=20)
    model.learn(60)
    model.replay_buffer.relabel(lambda obs, act: obs[:, 1])
    model.save(tmp_path / "agent.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    loaded = get_backend(*learner).load(tmp_path / "agent.zip", venv, algo=learner[1], device="cpu")
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    assert backend_of(loaded).name == learner[0] and type(loaded) is type(model) and loaded.num_timesteps == 60
    obs = np.random.default_rng(0).normal(size=(8, 17)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0],
                               atol=1e-6)
    np.testing.assert_array_equal(loaded.replay_buffer.rewards[:60], model.replay_buffer.rewards[:60])
    np.testing.assert_array_equal(loaded.replay_buffer.true_rewards[:60], model.replay_buffer.true_rewards[:60])
    loaded.learn(10, reset_num_timesteps=False)
    assert loaded.num_timesteps == 70
    venv.close()


@pytest.mark.parametrize("learner", LEARNERS, ids="-".join)
def test_pebble_trainer_phases(learner, tmp_path, sb3_tempdir) -> None:
    """The whole loop: entropy window, first fit -> whole-buffer relabel + one critic reset, later refits."""
    venv = _venv(episode_length=50)
    model = build(learner, venv, seed_steps=100, buffer_size=1000)
    rng = np.random.default_rng(0)
    feedback = FeedbackLoop(
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
    trainer = PebbleTrainer(model, venv, feedback, cfg, on_chunk=on_chunk)
    type(backend_of(model)).reset_critic = counting_reset
    try:
        trainer.train()
    finally:
        type(backend_of(model)).reset_critic = original_reset
    assert model.num_timesteps == 400 and chunks[-1] == 400
    assert entropy_steps and max(entropy_steps) <= 200  # intrinsic reward only inside [seed, seed + unsup)
    assert resets == [200]  # once, at the first fit, right after the entropy window
    assert feedback.labels_used == 12 and trainer.critic_was_reset
    obs, acts, _ = model.replay_buffer.stored_transitions()
    fresh = feedback.reward_fn(obs, acts)
    n_relabelled = 300  # the last refit at step 300 relabelled rows [0, 300); later rows got the same reward online
    np.testing.assert_allclose(model.replay_buffer.rewards[:n_relabelled, 0], fresh[:n_relabelled], rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(model.replay_buffer.rewards[n_relabelled:400, 0], fresh[n_relabelled:400], rtol=1e-4,
                               atol=1e-5)
    assert not list(sb3_tempdir.glob("SB3-*"))  # 8 learn() calls, no logger folder left behind
    feedback.store.close()
    venv.close()


def test_unknown_backend_is_a_one_line_error() -> None:
    with pytest.raises(PbrlError, match="algo.backend: 'torchrl' is not a learner backend; expected one of: sb3, sbx"):
        get_backend("torchrl")
    with pytest.raises(PbrlError, match="algo.backend: sb3 has no crossq; expected algo.backend=sbx"):
        get_backend("sb3", "crossq")
    with pytest.raises(PbrlError, match="no learner backend for a builtins.object model"):
        backend_of(object())

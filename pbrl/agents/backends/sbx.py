"""Stable-Baselines-Jax (araffin/sbx): SAC and CrossQ in JAX, with the SB3 API and replay buffer.

One update (critic, actor, temperature) is one jit-compiled XLA program; with ``train_freq=k, gradient_steps=k``
the k updates run in one call (``jax.lax.fori_loop``) on a batch sampled at once, keeping one update per env step.
CrossQ (Bhatt et al. 2024, "CrossQ: Batch Normalization in Deep RL for Greater Sample Efficiency and Simplicity")
is SAC without target networks, with BatchRenorm in actor and critic and a joint forward pass of the current and
next state-action batches. Parameters are flax pytrees: the critic reset below rebuilds them. ``device`` is
resolved for JAX (:func:`pbrl.devices.jax_platform`): ``auto`` uses a GPU only where a CUDA jaxlib is installed.
"""

from __future__ import annotations

from typing import Any

from pbrl.agents.buffer import PreferenceReplayBuffer
from pbrl.types import PbrlError

#: ``algo.name`` -> sbx class name
CLASSES = {"sac": "SAC", "crossq": "CrossQ"}


def sbx_class(algo: str) -> Any:
    """The sbx learner class for ``algo``, or a one-line error naming what to install."""
    try:
        import sbx
    except ImportError as exc:  # pragma: no cover - sbx-rl is a dependency; this is for broken installs
        raise PbrlError(f"algo.backend=sbx needs the sbx-rl package (pip install sbx-rl); import failed: {exc}") from None
    return getattr(sbx, CLASSES[algo])


def use_device(device: str) -> None:
    """Make ``device`` (``auto`` | ``cpu`` | ``cuda``) JAX's default for the arrays sbx creates; compiled updates are
    kept in the persistent cache (:func:`pbrl.devices.jax_compile_cache`)."""
    import jax

    from pbrl.devices import jax_compile_cache, jax_platform

    jax_compile_cache()  # CrossQ's update compiles in ~10-20 s of CPU; later runs load it from disk
    jax.config.update("jax_default_device", jax.devices(jax_platform(device))[0])


class SBXBackend:
    """sbx SAC / CrossQ whose replay buffer PEBBLE relabels (see the module docstring)."""

    name = "sbx"
    algos = tuple(CLASSES)

    def build(self, venv: Any, *, algo: str = "sac", seed: int, seed_steps: int, buffer_size: int,
              kwargs: dict[str, Any], device: str = "cpu") -> Any:
        cls = sbx_class(algo)
        use_device(device)
        return cls("MlpPolicy", venv, replay_buffer_class=PreferenceReplayBuffer, learning_starts=seed_steps,
                   buffer_size=buffer_size, seed=seed, verbose=0, **kwargs)

    def load(self, path: Any, venv: Any, *, algo: str = "sac", device: str = "cpu") -> Any:
        cls = sbx_class(algo)
        use_device(device)
        return cls.load(path, env=venv)

    def device_of(self, model: Any) -> str:
        import jax

        device = jax.tree_util.tree_leaves(model.policy.actor_state.params)[0].devices()
        return ",".join(f"{d.platform}:{d.id}" for d in device)

    def reset_critic(self, model: Any) -> None:
        """New Q-network parameters and a fresh critic optimiser (the optax transform is reused, its state not).

        SAC: the target parameters become a copy of the new ones, as at construction. CrossQ has no target
        network; its BatchRenorm running statistics belong to the critic and are re-initialised with it.
        """
        import jax
        import jax.numpy as jnp
        from sbx.common.type_aliases import BatchNormTrainState, RLTrainState

        policy, old = model.policy, model.policy.qf_state
        model.key, qf_key, dropout_key, bn_key = jax.random.split(model.key, 4)
        obs = jnp.asarray(model.observation_space.sample()[None], dtype=jnp.float32)
        action = jnp.asarray(model.action_space.sample()[None], dtype=jnp.float32)
        if isinstance(old, BatchNormTrainState):
            new = policy.qf.init({"params": qf_key, "dropout": dropout_key, "batch_stats": bn_key}, obs, action,
                                 train=False)
            policy.qf_state = BatchNormTrainState.create(apply_fn=old.apply_fn, params=new["params"],
                                                         batch_stats=new["batch_stats"], tx=old.tx)
        else:
            params = policy.qf.init({"params": qf_key, "dropout": dropout_key}, obs, action)
            policy.qf_state = RLTrainState.create(apply_fn=old.apply_fn, params=params, target_params=params,
                                                  tx=old.tx)

"""Stable-Baselines-Jax SAC (araffin/sbx): SB3's SAC in JAX, with the SB3 API and replay buffer.

The update (critic, actor and temperature) is one jit-compiled XLA program, and with ``train_freq=k,
gradient_steps=k`` the k updates run in one call (``jax.lax.fori_loop``) on a batch sampled at once; the
ratio of updates to env steps stays 1. Parameters are flax pytrees: the critic reset below rebuilds them.
``device`` is resolved for JAX (:func:`pbrl.devices.jax_platform`): ``auto`` uses a GPU only where a CUDA jaxlib
is installed.
"""

from __future__ import annotations

from typing import Any

from pbrl.agents.buffer import PreferenceReplayBuffer
from pbrl.types import PbrlError


def import_sbx() -> Any:
    """The ``sbx`` package, or a one-line error naming what to install."""
    try:
        import sbx
    except ImportError as exc:  # pragma: no cover - sbx-rl is a core dependency; kept for broken installs
        raise PbrlError(f"algo.backend=sbx needs the sbx-rl package (pip install sbx-rl); import failed: {exc}") from None
    return sbx


def use_device(device: str) -> None:
    """Make ``device`` (``auto`` | ``cpu`` | ``cuda``) JAX's default for the arrays sbx creates."""
    import jax

    from pbrl.devices import jax_platform

    jax.config.update("jax_default_device", jax.devices(jax_platform(device, "device"))[0])


class SBXBackend:
    """sbx SAC whose replay buffer PEBBLE relabels; jit-compiled updates (see the module docstring)."""

    name = "sbx"

    def build(self, venv: Any, *, seed: int, seed_steps: int, buffer_size: int, kwargs: dict[str, Any],
              device: str = "cpu") -> Any:
        sbx = import_sbx()
        use_device(device)
        return sbx.SAC("MlpPolicy", venv, replay_buffer_class=PreferenceReplayBuffer, learning_starts=seed_steps,
                       buffer_size=buffer_size, seed=seed, verbose=0, **kwargs)

    def load(self, path: Any, venv: Any, device: str = "cpu") -> Any:
        sbx = import_sbx()
        use_device(device)
        return sbx.SAC.load(path, env=venv)

    def reset_critic(self, model: Any) -> None:
        """New Q-network parameters (target = online copy, as at construction) and a fresh critic optimiser.

        The actor, the entropy coefficient and their optimisers are kept (PEBBLE resets the critic only).
        """
        import jax
        import jax.numpy as jnp
        from sbx.common.type_aliases import RLTrainState

        policy, old = model.policy, model.policy.qf_state
        model.key, qf_key, dropout_key = jax.random.split(model.key, 3)
        obs = jnp.asarray(model.observation_space.sample()[None], dtype=jnp.float32)
        action = jnp.asarray(model.action_space.sample()[None], dtype=jnp.float32)
        params = policy.qf.init({"params": qf_key, "dropout": dropout_key}, obs, action)
        policy.qf_state = RLTrainState.create(apply_fn=old.apply_fn, params=params, target_params=params, tx=old.tx)

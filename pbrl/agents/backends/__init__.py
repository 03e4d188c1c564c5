"""The off-policy learners PEBBLE can drive, selected by ``algo.backend``.

A backend builds, loads and resets one library's SAC: ``sb3`` is stable-baselines3 (PyTorch), ``sbx`` is
Stable-Baselines-Jax (araffin/sbx: the same SAC in JAX, jit-compiled updates, SB3's replay buffer and
``learn``/``save``/``load`` API). Both store transitions in :class:`~pbrl.agents.buffer.PreferenceReplayBuffer`,
so PEBBLE's whole-buffer relabelling and its state-entropy phase are the same code for either; only the critic
reset differs (torch modules vs flax parameters). Backends are imported lazily: ``import pbrl`` pulls neither.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from pbrl.types import PbrlError

#: ``algo.backend`` -> ``"module:class"`` of its :class:`Backend`.
BACKENDS: dict[str, str] = {
    "sb3": "pbrl.agents.backends.sb3:SB3Backend",
    "sbx": "pbrl.agents.backends.sbx:SBXBackend",
}


class Backend(Protocol):
    """What PEBBLE and the runner need from an off-policy library."""

    name: str

    def build(self, venv: Any, *, seed: int, seed_steps: int, buffer_size: int, kwargs: dict[str, Any],
              device: str) -> Any:
        """A fresh SAC on ``venv`` whose replay buffer is a :class:`PreferenceReplayBuffer`."""

    def load(self, path: Any, venv: Any, device: str) -> Any:
        """A saved model (``model.save``) bound to ``venv``."""

    def reset_critic(self, model: Any) -> None:
        """Re-initialise the Q-networks and their targets, with a fresh critic optimiser; actor untouched."""


def get_backend(name: str) -> Backend:
    """The backend registered as ``name`` (``algo.backend``)."""
    target = BACKENDS.get(str(name))
    if target is None:
        raise PbrlError(f"algo.backend: {name!r} is not a learner backend; expected one of: {', '.join(BACKENDS)}")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)()


def backend_of(model: Any) -> Backend:
    """The backend a built or loaded model belongs to (by the library its class comes from)."""
    library = type(model).__module__.split(".")[0]
    name = {"stable_baselines3": "sb3", "sbx": "sbx"}.get(library)
    if name is None:
        raise PbrlError(f"no learner backend for a {type(model).__module__}.{type(model).__name__} model")
    return get_backend(name)

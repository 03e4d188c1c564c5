"""The off-policy learners PEBBLE can drive: ``algo=sac|crossq``, from the library ``algo.backend`` names.

A backend builds, loads and resets one library's learners: ``sb3`` is stable-baselines3 (PyTorch; SAC), ``sbx``
is Stable-Baselines-Jax (araffin/sbx: SAC and CrossQ in JAX with jit-compiled updates and SB3's replay buffer
and ``learn``/``save``/``load`` API). Every learner stores transitions in
:class:`~pbrl.agents.buffer.PreferenceReplayBuffer`, so PEBBLE's whole-buffer relabelling and its state-entropy
phase are the same code for all; only the critic reset differs (torch modules vs flax parameters, and CrossQ's
BatchRenorm statistics). Backends are imported lazily: ``import pbrl`` pulls neither library.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from pbrl.types import PbrlError

#: ``algo.name`` values PEBBLE trains (off-policy, relabelled replay buffer).
OFF_POLICY_ALGOS = ("sac", "crossq")

#: ``algo.backend`` -> ``"module:class"`` of its :class:`Backend`.
BACKENDS: dict[str, str] = {
    "sb3": "pbrl.agents.backends.sb3:SB3Backend",
    "sbx": "pbrl.agents.backends.sbx:SBXBackend",
}


class Backend(Protocol):
    """What PEBBLE and the runner need from an off-policy library."""

    name: str
    algos: tuple[str, ...]  # the ``algo.name`` values it provides

    def build(self, venv: Any, *, algo: str, seed: int, seed_steps: int, buffer_size: int, kwargs: dict[str, Any],
              device: str) -> Any:
        """A fresh learner on ``venv`` whose replay buffer is a :class:`PreferenceReplayBuffer`."""

    def load(self, path: Any, venv: Any, *, algo: str, device: str) -> Any:
        """A saved model (``model.save``) bound to ``venv``."""

    def reset_critic(self, model: Any) -> None:
        """Re-initialise the Q-networks (and targets / normalisation statistics) with a fresh critic optimiser;
        the actor and the entropy coefficient are untouched."""

    def device_of(self, model: Any) -> str:
        """Where ``model`` computes (e.g. ``cpu``, ``cuda``, ``gpu:0``), for the run's summary."""


def _instance(name: str) -> Backend:
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)()


def get_backend(name: str, algo: str = "sac") -> Backend:
    """The backend registered as ``name`` (``algo.backend``), checked to provide ``algo``."""
    if str(name) not in BACKENDS:
        raise PbrlError(f"algo.backend: {name!r} is not a learner backend; expected one of: {', '.join(BACKENDS)}")
    backend = _instance(str(name))
    if algo not in backend.algos:
        others = [b for b in BACKENDS if algo in _instance(b).algos]
        raise PbrlError(f"algo.backend: {name} has no {algo}; expected algo.backend={' | '.join(others)}")
    return backend


def backend_of(model: Any) -> Backend:
    """The backend a built or loaded model belongs to (by the library its class comes from)."""
    library = type(model).__module__.split(".")[0]
    name = {"stable_baselines3": "sb3", "sbx": "sbx"}.get(library)
    if name is None:
        raise PbrlError(f"no learner backend for a {type(model).__module__}.{type(model).__name__} model")
    return _instance(name)

"""Exporter for SAC runs of either backend (``algo.backend``): SB3 policies go to :mod:`pbrl.export.sb3`; sbx
(Stable-Baselines-Jax) policies are flax parameters, copied here into an equivalent torch module.

sbx's deterministic SAC action (``SquashedGaussianActor``, ``TanhTransformedDistribution.mode``) is
``tanh(Dense_n(act(... act(Dense_0(obs)))))``, clipped to ``[-1, 1]`` and rescaled to the action bounds, the
same path as SB3's: the torch core holds the hidden layers and the mean head (flax ``kernel`` is ``(in, out)``,
torch ``weight`` is ``(out, in)``), and :class:`~pbrl.export.policy.ExportModule` adds squashing and scaling.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from pbrl.export.policy import ExportablePolicy, ExportModule
from pbrl.export.registry import RunInfo
from pbrl.types import PbrlError

#: flax/jax activation name -> torch module (flax's ``gelu`` is the tanh approximation).
ACTIVATIONS: dict[str, Any] = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "silu": nn.SiLU,
                               "gelu": lambda: nn.GELU(approximate="tanh"), "leaky_relu": lambda: nn.LeakyReLU(0.01)}


def export_sac(run: RunInfo) -> ExportablePolicy:
    """The SAC exporter of the registry: dispatches on ``algo.backend`` (``sb3`` when absent)."""
    backend = str(run.config["algo"].get("backend", "sb3"))
    if backend == "sb3":
        from pbrl.export.sb3 import export_sac as export_sb3_sac

        return export_sb3_sac(run)
    if backend != "sbx":
        raise PbrlError(f"{run.run_dir}/config.yaml algo.backend: expected sb3 | sbx, got {backend!r}")
    return sbx_sac_policy(_load_sbx(run), run)


def _load_sbx(run: RunInfo) -> Any:
    from pbrl.agents.backends.sbx import import_sbx

    path = run.file("policy.zip")
    try:
        return import_sbx().SAC.load(path)
    except (ValueError, KeyError, RuntimeError, OSError, TypeError) as exc:
        raise PbrlError(f"{path}: cannot load as sbx SAC ({str(exc).splitlines()[0]})") from None


def _linear(dense: dict[str, Any]) -> nn.Linear:
    kernel, bias = np.array(dense["kernel"], np.float32), np.array(dense["bias"], np.float32)  # writable copies
    layer = nn.Linear(kernel.shape[0], kernel.shape[1])
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(kernel.T))
        layer.bias.copy_(torch.from_numpy(bias))
    return layer


def actor_core(params: dict[str, Any], n_hidden: int, activation: str) -> nn.Sequential:
    """Torch copy of an sbx ``SquashedGaussianActor`` up to the (pre-tanh) mean: hidden layers + ``Dense_n``."""
    if activation not in ACTIVATIONS:
        raise PbrlError(f"export: sbx actor activation {activation!r} has no torch twin; "
                        f"expected one of: {', '.join(ACTIVATIONS)}")
    dense = params.get("params", params)
    names = [f"Dense_{i}" for i in range(n_hidden + 2)]  # hidden..., mean, log_std
    if sorted(dense) != sorted(names):
        raise PbrlError(f"export: unexpected sbx actor parameters {sorted(dense)}; expected {names}")
    layers: list[nn.Module] = []
    for i in range(n_hidden):
        layers += [_linear(dense[f"Dense_{i}"]), ACTIVATIONS[activation]()]
    layers.append(_linear(dense[f"Dense_{n_hidden}"]))
    return nn.Sequential(*layers)


def sbx_sac_policy(model: Any, run: RunInfo) -> ExportablePolicy:
    """Wrap a loaded sbx SAC model (exposed for tests that build one directly)."""
    from pbrl.export.sb3 import _check_spaces, _reference

    obs_space, act_space = _check_spaces(model, run)
    policy = model.policy
    if type(policy.actor).__name__ != "SquashedGaussianActor" or policy.use_sde:
        raise PbrlError(f"{run.run_dir}/policy.zip: only sbx SAC's MlpPolicy (SquashedGaussianActor, no gSDE) "
                        f"can be exported, got {type(policy.actor).__name__}")
    activation = getattr(policy.activation_fn, "__name__", str(policy.activation_fn))
    core = actor_core(policy.actor_state.params, len(policy.net_arch_pi), activation)
    module = ExportModule(core, low=act_space.low, high=act_space.high, squash=True, obs_dim=obs_space.shape[0])
    return ExportablePolicy(module=module, reference=_reference(model), algo="sac",
                            details={"net_arch": list(policy.net_arch_pi), "activation": activation, "backend": "sbx"})

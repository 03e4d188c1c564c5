"""Exporters for SAC runs of either backend (``algo.backend``) and for sbx CrossQ runs.

SB3 policies go to :mod:`pbrl.export.sb3`; sbx (Stable-Baselines-Jax) policies are flax parameters, copied here into
an equivalent torch module. sbx's deterministic action (``TanhTransformedDistribution.mode``) is ``tanh`` of the
mean head, clipped to ``[-1, 1]`` and rescaled to the action bounds, as in SB3: the torch core holds the layers up
to the mean head (flax ``kernel`` is ``(in, out)``, torch ``weight`` is ``(out, in)``) and
:class:`~pbrl.export.policy.ExportModule` adds squashing and scaling.

* SAC (``SquashedGaussianActor``): ``Dense_0, act, ..., Dense_{n-1}, act, Dense_n`` (mean; ``Dense_{n+1}`` is
  the log-std head).
* CrossQ (``Actor`` with BatchRenorm): ``BatchRenorm_0, Dense_0, act, BatchRenorm_1, ..., Dense_n``. Acting uses
  the running statistics (``use_running_average``), i.e. ``(x - mean) / sqrt(var + eps) * scale + bias``: a
  torch ``BatchNorm1d`` in eval mode with the same numbers.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from pbrl.export.policy import ExportablePolicy, ExportModule
from pbrl.export.registry import RunInfo
from pbrl.types import PbrlError

#: flax/jax activation name -> torch module (flax's ``gelu`` is the tanh approximation).
ACTIVATIONS: dict[str, Any] = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "silu": nn.SiLU,
                               "gelu": lambda: nn.GELU(approximate="tanh"), "leaky_relu": lambda: nn.LeakyReLU(0.01)}


#: sbx's BatchRenorm epsilon (sbx.common.jax_layers.BatchRenorm.epsilon)
BATCH_RENORM_EPS = 1e-3


def export_sac(run: RunInfo) -> ExportablePolicy:
    """The SAC exporter of the registry: dispatches on ``algo.backend`` (``sb3`` when absent)."""
    backend = str(run.config["algo"].get("backend", "sb3"))
    if backend == "sb3":
        from pbrl.export.sb3 import export_sac as export_sb3_sac

        return export_sb3_sac(run)
    if backend != "sbx":
        raise PbrlError(f"{run.run_dir}/config.yaml algo.backend: expected sb3 | sbx, got {backend!r}")
    return sbx_sac_policy(_load_sbx(run, "sac"), run)


def export_crossq(run: RunInfo) -> ExportablePolicy:
    """The CrossQ exporter of the registry (sbx is its only backend)."""
    return sbx_crossq_policy(_load_sbx(run, "crossq"), run)


def _load_sbx(run: RunInfo, algo: str) -> Any:
    from pbrl.agents.backends.sbx import sbx_class

    path = run.file("policy.zip")
    cls = sbx_class(algo)
    try:
        return cls.load(path)
    except (ValueError, KeyError, RuntimeError, OSError, TypeError) as exc:
        raise PbrlError(f"{path}: cannot load as sbx {cls.__name__} ({str(exc).splitlines()[0]})") from None


def _linear(dense: dict[str, Any]) -> nn.Linear:
    kernel, bias = np.array(dense["kernel"], np.float32), np.array(dense["bias"], np.float32)  # writable copies
    layer = nn.Linear(kernel.shape[0], kernel.shape[1])
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(kernel.T))
        layer.bias.copy_(torch.from_numpy(bias))
    return layer


def _batch_norm(scale_bias: dict[str, Any], stats: dict[str, Any]) -> nn.BatchNorm1d:
    """BatchRenorm with running statistics as an eval-mode ``BatchNorm1d``."""
    mean = np.array(stats["mean"], np.float32)
    layer = nn.BatchNorm1d(mean.shape[0], eps=BATCH_RENORM_EPS)
    with torch.no_grad():
        layer.running_mean.copy_(torch.from_numpy(mean))
        layer.running_var.copy_(torch.from_numpy(np.array(stats["var"], np.float32)))
        layer.weight.copy_(torch.from_numpy(np.array(scale_bias["scale"], np.float32)))
        layer.bias.copy_(torch.from_numpy(np.array(scale_bias["bias"], np.float32)))
    return layer.eval()


def actor_core(params: dict[str, Any], n_hidden: int, activation: str,
               batch_stats: Optional[dict[str, Any]] = None) -> nn.Sequential:
    """Torch copy of an sbx actor up to the (pre-tanh) mean; with ``batch_stats`` the CrossQ actor's BatchRenorm
    layers (before the first layer and after every hidden activation) are included."""
    if activation not in ACTIVATIONS:
        raise PbrlError(f"export: sbx actor activation {activation!r} has no torch twin; "
                        f"expected one of: {', '.join(ACTIVATIONS)}")
    dense = dict(params.get("params", params))
    names = [f"Dense_{i}" for i in range(n_hidden + 2)]  # hidden..., mean, log_std
    if batch_stats is not None:
        names += [f"BatchRenorm_{i}" for i in range(n_hidden + 1)]
    if sorted(dense) != sorted(names):
        raise PbrlError(f"export: unexpected sbx actor parameters {sorted(dense)}; expected {sorted(names)}")

    def norm(i: int) -> list[nn.Module]:
        name = f"BatchRenorm_{i}"
        return [] if batch_stats is None else [_batch_norm(dense[name], batch_stats[name])]

    layers: list[nn.Module] = norm(0)
    for i in range(n_hidden):
        layers += [_linear(dense[f"Dense_{i}"]), ACTIVATIONS[activation](), *norm(i + 1)]
    layers.append(_linear(dense[f"Dense_{n_hidden}"]))
    return nn.Sequential(*layers)


def _policy(model: Any, run: RunInfo, algo: str, actor_class: str, batch_stats: Optional[dict]) -> ExportablePolicy:
    from pbrl.export.sb3 import _check_spaces, _reference

    obs_space, act_space = _check_spaces(model, run)
    policy = model.policy
    if type(policy.actor).__name__ != actor_class or policy.use_sde:
        raise PbrlError(f"{run.run_dir}/policy.zip: only sbx {algo}'s MlpPolicy ({actor_class}, no gSDE) "
                        f"can be exported, got {type(policy.actor).__name__}")
    activation = getattr(policy.activation_fn, "__name__", str(policy.activation_fn))
    core = actor_core(policy.actor_state.params, len(policy.net_arch_pi), activation, batch_stats)
    module = ExportModule(core, low=act_space.low, high=act_space.high, squash=True, obs_dim=obs_space.shape[0])
    return ExportablePolicy(module=module, reference=_reference(model), algo=algo,
                            details={"net_arch": list(policy.net_arch_pi), "activation": activation, "backend": "sbx"})


def sbx_sac_policy(model: Any, run: RunInfo) -> ExportablePolicy:
    """Wrap a loaded sbx SAC model (exposed for tests that build one directly)."""
    return _policy(model, run, "sac", "SquashedGaussianActor", None)


def sbx_crossq_policy(model: Any, run: RunInfo) -> ExportablePolicy:
    """Wrap a loaded sbx CrossQ model; its actor must normalise with BatchRenorm (``batch_norm_actor=True``)."""
    if not model.policy.batch_norm_actor:
        raise PbrlError(f"{run.run_dir}/policy.zip: CrossQ with batch_norm_actor=False is not supported by the "
                        f"exporter")
    return _policy(model, run, "crossq", "Actor", model.policy.actor_state.batch_stats)

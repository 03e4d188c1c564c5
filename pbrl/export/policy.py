"""The exported graph: raw observation in, action in the robot's units out.

Everything a robot would otherwise have to re-implement (and get subtly wrong) lives inside the graph:
observation normalisation, the network, tanh squashing + rescaling to the action bounds, and clipping.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from pbrl.types import PbrlError

#: Training-time deterministic policy on a batch: ``(n, obs_dim)`` float32 -> ``(n, act_dim)`` env units.
ReferenceFn = Callable[[np.ndarray], np.ndarray]


class ExportModule(nn.Module):
    """``obs (B, obs_dim) -> action (B, act_dim)`` with normalisation, scaling and clipping built in.

    Args:
        core: network from the (normalised) observation to the raw action output.
        low, high: action bounds ``(act_dim,)`` in env units.
        squash: apply ``tanh`` and map ``[-1, 1]`` onto ``[low, high]`` (SB3 SAC's ``unscale_action``);
            otherwise the core already outputs env units and is only clipped (SB3 PPO's ``predict``).
        obs_mean, obs_std: observation normalisation ``(obs - mean) / std`` (identity when None).
        obs_clip: clip normalised observations to ``[-obs_clip, obs_clip]`` (VecNormalize style), or None.
    """

    def __init__(self, core: nn.Module, *, low: np.ndarray, high: np.ndarray, squash: bool,
                 obs_dim: int, obs_mean: Optional[np.ndarray] = None, obs_std: Optional[np.ndarray] = None,
                 obs_clip: Optional[float] = None) -> None:
        super().__init__()
        low, high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        if low.shape != high.shape or low.ndim != 1 or not np.all(np.isfinite(low) & np.isfinite(high) & (low < high)):
            raise PbrlError(f"export: action bounds must be finite 1-D with low < high, got {low} .. {high}")
        self.core, self.squash, self.obs_dim, self.obs_clip = core, squash, int(obs_dim), obs_clip
        self.register_buffer("low", torch.as_tensor(low))
        self.register_buffer("high", torch.as_tensor(high))
        mean = np.zeros(obs_dim, np.float32) if obs_mean is None else np.asarray(obs_mean, np.float32)
        std = np.ones(obs_dim, np.float32) if obs_std is None else np.asarray(obs_std, np.float32)
        self.normalised = obs_mean is not None or obs_std is not None
        self.register_buffer("obs_mean", torch.as_tensor(mean))
        self.register_buffer("obs_std", torch.as_tensor(std))

    @property
    def act_dim(self) -> int:
        return int(self.low.shape[0])

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs
        if self.normalised:
            x = (x - self.obs_mean) / self.obs_std
            if self.obs_clip is not None:
                x = torch.clamp(x, -self.obs_clip, self.obs_clip)
        action = self.core(x)
        if self.squash:
            action = self.low + 0.5 * (torch.tanh(action) + 1.0) * (self.high - self.low)
        return torch.maximum(torch.minimum(action, self.high), self.low)

    def describe(self) -> dict[str, Any]:
        """How the graph treats observations and actions, for ``policy.json``."""
        norm: dict[str, Any] = {"kind": "none"}
        if self.normalised:
            norm = {"kind": "standardise", "mean": self.obs_mean.tolist(), "std": self.obs_std.tolist(),
                    "clip": self.obs_clip}
        return {"normalisation": norm, "squash": "tanh-rescale" if self.squash else "none", "clipped": True}


@dataclasses.dataclass(frozen=True)
class ExportablePolicy:
    """What an algorithm's exporter hands over: the graph, and the training-time policy to check it against.

    Attributes:
        module: the :class:`ExportModule` to serialise.
        reference: the training-time deterministic policy (e.g. SB3 ``predict(deterministic=True)``), used by
            the parity check only.
        algo: algorithm name (``sac``, ``ppo``, ``cpl``, ``oppo``...).
        details: extra facts for ``policy.json`` (network sizes, baked-in context, ...).
    """

    module: ExportModule
    reference: ReferenceFn
    algo: str
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.module, ExportModule):
            raise PbrlError(f"export: the {self.algo} exporter must return an ExportModule, "
                            f"got {type(self.module).__name__}")
        self.module.eval()

"""Exporters for stable-baselines3 SAC and PPO policies (``policy.zip`` in a pbrl run directory).

SB3's deterministic action, reproduced inside the graph:
  * SAC: ``tanh(mu(latent_pi(flatten(obs))))`` rescaled from ``[-1, 1]`` to the action bounds
    (``BasePolicy.unscale_action``; ``squash_output=True``).
  * PPO: the Gaussian mean ``action_net(policy_net(flatten(obs)))``, clipped to the bounds
    (``BasePolicy.predict`` with ``squash_output=False``).
Observation preprocessing for a ``Box`` space is a float cast and a flatten; pbrl uses no VecNormalize,
so the graph's normalisation is the identity.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from pbrl.export.policy import ExportablePolicy, ExportModule
from pbrl.export.registry import RunInfo
from pbrl.types import PbrlError


class _Chain(nn.Module):
    """``features -> latent -> head``: the deterministic path through an SB3 policy."""

    def __init__(self, features: nn.Module, latent: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.features, self.latent, self.head = features, latent, head

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.latent(self.features(obs.float())))


def _check_spaces(model: Any, run: RunInfo) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    obs_space, act_space = model.observation_space, model.action_space
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise PbrlError(f"{run.run_dir}/policy.zip: expected a flat Box observation space, got {obs_space}")
    if not isinstance(act_space, gym.spaces.Box) or len(act_space.shape) != 1:
        raise PbrlError(f"{run.run_dir}/policy.zip: expected a flat Box action space, got {act_space}")
    return obs_space, act_space


def _reference(model: Any):
    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return np.asarray(model.predict(np.asarray(obs, np.float32), deterministic=True)[0], np.float32)
    return act


def _details(policy: Any) -> dict[str, Any]:
    """Actor sizes and activation for ``policy.json`` (SB3 keeps ``net_arch`` as a list or ``{"pi": ...}``)."""
    arch = policy.net_arch
    return {"net_arch": list(arch.get("pi", [])) if isinstance(arch, dict) else list(arch),
            "activation": policy.activation_fn.__name__}


def _load(cls: type, run: RunInfo) -> Any:
    path = run.file("policy.zip")
    try:
        return cls.load(path, device="cpu")
    except (ValueError, KeyError, RuntimeError, OSError) as exc:
        raise PbrlError(f"{path}: cannot load as SB3 {cls.__name__} ({str(exc).splitlines()[0]})") from None


def sac_policy(model: Any, run: RunInfo) -> ExportablePolicy:
    """Wrap a loaded SB3 SAC model (exposed for tests and benchmarks that build one directly)."""
    obs_space, act_space = _check_spaces(model, run)
    actor = model.policy.actor
    if actor.use_sde:
        raise PbrlError(f"{run.run_dir}/policy.zip: SAC with use_sde=True is not supported by the exporter")
    core = _Chain(actor.features_extractor, actor.latent_pi, actor.mu)
    module = ExportModule(core, low=act_space.low, high=act_space.high, squash=True, obs_dim=obs_space.shape[0])
    return ExportablePolicy(module=module, reference=_reference(model), algo="sac", details=_details(model.policy))


def ppo_policy(model: Any, run: RunInfo) -> ExportablePolicy:
    """Wrap a loaded SB3 PPO model (Gaussian mean, then clip)."""
    obs_space, act_space = _check_spaces(model, run)
    policy = model.policy
    if policy.squash_output:
        raise PbrlError(f"{run.run_dir}/policy.zip: PPO with squash_output=True (gSDE) is not supported")
    core = _Chain(policy.pi_features_extractor, policy.mlp_extractor.policy_net, policy.action_net)
    module = ExportModule(core, low=act_space.low, high=act_space.high, squash=False, obs_dim=obs_space.shape[0])
    return ExportablePolicy(module=module, reference=_reference(model), algo="ppo", details=_details(policy))


def export_sac(run: RunInfo) -> ExportablePolicy:
    from stable_baselines3 import SAC

    return sac_policy(_load(SAC, run), run)


def export_ppo(run: RunInfo) -> ExportablePolicy:
    from stable_baselines3 import PPO

    return ppo_policy(_load(PPO, run), run)

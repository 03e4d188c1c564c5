"""Exporter for pbrl's offline learners (CPL, OPPO, BC, IQL): ``policy.pt`` written by ``pbrl.agents.offline_policy``.

Their deployable modules already map a raw observation to ``tanh(...)`` actions, with the dataset's observation
normalisation (an ``ObsNorm`` named ``norm``) inside; OPPO's ``ContextPolicy`` carries its learned ``z*`` as a
buffer, so ``forward(obs) = pi(a | obs, z*)`` and z* is baked into the graph. The exporter lifts ``norm`` into
the :class:`ExportModule` (so ``policy.json`` shows the statistics) and clips to the task's action bounds.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import torch
from torch import nn

from pbrl.agents.offline_policy import load_policy
from pbrl.envs.make import make_env
from pbrl.export.policy import ExportablePolicy, ExportModule
from pbrl.export.registry import RunInfo
from pbrl.types import PbrlError


def offline_policy(policy: nn.Module, run: RunInfo) -> ExportablePolicy:
    """Wrap a loaded offline policy (``forward(obs)`` = deterministic action in [-1, 1])."""
    env = make_env(run.task, seed=run.seed, episode_length=run.episode_length)
    low, high = env.action_space.low, env.action_space.high
    env.close()
    config = dict(getattr(policy, "config", {}))
    if "obs_dim" not in config:
        raise PbrlError(f"{run.run_dir}/policy.pt: policy has no config['obs_dim']; expected a pbrl offline policy")
    core, mean, std = copy.deepcopy(policy).eval(), None, None
    norm = getattr(core, "norm", None)
    if norm is not None and hasattr(norm, "mean") and hasattr(norm, "std"):
        mean, std = norm.mean.detach().numpy(), norm.std.detach().numpy()
        core.norm = nn.Identity()
    module = ExportModule(core, low=low, high=high, squash=False, obs_dim=int(config["obs_dim"]),
                          obs_mean=mean, obs_std=std)
    details = {**config, "class": type(policy).__name__}
    if hasattr(policy, "z_star"):
        details["z_star"] = policy.z_star.detach().tolist()

    def reference(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return policy.eval()(torch.as_tensor(np.asarray(obs, np.float32))).numpy()
    return ExportablePolicy(module=module, reference=reference, algo=run.algo, details=details)


def export_offline(run: RunInfo) -> ExportablePolicy:
    path = run.file("policy.pt")
    try:
        policy = load_policy(path)
    except (KeyError, RuntimeError, ValueError, AttributeError, ImportError, pickle.UnpicklingError, EOFError) as exc:
        raise PbrlError(f"{path}: cannot load as a pbrl offline policy ({str(exc).splitlines()[0]})") from None
    return offline_policy(policy, run)

"""``policy.pt`` of an offline run (CPL, OPPO, BC, IQL): the deployable policy module saved and rebuilt.

The file holds the module's class path, its constructor arguments (``policy.config``, with ``obs_dim`` and
``act_dim``) and its weights, so a reader needs neither the learner nor the run's config: the offline trainer
writes it, ``pbrl export`` and users read it with :func:`load_policy`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch


def save_policy(policy: torch.nn.Module, path: Path) -> None:
    """``policy.pt``: ``{"class": "module:Class", "config": ctor kwargs, "state_dict": ...}`` (atomic).

    :func:`load_policy` rebuilds the module; its ``act(obs)`` / ``forward(obs)`` is the deterministic action.
    """
    tmp = path.with_name(path.name + ".tmp")
    cls = type(policy)
    torch.save({"class": f"{cls.__module__}:{cls.__qualname__}", "config": policy.config,
                "state_dict": policy.state_dict()}, tmp)
    tmp.replace(path)


def load_policy(path: Path) -> torch.nn.Module:
    """The deployable policy saved by :func:`save_policy`, in eval mode."""
    blob = torch.load(path, weights_only=False)
    module, _, name = blob["class"].partition(":")
    cfg = dict(blob["config"])
    obs_dim, act_dim = cfg.pop("obs_dim"), cfg.pop("act_dim")
    policy = getattr(importlib.import_module(module), name)(obs_dim, act_dim, **cfg)
    policy.load_state_dict(blob["state_dict"])
    return policy.eval()

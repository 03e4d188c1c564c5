"""Implicit Q-Learning (Kostrikov, Nair & Levine 2022) on relabelled preference data, via TorchRL's ``IQLLoss``.

The offline-PbRL baseline of the CPL, OPPO, Preference Transformer and Uni-RLHF papers (P-IQL / PT-IQL): a reward
learned from the labels relabels every transition (:mod:`pbrl.agents.transitions`), then IQL trains on them.
The algorithm is TorchRL's (expectile value loss on the min of two target Q-networks, TD(0) Q loss bootstrapping
from V, advantage-weighted actor loss ``-exp(beta (Q - V)).clamp(max=100) log pi(a|s)``; target Q-networks by
Polyak averaging); pbrl supplies the networks, the batches and the schedule.

The actor is :class:`~pbrl.agents.bc.GaussianActor` (``N(tanh(mu(s)), sigma^2)``, the IQL code's policy with
its tanh-squashed mean), so the exported and evaluated policy is the same deterministic ``tanh(mu(s))`` as CPL's
and BC's. With the default fixed ``std = 0.7071`` the actor loss is an advantage-weighted squared error, the
deterministic actor of the CPL code's P-IQL. As in IQL, the actor's learning rate follows a cosine decay over
the run (``actor_cosine``).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from pbrl.agents.bc import GaussianActor, parse_std
from pbrl.agents.offline_data import ObsNorm, OfflineLearner, mlp, obs_stats
from pbrl.agents.transitions import TransitionData
from pbrl.types import PbrlError


def _torchrl():
    try:
        import tensordict
        import torchrl.modules
        import torchrl.objectives
    except ImportError:
        raise ImportError("algo=iql needs TorchRL: pip install 'pbrl[offline]'") from None
    return tensordict, torchrl.modules, torchrl.objectives


class IndependentNormal(torch.distributions.Independent):
    """Diagonal Gaussian whose ``log_prob`` sums over action dimensions (what TorchRL's actor loss expects)."""

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__(torch.distributions.Normal(loc, scale), 1)


class _LocScale(nn.Module):
    """The actor's distribution parameters ``(tanh(mu(s)), sigma(s))`` for TorchRL's probabilistic actor."""

    def __init__(self, actor: GaussianActor) -> None:
        super().__init__()
        self.actor = actor

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.actor.dist_params(obs)
        return mean, log_std.exp()


class QNet(nn.Module):
    """``Q(s, a)``: normalised observation and action into a ReLU MLP."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.norm, self.net = ObsNorm(mean, std), mlp(obs_dim + act_dim, hidden, 1)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([self.norm(obs), act], dim=-1))


class VNet(nn.Module):
    """``V(s)``: normalised observation into a ReLU MLP."""

    def __init__(self, obs_dim: int, hidden: Sequence[int], mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.norm, self.net = ObsNorm(mean, std), mlp(obs_dim, hidden, 1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(obs))


class IQLLearner(OfflineLearner):
    """IQL on a :class:`TransitionData` set, one gradient step per :meth:`update`.

    Args:
        data: relabelled transitions.
        hidden: actor, critic and value MLP sizes.
        dropout: actor dropout (the CPL code's P-IQL uses 0.25).
        std: actor std, ``learned`` or a fixed number (see :class:`GaussianActor`).
        lr: Adam learning rate of all three networks (the actor's decays by cosine with ``actor_cosine``).
        gamma: discount.
        expectile: tau of the expectile value loss (IQL: 0.7 on locomotion and Meta-World).
        temperature: inverse temperature beta of the advantage weights (IQL: 3.0; the CPL code's 1 / 0.3333).
        tau: Polyak rate of the target Q-networks.
        batch_size: transitions per update.
        steps: the run's length, for the cosine schedule.
        actor_cosine: decay the actor's learning rate to 0 over ``steps`` (IQL, CPL's P-IQL).
        rng: batch sampling.
        reward_info: numbers about the reward the data were relabelled with, reported with every update.
    """

    def __init__(self, data: TransitionData, *, hidden: Sequence[int], dropout: float, std: object, lr: float,
                 gamma: float, expectile: float, temperature: float, tau: float, batch_size: int, steps: int,
                 actor_cosine: bool, rng: np.random.Generator, reward_info: Optional[dict[str, float]] = None) -> None:
        check_settings(gamma=gamma, expectile=expectile, temperature=temperature, tau=tau, batch_size=batch_size)
        tensordict, modules, objectives = _torchrl()
        self.data, self.rng, self.batch_size = data, rng, int(batch_size)
        self.lr, self.steps, self.actor_cosine = float(lr), int(steps), bool(actor_cosine)
        self.reward_info = dict(reward_info or {})
        obs_dim, act_dim = data.dims
        mean, std_obs = obs_stats(data.obs)
        self.policy = GaussianActor(obs_dim, act_dim, hidden=hidden, dropout=dropout, obs_mean=mean, obs_std=std_obs,
                                    fixed_std=parse_std(std))
        actor = modules.ProbabilisticActor(
            tensordict.nn.TensorDictModule(_LocScale(self.policy), ["observation"], ["loc", "scale"]),
            in_keys=["loc", "scale"], distribution_class=IndependentNormal)
        qvalue = modules.ValueOperator(QNet(obs_dim, act_dim, hidden, mean, std_obs), in_keys=["observation", "action"])
        value = modules.ValueOperator(VNet(obs_dim, hidden, mean, std_obs), in_keys=["observation"])
        self.loss = objectives.IQLLoss(actor, qvalue, value, num_qvalue_nets=2, loss_function="l2",
                                       temperature=float(temperature), expectile=float(expectile))
        self.loss.make_value_estimator(objectives.ValueEstimators.TD0, gamma=float(gamma))
        self.target_update = objectives.SoftUpdate(self.loss, tau=float(tau))
        self._tensordict = tensordict.TensorDict
        self.modules = {"loss": self.loss}
        self.optims = {
            "actor": torch.optim.Adam(self.policy.parameters(), lr=self.lr),
            "critic": torch.optim.Adam(list(self.loss.qvalue_network_params.values(True, True)), lr=self.lr),
            "value": torch.optim.Adam(list(self.loss.value_network_params.values(True, True)), lr=self.lr),
        }

    def batch(self, idx: np.ndarray):
        """The TorchRL tensordict of transitions ``idx`` (done = terminated: the data have no time limits)."""
        d, n = self.data, len(idx)
        term = torch.as_tensor(d.terminals[idx]).reshape(n, 1)
        return self._tensordict({
            "observation": torch.as_tensor(d.obs[idx]), "action": torch.as_tensor(d.acts[idx]),
            "next": {"observation": torch.as_tensor(d.next_obs[idx]),
                     "reward": torch.as_tensor(d.rewards[idx]).reshape(n, 1), "done": term, "terminated": term},
        }, batch_size=[n])

    def update(self, step: int) -> dict[str, float]:
        if self.actor_cosine:  # IQL: cosine decay of the actor's learning rate over the run
            for group in self.optims["actor"].param_groups:
                group["lr"] = self.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, self.steps) / max(1, self.steps)))
        out = self.loss(self.batch(self.rng.integers(0, len(self.data.obs), self.batch_size)))
        total = out["loss_actor"] + out["loss_qvalue"] + out["loss_value"]
        for opt in self.optims.values():
            opt.zero_grad(set_to_none=True)
        total.backward()  # each loss reaches only its own network's parameters (targets are detached)
        for opt in self.optims.values():
            opt.step()
        self.target_update.step()
        return {"loss_actor": float(out["loss_actor"].detach()), "loss_qvalue": float(out["loss_qvalue"].detach()),
                "loss_value": float(out["loss_value"].detach()), **self.reward_info}


def check_settings(*, gamma: float, expectile: float, temperature: float, tau: float, batch_size: int) -> None:
    """One-line errors for IQL settings out of range (config keys ``algo.<name>``)."""
    rules = {"gamma": (0.0 <= gamma < 1.0, "in [0, 1)"), "expectile": (0.0 < expectile < 1.0, "in (0, 1)"),
             "temperature": (0.0 < temperature < math.inf, "> 0"), "tau": (0.0 < tau <= 1.0, "in (0, 1]"),
             "batch_size": (batch_size >= 1, ">= 1")}
    given = {"gamma": gamma, "expectile": expectile, "temperature": temperature, "tau": tau, "batch_size": batch_size}
    for name, (ok, expected) in rules.items():
        if not ok:
            raise PbrlError(f"algo.{name}: expected a value {expected}, got {given[name]}")

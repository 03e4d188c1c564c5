"""The export's own check: the written graph acts like the training-time policy.

1. **Actions on the states the policy visits.** The training-time policy drives ``episodes`` closed-loop
   episodes on the task's simulator (evaluation seeds ``seed, seed+1, ...``); the graph is fed the very same
   observations, plus ``n_obs`` Gaussian perturbations of them (off-distribution inputs: saturated squashing,
   clipping), and every action must agree to ``tolerance``. Both policies see identical inputs, so this check
   is exact whatever the dynamics.
2. **Closed-loop returns, as a statistical check.** The graph then drives its own episodes from the same
   seeds. On chaotic dynamics (HalfCheetah) a 1e-7 action difference grows over 1000 steps until the two
   episodes are as different as two seeds, so returns cannot be compared one to one (``pbrl export`` of the
   demo run failed that way: -218.2 exported vs -208.4 from one seed). They are compared as samples: with
   ``s`` the spread (sample std) of the training-time policy's own returns across the ``K`` seeds, the
   difference of the two mean returns must stay within ``t * s * sqrt(2 / K)``, ``t`` the 1 - 5e-5 quantile
   of Student's t with ``K - 1`` degrees of freedom. A correct export whose episodes decorrelate fully fails
   it with probability 1e-4 (less when they stay correlated; a deterministic false failure could not be
   retried away, hence the small rate); a policy whose returns never vary must match to ``return_rtol``.
   ``bench/export_parity.py`` measures per-seed differences against ``s`` on trained and chaotic policies.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from pbrl.envs.make import make_env
from pbrl.envs.tasks import TaskSpec
from pbrl.export.policy import ReferenceFn
from pbrl.export.writers import GraphFn


@dataclasses.dataclass(frozen=True)
class ParityReport:
    """Numbers of the parity check, stored in ``policy.json``.

    Attributes:
        n_obs: observations whose actions were compared (visited states and their perturbations).
        max_abs_diff: largest absolute action difference among them.
        tolerance: allowed ``max_abs_diff``.
        returns_reference: closed-loop returns of the training-time policy, one per evaluation seed.
        returns_export: closed-loop returns of the graph from the same seeds.
        return_tolerance: allowed difference of the two mean returns.
        rollout_steps: steps of the closed-loop episodes, all seeds together.
        seed: the first evaluation seed.
    """

    n_obs: int
    max_abs_diff: float
    tolerance: float
    returns_reference: tuple[float, ...]
    returns_export: tuple[float, ...]
    return_tolerance: float
    rollout_steps: int
    seed: int

    @property
    def return_reference(self) -> float:
        return float(np.mean(self.returns_reference))

    @property
    def return_export(self) -> float:
        return float(np.mean(self.returns_export))

    @property
    def actions_match(self) -> bool:
        return self.max_abs_diff < self.tolerance

    @property
    def returns_match(self) -> bool:
        return abs(self.return_export - self.return_reference) <= self.return_tolerance

    @property
    def passed(self) -> bool:
        return self.actions_match and self.returns_match

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "return_reference": self.return_reference,
                "return_export": self.return_export, "passed": self.passed}

    def summary(self) -> str:
        return (f"max |action diff| {self.max_abs_diff:.2e} on {self.n_obs} obs (tolerance {self.tolerance:.0e})"
                f"{'' if self.actions_match else ' FAILED'}; mean closed-loop return over "
                f"{len(self.returns_reference)} seeds {self.return_export:.2f} exported vs "
                f"{self.return_reference:.2f} training-time (tolerance {self.return_tolerance:.2f})"
                f"{'' if self.returns_match else ' FAILED'}")


def probe_observations(visited: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` visited states (cycled), each perturbed by noise of each dimension's spread."""
    base = visited[rng.integers(0, len(visited), size=n)].astype(np.float32)
    spread = visited.std(axis=0) + 1e-3
    return base + (rng.standard_normal(base.shape) * spread).astype(np.float32)


def closed_loop_episodes(task: TaskSpec, policy: GraphFn, seeds: Sequence[int],
                         episode_length: int) -> tuple[list[float], list[np.ndarray]]:
    """Closed-loop episodes from ``seeds``, stepped in lockstep so the policy sees one batch per step.

    Returns each episode's true return and its observations (including the last).
    """
    envs = [make_env(task, seed=s, episode_length=episode_length) for s in seeds]
    try:
        obs = [env.reset(seed=s)[0] for env, s in zip(envs, seeds)]
        visited = [[o] for o in obs]
        returns = [0.0] * len(envs)
        active = list(range(len(envs)))
        while active:
            actions = np.asarray(policy(np.stack([obs[i] for i in active]).astype(np.float32)), np.float32)
            still = []
            for i, action in zip(active, actions):
                obs[i], reward, terminated, truncated, _ = envs[i].step(action)
                visited[i].append(obs[i])
                returns[i] += float(reward)
                if not (terminated or truncated):
                    still.append(i)
            active = still
    finally:
        for env in envs:
            env.close()
    return returns, [np.asarray(v, np.float32) for v in visited]


#: Student's t quantiles at 1 - 5e-5 (a two-sided test at 1e-4) by degrees of freedom; 3.891 (normal) beyond 30.
_T_QUANTILE = {1: 6366.2, 2: 99.992, 3: 28.0, 4: 15.544, 5: 11.178, 6: 9.082, 7: 7.885, 8: 7.12, 9: 6.594,
               10: 6.211, 12: 5.694, 15: 5.239, 20: 4.837, 30: 4.482}


def t_quantile(dof: int) -> float:
    """The t quantile of :data:`_T_QUANTILE` for ``dof`` (the next tabulated smaller dof: conservative)."""
    return 3.891 if dof > 30 else _T_QUANTILE[max(d for d in _T_QUANTILE if d <= dof)]


def return_tolerance(returns: Sequence[float], *, rtol: float = 1e-4) -> float:
    """Allowed difference of two mean returns over ``len(returns)`` seeds (module docstring)."""
    k = len(returns)
    floor = rtol * max(1.0, abs(float(np.mean(returns))))
    if k < 2:
        return floor
    return max(t_quantile(k - 1) * float(np.std(returns, ddof=1)) * math.sqrt(2.0 / k), floor)


def check_parity(task: TaskSpec, reference: ReferenceFn, graph: GraphFn, *, seed: int, episode_length: int,
                 n_obs: int = 1000, tolerance: float = 1e-5, episodes: int = 10,
                 return_rtol: float = 1e-4) -> ParityReport:
    """Run both checks (module docstring) on ``episodes`` evaluation seeds starting at ``seed``."""
    seeds = [seed + i for i in range(episodes)]
    ref_returns, visited = closed_loop_episodes(task, reference, seeds, episode_length)
    states = np.concatenate(visited).astype(np.float32)
    obs = np.concatenate([states, probe_observations(states, n_obs, np.random.default_rng(seed))])
    diff = float(np.max(np.abs(np.asarray(graph(obs), np.float64) - np.asarray(reference(obs), np.float64))))
    exp_returns, _ = closed_loop_episodes(task, graph, seeds, episode_length)
    return ParityReport(n_obs=len(obs), max_abs_diff=diff, tolerance=tolerance, returns_reference=tuple(ref_returns),
                        returns_export=tuple(exp_returns),
                        return_tolerance=return_tolerance(ref_returns, rtol=return_rtol),
                        rollout_steps=int(sum(len(v) - 1 for v in visited)), seed=seed)

"""The export's own check: the written graph acts like the training-time policy.

Two tests, both on the task's simulator: (1) actions on ``n_obs`` observations (states visited by the
training-time policy plus Gaussian perturbations of them, so off-distribution inputs are covered too)
agree to ``tolerance``; (2) a closed-loop episode driven by the exported graph gets the same return as one
driven by the training-time policy from the same seed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from pbrl.envs.make import make_env
from pbrl.envs.rollout import rollout
from pbrl.envs.tasks import TaskSpec
from pbrl.export.policy import ReferenceFn
from pbrl.export.writers import GraphFn


@dataclasses.dataclass(frozen=True)
class ParityReport:
    """Numbers of the parity check, stored in ``policy.json``."""

    n_obs: int
    max_abs_diff: float
    tolerance: float
    return_reference: float
    return_export: float
    return_tolerance: float
    rollout_steps: int
    seed: int

    @property
    def passed(self) -> bool:
        return (self.max_abs_diff < self.tolerance
                and abs(self.return_export - self.return_reference) <= self.return_tolerance)

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "passed": self.passed}

    def summary(self) -> str:
        return (f"max |action diff| {self.max_abs_diff:.2e} on {self.n_obs} obs (tolerance {self.tolerance:.0e}); "
                f"closed-loop return {self.return_export:.4f} exported vs {self.return_reference:.4f} training-time "
                f"over {self.rollout_steps} steps")


def _single(batch_fn) -> Any:
    return lambda obs: batch_fn(np.asarray(obs, np.float32)[None])[0]


def probe_observations(visited: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` observations: visited states (cycled) plus noise of each dimension's spread (half of them)."""
    base = visited[rng.integers(0, len(visited), size=n)].astype(np.float32)
    spread = visited.std(axis=0) + 1e-3
    noisy = rng.random(n) < 0.5
    base[noisy] += (rng.standard_normal((int(noisy.sum()), visited.shape[1])) * spread).astype(np.float32)
    return base


def check_parity(task: TaskSpec, reference: ReferenceFn, graph: GraphFn, *, seed: int, episode_length: int,
                 n_obs: int = 1000, tolerance: float = 1e-5, return_rtol: float = 1e-4) -> ParityReport:
    """Run both checks; the closed-loop returns must agree to ``return_rtol * max(1, |return|)``."""
    returns, visited = [], None
    for policy in (reference, graph):
        env = make_env(task, seed=seed, episode_length=episode_length)
        try:
            traj = rollout(env, _single(policy), seed=seed)
        finally:
            env.close()
        returns.append(traj.true_return)
        visited = traj.obs if visited is None else visited
    obs = probe_observations(visited, n_obs, np.random.default_rng(seed))
    diff = float(np.max(np.abs(np.asarray(graph(obs), np.float64) - np.asarray(reference(obs), np.float64))))
    return ParityReport(n_obs=n_obs, max_abs_diff=diff, tolerance=tolerance, return_reference=float(returns[0]),
                        return_export=float(returns[1]), return_tolerance=return_rtol * max(1.0, abs(returns[0])),
                        rollout_steps=len(visited) - 1, seed=seed)

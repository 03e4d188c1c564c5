"""Segment features, intra-task distances and the Gromov-Wasserstein solve behind PEARL's CPA.

Gromov-Wasserstein (GW) aligns two point sets that live in *different* spaces by matching their
intra-set distance structure (Mémoli 2011; entropic GW, Peyré et al. 2016). PEARL (Liu et al. 2023,
Sec. 4.1) uses it to find which source-task segments correspond to which target-task segments.

Features of a segment (``kind``), computed per task and (by default) standardised per dimension:

- ``mean``: time-average of the observations (where the segment is);
- ``mean_delta`` (default): time-average plus last-minus-first observation (where it is and where it goes);
- ``flat``: observations every ``stride`` steps, concatenated (the whole path).

``use_actions`` appends the same statistic of the actions. Distances (``metric``): ``euclidean``
(default), ``sqeuclidean`` or ``cosine``; each matrix is divided by its maximum so the two tasks'
costs are on one scale and ``epsilon`` means the same thing for every task.

Plain GW only sees each task's distance structure, so it cannot tell an alignment from its mirror
image: on drawer-open -> drawer-close it matches "almost open" with "almost closed" and the labels
come out inverted (benchmark: 16-25% accuracy). ``anchor=hand_object`` adds a small *fused* term
(fused GW, Vayer et al. 2019; weight ``fused_penalty``) on a task-agnostic feature that both tasks
share: the mean and the change of the gripper-to-object distance (Meta-World observations: hand at
``obs[0:3]``, first object at ``obs[4:7]``). This is an addition to PEARL, which uses plain GW.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import NamedTuple, Sequence

import numpy as np

from pbrl.data.trajectory import Segment
from pbrl.types import PbrlError

FEATURE_KINDS = ("mean", "mean_delta", "flat")
METRICS = ("euclidean", "sqeuclidean", "cosine")
ANCHORS = ("none", "hand_object")


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """How segments become vectors and vectors become a distance matrix (see the module docstring)."""

    kind: str = "mean_delta"
    stride: int = 10
    use_actions: bool = False
    standardize: bool = True
    metric: str = "euclidean"

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_KINDS:
            raise PbrlError(f"feedback.features.kind: expected one of {FEATURE_KINDS}, got {self.kind!r}")
        if self.metric not in METRICS:
            raise PbrlError(f"feedback.features.metric: expected one of {METRICS}, got {self.metric!r}")
        if self.stride < 1:
            raise PbrlError(f"feedback.features.stride: expected >= 1, got {self.stride}")


@dataclasses.dataclass(frozen=True)
class GWSettings:
    """Entropic GW solver settings (ott-jax ``GromovWasserstein`` with a ``Sinkhorn`` linear solver).

    Attributes:
        epsilon: entropic regularisation (costs are max-normalised to [0, 1]); smaller = sharper coupling.
        max_iterations: outer GW iterations (each solves one linearised OT problem).
        threshold: outer convergence tolerance on the change of the coupling.
        sinkhorn_max_iterations: inner Sinkhorn iterations per outer step.
        fused_penalty: weight of the cross-task (anchor) cost when one is given (fused GW).
    """

    epsilon: float = 5e-3
    max_iterations: int = 50
    threshold: float = 1e-3
    sinkhorn_max_iterations: int = 2000
    fused_penalty: float = 0.1

    def __post_init__(self) -> None:
        if not self.epsilon > 0:
            raise PbrlError(f"feedback.gw.epsilon: expected > 0, got {self.epsilon}")
        if not self.fused_penalty >= 0:
            raise PbrlError(f"feedback.gw.fused_penalty: expected >= 0, got {self.fused_penalty}")
        if self.max_iterations < 1 or self.sinkhorn_max_iterations < 1:
            raise PbrlError("feedback.gw.max_iterations and sinkhorn_max_iterations: expected >= 1")


def segment_features(segments: Sequence[Segment], spec: FeatureSpec) -> np.ndarray:
    """``(n, d)`` float32 feature matrix of the segments (see the module docstring)."""
    if not segments:
        raise PbrlError("segment_features: no segments")
    lengths = {len(s) for s in segments}
    if spec.kind == "flat" and len(lengths) > 1:
        raise PbrlError(f"features.kind=flat needs one segment length, got {sorted(lengths)}")
    rows = []
    for s in segments:
        parts = [np.asarray(s.obs, np.float64)] + ([np.asarray(s.acts, np.float64)] if spec.use_actions else [])
        feats = []
        for x in parts:
            if spec.kind == "flat":
                feats.append(x[:: spec.stride].reshape(-1))
            else:
                feats.append(x.mean(axis=0))
                if spec.kind == "mean_delta":
                    feats.append(x[-1] - x[0])
        rows.append(np.concatenate(feats))
    X = np.stack(rows)
    if spec.standardize:
        std = X.std(axis=0)
        X = (X - X.mean(axis=0)) / np.where(std > 1e-8, std, 1.0)
    return X.astype(np.float32)


def distance_matrix(X: np.ndarray, metric: str) -> np.ndarray:
    """``(n, n)`` float32 pairwise distances, divided by their maximum (all zeros stay zeros)."""
    X = np.asarray(X, np.float64)
    if metric == "cosine":
        U = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        D = np.clip(1.0 - U @ U.T, 0.0, 2.0)
    else:
        sq = np.sum(X * X, axis=1)
        D = np.maximum(sq[:, None] + sq[None, :] - 2.0 * X @ X.T, 0.0)
        if metric == "euclidean":
            D = np.sqrt(D)
    np.fill_diagonal(D, 0.0)
    top = D.max()
    return (D / top if top > 0 else D).astype(np.float32)


def anchor_features(segments: Sequence[Segment], anchor: str) -> np.ndarray:
    """``(n, 2)`` task-agnostic features for the fused term: mean and change of |hand - object|."""
    if anchor not in ANCHORS or anchor == "none":
        raise PbrlError(f"feedback.anchor: expected one of {ANCHORS[1:]} here, got {anchor!r}")
    out = []
    for s in segments:
        if s.obs.shape[1] < 7:
            raise PbrlError(
                f"feedback.anchor=hand_object needs Meta-World observations (>= 7 dims), got {s.obs.shape[1]}")
        d = np.linalg.norm(s.obs[:, 0:3] - s.obs[:, 4:7], axis=1)
        out.append([d.mean(), d[-1] - d[0]])
    return np.asarray(out, np.float64)


def cross_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(n, m)`` float32 euclidean distances between two feature sets, divided by their maximum."""
    D = np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1), 0.0))
    top = D.max()
    return (D / top if top > 0 else D).astype(np.float32)


class GWResult(NamedTuple):
    """A solved GW alignment.

    Attributes:
        coupling: ``(n_source, n_target)`` float64 transport plan (rows sum to 1/n_source).
        converged: whether the outer iterations met ``threshold`` before ``max_iterations``.
        n_iters: outer iterations run.
        cost: regularised GW cost.
        seconds: wall time of the solve (including compilation on the first call of a shape).
    """

    coupling: np.ndarray
    converged: bool
    n_iters: int
    cost: float
    seconds: float


@functools.lru_cache(maxsize=8)
def _jitted_solver(settings: GWSettings, fused: bool):
    """One jitted solve per settings; jax then caches the compiled program per input shape."""
    import jax
    import jax.numpy as jnp
    from ott.geometry import geometry
    from ott.problems.quadratic import quadratic_problem
    from ott.solvers.linear import sinkhorn
    from ott.solvers.quadratic import gromov_wasserstein

    solver = gromov_wasserstein.GromovWasserstein(
        sinkhorn.Sinkhorn(max_iterations=settings.sinkhorn_max_iterations),
        epsilon=settings.epsilon, max_iterations=settings.max_iterations, threshold=settings.threshold,
    )

    def solve(cxx, cyy, cxy):
        geom_xy = geometry.Geometry(cost_matrix=cxy) if fused else None
        prob = quadratic_problem.QuadraticProblem(
            geometry.Geometry(cost_matrix=cxx), geometry.Geometry(cost_matrix=cyy), geom_xy,
            fused_penalty=settings.fused_penalty)
        out = solver(prob)
        # n_iters needs store_inner_errors; the per-iteration cost trace is -1 where no iteration ran.
        return out.matrix, out.converged, jnp.sum(out.costs != -1), out.reg_gw_cost

    return jax.jit(solve)


def solve_gw(cost_source: np.ndarray, cost_target: np.ndarray, settings: GWSettings,
             cost_cross: np.ndarray | None = None) -> GWResult:
    """Entropic GW coupling between two tasks' segments from their intra-task distance matrices (float32).

    With ``cost_cross`` (``(n_source, n_target)``) the problem is fused GW with weight ``settings.fused_penalty``.
    """
    for name, c in (("source", cost_source), ("target", cost_target)):
        if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] < 2:
            raise PbrlError(f"solve_gw: {name} cost must be a square matrix of >= 2 segments, got {c.shape}")
    t0 = time.perf_counter()
    fused = cost_cross is not None
    if fused and cost_cross.shape != (cost_source.shape[0], cost_target.shape[0]):
        raise PbrlError(f"solve_gw: cross cost shape {cost_cross.shape}; expected "
                        f"({cost_source.shape[0]}, {cost_target.shape[0]})")
    cxy = np.asarray(cost_cross, np.float32) if fused else np.zeros((1, 1), np.float32)
    matrix, converged, n_iters, cost = _jitted_solver(settings, fused)(
        np.asarray(cost_source, np.float32), np.asarray(cost_target, np.float32), cxy)
    coupling = np.asarray(matrix, np.float64)  # blocks until the device work is done
    seconds = time.perf_counter() - t0
    if not np.all(np.isfinite(coupling)) or coupling.sum() <= 0:
        raise PbrlError(
            f"Gromov-Wasserstein produced a NaN/empty coupling (epsilon={settings.epsilon}); "
            f"increase feedback.gw.epsilon"
        )
    return GWResult(coupling, bool(converged), int(n_iters), float(cost), seconds)

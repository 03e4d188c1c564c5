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
image (drawer-open -> drawer-close: "almost open" matched with "almost closed", labels inverted). This
module gives the pieces to see and resolve that: solves from a chosen initial coupling
(:func:`solve_gw` ``init``), the GW objective of any coupling (:func:`gw_objective`) and how spread a
coupling is (:func:`plan_entropy`); :mod:`pbrl.feedback.orientation` uses them to build and choose
candidate alignments, and :mod:`pbrl.feedback.declared` gives the optional fused (cross-task) term
from features the task YAMLs declare (fused GW, Vayer et al. 2019).
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
        fused_penalty: weight of the cross-task cost (declared features) when one is given (fused GW).
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
    return (standardise(X) if spec.standardize else X).astype(np.float32)


def standardise(X: np.ndarray) -> np.ndarray:
    """Z-score every column within its task (constant columns become 0): no dimension dominates by its units."""
    X = np.asarray(X, np.float64)
    sd = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(sd > 1e-8, sd, 1.0)


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
def _jitted_solver(settings: GWSettings, fused: bool, with_init: bool):
    """One jitted solve per settings; jax then caches the compiled program per input shape."""
    import jax
    import jax.numpy as jnp
    from ott.geometry import geometry
    from ott.initializers.quadratic.initializers import QuadraticInitializer
    from ott.problems.quadratic import quadratic_problem
    from ott.solvers.linear import sinkhorn
    from ott.solvers.quadratic import gromov_wasserstein

    from pbrl.devices import jax_compile_cache

    jax_compile_cache()  # a GW solve compiles for seconds; a later feedback session or run loads it from disk

    solver = gromov_wasserstein.GromovWasserstein(
        sinkhorn.Sinkhorn(max_iterations=settings.sinkhorn_max_iterations),
        epsilon=settings.epsilon, max_iterations=settings.max_iterations, threshold=settings.threshold,
    )

    def solve(cxx, cyy, cxy, init):
        geom_xy = geometry.Geometry(cost_matrix=cxy) if fused else None
        prob = quadratic_problem.QuadraticProblem(
            geometry.Geometry(cost_matrix=cxx), geometry.Geometry(cost_matrix=cyy), geom_xy,
            fused_penalty=settings.fused_penalty)
        # the first linearisation around ``init`` instead of the product coupling a b^T (ott's default)
        lin = QuadraticInitializer(init)(prob, epsilon=settings.epsilon) if with_init else None
        out = solver(prob, init=lin)
        # n_iters needs store_inner_errors; the per-iteration cost trace is -1 where no iteration ran.
        return out.matrix, out.converged, jnp.sum(out.costs != -1), out.reg_gw_cost

    return jax.jit(solve)


def solve_gw(cost_source: np.ndarray, cost_target: np.ndarray, settings: GWSettings,
             cost_cross: np.ndarray | None = None, init: np.ndarray | None = None) -> GWResult:
    """Entropic GW coupling between two tasks' segments from their intra-task distance matrices (float32).

    With ``cost_cross`` (``(n_source, n_target)``) the problem is fused GW with weight ``settings.fused_penalty``.
    ``init`` (``(n_source, n_target)``, uniform marginals) is the coupling the first linearisation is taken
    around (Peyre et al. 2016, Eq. 6); None = the product coupling.
    """
    for name, c in (("source", cost_source), ("target", cost_target)):
        if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] < 2:
            raise PbrlError(f"solve_gw: {name} cost must be a square matrix of >= 2 segments, got {c.shape}")
    shape = (cost_source.shape[0], cost_target.shape[0])
    t0 = time.perf_counter()
    fused = cost_cross is not None
    for name, m in (("cross cost", cost_cross), ("init coupling", init)):
        if m is not None and m.shape != shape:
            raise PbrlError(f"solve_gw: {name} shape {m.shape}; expected {shape}")
    cxy = np.asarray(cost_cross, np.float32) if fused else np.zeros((1, 1), np.float32)
    start = np.asarray(init, np.float32) if init is not None else np.zeros((1, 1), np.float32)
    matrix, converged, n_iters, cost = _jitted_solver(settings, fused, init is not None)(
        np.asarray(cost_source, np.float32), np.asarray(cost_target, np.float32), cxy, start)
    coupling = np.asarray(matrix, np.float64)  # blocks until the device work is done
    seconds = time.perf_counter() - t0
    if not np.all(np.isfinite(coupling)) or coupling.sum() <= 0:
        raise PbrlError(
            f"Gromov-Wasserstein produced a NaN/empty coupling (epsilon={settings.epsilon}); "
            f"increase feedback.gw.epsilon"
        )
    return GWResult(coupling, bool(converged), int(n_iters), float(cost), seconds)


def gw_objective(cost_source: np.ndarray, cost_target: np.ndarray, coupling: np.ndarray) -> float:
    """Square-loss GW objective ``sum_{i,j,k,l} (Cs[i,k] - Ct[j,l])^2 T[i,j] T[k,l]`` (Memoli 2011; no entropy).

    Expanded as ``a' Cs^2 a + b' Ct^2 b - 2 <Cs T Ct, T>`` with ``a, b`` the coupling's marginals (symmetric costs),
    so two couplings of one problem (e.g. a plan and its mirror) can be compared on structure alone.
    """
    Cs, Ct, T = (np.asarray(x, np.float64) for x in (cost_source, cost_target, coupling))
    a, b = T.sum(axis=1), T.sum(axis=0)
    return float(a @ (Cs * Cs) @ a + b @ (Ct * Ct) @ b - 2.0 * np.sum((Cs @ T @ Ct) * T))


def plan_entropy(coupling: np.ndarray) -> float:
    """Mean over target segments of the entropy of their correspondence over source segments, / log(n_source).

    0 = every target segment matched to a single source segment; 1 = matched to all equally (the product
    coupling: the alignment says nothing and the transferred labels are the source's average).
    """
    T = np.asarray(coupling, np.float64)
    if T.shape[0] < 2:
        return 0.0
    A = T / np.maximum(T.sum(axis=0, keepdims=True), 1e-300)
    h = -np.sum(np.where(A > 0, A * np.log(np.where(A > 0, A, 1.0)), 0.0), axis=0)
    return float(np.mean(h) / np.log(T.shape[0]))

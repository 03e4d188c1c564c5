"""Few-shot transfer: the chosen alignment as a prior, the target's own labels as evidence.

Choosing among candidate alignments (:mod:`pbrl.feedback.orientation`) can only be as good as the best
candidate. Where the two tasks' rewards are about different things (reach -> push: the hand's distance to a
point against the puck's), every alignment stays near chance, and the few target labels cannot fix that by
choosing. They can by *fitting*: a linear Bradley-Terry reward ``r(x) = w . x`` on the target segments' own
features (the standardised features GW aligns; no index is read as anything), ``P(first preferred) =
sigmoid(w . (x_first - x_second))``, fitted in two steps:

1. **prior**: ``w_T`` fits the chosen candidate's soft labels on ``prior_pairs`` random target pairs (ridge
   ``prior_ridge``): the transfer, projected onto a linear reward;
2. **posterior** (MAP): ``w`` fits the ``k`` true target labels under a Gaussian prior centred at ``w_T``,
   ``sum_j BCE(sigmoid(w . d_j), y_j) + prior_weight / 2 * ||w - w_T||^2``.

With few labels ``w`` stays near the transfer; with more, the target labels take over; with ``k = 0`` the
transfer's own labels are used (zero-shot, unverified). The reported agreement is leave-one-out over the
``k`` labels with the candidate choice and both fits redone on the other ``k - 1`` (Stone 1974), so it pays
for the fitting as the candidate choice's estimate pays for choosing. Measured side by side on 22 Meta-World
pairs in BENCHMARKS.md ("PEARL cross-task transfer"), with the target labels alone as the baseline.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple, Optional

import numpy as np

from pbrl.feedback.orientation import hard_agreement
from pbrl.types import PbrlError

MODELS = ("linear", "none")


@dataclasses.dataclass(frozen=True)
class FewShotSettings:
    """``feedback.few_shot``: how ``k > 0`` target labels turn the chosen alignment into labels.

    Attributes:
        model: ``linear`` = the prior/posterior fit above; ``none`` = the chosen candidate's labels as they are.
        prior_weight: precision of the Gaussian prior around the transfer's weights (larger = trust the transfer).
        prior_pairs: random target pairs labelled by the chosen candidate to fit the prior.
        prior_ridge: ridge of the prior fit (features are standardised, so 1 is mild).
    """

    model: str = "linear"
    prior_weight: float = 10.0
    prior_pairs: int = 1000
    prior_ridge: float = 1.0

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise PbrlError(f"feedback.few_shot.model: expected one of {MODELS}, got {self.model!r}")
        if not (self.prior_weight > 0 and self.prior_ridge > 0):
            raise PbrlError("feedback.few_shot.prior_weight / prior_ridge: expected values > 0, got "
                            f"{self.prior_weight} / {self.prior_ridge}")
        if self.prior_pairs < 1:
            raise PbrlError(f"feedback.few_shot.prior_pairs: expected >= 1, got {self.prior_pairs}")


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, np.float64)))  # no overflow for large |z|


def fit_bradley_terry(diffs: np.ndarray, y: np.ndarray, *, ridge: float, center: Optional[np.ndarray] = None,
                      weight: Optional[np.ndarray] = None, init: Optional[np.ndarray] = None, max_iter: int = 50,
                      tol: float = 1e-9) -> np.ndarray:
    """MAP weights of ``P(first preferred) = sigmoid(w . d)`` with a Gaussian prior ``N(center, 1 / ridge)``.

    Minimises ``sum_j weight_j * BCE(sigmoid(w . d_j), y_j) + ridge / 2 * ||w - center||^2`` by Newton's method
    with backtracking (the objective is strictly convex, so the minimiser is unique, whatever the start ``init``,
    default ``center``). ``y`` may be soft.
    """
    D, y = np.asarray(diffs, np.float64), np.asarray(y, np.float64)
    if D.ndim != 2 or len(D) != len(y):
        raise PbrlError(f"fit_bradley_terry: expected (m, d) differences and (m,) labels, got {D.shape}, {y.shape}")
    c = np.zeros(D.shape[1]) if center is None else np.asarray(center, np.float64)
    s = np.ones(len(y)) if weight is None else np.asarray(weight, np.float64)

    def loss(v: np.ndarray) -> float:
        z = D @ v  # BCE(sigmoid(z), y) = softplus(z) - y z, computed without overflow
        return float(np.sum(s * (np.logaddexp(0.0, z) - y * z)) + 0.5 * ridge * np.sum((v - c) ** 2))

    w = (c if init is None else np.asarray(init, np.float64)).copy()
    for _ in range(max_iter):
        p = sigmoid(D @ w)
        grad = D.T @ (s * (p - y)) + ridge * (w - c)
        hess = (D * (s * p * (1.0 - p))[:, None]).T @ D + ridge * np.eye(len(w))
        step, t, now = np.linalg.solve(hess, grad), 1.0, loss(w)
        while loss(w - t * step) > now and t > 1e-6:  # backtracking: full Newton steps can overshoot far from w*
            t *= 0.5
        w = w - t * step
        if np.max(np.abs(t * step)) < tol:
            break
    return w


class FewShotFit(NamedTuple):
    """Result of :func:`fit_few_shot`.

    Attributes:
        weights: posterior weights on all ``k`` labels (target reward ``w . x``).
        candidate: the candidate whose labels gave the prior (chosen on all ``k`` labels).
        agreement: leave-one-out agreement (choice and both fits redone without the held-out label).
        fit_agreement: agreement of ``weights`` with all ``k`` labels (optimistic).
    """

    weights: np.ndarray
    candidate: int
    agreement: float
    fit_agreement: float


def fit_few_shot(X: np.ndarray, first: np.ndarray, second: np.ndarray, y: np.ndarray, agree: np.ndarray,
                 prior_labels: Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray]],
                 settings: FewShotSettings) -> FewShotFit:
    """The linear few-shot reward on target features ``X`` from ``k`` labelled pairs, and its LOO agreement.

    Args:
        X: ``(n, d)`` standardised target features (:func:`~pbrl.feedback.ot.standardise`: one ridge then means
            the same for every feature).
        first, second, y: the ``k`` labelled target pairs (indices into ``X``) and their labels.
        agree: ``(n_candidates, k)`` each candidate's agreement with each label (choice as in
            :func:`~pbrl.feedback.orientation.choose`: most agreements, ties to the earlier).
        prior_labels: candidate index -> ``(first, second, p)``: its soft labels on the prior's target pairs.
    """
    D = X[first] - X[second]
    priors: dict[int, np.ndarray] = {}

    def prior(c: int) -> np.ndarray:
        if c not in priors:
            a, b, p = prior_labels(c)
            priors[c] = fit_bradley_terry(X[a] - X[b], p, ridge=settings.prior_ridge)
        return priors[c]

    total = agree.sum(axis=1)
    best = int(np.argmax(total))
    w = fit_bradley_terry(D, y, ridge=settings.prior_weight, center=prior(best))
    held = []
    for j in range(len(y)):
        keep = np.arange(len(y)) != j
        c = int(np.argmax(total - agree[:, j]))
        # started from the all-label fit when the prior is the same: one label moves the optimum little (speed only)
        v = fit_bradley_terry(D[keep], y[keep], ridge=settings.prior_weight, center=prior(c),
                              init=w if c == best else None)
        held.append(float(hard_agreement(sigmoid(D[j] @ v), y[j])))
    fit = float(np.mean(hard_agreement(sigmoid(D @ w), y)))
    return FewShotFit(w, best, float(np.mean(held)), fit)

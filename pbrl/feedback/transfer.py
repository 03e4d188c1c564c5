"""PEARL's Cross-task Preference Alignment (CPA; Liu et al. 2023, "PEARL: Zero-shot Cross-task
Preference Alignment and Robust Reward Learning for Robotic Manipulation", Sec. 4.1).

Labelled segments of a *source* task (a :class:`~pbrl.data.store.PreferenceStore`, labels from any
source) are aligned with unlabelled *target*-task segments by entropic Gromov-Wasserstein on
intra-task distance matrices (:mod:`pbrl.feedback.ot`). With ``A[k, i] = T[k, i] / sum_k T[k, i]``
the correspondence of target segment ``i`` over source segments, a target pair ``(i, j)`` gets the
correspondence-weighted average of the source labels::

    p(i, j) = sum_{(k,l) labelled} A[k,i] A[l,j] y_kl  /  sum_{(k,l) labelled} A[k,i] A[l,j]

where each source pair counts in both orders (``y_lk = 1 - y_kl``). The labels are soft; their
confidence weight (``confidence=agreement``) is ``max(|2p - 1|, 1e-3)``: how unanimously the matched source
pairs agree. No target label is used (zero-shot) unless ``target_labels > 0`` pairs per call are
answered by a rational scripted teacher instead.

A *target pool* (``target_pool``: segments of the target task from any store, its labels never read --
PEARL's setting, an unlabelled target-task dataset) joins every alignment, and ``pool_pairs`` random pairs
of it get transferred labels once, at the first feedback session. Online, the learner's first segments
come from a near-random policy: their return differences say little about the task, GW has no structure to
align them by, and alone they were labelled *against* the true order (button-press -> button-press-topdown,
20k steps: 44% agreement, and the learned reward ranked held-out target segments 31% right); next to a pool of
varied behaviour the queried labels agreed on 66%, the pool's on 81%, and the learned reward ranked the held-out
segments as well as one trained on true labels (86%; bench/transfer_policy.py).
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Segment
from pbrl.feedback.heron import distinct_segments, segment_key
from pbrl.feedback.pool import draw_pool_pairs, load_target_pool
from pbrl.feedback.ot import (ANCHORS, FeatureSpec, GWResult, GWSettings, anchor_features, cross_distance,
                             distance_matrix, segment_features, solve_gw)
from pbrl.types import Labels, PbrlError

log = logging.getLogger(__name__)
CONFIDENCE = ("agreement", "none")
MIN_WEIGHT = 1e-3


class GWConvergenceWarning(UserWarning):
    """The GW solver stopped at max_iterations: the transferred labels may be poor."""


@dataclasses.dataclass(frozen=True)
class SourcePairs:
    """Labelled source-task pairs as indices into ``segments``.

    Attributes:
        segments: distinct source segments.
        first, second: ``(m,)`` int64 indices of each labelled pair.
        p: ``(m,)`` float64 labels, P(first preferred).
    """

    segments: list[Segment]
    first: np.ndarray
    second: np.ndarray
    p: np.ndarray


def load_source(path: str | Path, *, max_segments: int, rng: np.random.Generator,
                sources: Optional[Sequence[str]] = None) -> SourcePairs:
    """Answered labels of a source store, restricted to at most ``max_segments`` distinct segments.

    Pairs are taken in random order while their segments still fit, so the kept pairs stay labelled.
    """
    with PreferenceStore(path, create=False) as store:
        rows = store.labels(sources=sources)
        if not rows:
            raise PbrlError(f"feedback.source_store: {path} has no answered labels (sources={sources})")
        chosen: dict[int, int] = {}
        pairs = []
        for r in (rows[i] for i in rng.permutation(len(rows))):
            new = {r.first_id, r.second_id} - set(chosen)
            if len(chosen) + len(new) > max_segments:
                continue
            for sid in (r.first_id, r.second_id):
                chosen.setdefault(sid, len(chosen))
            pairs.append((chosen[r.first_id], chosen[r.second_id], float(r.label)))
        segments = store.get_segments(list(chosen))
    if len(segments) < 2:
        raise PbrlError(f"feedback.source_store: {path}: fewer than 2 source segments fit max_source={max_segments}")
    a = np.array(pairs)
    return SourcePairs(segments, a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2])


def transfer_pair_labels(coupling: np.ndarray, src: SourcePairs, first: np.ndarray,
                         second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CPA labels for target pairs ``(first[i], second[i])`` (indices into the coupling's columns).

    Returns:
        ``(p, mass)``: soft labels and the matched source-pair mass ``sum A[k,i] A[l,j]`` over labelled pairs.
    """
    n = len(src.segments)
    Y, M = np.zeros((n, n)), np.zeros((n, n))
    np.add.at(Y, (src.first, src.second), src.p)
    np.add.at(Y, (src.second, src.first), 1.0 - src.p)
    np.add.at(M, (src.first, src.second), 1.0)
    np.add.at(M, (src.second, src.first), 1.0)
    A = coupling / np.maximum(coupling.sum(axis=0, keepdims=True), 1e-300)
    Af, As = A[:, first], A[:, second]  # (n_source, n_pairs)
    num = np.sum(Af * (Y @ As), axis=0)  # sum_kl A[k,i] Y[k,l] A[l,j], one matrix product per pair set
    den = np.sum(Af * (M @ As), axis=0)
    p = np.where(den > 0, num / np.maximum(den, 1e-300), 0.5)
    return np.clip(p, 0.0, 1.0), den


class TransferLabeller:
    """Labels target pairs by GW alignment with a labelled source task (store source ``transfer``).

    Args:
        source: labelled source pairs (:func:`load_source`).
        features: how segments become features and distances.
        gw: solver settings.
        anchor: ``none`` (plain GW, as PEARL) or ``hand_object`` (fused GW on the gripper-object distance,
            see :mod:`pbrl.feedback.ot`).
        max_target: at most this many target segments are aligned per call (the call's own segments first,
            then the candidate pool given to :meth:`set_pool`).
        confidence: ``agreement`` (weight ``|2p - 1|``) or ``none`` (weight 1).
        on_nonconvergence: ``warn`` or ``error``.
        target_teacher: labeller for up to ``target_labels`` pairs per call (few-shot); None = zero-shot.
        target_labels: pairs per call answered by ``target_teacher`` (weight 1).
        target_pool: target-task segments aligned with every call (after the queried ones, before the
            candidates).
        pool_pairs: random pairs of the target pool that :meth:`initial_pairs` labels (once per run).
    """

    def __init__(self, source: SourcePairs, *, features: FeatureSpec = FeatureSpec(), gw: GWSettings = GWSettings(),
                 anchor: str = "hand_object",
                 max_target: int = 1000, confidence: str = "agreement", on_nonconvergence: str = "warn",
                 target_teacher=None, target_labels: int = 0, target_pool: Sequence[Segment] = (),
                 pool_pairs: int = 0) -> None:
        if confidence not in CONFIDENCE:
            raise PbrlError(f"feedback.confidence: expected one of {CONFIDENCE}, got {confidence!r}")
        if anchor not in ANCHORS:
            raise PbrlError(f"feedback.anchor: expected one of {ANCHORS}, got {anchor!r}")
        if on_nonconvergence not in ("warn", "error"):
            raise PbrlError(f"feedback.on_nonconvergence: expected warn | error, got {on_nonconvergence!r}")
        if target_labels < 0 or (target_labels > 0 and target_teacher is None):
            raise PbrlError("feedback.target_labels: expected >= 0 (and a target teacher when > 0)")
        if pool_pairs < 0 or (pool_pairs > 0 and len(target_pool) < 2):
            raise PbrlError(f"feedback.pool_pairs: expected 0, or > 0 with a feedback.target_pool of >= 2 segments; "
                            f"got {pool_pairs}")
        self.source, self.features, self.gw = source, features, gw
        self.max_target, self.confidence, self.on_nonconvergence = int(max_target), confidence, on_nonconvergence
        self.target_teacher, self.target_labels = target_teacher, int(target_labels)
        self.anchor = anchor
        self.cost_source = distance_matrix(segment_features(source.segments, features), features.metric)
        self._anchor_source = None if anchor == "none" else anchor_features(source.segments, anchor)
        self._pool: list[Segment] = []
        self.target_pool, self.pool_pairs = distinct_segments(target_pool), int(pool_pairs)
        self.reports: list[dict] = []  # one per GW solve: sizes, epsilon, iterations, convergence, seconds

    def set_pool(self, candidates: Sequence[Segment]) -> None:
        """Candidate segments of the feedback session: aligned together with the queried ones."""
        self._pool = list(candidates)

    def align(self, targets: Sequence[Segment]) -> GWResult:
        """GW coupling between the source segments and ``targets``; warns (or raises) if not converged."""
        cost_target = distance_matrix(segment_features(targets, self.features), self.features.metric)
        cross = None
        if self._anchor_source is not None:
            cross = cross_distance(self._anchor_source, anchor_features(targets, self.anchor))
        res = solve_gw(self.cost_source, cost_target, self.gw, cross)
        report = {"n_source": len(self.source.segments), "n_target": len(targets), "epsilon": self.gw.epsilon,
                  "anchor": self.anchor, "fused_penalty": self.gw.fused_penalty if cross is not None else 0.0,
                  "iterations": res.n_iters, "max_iterations": self.gw.max_iterations,
                  "converged": res.converged, "gw_cost": res.cost, "seconds": round(res.seconds, 3)}
        self.reports.append(report)
        log.info("PEARL CPA: GW %d x %d, epsilon %g, %d/%d iterations, converged %s, %.2f s", report["n_source"],
                 report["n_target"], self.gw.epsilon, res.n_iters, self.gw.max_iterations, res.converged, res.seconds)
        if not res.converged:
            msg = (f"Gromov-Wasserstein did not converge in {self.gw.max_iterations} iterations (epsilon="
                   f"{self.gw.epsilon}); transferred labels may be wrong: raise feedback.gw.max_iterations or "
                   f"feedback.gw.epsilon")
            if self.on_nonconvergence == "error":
                raise PbrlError(msg)
            warnings.warn(msg, GWConvergenceWarning, stacklevel=2)
        return res

    def label(self, first: Sequence[Segment], second: Sequence[Segment], *, few_shot: bool = True) -> Labels:
        """Soft transferred labels (with confidence weights) for the pairs ``(first[i], second[i])``.

        ``few_shot=False`` leaves out the ``target_labels`` teacher answers (the pool's free pairs).
        """
        if len(first) != len(second):
            raise PbrlError(f"transfer label: {len(first)} first and {len(second)} second segments; expected equal")
        n = len(first)
        if n == 0:
            return _no_labels()
        queried = distinct_segments([*first, *second])
        index = {segment_key(s): i for i, s in enumerate(queried)}
        extra = [s for s in distinct_segments([*self.target_pool, *self._pool]) if segment_key(s) not in index]
        targets = (queried + extra)[: max(self.max_target, len(queried))]
        res = self.align(targets)
        i1 = np.array([index[segment_key(s)] for s in first])
        i2 = np.array([index[segment_key(s)] for s in second])
        p, _mass = transfer_pair_labels(res.coupling, self.source, i1, i2)
        # floor: an all-0.5 round must not leave the reward model a batch of zero total weight
        weight = np.maximum(np.abs(2.0 * p - 1.0), MIN_WEIGHT) if self.confidence == "agreement" else np.ones(n)
        k = min(self.target_labels, n) if few_shot else 0
        if k:  # few-shot: a handful of true target labels, full weight
            true = self.target_teacher.label(list(first[:k]), list(second[:k]))
            p[:k] = np.where(true.skipped, p[:k], true.p)
            weight[:k] = np.where(true.skipped, weight[:k], 1.0)
        return Labels(p=p.astype(np.float32), skipped=np.zeros(n, bool), weight=weight.astype(np.float32))

    def initial_pairs(self, rng: np.random.Generator,
                      segment_length: int) -> tuple[list[Segment], list[Segment], Labels]:
        """Transferred labels for ``pool_pairs`` random pairs of the target pool (no teacher is asked).

        The online learner stores them once, before its first fit, outside the label budget; its segments
        are ``segment_length`` long, and pool segments must match to share a training batch with them.
        """
        if self.pool_pairs == 0:
            return [], [], _no_labels()
        first, second = draw_pool_pairs(self.target_pool, self.pool_pairs, rng, segment_length)
        return first, second, self.label(first, second, few_shot=False)  # teacher answers are for queries only


def _no_labels() -> Labels:
    return Labels(np.zeros(0, np.float32), np.zeros(0, bool), np.zeros(0, np.float32))


def transfer_labeller(*, source_store: Optional[str], max_source: int, source_sources: Optional[Sequence[str]],
                      features: dict, gw: dict, anchor: str, max_target: int, confidence: str,
                      on_nonconvergence: str, target_labels: int, rng: np.random.Generator,
                      target_teacher=None, target_pool: Optional[str] = None,
                      pool_pairs: int = 0) -> TransferLabeller:
    """A :class:`TransferLabeller` from plain config values (``configs/feedback/transfer.yaml``)."""
    if not source_store:
        raise PbrlError("feedback.source_store: expected the path of a labelled source-task store (.sqlite)")
    try:
        spec, settings = FeatureSpec(**features), GWSettings(**gw)
    except TypeError as exc:
        raise PbrlError(f"feedback.features / feedback.gw: {exc}") from None
    source = load_source(source_store, max_segments=int(max_source), rng=rng, sources=source_sources)
    pool = load_target_pool(target_pool, max_segments=int(max_target), rng=rng) if target_pool else []
    return TransferLabeller(source, features=spec, gw=settings, anchor=anchor, max_target=max_target,
                            confidence=confidence, on_nonconvergence=on_nonconvergence, target_teacher=target_teacher,
                            target_labels=target_labels, target_pool=pool, pool_pairs=int(pool_pairs))

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
pairs agree.

GW cannot tell an alignment from its mirror image, so every session builds candidate alignments (plain and,
where both task YAMLs declare shared features, fused; each from two starts) and picks one by the labelled
*target* pairs it has (``target_labels`` per session, answered by a rational teacher and remembered across
sessions), with a leave-one-out agreement estimate; zero-shot it takes the first candidate and is *unverified*
(:mod:`pbrl.feedback.orientation`). With target labels the chosen candidate is by default not used as it is but
as the prior of a linear Bradley-Terry reward on the target features that the labels then fit
(``few_shot.model=linear``, :mod:`pbrl.feedback.few_shot`): where no alignment fits, the labels still can.
Each session's :class:`~pbrl.feedback.orientation.Reliability` is logged and kept in :attr:`TransferLabeller.reliability` (the run writes it to metrics.csv); an unreliable one warns
(:class:`TransferReliabilityWarning`) or, with ``on_unreliable=error``, stops the run.

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
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np

from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Segment
from pbrl.envs.tasks import TaskSpec
from pbrl.feedback.declared import DeclaredFeatures, fused_cost
from pbrl.feedback.few_shot import FewShotSettings, fit_few_shot, sigmoid
from pbrl.feedback.heron import distinct_segments, segment_key
from pbrl.feedback.labeller import Labeller, OfferedPairs
from pbrl.feedback.orientation import (Candidate, Choice, OrientationSettings, Reliability, assess, candidate_list,
                                       choose, hard_agreement, mirror_plan, source_utility)
from pbrl.feedback.ot import (FeatureSpec, GWSettings, distance_matrix, gw_objective, plan_entropy,
                             segment_features, solve_gw, standardise)
from pbrl.feedback.pool import draw_pool_pairs, load_target_pool
from pbrl.feedback.query import random_pairs
from pbrl.feedback.transfer_checks import check_label_count, check_lengths, check_suites, declared_for
from pbrl.types import Labels, PbrlError

log = logging.getLogger(__name__)
CONFIDENCE = ("agreement", "none")
MIN_WEIGHT = 1e-3
DEFAULT_FUSED = ("hand-object", "object-goal", "hand-goal")
MEMORY_PAIRS = 200  # labelled target pairs remembered to choose candidates (the most recent)


class GWConvergenceWarning(UserWarning):
    """The GW solver stopped at max_iterations: the transferred labels may be poor."""


class TransferReliabilityWarning(UserWarning):
    """A feedback session's transfer looks unreliable (``feedback.on_unreliable=error`` stops the run instead)."""


@dataclasses.dataclass(frozen=True)
class SourcePairs:
    """Labelled source-task pairs as indices into ``segments``.

    Attributes:
        segments: distinct source segments.
        first, second: ``(m,)`` int64 indices of each labelled pair.
        p: ``(m,)`` float64 labels, P(first preferred).
        store: the store they were read from (named in messages), or "".
        n_store_labels: answered labels the store holds (before ``max_segments`` kept a subset).
    """

    segments: list[Segment]
    first: np.ndarray
    second: np.ndarray
    p: np.ndarray
    store: str = ""
    n_store_labels: int = 0


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
    return SourcePairs(segments, a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2], str(path), len(rows))


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



class Plan(NamedTuple):
    """One solved GW alignment of a session (see :mod:`pbrl.feedback.orientation`).

    Attributes:
        name: ``fused|plain`` / ``product|mirror``.
        coupling: ``(n_source, n_target)`` transport plan.
        gw_cost: GW objective (structure only, :func:`~pbrl.feedback.ot.gw_objective`).
        entropy: :func:`~pbrl.feedback.ot.plan_entropy`.
    """

    name: str
    coupling: np.ndarray
    gw_cost: float
    entropy: float


@dataclasses.dataclass
class TargetLabels:
    """Labelled target pairs kept across sessions: the evidence that picks a candidate (few-shot)."""

    first: list[Segment] = dataclasses.field(default_factory=list)
    second: list[Segment] = dataclasses.field(default_factory=list)
    p: list[float] = dataclasses.field(default_factory=list)

    def add(self, first: Sequence[Segment], second: Sequence[Segment], labels: Labels) -> None:
        """Keep the answered, strict (not 0.5) ones -- a tie says nothing about orientation -- up to
        :data:`MEMORY_PAIRS`, the most recent (their segments join every alignment)."""
        for f, s, p, skip in zip(first, second, labels.p, labels.skipped):
            if not skip and float(p) != 0.5:
                self.first.append(f)
                self.second.append(s)
                self.p.append(float(p))
        del self.first[:-MEMORY_PAIRS], self.second[:-MEMORY_PAIRS], self.p[:-MEMORY_PAIRS]

    def __len__(self) -> int:
        return len(self.p)


class Decision(NamedTuple):
    """How a session labels target pairs: a candidate alignment, or the few-shot reward fitted around it.

    Attributes:
        candidate: the chosen candidate (the prior of ``weights`` when those are set).
        weights: linear few-shot reward on ``features``, or None.
        features: the session's standardised target features (set with ``weights``).
    """

    candidate: Candidate
    weights: Optional[np.ndarray] = None
    features: Optional[np.ndarray] = None

    @property
    def name(self) -> str:
        return self.candidate.name + (" + linear fit" if self.weights is not None else "")


class TransferLabeller(Labeller):
    """Labels target pairs by GW alignment with a labelled source task (store source ``transfer``).

    Args:
        source: labelled source pairs (:func:`load_source`).
        features: how segments become features and distances.
        gw: solver settings.
        orientation: which candidate alignments are built and when a session is unreliable.
        few_shot: how target labels turn the chosen alignment into labels (:mod:`pbrl.feedback.few_shot`).
        declared: features both task YAMLs declare (fused GW), or None (plain GW only).
        max_target: at most this many target segments are aligned per call (the call's own segments and the
            remembered target labels first, then the target pool, then the session's candidates).
        confidence: ``agreement`` (weight ``|2p - 1|``) or ``none`` (weight 1).
        on_nonconvergence: ``warn`` or ``error``.
        on_unreliable: ``warn`` or ``error`` when a session's :class:`Reliability` is ``unreliable``.
        target_teacher: labeller for up to ``target_labels`` pairs per call (few-shot); None = zero-shot.
        target_labels: pairs per call answered by ``target_teacher`` (weight 1, and kept to choose candidates).
        target_pool: target-task segments aligned with every call.
        pool_pairs: random pairs of the target pool that :meth:`initial_pairs` labels (once per run).
        seed: seeds the mirror's tie-breaking and the pairs candidates are compared on.
    """

    def __init__(self, source: SourcePairs, *, features: FeatureSpec = FeatureSpec(), gw: GWSettings = GWSettings(),
                 orientation: OrientationSettings = OrientationSettings(), few_shot: FewShotSettings = FewShotSettings(),
                 declared: Optional[DeclaredFeatures] = None,
                 max_target: int = 1000, confidence: str = "agreement", on_nonconvergence: str = "warn",
                 on_unreliable: str = "warn", target_teacher=None, target_labels: int = 0,
                 target_pool: Sequence[Segment] = (), pool_pairs: int = 0, seed: int = 0) -> None:
        if confidence not in CONFIDENCE:
            raise PbrlError(f"feedback.confidence: expected one of {CONFIDENCE}, got {confidence!r}")
        for name, value in (("on_nonconvergence", on_nonconvergence), ("on_unreliable", on_unreliable)):
            if value not in ("warn", "error"):
                raise PbrlError(f"feedback.{name}: expected warn | error, got {value!r}")
        if target_labels < 0 or (target_labels > 0 and target_teacher is None):
            raise PbrlError("feedback.target_labels: expected >= 0 (and a target teacher when > 0)")
        if pool_pairs < 0 or (pool_pairs > 0 and len(target_pool) < 2):
            raise PbrlError(f"feedback.pool_pairs: expected 0, or > 0 with a feedback.target_pool of >= 2 segments; "
                            f"got {pool_pairs}")
        self.source, self.features, self.gw, self.orientation = source, features, gw, orientation
        self.few_shot = few_shot
        self.declared = declared if orientation.fused != "off" else None
        self.max_target, self.confidence = int(max_target), confidence
        self.on_nonconvergence, self.on_unreliable = on_nonconvergence, on_unreliable
        self.target_teacher, self.target_labels = target_teacher, int(target_labels)
        self.cost_source = distance_matrix(segment_features(source.segments, features), features.metric)
        self.utility = source_utility(len(source.segments), source.first, source.second, source.p)
        self._pool: list[Segment] = []
        self.target_pool, self.pool_pairs = distinct_segments(target_pool), int(pool_pairs)
        self.memory = TargetLabels()
        self.seed, self._calls = int(seed), 0
        self.reports: list[dict] = []  # one per GW solve: sizes, epsilon, iterations, convergence, seconds
        self.reliability: Optional[Reliability] = None  # the last session's
        self._plan_labels: Optional[tuple[Sequence[Plan], dict[str, np.ndarray]]] = None

    def set_pool(self, candidates: Sequence[Segment]) -> None:
        """Candidate segments of the feedback session: aligned together with the queried ones."""
        self._pool = list(candidates)

    @property
    def plan_names(self) -> list[str]:
        """The GW plans every call solves, in preference order (fused first where declared)."""
        sets = ["plain"] if self.declared is None else (["fused"] if self.orientation.fused == "only"
                                                         else ["fused", "plain"])
        return [f"{s}/{init}" for s in sets for init in self.orientation.inits]

    def _solve(self, cost_target: np.ndarray, cross: Optional[np.ndarray], name: str,
               init: Optional[np.ndarray]) -> Plan:
        res = solve_gw(self.cost_source, cost_target, self.gw, cross, init=init)
        plan = Plan(name, res.coupling, gw_objective(self.cost_source, cost_target, res.coupling),
                    plan_entropy(res.coupling))
        report = {"plan": name, "n_source": len(self.source.segments), "n_target": cost_target.shape[0],
                  "epsilon": self.gw.epsilon, "fused_penalty": self.gw.fused_penalty if cross is not None else 0.0,
                  "iterations": res.n_iters, "max_iterations": self.gw.max_iterations, "converged": res.converged,
                  "gw_cost": plan.gw_cost, "entropy": plan.entropy, "seconds": round(res.seconds, 3)}
        self.reports.append(report)
        log.info("PEARL CPA: GW %s %d x %d, epsilon %g, %d/%d iterations, converged %s, GW cost %.4g, "
                 "entropy %.3f, %.2f s", name, report["n_source"], report["n_target"], self.gw.epsilon, res.n_iters,
                 self.gw.max_iterations, res.converged, plan.gw_cost, plan.entropy, res.seconds)
        if not res.converged:
            msg = (f"Gromov-Wasserstein ({name}) did not converge in {self.gw.max_iterations} iterations (epsilon="
                   f"{self.gw.epsilon}); transferred labels may be wrong: raise feedback.gw.max_iterations or "
                   f"feedback.gw.epsilon")
            if self.on_nonconvergence == "error":
                raise PbrlError(msg)
            warnings.warn(msg, GWConvergenceWarning, stacklevel=3)
        return plan

    def align(self, targets: Sequence[Segment], features: Optional[np.ndarray] = None) -> list[Plan]:
        """Every candidate GW plan between the source segments and ``targets`` (:attr:`plan_names` order).

        ``features``: the targets' :func:`~pbrl.feedback.ot.segment_features`, when already computed.
        """
        feats = segment_features(targets, self.features) if features is None else features
        cost_target = distance_matrix(feats, self.features.metric)
        rng = np.random.default_rng([self.seed, self._calls])
        plans: list[Plan] = []
        cross = None
        for name in self.plan_names:
            kind, init = name.split("/")
            if kind == "fused" and cross is None:
                cross = fused_cost(self.source.segments, targets, self.declared)
            start = mirror_plan(plans[-1].coupling, self.utility, rng) if init == "mirror" else None
            plans.append(self._solve(cost_target, cross if kind == "fused" else None, name, start))
        return plans

    def memory_pairs(self, index: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The remembered target labels as ``(first, second, y)`` (indices into the session's targets)."""
        mf = np.array([index[segment_key(s)] for s in self.memory.first], np.int64)
        ms = np.array([index[segment_key(s)] for s in self.memory.second], np.int64)
        return mf, ms, np.asarray(self.memory.p, np.float64)

    def candidate_labels(self, plans: Sequence[Plan], cand: Candidate, first: np.ndarray,
                         second: np.ndarray) -> np.ndarray:
        """A candidate's soft labels for target pairs (its plan's, reversed when flipped)."""
        p = transfer_pair_labels(plans[cand.plan].coupling, self.source, first, second)[0]
        return 1.0 - p if cand.flipped else p

    def evidence(self, plans: Sequence[Plan], candidates: Sequence[Candidate], index: dict) -> np.ndarray:
        """``(n_candidates, k)`` agreement of each candidate with each remembered target label."""
        mf, ms, y = self.memory_pairs(index)
        if not len(y):
            return np.zeros((len(candidates), 0))
        plan_p = [transfer_pair_labels(p.coupling, self.source, mf, ms)[0] for p in plans]
        return np.stack([hard_agreement(1.0 - plan_p[c.plan] if c.flipped else plan_p[c.plan], y) for c in candidates])

    def pair_labels(self, decision: Decision, plans: Sequence[Plan], first: np.ndarray,
                    second: np.ndarray) -> np.ndarray:
        """Soft labels of target pairs under a session's :class:`Decision`."""
        if decision.weights is None:
            return self.candidate_labels(plans, decision.candidate, first, second)
        X = decision.features
        return sigmoid((X[first] - X[second]) @ decision.weights)

    def plan_labels(self, plans: Sequence[Plan], n_targets: int) -> dict[str, np.ndarray]:
        """Each plan's labels on ``orientation.eval_pairs`` fixed random target pairs (kept for the same plans)."""
        if self._plan_labels is not None and self._plan_labels[0] is plans:
            return self._plan_labels[1]
        a, b = random_pairs(n_targets, self.orientation.eval_pairs, np.random.default_rng([self.seed, 99]))
        out = {p.name: transfer_pair_labels(p.coupling, self.source, a, b)[0] for p in plans}
        self._plan_labels = (plans, out)
        return out

    def decide(self, plans: Sequence[Plan], index: dict, n_targets: int,
               features: Optional[np.ndarray] = None) -> tuple[Decision, Reliability]:
        """The candidate the remembered target labels agree with most (with ``few_shot.model=linear`` and
        ``features`` given: the reward fitted to them around it), and the session's reliability."""
        candidates = candidate_list([p.name for p in plans], self.orientation.flips)
        agree = self.evidence(plans, candidates, index)
        choice, weights, X = choose(agree), None, None
        if agree.shape[1] and self.few_shot.model == "linear" and features is not None:
            mf, ms, y = self.memory_pairs(index)
            a, b = random_pairs(n_targets, self.few_shot.prior_pairs, np.random.default_rng([self.seed, 98]))
            X = standardise(features)
            fit = fit_few_shot(X, mf, ms, y, agree,
                               lambda c: (a, b, self.candidate_labels(plans, candidates[c], a, b)), self.few_shot)
            choice, weights = Choice(fit.candidate, fit.agreement, fit.fit_agreement, len(y)), fit.weights
        cand = candidates[choice.index]
        decision = Decision(cand, weights, X if weights is not None else None)
        ev = self.plan_labels(plans, n_targets)  # unsupervised signals: how the plans' labels compare
        chosen = plans[cand.plan]
        kind, init = chosen.name.split("/")
        partner = f"{kind}/{'product' if init == 'mirror' else 'mirror'}"

        conf = {name: float(np.mean(np.abs(2.0 * p - 1.0))) for name, p in ev.items()}
        informative = {name for name, c in conf.items() if c >= self.orientation.min_confidence}

        def agreement(x: str, z: str) -> float:
            return float(np.mean(hard_agreement(ev[x], ev[z]))) if x in ev and z in ev else float("nan")

        fused_plain = agreement("fused/product", "plain/product") \
            if {"fused/product", "plain/product"} <= informative else float("nan")
        rel = assess(choice, chosen=decision.name, gw_cost=chosen.gw_cost, entropy=chosen.entropy,
                     confidence=conf[chosen.name], mirror_agreement=agreement(chosen.name, partner),
                     fused_plain_agreement=fused_plain, settings=self.orientation)
        return decision, rel

    def label(self, first: Sequence[Segment], second: Sequence[Segment], *, few_shot: bool = True) -> Labels:
        """Soft transferred labels (with confidence weights) for the pairs ``(first[i], second[i])``.

        ``few_shot=False`` leaves out the ``target_labels`` teacher answers (the pool's free pairs); the target
        labels remembered from earlier calls still choose the candidate.
        """
        if len(first) != len(second):
            raise PbrlError(f"transfer label: {len(first)} first and {len(second)} second segments; expected equal")
        n = len(first)
        if n == 0:
            return _no_labels()
        k = min(self.target_labels, n) if few_shot else 0
        true = self.target_teacher.label(list(first[:k]), list(second[:k])) if k else None
        if true is not None:  # few-shot: a handful of true target labels, full weight, remembered as evidence
            self.memory.add(first[:k], second[:k], true)
        queried = distinct_segments([*first, *second, *self.memory.first, *self.memory.second])
        index = {segment_key(s): i for i, s in enumerate(queried)}
        extra = [s for s in distinct_segments([*self.target_pool, *self._pool]) if segment_key(s) not in index]
        targets = (queried + extra)[: max(self.max_target, len(queried))]
        feats = segment_features(targets, self.features)
        plans = self.align(targets, feats)
        decision, rel = self.decide(plans, index, len(targets), feats)
        self._calls += 1
        self._report(rel)
        i1 = np.array([index[segment_key(s)] for s in first])
        i2 = np.array([index[segment_key(s)] for s in second])
        p = self.pair_labels(decision, plans, i1, i2)
        # floor: an all-0.5 round must not leave the reward model a batch of zero total weight
        weight = np.maximum(np.abs(2.0 * p - 1.0), MIN_WEIGHT) if self.confidence == "agreement" else np.ones(n)
        if true is not None:
            p[:k] = np.where(true.skipped, p[:k], true.p)
            weight[:k] = np.where(true.skipped, weight[:k], 1.0)
        return Labels(p=p.astype(np.float32), skipped=np.zeros(n, bool), weight=weight.astype(np.float32))

    def _report(self, rel: Reliability) -> None:
        """Log the session's reliability; warn (or stop) when it is unreliable, and once when unverified."""
        first_time = self.reliability is None
        self.reliability = rel
        log.info("PEARL transfer reliability: %s", rel.summary())
        where = self.source.store or "the source segments"
        if rel.status == "unreliable":
            msg = f"PEARL transfer from {where} is unreliable: {'; '.join(rel.reasons)}"
            if self.on_unreliable == "error":
                raise PbrlError(msg + " (feedback.on_unreliable=error)")
            warnings.warn(msg, TransferReliabilityWarning, stacklevel=3)
        elif rel.status == "unverified" and first_time:
            log.warning("PEARL transfer from %s is zero-shot and unverified: no target label checks which way the "
                        "alignment points; set feedback.target_labels > 0 to verify it", where)

    def initial_pairs(self, rng: np.random.Generator, segment_length: int) -> OfferedPairs:
        """Transferred labels for ``pool_pairs`` random pairs of the target pool (no teacher is asked).

        The online learner stores them once, before its first fit, outside the label budget; its segments
        are ``segment_length`` long, and pool segments must match to share a training batch with them.
        """
        if self.pool_pairs == 0:
            return [], [], _no_labels()
        first, second = draw_pool_pairs(self.target_pool, self.pool_pairs, rng, segment_length)
        return first, second, self.label(first, second, few_shot=False)  # teacher answers are for queries only

    def session_metrics(self) -> dict[str, Any]:
        """The last session's :class:`Reliability` as metrics columns (none before the first session)."""
        return {} if self.reliability is None else self.reliability.metrics()

    def state_dict(self) -> dict:
        """What a resumed run needs: the remembered target labels and the call count (seeds)."""
        return {"first": list(self.memory.first), "second": list(self.memory.second), "p": list(self.memory.p),
                "calls": self._calls}

    def load_state_dict(self, state: dict) -> None:
        self.memory = TargetLabels(list(state["first"]), list(state["second"]), [float(x) for x in state["p"]])
        self._calls = int(state["calls"])


def _no_labels() -> Labels:
    return Labels(np.zeros(0, np.float32), np.zeros(0, bool), np.zeros(0, np.float32))


def transfer_labeller(*, source_store: Optional[str], max_source: int, rng: np.random.Generator,
                      source_sources: Optional[Sequence[str]] = None, features: Optional[dict] = None,
                      gw: Optional[dict] = None, orientation: Optional[dict] = None, few_shot: Optional[dict] = None,
                      fused_features: Sequence[str] = DEFAULT_FUSED, max_target: int = 1000,
                      confidence: str = "agreement", on_nonconvergence: str = "warn", on_unreliable: str = "warn",
                      target_labels: int = 0, min_source_labels: int = 300, target_teacher=None,
                      target_task: Optional[TaskSpec] = None, segment_length: Optional[int] = None,
                      target_pool: Optional[str] = None, pool_pairs: int = 0) -> TransferLabeller:
    """A :class:`TransferLabeller` from plain config values (``configs/feedback/transfer.yaml``), after the
    refusals of :mod:`pbrl.feedback.transfer_checks`."""
    if not source_store:
        raise PbrlError("feedback.source_store: expected the path of a labelled source-task store (.sqlite)")
    try:
        spec, settings = FeatureSpec(**(features or {})), GWSettings(**(gw or {}))
        orient, shot = OrientationSettings(**(orientation or {})), FewShotSettings(**(few_shot or {}))
    except TypeError as exc:
        raise PbrlError(f"feedback.features / feedback.gw / feedback.orientation / feedback.few_shot: {exc}") from None
    source = load_source(source_store, max_segments=int(max_source), rng=rng, sources=source_sources)
    pool = load_target_pool(target_pool, max_segments=int(max_target), rng=rng) if target_pool else []
    target_name = f"feedback.target_pool={target_pool}" if target_pool else "the run"
    if target_task is not None:
        target_name += f" (task {target_task.name})"
    check_lengths(source.segments, source_store=source_store, target_name=target_name,
                  segment_length=segment_length, pool=pool, pool_store=target_pool)
    source_task = check_suites(source.segments, source_store=source_store, target=target_task, target_name=target_name)
    check_label_count(source.n_store_labels, source_store=source_store, minimum=int(min_source_labels))
    declared = declared_for(list(fused_features), source_task=source_task, target=target_task,
                            source=source.segments, source_store=source_store, target_name=target_name,
                            fused=orient.fused, pool=pool)
    log.info("PEARL transfer: %d source segments, %d labelled pairs from %s; plans %s (declared features: %s)",
             len(source.segments), len(source.p), source_store, orient.inits,
             ", ".join(declared.names) if declared else "none shared, plain GW only")
    return TransferLabeller(source, features=spec, gw=settings, orientation=orient, few_shot=shot, declared=declared,
                            max_target=max_target, confidence=confidence, on_nonconvergence=on_nonconvergence,
                            on_unreliable=on_unreliable, target_teacher=target_teacher, target_labels=target_labels,
                            target_pool=pool, pool_pairs=int(pool_pairs), seed=int(rng.integers(2**31)))

"""Resolve Gromov-Wasserstein's mirror symmetry from evidence, and say how far a transfer can be trusted.

GW matches each task's distance structure, and a structure and its mirror image fit equally well: on
drawer-open -> drawer-close plain GW pairs "almost open" with "almost closed" and every transferred label
comes out inverted (BENCHMARKS.md). Nothing inside one alignment tells which orientation is right. So the
transfer builds several *candidate* alignments and lets evidence choose:

- per feature set (plain GW, and fused GW where the tasks declare shared features, :mod:`pbrl.feedback.declared`),
  a solve from ott's product coupling and a solve started from that plan's *mirror*: its rows permuted so the
  source segment of return rank ``r`` takes the place of rank ``n - 1 - r`` (:func:`mirror_plan`; ranks from the
  source labels' win rates). GW then settles in whichever basin is nearer, so the mirror solve either returns
  to the first plan (the structure decides) or stays in the mirror basin (the structure cannot tell);
- each plan's labels as they are, and reversed (``p -> 1 - p``).

With ``k`` labelled *target* pairs (``feedback.target_labels``) the candidate whose hard labels agree with the
most of them is used (ties: the earlier, in the order above). Its agreement is estimated honestly by
leave-one-out over the ``k`` labels, choice included (:func:`choose`). With ``k = 0`` the first candidate is
used and the transfer is *unverified*; unsupervised signals can still show that it is unreliable
(:func:`zero_shot_flags`): the mirror solve stays in a basin whose labels disagree with the chosen plan's
(GW cannot tell the two orientations apart), its labels are mostly near 0.5 (mean ``|2p - 1|`` below
``min_confidence``: the alignment barely separates target segments), or two informative alignments (fused and
plain) point opposite ways. None of them can see an inversion the structure does not show: two tasks whose
segments are arranged alike but whose rewards run opposite ways look identical to GW, so zero-shot is never
more than unverified (BENCHMARKS.md measures how often each signal fires on inverted and correct pairs).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Sequence

import numpy as np

from pbrl.types import PbrlError

INITS = ("product", "mirror")
STATUSES = ("verified", "unverified", "unreliable")


@dataclasses.dataclass(frozen=True)
class OrientationSettings:
    """Which candidates are built and when a transfer counts as unreliable (``feedback.orientation``).

    Attributes:
        inits: GW starts per feature set: ``product`` (ott's default) and/or ``mirror`` (see the module docstring).
        flips: also offer every plan's labels reversed.
        fused: ``auto`` = candidates with and without the declared fused term when the tasks share one,
            fused first; ``only`` = fused only (plain where there is none); ``off`` = never fused.
        min_agreement: a held-out agreement on the target labels below this marks the transfer unreliable.
        min_confidence: zero-shot, a chosen plan whose labels' mean ``|2p - 1|`` is below this is unreliable
            (labels near 0.5: the alignment barely separates target segments); a plan below it also does not
            count as a dissenting alignment.
        eval_pairs: random target pairs on which candidates are compared with one another (zero-shot flags).
    """

    inits: tuple[str, ...] = INITS
    flips: bool = True
    fused: str = "auto"
    min_agreement: float = 0.6
    min_confidence: float = 0.3
    eval_pairs: int = 1000

    def __post_init__(self) -> None:
        object.__setattr__(self, "inits", tuple(self.inits))
        if not self.inits or self.inits[0] != "product" or any(i not in INITS for i in self.inits) \
                or len(set(self.inits)) != len(self.inits):
            raise PbrlError(f"feedback.orientation.inits: expected [product] or [product, mirror], "
                            f"got {list(self.inits)}")
        if self.fused not in ("auto", "only", "off"):
            raise PbrlError(f"feedback.orientation.fused: expected auto | only | off, got {self.fused!r}")
        if not 0.0 <= self.min_agreement <= 1.0 or not 0.0 <= self.min_confidence <= 1.0:
            raise PbrlError("feedback.orientation.min_agreement / min_confidence: expected values in [0, 1]")
        if self.eval_pairs < 1:
            raise PbrlError(f"feedback.orientation.eval_pairs: expected >= 1, got {self.eval_pairs}")


class Candidate(NamedTuple):
    """One candidate alignment with its orientation.

    Attributes:
        name: ``fused|plain`` / ``product|mirror`` [``/flipped``].
        plan: index of the GW plan it uses (candidates with and without ``flipped`` share one).
        flipped: labels reversed (``p -> 1 - p``).
    """

    name: str
    plan: int
    flipped: bool


def source_utility(n: int, first: np.ndarray, second: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``(n,)`` win rate of each source segment over its labelled pairs (0.5 where it has none)."""
    wins, count = np.zeros(n), np.zeros(n)
    np.add.at(wins, first, p)
    np.add.at(wins, second, 1.0 - p)
    np.add.at(count, first, 1.0)
    np.add.at(count, second, 1.0)
    return np.where(count > 0, wins / np.maximum(count, 1.0), 0.5)


def mirror_plan(coupling: np.ndarray, utility: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The plan with source rows reversed in return order: rank ``r`` gets the row of rank ``n - 1 - r``.

    Ties in ``utility`` are ordered at random (``rng``). Row and column sums are unchanged.
    """
    order = np.lexsort((rng.random(len(utility)), utility))  # ascending utility, random among ties
    partner = np.empty(len(utility), np.int64)
    partner[order] = order[::-1]
    return np.asarray(coupling)[partner]


def hard_agreement(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per pair: 1 if ``p`` prefers the side ``y`` prefers, 0 if the other, 0.5 if ``p`` is exactly 0.5."""
    p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
    return np.where(p == 0.5, 0.5, ((p > 0.5) == (y > 0.5)).astype(np.float64))


class Choice(NamedTuple):
    """Result of :func:`choose`.

    Attributes:
        index: chosen candidate (on all labels).
        agreement: leave-one-out estimate of the chosen candidate's agreement, choice included (NaN for k = 0).
        fit_agreement: the chosen candidate's agreement on all k labels (optimistic; NaN for k = 0).
        n_labels: k, the strict target labels used.
    """

    index: int
    agreement: float
    fit_agreement: float
    n_labels: int


def choose(agree: np.ndarray) -> Choice:
    """Pick the candidate that agrees with the most target labels, and estimate its agreement honestly.

    Args:
        agree: ``(n_candidates, k)`` per-candidate, per-label agreement (:func:`hard_agreement`), candidates in
            preference order (ties go to the earlier one).

    For each label ``j`` the choice is re-made on the other ``k - 1`` labels and scored on ``j``; the mean is
    the leave-one-out estimate (Stone 1974), which pays for choosing among candidates on few labels.
    """
    agree = np.asarray(agree, np.float64)
    if agree.ndim != 2 or agree.shape[0] < 1:
        raise PbrlError(f"choose: expected an (n_candidates, k) agreement matrix, got shape {agree.shape}")
    k = agree.shape[1]
    if k == 0:
        return Choice(0, math.nan, math.nan, 0)
    total = agree.sum(axis=1)
    best = int(np.argmax(total))  # argmax takes the first of equal totals
    held = [agree[int(np.argmax(total - agree[:, j])), j] for j in range(k)]
    return Choice(best, float(np.mean(held)), float(total[best] / k), k)


def zero_shot_flags(*, confidence: float, mirror_agreement: float, fused_plain_agreement: float,
                    settings: OrientationSettings) -> list[str]:
    """Unsupervised reasons to distrust a zero-shot alignment (empty = none found; it is still unverified).

    Args:
        confidence: mean ``|2p - 1|`` of the chosen plan's labels on random target pairs.
        mirror_agreement: agreement of its labels with those of the solve started from its mirror (NaN: none).
        fused_plain_agreement: agreement of the fused and plain product plans, NaN unless both are informative.
    """
    flags = []
    if mirror_agreement < 0.5:
        flags.append(f"a GW solve started from the mirror image stays mirrored (its labels agree with the chosen "
                     f"plan's on {mirror_agreement:.0%} of pairs): the structure cannot tell the orientation")
    if confidence < settings.min_confidence:
        flags.append(f"its labels are near 0.5 (mean |2p-1| {confidence:.2f} < feedback.orientation.min_confidence="
                     f"{settings.min_confidence}): the alignment barely separates target segments")
    if fused_plain_agreement < 0.5:
        flags.append(f"the fused and plain alignments point opposite ways (labels agree on "
                     f"{fused_plain_agreement:.0%} of pairs)")
    return flags


@dataclasses.dataclass(frozen=True)
class Reliability:
    """What one feedback session's transfer can be trusted for (logged, and written to metrics.csv).

    Attributes:
        status: ``verified`` (held-out agreement >= min_agreement on k >= 1 target labels), ``unverified``
            (k = 0, no warning sign found) or ``unreliable``.
        chosen: name of the candidate used.
        n_labels: strict target labels the choice was verified on.
        agreement: leave-one-out agreement of the choice on them (NaN for k = 0).
        gw_cost: GW objective of the chosen plan (:func:`~pbrl.feedback.ot.gw_objective`).
        entropy: spread of the chosen plan (:func:`~pbrl.feedback.ot.plan_entropy`).
        confidence: mean ``|2p - 1|`` of the chosen candidate's labels on random target pairs.
        mirror_agreement: agreement of the chosen plan's labels with its mirror solve's (NaN without one).
        reasons: why it is unreliable (empty otherwise).
    """

    status: str
    chosen: str
    n_labels: int
    agreement: float
    gw_cost: float
    entropy: float
    confidence: float
    mirror_agreement: float
    reasons: tuple[str, ...] = ()

    def metrics(self) -> dict[str, object]:
        """The metrics.csv columns of this session."""
        return {"transfer_status": self.status, "transfer_labels": self.n_labels,
                "transfer_agreement": self.agreement, "transfer_gw_cost": self.gw_cost,
                "transfer_entropy": self.entropy, "transfer_confidence": self.confidence}

    def summary(self) -> str:
        agree = "n/a (zero-shot)" if self.n_labels == 0 else f"{self.agreement:.0%} held-out on {self.n_labels} labels"
        return (f"{self.status}: {self.chosen}, agreement {agree}, GW cost {self.gw_cost:.4g}, "
                f"plan entropy {self.entropy:.3f}, label confidence {self.confidence:.2f}, "
                f"mirror agreement {self.mirror_agreement:.0%}")


def assess(choice: Choice, *, chosen: str, gw_cost: float, entropy: float, confidence: float,
           mirror_agreement: float, fused_plain_agreement: float, settings: OrientationSettings) -> Reliability:
    """The session's :class:`Reliability` from the choice and the unsupervised signals."""
    if choice.n_labels:
        bad = choice.agreement < settings.min_agreement
        reasons = (f"held-out agreement {choice.agreement:.0%} on {choice.n_labels} target labels < "
                   f"feedback.orientation.min_agreement={settings.min_agreement}",) if bad else ()
        status = "unreliable" if bad else "verified"
    else:
        reasons = tuple(zero_shot_flags(confidence=confidence, mirror_agreement=mirror_agreement,
                                        fused_plain_agreement=fused_plain_agreement, settings=settings))
        status = "unreliable" if reasons else "unverified"
    return Reliability(status, chosen, choice.n_labels, choice.agreement, gw_cost, entropy, confidence,
                       mirror_agreement, reasons)


def candidate_list(plan_names: Sequence[str], flips: bool) -> list[Candidate]:
    """Every plan as it is, then (``flips``) every plan reversed: the preference order of :func:`choose`."""
    out = [Candidate(name, i, False) for i, name in enumerate(plan_names)]
    if flips:
        out += [Candidate(f"{name}/flipped", i, True) for i, name in enumerate(plan_names)]
    return out

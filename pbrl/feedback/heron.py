"""HERON: hierarchical reward-factor ranking as a feedback source (Bukharin et al. 2023,
"Deep Reinforcement Learning from Hierarchical Weak Preference Feedback").

A task declares an ordered list of reward factors (named reward terms of the task, or ``success``),
each with a sign and a margin multiplier ``sigma_k``. Two segments are compared level by level on
the factor's segment total ``F_k``: level ``k`` decides when ``|sign_k (F_k(a) - F_k(b))| > delta_k``
with ``delta_k = sigma_k * std(F_k)`` over the candidate pool; otherwise the next level is asked.
A pair tied at every level is skipped (it is still stored, as skipped).

The candidate pool is what the online learner hands to :meth:`HeronLabeller.set_pool` (all candidate
segments of the feedback session); without that call, the std is taken over the distinct segments of
the :meth:`HeronLabeller.label` call itself.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from pbrl.data.trajectory import Segment
from pbrl.feedback.labeller import Labeller
from pbrl.types import FIRST_BETTER, SECOND_BETTER, EQUAL, Labels, PbrlError

#: A factor name that is not a reward term: the number of steps with the success flag set.
SUCCESS_FACTOR = "success"


@dataclasses.dataclass(frozen=True)
class HeronFactor:
    """One level of the ranking.

    Attributes:
        term: reward-term name (``segment.terms``) or ``success``.
        sign: +1 when a larger segment total is better, -1 when smaller is better.
        sigma: margin multiplier; the level decides only when the difference exceeds ``sigma * std``.
        why: free-form reason for the ranking (documentation only).
    """

    term: str
    sign: int = 1
    sigma: float = 0.1
    why: str = ""

    def __post_init__(self) -> None:
        if self.sign not in (1, -1):
            raise PbrlError(f"feedback.ranking: factor {self.term!r} sign must be +1 or -1, got {self.sign}")
        if not (math.isfinite(self.sigma) and self.sigma >= 0):
            raise PbrlError(
                f"feedback.ranking: factor {self.term!r} sigma must be a finite number >= 0, got {self.sigma}")


def parse_factor(item: Any, default_sigma: float) -> HeronFactor:
    """One ranking entry: ``"reward_forward"``, ``"-reward_ctrl"`` or ``{term, sign, sigma, why}``."""
    if isinstance(item, str):
        name = item.strip()
        sign = -1 if name.startswith("-") else 1
        return HeronFactor(term=name.lstrip("+-").strip(), sign=sign, sigma=float(default_sigma))
    if isinstance(item, Mapping):
        unknown = sorted(set(item) - {"term", "sign", "sigma", "why"})
        if "term" not in item or unknown:
            raise PbrlError(
                f"feedback.ranking: entry {dict(item)} must have 'term' and only term/sign/sigma/why keys"
            )
        sign = item.get("sign", 1)
        if isinstance(sign, str):
            sign = {"+": 1, "-": -1, "+1": 1, "-1": -1}.get(sign.strip(), sign)
        try:
            return HeronFactor(term=str(item["term"]), sign=int(sign),
                               sigma=float(item.get("sigma", default_sigma)), why=str(item.get("why", "")))
        except (TypeError, ValueError):
            raise PbrlError(f"feedback.ranking: entry {dict(item)} has a non-numeric sign or sigma") from None
    raise PbrlError(f"feedback.ranking: entry {item!r} must be a term name ('-' prefix = lower is better) or a mapping")


def parse_ranking(
    items: Optional[Sequence[Any]], *, default_sigma: float, terms: Sequence[str], has_success: bool, task: str
) -> tuple[HeronFactor, ...]:
    """Validate a ranking against the task's reward terms (``success`` only for tasks that have one)."""
    if not items:
        raise PbrlError(
            f"feedback.ranking: task {task} declares no 'heron' ranking; give one, e.g. "
            f"feedback.ranking=[{terms[0] if terms else 'reward_forward'}]"
        )
    factors = tuple(parse_factor(it, default_sigma) for it in items)
    valid = [*terms, *([SUCCESS_FACTOR] if has_success else [])]
    for f in factors:
        if f.term not in valid:
            raise PbrlError(f"feedback.ranking: {f.term!r} is not a reward term of {task}; expected one of {valid}")
    names = [f.term for f in factors]
    if len(set(names)) != len(names):
        raise PbrlError(f"feedback.ranking: a factor appears twice in {names}; each level needs its own term")
    return factors


def factor_totals(segments: Sequence[Segment], factors: Sequence[HeronFactor]) -> np.ndarray:
    """``(n, K)`` segment totals of each factor (float64)."""
    out = np.empty((len(segments), len(factors)))
    for j, f in enumerate(factors):
        for i, s in enumerate(segments):
            if f.term == SUCCESS_FACTOR:
                if s.success is None:
                    raise PbrlError("HERON factor 'success': the segment has no success flags")
                out[i, j] = float(np.sum(s.success))
            elif f.term in s.terms:
                out[i, j] = float(np.sum(s.terms[f.term]))
            else:
                raise PbrlError(f"HERON factor {f.term!r} is not a term of the segment; available: {sorted(s.terms)}")
    return out


def hierarchical_compare(
    tot1: np.ndarray, tot2: np.ndarray, signs: np.ndarray, deltas: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compare ``(n, K)`` factor totals level by level (HERON's decision tree).

    Returns:
        ``(p, skipped, level)``: labels in the pbrl convention, the all-levels-tied mask, and the index of
        the deciding level per pair (``-1`` where skipped).
    """
    diff = (tot1 - tot2) * signs  # > 0: first better on this level
    decides = np.abs(diff) > deltas
    skipped = ~decides.any(axis=1)
    level = np.where(skipped, -1, np.argmax(decides, axis=1))
    chosen = diff[np.arange(len(diff)), np.maximum(level, 0)]
    p = np.where(skipped, EQUAL, np.where(chosen > 0, FIRST_BETTER, SECOND_BETTER)).astype(np.float32)
    return p, skipped, level


class HeronLabeller(Labeller):
    """Labels pairs with a hierarchical factor ranking; the store source is ``heron``.

    Args:
        factors: the ranking, most important first.
    """

    def __init__(self, factors: Sequence[HeronFactor]) -> None:
        if not factors:
            raise PbrlError("HeronLabeller: expected at least one factor")
        self.factors = tuple(factors)
        self._pool_std: Optional[np.ndarray] = None
        self.last_levels: np.ndarray = np.zeros(0, np.int64)  # deciding level per pair of the last call

    def set_pool(self, candidates: Sequence[Segment]) -> None:
        """Use the factor std over this candidate pool for the margins of the next :meth:`label` calls."""
        if len(candidates) >= 2:
            self._pool_std = factor_totals(candidates, self.factors).std(axis=0)

    def deltas(self, segments: Sequence[Segment]) -> np.ndarray:
        """``delta_k = sigma_k * std_k``; std from :meth:`set_pool`, else over the distinct ``segments``."""
        std = self._pool_std
        if std is None:
            std = factor_totals(distinct_segments(segments), self.factors).std(axis=0)
        return np.array([f.sigma for f in self.factors]) * std

    def label(self, first: Sequence[Segment], second: Sequence[Segment]) -> Labels:
        """Answer "is ``first[i]`` better than ``second[i]``?" by the ranking (ties at every level: skipped)."""
        if len(first) != len(second):
            raise PbrlError(f"heron label: {len(first)} first and {len(second)} second segments; expected equal")
        if not first:
            return Labels(p=np.zeros(0, np.float32), skipped=np.zeros(0, bool))
        signs = np.array([f.sign for f in self.factors], np.float64)
        deltas = self.deltas([*first, *second])
        p, skipped, self.last_levels = hierarchical_compare(
            factor_totals(first, self.factors), factor_totals(second, self.factors), signs, deltas
        )
        return Labels(p=p, skipped=skipped)


def segment_key(s: Segment) -> tuple:
    """Identity of a segment: its store id when stored, else the object (a segment recurs in several pairs)."""
    return ("id", s.segment_id) if s.segment_id is not None else ("obj", id(s))


def distinct_segments(segments: Sequence[Segment]) -> list[Segment]:
    """The segments with repeats (same :func:`segment_key`) removed, in first-seen order."""
    seen: set[tuple] = set()
    out = []
    for s in segments:
        if segment_key(s) not in seen:
            seen.add(segment_key(s))
            out.append(s)
    return out


def ranking_from_task(task_extra: Mapping[str, Any]) -> Optional[list[Any]]:
    """The ``heron:`` block of a task YAML: a list of factors, or ``{factors: [...]}``."""
    block = task_extra.get("heron")
    if block is None:
        return None
    if isinstance(block, Mapping):
        block = block.get("factors")
    if not isinstance(block, (list, tuple)):
        raise PbrlError("task heron: expected a list of factors or a mapping with 'factors'")
    return list(block)


def heron_labeller(ranking: Optional[Sequence[Any]], *, sigma: float, task_name: str, terms: Sequence[str],
                   has_success: bool, task_extra: Mapping[str, Any]) -> HeronLabeller:
    """HERON labeller from ``feedback.ranking`` (or, when null, the task YAML's ``heron`` block)."""
    items = ranking if ranking else ranking_from_task(task_extra)
    return HeronLabeller(parse_ranking(items, default_sigma=sigma, terms=terms, has_success=has_success,
                                       task=task_name))

"""Scripted teachers with B-Pref's models of human irrationality (Lee et al. 2021, "B-Pref").

A teacher compares the (true or named-term) returns of two segments and answers in the pbrl
convention (``p = 1`` first better, ``0`` second better, ``0.5`` equal, or skipped). The six B-Pref
teachers differ only in a :class:`TeacherSpec`; the order of effects follows B-Pref's ``get_label``:

1. skip when ``max(R1, R2) <= thres_skip`` (neither segment is good enough to judge);
2. myopic returns ``R^γ = Σ_t γ^(L-1-t) r_t`` (recent steps weigh more);
3. rational ``1[R1^γ > R2^γ]`` (β = ∞) or stochastic ``p ~ Bernoulli(sigmoid(β (R1^γ - R2^γ)))``;
4. mistake: flip a strict label with probability ``eps_mistake``;
5. equal when ``|R1 - R2| < thres_equal`` (overrides 2-4, so an "equal" answer is never flipped).

Skip and equal use the undiscounted returns, as in B-Pref. Their thresholds are ``eps * margin``
where the margin is the average segment return (:meth:`ScriptedTeacher.set_margin`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from pbrl.data.trajectory import Segment
from pbrl.feedback.labeller import Labeller
from pbrl.types import EQUAL, FIRST_BETTER, SECOND_BETTER, Labels, PbrlError


@dataclass(frozen=True)
class TeacherSpec:
    """The five B-Pref teacher parameters.

    Attributes:
        beta: rationality; ``inf`` is a perfectly rational (deterministic) teacher, 0 answers at random.
        gamma: myopia discount in (0, 1]; 1 weighs every step equally.
        eps_mistake: probability of flipping a strict label.
        eps_skip: skip threshold as a fraction of the margin (0 never skips).
        eps_equal: equal threshold as a fraction of the margin (0 never answers equal, except exact ties
            of a rational teacher).
    """

    beta: float = math.inf
    gamma: float = 1.0
    eps_mistake: float = 0.0
    eps_skip: float = 0.0
    eps_equal: float = 0.0

    def __post_init__(self) -> None:
        if not (self.beta >= 0):
            raise PbrlError(f"TeacherSpec.beta: expected >= 0 (inf = rational), got {self.beta}")
        if not (0.0 < self.gamma <= 1.0):
            raise PbrlError(f"TeacherSpec.gamma: expected in (0, 1], got {self.gamma}")
        for name in ("eps_mistake", "eps_skip", "eps_equal"):
            value = getattr(self, name)
            if not (0.0 <= value <= 1.0):
                raise PbrlError(f"TeacherSpec.{name}: expected in [0, 1], got {value}")


#: B-Pref's six teachers (Table 1 of the paper). One deliberate difference in the rational ones (all but
#: ``stochastic``): two segments with exactly equal returns get ``0.5`` (equal) here, where B-Pref's ``get_label``
#: answers ``1*(R1 < R2)`` = first preferred; an arbitrary side would teach the reward model a preference that is
#: not there. ``stochastic`` draws a tie at random (sigmoid(0) = 0.5), as B-Pref.
PRESETS: dict[str, TeacherSpec] = {
    "oracle": TeacherSpec(),
    "stochastic": TeacherSpec(beta=1.0),
    "myopic": TeacherSpec(gamma=0.9),
    "mistake": TeacherSpec(eps_mistake=0.1),
    "skip": TeacherSpec(eps_skip=0.1),
    "equal": TeacherSpec(eps_equal=0.1),
}
_ALIASES: dict[str, str] = {"rational": "oracle"}


def teacher_from_preset(
    name: str, *, rng: np.random.Generator, reward_key: Optional[str] = None, **overrides: float
) -> "ScriptedTeacher":
    """Build a B-Pref teacher by name, optionally overriding spec fields (e.g. ``beta=10``)."""
    key = _ALIASES.get(name, name)
    if key not in PRESETS:
        valid = sorted([*PRESETS, *_ALIASES])
        raise PbrlError(f"teacher preset {name!r} is unknown; valid presets: {', '.join(valid)}")
    fields = {f.name for f in dataclasses.fields(TeacherSpec)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise PbrlError(f"teacher preset {name!r}: unknown override(s) {unknown}; valid: {sorted(fields)}")
    spec = dataclasses.replace(PRESETS[key], **overrides)
    return ScriptedTeacher(spec, rng=rng, reward_key=reward_key)


class ScriptedTeacher(Labeller):
    """Labels segment pairs from their returns with B-Pref's noise model.

    Args:
        spec: the noise parameters.
        rng: source of all randomness (stochastic choice, mistakes), so labels are reproducible.
        reward_key: None compares ``segment.rewards``; otherwise the named term ``segment.terms[key]``.
    """

    def __init__(self, spec: TeacherSpec, *, rng: np.random.Generator, reward_key: Optional[str] = None):
        self.spec = spec
        self.rng = rng
        self.reward_key = reward_key
        self._margin: Optional[float] = None

    def set_margin(self, mean_segment_return: float) -> None:
        """Set the scale of the skip/equal thresholds (B-Pref: ``thres = eps * margin``).

        Until this is called, the margin of each :meth:`label` call is the mean ``|return|`` of the
        segments in that call.
        """
        margin = float(mean_segment_return)
        if not math.isfinite(margin) or margin < 0:
            raise PbrlError(f"teacher margin: expected a finite value >= 0, got {mean_segment_return}")
        self._margin = margin

    def thresholds(self, margin: Optional[float] = None) -> tuple[float, float]:
        """``(thres_skip, thres_equal)`` for the given margin, or the one set by :meth:`set_margin`."""
        m = self._margin if margin is None else margin
        if m is None:
            return 0.0, 0.0
        return self.spec.eps_skip * m, self.spec.eps_equal * m

    def label(self, first: Sequence[Segment], second: Sequence[Segment]) -> Labels:
        """Answer ``len(first)`` queries "is ``first[i]`` better than ``second[i]``?"."""
        if len(first) != len(second):
            raise PbrlError(f"teacher label: {len(first)} first and {len(second)} second segments; expected equal")
        n = len(first)
        if n == 0:
            return Labels(p=np.zeros(0, np.float32), skipped=np.zeros(0, bool))
        r1 = [self._rewards(s) for s in first]
        r2 = [self._rewards(s) for s in second]
        ret1 = np.array([r.sum() for r in r1])
        ret2 = np.array([r.sum() for r in r2])
        margin = self._margin if self._margin is not None else float(np.mean(np.abs([*ret1, *ret2])))
        thres_skip, thres_equal = self.thresholds(margin)

        skipped = np.maximum(ret1, ret2) <= thres_skip if thres_skip > 0 else np.zeros(n, bool)
        gamma = self.spec.gamma
        p = self._choose(
            np.array([_myopic_return(r, gamma) for r in r1]),
            np.array([_myopic_return(r, gamma) for r in r2]),
        )
        p = self._mistakes(p)
        p[np.abs(ret1 - ret2) < thres_equal] = EQUAL
        p[skipped] = EQUAL  # meaningless at skipped indices; a neutral value keeps it in [0, 1]
        return Labels(p=p.astype(np.float32), skipped=skipped)

    def _rewards(self, segment: Segment) -> np.ndarray:
        if self.reward_key is None:
            return np.asarray(segment.rewards, np.float64)
        if self.reward_key not in segment.terms:
            raise PbrlError(
                f"teacher reward_key {self.reward_key!r} is not a term of the segment; "
                f"available terms: {sorted(segment.terms)}"
            )
        return np.asarray(segment.terms[self.reward_key], np.float64)

    def _choose(self, ret1: np.ndarray, ret2: np.ndarray) -> np.ndarray:
        """Rational (exact ties -> 0.5) or Bradley-Terry-sampled preference in pbrl's convention."""
        diff = ret1 - ret2
        if math.isinf(self.spec.beta):
            return np.where(diff > 0, FIRST_BETTER, np.where(diff < 0, SECOND_BETTER, EQUAL))
        # sigmoid(beta * diff) written with tanh, which cannot overflow
        prob_first = 0.5 * (1.0 + np.tanh(0.5 * self.spec.beta * diff))
        return np.where(self.rng.random(diff.shape) < prob_first, FIRST_BETTER, SECOND_BETTER)

    def _mistakes(self, p: np.ndarray) -> np.ndarray:
        """Flip each strict label with probability ``eps_mistake`` (one draw per query, as B-Pref)."""
        flip = (self.rng.random(p.shape) < self.spec.eps_mistake) & (p != EQUAL)
        return np.where(flip, 1.0 - p, p)


def _myopic_return(rewards: np.ndarray, gamma: float) -> float:
    """``Σ_t γ^(L-1-t) r_t``: B-Pref's myopic teacher discounts the *earlier* steps of a segment."""
    if gamma == 1.0:
        return float(rewards.sum())
    weights = gamma ** np.arange(len(rewards) - 1, -1, -1, dtype=np.float64)
    return float(rewards @ weights)

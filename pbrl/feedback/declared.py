"""Cross-task features from what the task YAMLs *declare* about their observations (fused GW's linear term).

Plain GW compares each task only with itself, so it needs no shared meaning of observation indices. A fused
term (Vayer et al. 2019) compares a source segment with a target segment directly, and that needs a feature
that means the same in both tasks. pbrl assumes none: a task declares named observation slices in its YAML
(``obs_slices: {hand: [0, 3], object: [4, 7], goal: [36, 39]}``, :func:`pbrl.envs.tasks.parse_obs_slices`),
and a fused feature is built only from names that *both* tasks declare. A feature is the distance between two
named points of one segment (e.g. hand-object, object-goal), as its segment mean and its change (last minus
first): where the segment is and where it goes, on a scale the two tasks share (metres in one world frame).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

import numpy as np

from pbrl.data.trajectory import Segment
from pbrl.types import PbrlError

Slices = Mapping[str, tuple[int, int]]


@dataclasses.dataclass(frozen=True)
class DeclaredFeatures:
    """The distance features two tasks share, and each task's slices (its own indices for the same names).

    Attributes:
        pairs: ``(a, b)`` name pairs; feature ``k`` is ``|obs[a] - obs[b]|`` per step (mean and change).
        source: the source task's slices for the names used.
        target: the target task's slices for the names used.
        target_name: how messages name the target side (a store or the run).
    """

    pairs: tuple[tuple[str, str], ...]
    source: Slices
    target: Slices
    target_name: str = "the target"

    @property
    def names(self) -> list[str]:
        return [f"{a}-{b}" for a, b in self.pairs]


def parse_pairs(requested: Sequence[str]) -> list[tuple[str, str]]:
    """``["hand-object", "object-goal"]`` -> ``[("hand", "object"), ("object", "goal")]``."""
    out = []
    for item in requested:
        parts = str(item).split("-")
        if len(parts) != 2 or not all(p.isidentifier() for p in parts) or parts[0] == parts[1]:
            raise PbrlError(f"feedback.fused.features: expected 'a-b' with two different slice names, got {item!r}")
        out.append((parts[0], parts[1]))
    return out


def shared_features(requested: Sequence[str], source: Optional[Slices], target: Optional[Slices], *,
                    source_store: str, target_name: str) -> Optional[DeclaredFeatures]:
    """The requested features whose names both tasks declare; None when there is none.

    Raises:
        PbrlError: a shared pair has slices of different widths within one task (no distance is defined).
    """
    if not source or not target:
        return None
    pairs = tuple(p for p in parse_pairs(requested) if all(n in source and n in target for n in p))
    if not pairs:
        return None
    for side, slices, where in (("source", source, source_store), ("target", target, target_name)):
        for a, b in pairs:
            wa, wb = slices[a][1] - slices[a][0], slices[b][1] - slices[b][0]
            if wa != wb:
                raise PbrlError(f"feedback.fused: {side} ({where}) declares {a} with {wa} and {b} with {wb} "
                                f"dimensions; the {a}-{b} distance needs equal widths")
    used = {n for p in pairs for n in p}
    return DeclaredFeatures(pairs, {n: tuple(source[n]) for n in used}, {n: tuple(target[n]) for n in used},
                            target_name)


def check_layout(segments: Sequence[Segment], slices: Slices, *, side: str, where: str) -> None:
    """Every declared slice lies inside the segments' observations (one-line error naming the store)."""
    dim = int(segments[0].obs.shape[1])
    for name, (start, stop) in slices.items():
        if stop > dim:
            raise PbrlError(f"feedback.fused: {side} {where} has {dim}-dimensional observations, but its task "
                            f"declares obs_slices.{name} = [{start}, {stop}]: incompatible observation layout")


def declared_matrix(segments: Sequence[Segment], slices: Slices,
                    pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """``(n, 2 * len(pairs))`` float64: per pair, the segment mean and the change of the distance."""
    obs = np.stack([np.asarray(s.obs, np.float64) for s in segments])  # (n, L, d)
    cols = []
    for a, b in pairs:
        (a0, a1), (b0, b1) = slices[a], slices[b]
        d = np.linalg.norm(obs[:, :, a0:a1] - obs[:, :, b0:b1], axis=-1)  # (n, L)
        cols += [d.mean(axis=1), d[:, -1] - d[:, 0]]
    return np.stack(cols, axis=1)


def fused_cost(source: Sequence[Segment], target: Sequence[Segment], feats: DeclaredFeatures) -> np.ndarray:
    """``(n_source, n_target)`` float32 euclidean cost between declared features, divided by its maximum.

    Both tasks' features are standardised with one shared mean and std per column (pooled over both sets), so
    a column keeps its physical meaning across tasks (hand 5 cm from the object is close in either task)
    while no column dominates by its units.
    """
    check_layout(target, feats.target, side="target", where=feats.target_name)
    Xs = declared_matrix(source, feats.source, feats.pairs)
    Xt = declared_matrix(target, feats.target, feats.pairs)
    both = np.concatenate([Xs, Xt])
    mu, sd = both.mean(axis=0), both.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    Xs, Xt = (Xs - mu) / sd, (Xt - mu) / sd
    D = np.sqrt(np.maximum(((Xs[:, None, :] - Xt[None, :, :]) ** 2).sum(-1), 0.0))
    top = D.max()
    return (D / top if top > 0 else D).astype(np.float32)

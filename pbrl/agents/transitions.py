"""Transitions for offline RL on a preference store: the episodes behind its segments, relabelled by a learned reward.

A store holds segments, not episodes. Segments of one episode (same ``episode_id``) that overlap or touch are
stitched back into contiguous *runs* (overlapping steps must agree, otherwise the segment is kept as a run of its
own), so every stored environment step appears once however many segments contain it. A run of ``T`` steps gives
``T - 1`` transitions ``(s_t, a_t, s_{t+1})``; the last stored step has no successor and only serves as context.
Segments imported from npz files (each its own episode id) give ``L - 1`` transitions each, which is how the CPL
code's P-IQL reads its preference datasets. Padded absorbing steps (an episode that ended before the segment did,
:meth:`~pbrl.data.trajectory.Trajectory.padded`) stay as self-loops with the learned reward of that state: the
same absorbing-state view the labels were given on.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import numpy as np

from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Segment
from pbrl.types import PbrlError, RewardModel

#: Segments read from the store at a time (bounds memory on 20k-segment datasets).
READ_CHUNK = 2000
Run = tuple[np.ndarray, np.ndarray]  # (obs (T, obs_dim), acts (T, act_dim)) of consecutive steps


class _Canvas:
    """The stored steps of one episode: arrays indexed by step, and which steps are known."""

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        self.obs = np.zeros((0, obs_dim), np.float32)
        self.acts = np.zeros((0, act_dim), np.float32)
        self.known = np.zeros(0, bool)

    def add(self, seg: Segment) -> bool:
        """Write the segment's steps; False (nothing written) when they contradict already known steps."""
        end = seg.start + len(seg)
        if end > len(self.known):
            grow = end - len(self.known)
            self.obs = np.concatenate([self.obs, np.zeros((grow, self.obs.shape[1]), np.float32)])
            self.acts = np.concatenate([self.acts, np.zeros((grow, self.acts.shape[1]), np.float32)])
            self.known = np.concatenate([self.known, np.zeros(grow, bool)])
        sl = slice(seg.start, end)
        seen = self.known[sl]
        if seen.any() and not (np.allclose(self.obs[sl][seen], seg.obs[seen], atol=1e-6)
                               and np.allclose(self.acts[sl][seen], seg.acts[seen], atol=1e-6)):
            return False
        self.obs[sl], self.acts[sl], self.known[sl] = seg.obs, seg.acts, True
        return True

    def runs(self) -> list[Run]:
        """Maximal stretches of known consecutive steps."""
        edges = np.flatnonzero(np.diff(np.concatenate([[0], self.known.astype(np.int8), [0]])))
        return [(self.obs[a:b], self.acts[a:b]) for a, b in zip(edges[::2], edges[1::2])]


def stitch_runs(segments: Iterable[Segment]) -> list[Run]:
    """Contiguous runs of steps from segments (see the module docstring), episodes in order of first appearance."""
    canvases: dict[int, _Canvas] = {}
    loose: list[Run] = []
    for seg in segments:
        canvas = canvases.get(seg.episode_id)
        if canvas is None:
            canvas = canvases[seg.episode_id] = _Canvas(seg.obs.shape[1], seg.acts.shape[1])
        if not canvas.add(seg):  # the id is shared by unrelated segments: keep this one whole
            loose.append((np.asarray(seg.obs, np.float32), np.asarray(seg.acts, np.float32)))
    return [run for c in canvases.values() for run in c.runs()] + loose


def store_runs(store: PreferenceStore) -> list[Run]:
    """The runs behind every segment of ``store`` (labelled or not)."""
    ids = store.segment_ids()
    if not ids:
        raise PbrlError(f"data {store.path}: no segments; expected an offline preference dataset (`pbrl data collect`)")

    def chunks() -> Iterable[Segment]:
        for i in range(0, len(ids), READ_CHUNK):
            yield from store.get_segments(ids[i:i + READ_CHUNK])

    return stitch_runs(chunks())


def relabel_runs(model: RewardModel, runs: Sequence[Run]) -> list[np.ndarray]:
    """The learned per-step reward of every step of every run, each run passed as one time-ordered sequence.

    A Markovian model scores each step alone; a sequence model (:mod:`pbrl.rewards.transformer`) gives step ``t``
    the history before it within the run, as the Preference Transformer relabels D4RL.
    """
    return [np.asarray(model.predict(obs[None], acts[None])[0], np.float32) for obs, acts in runs]


@dataclasses.dataclass(frozen=True)
class TransitionData:
    """Transitions ``(s, a, r, s')`` for offline RL.

    Attributes:
        obs, next_obs: ``(N, obs_dim)`` float32.
        acts: ``(N, act_dim)`` float32 (in [-1, 1]).
        rewards: ``(N,)`` float32 learned (normalised) rewards.
        terminals: ``(N,)`` bool, True where ``s'`` is terminal (no bootstrapping).
    """

    obs: np.ndarray
    acts: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminals: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.obs)
        if n == 0:
            raise PbrlError("data: no transitions (every stored segment has a single step); expected segments of "
                            "length >= 2")
        for name in ("acts", "rewards", "next_obs", "terminals"):
            if len(getattr(self, name)) != n:
                raise PbrlError(f"TransitionData.{name}: {len(getattr(self, name))} rows, expected {n}")
        if not np.all(np.isfinite(self.rewards)):
            raise PbrlError("TransitionData.rewards: NaN/inf learned rewards; the reward model diverged")

    @classmethod
    def from_runs(cls, runs: Sequence[Run], rewards: Sequence[np.ndarray]) -> "TransitionData":
        """``(s_t, a_t, r_t, s_{t+1})`` for every step of every run that has a successor (no terminals)."""
        keep = [(o, a, r) for (o, a), r in zip(runs, rewards) if len(o) >= 2]
        if not keep:
            return cls(*(np.zeros((0, 1), np.float32) for _ in range(4)), np.zeros(0, bool))
        obs = np.concatenate([o[:-1] for o, _, _ in keep]).astype(np.float32)
        return cls(obs=obs, acts=np.concatenate([a[:-1] for _, a, _ in keep]).astype(np.float32),
                   rewards=np.concatenate([r[:-1] for _, _, r in keep]).astype(np.float32),
                   next_obs=np.concatenate([o[1:] for o, _, _ in keep]).astype(np.float32),
                   terminals=np.zeros(len(obs), bool))

    @property
    def dims(self) -> tuple[int, int]:
        return int(self.obs.shape[-1]), int(self.acts.shape[-1])

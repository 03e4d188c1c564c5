"""Trajectories and the fixed-length segments cut from them (the unit a person or teacher compares)."""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

import numpy as np

from pbrl.types import PbrlError


def _check_finite(name: str, arr: np.ndarray, owner: str) -> None:
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = int((~np.isfinite(arr)).sum())
        raise PbrlError(f"{owner}.{name}: {bad} NaN/inf value(s); observations and rewards must be finite")


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """One episode.

    Attributes:
        obs: ``(T + 1, obs_dim)`` float32, including the final observation.
        acts: ``(T, act_dim)`` float32.
        rewards: ``(T,)`` float32 true environment reward.
        terms: named reward terms, each ``(T,)`` float32 (e.g. ``reward_forward``).
        success: ``(T,)`` bool per-step success flag, or None when the task has none.
        frames: ``(T, H, W, 3)`` uint8 rendered frames, or None.
        episode_id: unique id of the episode within a run or store.
        task: task name.
        states: ``(T, S)`` float64 simulator state each action was taken in, or None (:mod:`pbrl.envs.simstate`).
        scene: ``(K,)`` float64 model fields the env set at reset (needed with ``states``), or None.
    """

    obs: np.ndarray
    acts: np.ndarray
    rewards: np.ndarray
    terms: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    success: Optional[np.ndarray] = None
    frames: Optional[np.ndarray] = None
    episode_id: int = 0
    task: str = ""
    states: Optional[np.ndarray] = None
    scene: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        T = self.acts.shape[0]
        if self.obs.ndim != 2 or self.obs.shape[0] != T + 1:
            raise PbrlError(f"Trajectory.obs: expected shape (T+1={T + 1}, obs_dim), got {self.obs.shape}")
        if self.acts.ndim != 2:
            raise PbrlError(f"Trajectory.acts: expected shape (T, act_dim), got {self.acts.shape}")
        _check_lengths(self, T, "Trajectory")

    def __len__(self) -> int:
        return int(self.acts.shape[0])

    @property
    def true_return(self) -> float:
        return float(self.rewards.sum())

    def padded(self, length: int) -> "Trajectory":
        """The episode extended to ``length`` steps with an absorbing state after termination.

        Extra steps repeat the terminal observation with zero action, zero reward and zero reward terms,
        so a segment from an episode that ended early (Hopper falling over) can still be compared, and
        ending early costs the reward the episode would otherwise have collected.
        """
        extra = length - len(self)
        if extra <= 0:
            return self
        pad = lambda arr, value: np.concatenate([arr, np.full((extra, *arr.shape[1:]), value, arr.dtype)])
        return dataclasses.replace(
            self,
            obs=_repeat_last(self.obs, extra),
            acts=pad(self.acts, 0.0),
            rewards=pad(self.rewards, 0.0),
            terms={k: pad(np.asarray(v), 0.0) for k, v in self.terms.items()},
            success=None if self.success is None else pad(self.success, False),
            frames=None if self.frames is None else _repeat_last(self.frames, extra),
            states=None if self.states is None else _repeat_last(self.states, extra),
        )

    def segment(self, start: int, length: int) -> "Segment":
        """Cut ``[start, start + length)``; the segment's obs are the observations at which each action was taken."""
        if length <= 0 or start < 0 or start + length > len(self):
            raise PbrlError(
                f"segment: [{start}, {start + length}) does not fit in an episode of length {len(self)}"
            )
        sl = slice(start, start + length)
        return Segment(
            obs=self.obs[sl],
            acts=self.acts[sl],
            rewards=self.rewards[sl],
            terms={k: v[sl] for k, v in self.terms.items()},
            success=None if self.success is None else self.success[sl],
            frames=None if self.frames is None else self.frames[sl],
            episode_id=self.episode_id,
            start=start,
            task=self.task,
            states=None if self.states is None else self.states[sl],
            scene=self.scene,
        )


@dataclasses.dataclass(frozen=True)
class Segment:
    """A fixed-length piece of an episode, with its provenance.

    Attributes:
        obs: ``(L, obs_dim)`` float32, the observation at which each action was taken.
        acts: ``(L, act_dim)`` float32.
        rewards: ``(L,)`` float32 true reward (used by scripted teachers and evaluation only).
        terms: named reward terms, each ``(L,)``.
        success: ``(L,)`` bool or None.
        frames: ``(L, H, W, 3)`` uint8 or None.
        episode_id: episode the segment was cut from.
        start: index of the first step within that episode.
        task: task name.
        segment_id: id in a PreferenceStore, or None before it is stored.
        states, scene: simulator snapshots for re-rendering (as :class:`Trajectory`), or None.
    """

    obs: np.ndarray
    acts: np.ndarray
    rewards: np.ndarray
    terms: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    success: Optional[np.ndarray] = None
    frames: Optional[np.ndarray] = None
    episode_id: int = 0
    start: int = 0
    task: str = ""
    segment_id: Optional[int] = None
    states: Optional[np.ndarray] = None
    scene: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        L = self.acts.shape[0] if self.acts.ndim == 2 else -1
        if L < 1:
            raise PbrlError(f"Segment.acts: expected shape (L>=1, act_dim), got {self.acts.shape}")
        if self.obs.ndim != 2 or self.obs.shape[0] != L:
            raise PbrlError(f"Segment.obs: expected shape (L={L}, obs_dim), got {self.obs.shape}")
        _check_lengths(self, L, "Segment")

    def __len__(self) -> int:
        return int(self.acts.shape[0])

    @property
    def true_return(self) -> float:
        return float(self.rewards.sum())

    def term_totals(self) -> dict[str, float]:
        """Segment total of every named reward term (what HERON and plots compare)."""
        return {k: float(np.sum(v)) for k, v in self.terms.items()}

    def with_id(self, segment_id: int) -> "Segment":
        return dataclasses.replace(self, segment_id=segment_id)


def random_start(n_steps: int, length: int, rng: np.random.Generator, size: Optional[int] = None) -> int | np.ndarray:
    """A start drawn uniformly from ``0 .. n_steps - length``: a ``length``-step window inside ``n_steps`` steps.

    ``size`` draws that many starts at once (an array); without it one ``int``. Every random segment window in
    pbrl and bench/ is cut here, so the bounds (the last window ends at the episode's end) are written once.
    """
    if length < 1 or n_steps < length:
        raise PbrlError(f"segment window: {length} steps do not fit in an episode of {n_steps} steps")
    starts = rng.integers(0, n_steps - length + 1, size=size)
    return int(starts) if size is None else starts


def random_windows(lengths: Sequence[int], n: int, length: int,
                   rng: np.random.Generator) -> list[tuple[int, int]]:
    """``n`` windows ``(episode index, start)``: an episode uniformly among ``lengths``, then a start uniformly
    inside it (:func:`random_start`), as PEBBLE cuts its query candidates; empty without episodes."""
    if not len(lengths):
        return []
    which = rng.integers(0, len(lengths), size=n)
    return [(int(i), random_start(lengths[i], length, rng)) for i in which]


def random_segments(episodes: Sequence[Trajectory], n: int, length: int,
                    rng: np.random.Generator) -> list[Segment]:
    """``n`` segments of ``length`` steps at :func:`random_windows` of ``episodes`` (each at least that long)."""
    return [episodes[i].segment(start, length)
            for i, start in random_windows([len(ep) for ep in episodes], n, length, rng)]


def _check_lengths(item: Trajectory | Segment, n: int, owner: str) -> None:
    """Shared shape/finiteness validation of the per-step arrays."""
    if item.rewards.shape != (n,):
        raise PbrlError(f"{owner}.rewards: expected shape ({n},), got {item.rewards.shape}")
    for name, term in item.terms.items():
        if np.shape(term) != (n,):
            raise PbrlError(f"{owner}.terms[{name!r}]: expected shape ({n},), got {np.shape(term)}")
        _check_finite(f"terms[{name!r}]", np.asarray(term), owner)
    if item.success is not None and np.shape(item.success) != (n,):
        raise PbrlError(f"{owner}.success: expected shape ({n},), got {np.shape(item.success)}")
    if item.frames is not None and (item.frames.ndim != 4 or item.frames.shape[0] != n):
        raise PbrlError(f"{owner}.frames: expected shape ({n}, H, W, 3), got {item.frames.shape}")
    if item.states is not None and (item.states.ndim != 2 or item.states.shape[0] != n):
        raise PbrlError(f"{owner}.states: expected shape ({n}, state_dim), got {item.states.shape}")
    if (item.states is None) != (item.scene is None):
        raise PbrlError(f"{owner}: states and scene go together; got only {'states' if item.scene is None else 'scene'}")
    _check_finite("obs", item.obs, owner)
    _check_finite("acts", item.acts, owner)
    _check_finite("rewards", item.rewards, owner)


def _repeat_last(arr: np.ndarray, extra: int) -> np.ndarray:
    return np.concatenate([arr, np.repeat(arr[-1:], extra, axis=0)])


def stack_pairs(
    first: list[Segment], second: list[Segment], p: np.ndarray, weight: Optional[np.ndarray] = None
):
    """Stack two equal-length lists of segments and their labels into a :class:`~pbrl.types.PairBatch`."""
    from pbrl.types import PairBatch, validate_label_values

    if len(first) != len(second) or len(first) != len(p):
        raise PbrlError(f"stack_pairs: {len(first)} first, {len(second)} second segments and {len(p)} labels")
    if not first:
        raise PbrlError("stack_pairs: no pairs given; expected at least one labelled pair")
    lengths = {len(s) for s in first + second}
    if len(lengths) > 1:
        raise PbrlError(f"stack_pairs: segments of mismatched lengths {sorted(lengths)}; expected one length")
    w = np.ones(len(p), np.float32) if weight is None else np.asarray(weight, np.float32)
    return PairBatch(
        obs1=np.stack([s.obs for s in first]).astype(np.float32),
        act1=np.stack([s.acts for s in first]).astype(np.float32),
        obs2=np.stack([s.obs for s in second]).astype(np.float32),
        act2=np.stack([s.acts for s in second]).astype(np.float32),
        p=validate_label_values(p),
        weight=w,
    )

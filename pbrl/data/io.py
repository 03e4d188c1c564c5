"""Import/export of labelled pairs in other libraries' conventions.

This is the ONLY place where label conventions are converted. Inside pbrl a label is
``p = P(first segment preferred)`` (1 first, 0 second, 0.5 equal; see :mod:`pbrl.types`).

* CPL / B-Pref (``label``): ``1`` = SECOND preferred, ``0`` = first preferred, so
  ``label = 1 - p``; some B-Pref files mark ties as ``-1``.
* CPL's released datasets (scored segments, :func:`import_cpl_scored_npz`): no labels, a score per segment
  (e.g. ``rl_sum``, an oracle's summed advantage); a pair's ``p`` is 1 / 0 / 0.5 as the first score is larger /
  smaller / equal (CPL builds ``label = 1[score_1 < score_2] + 0.5 1[score_1 == score_2] = 1 - p``).
* imitation (``preferences``): probability the first fragment is preferred, i.e. exactly ``p``.

Only answered labels are exported; skipped queries, frames, reward terms, success flags and label
weights have no place in these formats and are dropped.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Segment
from pbrl.types import Labels, PbrlError
from pbrl.utils import fsync_path

Fragment = dict[str, np.ndarray]

_CPL_REQUIRED = ("obs_1", "obs_2", "action_1", "action_2", "label")
_IMITATION_REQUIRED = ("obs_1", "acts_1", "obs_2", "acts_2", "preferences")
_CPL_SCORED_REQUIRED = ("obs", "action")


# --------------------------------------------------------------------------- helpers


def _answered_pairs(
    store: PreferenceStore, sources: Optional[Sequence[str]]
) -> tuple[list[Segment], list[Segment], np.ndarray]:
    """First segments, second segments and p of every answered label, in commit order."""
    rows = store.labels(sources=sources)
    segs = store.get_segments([r.first_id for r in rows] + [r.second_id for r in rows])
    p = np.array([r.label for r in rows], np.float32)
    return segs[: len(rows)], segs[len(rows) :], p


def _stack(arrs: Sequence[np.ndarray], what: str) -> np.ndarray:
    """Stack per-pair arrays as float32; these formats need one segment length per file."""
    lengths = {len(a) for a in arrs}
    if len(lengths) > 1:
        raise PbrlError(f"export: {what} of mismatched lengths {sorted(lengths)}; expected one length")
    return np.stack([np.asarray(a, np.float32) for a in arrs])


def _write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically (temp file + rename) so a crash never leaves a truncated export."""
    path = Path(path)
    if path.suffix != ".npz":
        raise PbrlError(f"{path}: expected a path ending in .npz")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    try:
        np.savez_compressed(tmp, **arrays)
        fsync_path(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise PbrlError(f"{path}: cannot write ({e.strerror or e})") from None
    finally:
        tmp.unlink(missing_ok=True)


def _read_npz(path: str | os.PathLike, required: Sequence[str], fmt: str) -> dict[str, np.ndarray]:
    """Load every array of an npz file, failing with one line that names the file and key."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not hasattr(loaded, "files"):
            raise PbrlError(f"{path}: a single .npy array, expected an .npz archive ({fmt})")
        with loaded as npz:
            data = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise PbrlError(f"{path}: not a readable .npz file ({fmt}): {e}") from None
    for key in required:
        if key not in data:
            raise PbrlError(f"{path}: missing key {key!r}; expected keys {', '.join(required)} ({fmt})")
    return data


def _check_array(path: object, key: str, arr: np.ndarray, shape: tuple[Optional[int], ...]) -> np.ndarray:
    """Check ``arr`` against ``shape`` (None = any size) and finiteness; returns it as float32."""
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
    if not ok:
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise PbrlError(f"{path}: key {key!r}: expected shape {want}, got {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise PbrlError(f"{path}: key {key!r}: expected numbers, got dtype {arr.dtype}")
    out = arr.astype(np.float32)
    if not np.all(np.isfinite(out)):
        raise PbrlError(f"{path}: key {key!r}: contains NaN/inf values")
    return out


def _squeeze_last(arr: np.ndarray, ndim: int) -> np.ndarray:
    """Accept ``(..., 1)`` columns (B-Pref stores labels as ``(n, 1)``)."""
    return arr[..., 0] if arr.ndim == ndim + 1 and arr.shape[-1] == 1 else arr


def _check_pair_arrays(
    path: object, obs: tuple[np.ndarray, np.ndarray], acts: tuple[np.ndarray, np.ndarray], names: Sequence[str]
) -> tuple[int, int]:
    """Validate ``(n, L, *)`` obs/action arrays of both sides; returns (n, L)."""
    o1 = _check_array(path, names[0], obs[0], (None, None, None))
    n, L = o1.shape[:2]
    _check_array(path, names[1], obs[1], o1.shape)
    a1 = _check_array(path, names[2], acts[0], (n, L, None))
    _check_array(path, names[3], acts[1], a1.shape)
    if L < 1:
        raise PbrlError(f"{path}: key {names[0]!r}: segments of length 0")
    return n, L


def _import_pairs(
    store: PreferenceStore,
    sides: Sequence[tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]],
    p: np.ndarray,
    *,
    task: str,
    source: str,
) -> int:
    """Turn two sides of ``(obs, acts, rewards|None)`` stacks into segments and store them with p.

    Each imported segment gets its own fresh episode id (provenance is unknown) and start 0;
    missing rewards become zeros.
    """
    n = len(p)
    next_ep = store.next_episode_id()
    segs: list[list[Segment]] = [[], []]
    for side, (obs, acts, rews) in enumerate(sides):
        for i in range(n):
            rew = np.zeros(obs.shape[1], np.float32) if rews is None else rews[i]
            segs[side].append(
                Segment(obs=obs[i], acts=acts[i], rewards=rew, episode_id=next_ep + side * n + i, task=task)
            )
    store.add_pairs(segs[0], segs[1], Labels(p, np.zeros(n, bool)), source=source)
    return n


# --------------------------------------------------------------------------- CPL / B-Pref


def export_cpl_npz(
    store: PreferenceStore, path: str | os.PathLike, *, sources: Optional[Sequence[str]] = None
) -> int:
    """Write answered labels as a CPL/B-Pref preference file; returns the number of pairs.

    Keys: ``obs_1``, ``obs_2`` ``(n, L, obs_dim)``; ``action_1``, ``action_2`` ``(n, L, act_dim)``;
    ``reward_1``, ``reward_2`` ``(n, L)`` true rewards; ``label`` ``(n,)`` float32.

    Polarity (CPL's ``biased_bce_with_logits``: "y = 1 if we prefer x2 to x1"):
    ``label = 1 - p``, i.e. ``0.0`` = first (``*_1``) preferred, ``1.0`` = second (``*_2``)
    preferred, soft labels ``1 - p``, and ties (p == 0.5) written as ``0.5`` (never ``-1``, which
    CPL's BCE would treat as an out-of-range target). Skipped queries are not exported.
    """
    first, second, p = _answered_pairs(store, sources)
    if not first:
        raise PbrlError(f"store {store.path}: no answered labels to export (sources={sources})")
    _write_npz(
        path,
        {
            "obs_1": _stack([s.obs for s in first], "obs"),
            "obs_2": _stack([s.obs for s in second], "obs"),
            "action_1": _stack([s.acts for s in first], "acts"),
            "action_2": _stack([s.acts for s in second], "acts"),
            "reward_1": _stack([s.rewards for s in first], "rewards"),
            "reward_2": _stack([s.rewards for s in second], "rewards"),
            "label": (1.0 - p).astype(np.float32),
        },
    )
    return len(p)


def _cpl_label_to_p(path: object, label: np.ndarray) -> np.ndarray:
    """CPL ``label`` (1 = second preferred, -1 = tie) -> pbrl ``p`` (1 = first preferred)."""
    bad = ~((label == -1) | ((label >= 0) & (label <= 1)))
    if bad.any():
        raise PbrlError(
            f"{path}: key 'label': expected values in [0, 1] (0 first, 1 second preferred) or -1 (tie), "
            f"got {label[bad][:5].tolist()}"
        )
    return np.where(label == -1, np.float32(0.5), 1.0 - label).astype(np.float32)


def import_cpl_npz(
    path: str | os.PathLike, store: PreferenceStore, *, task: str, source: str = "import"
) -> int:
    """Read a CPL/B-Pref preference file (see :func:`export_cpl_npz`) into ``store``; returns pairs added.

    ``label`` may be ``(n,)`` or ``(n, 1)``; it is converted with ``p = 1 - label``, and ``-1``
    (tie, as in some B-Pref files) becomes ``p = 0.5``. ``reward_1``/``reward_2`` are optional
    (zeros when absent). All pairs are added in one transaction, or none.
    """
    fmt = "CPL/B-Pref preference file"
    d = _read_npz(path, _CPL_REQUIRED, fmt)
    n, L = _check_pair_arrays(
        path, (d["obs_1"], d["obs_2"]), (d["action_1"], d["action_2"]), ("obs_1", "obs_2", "action_1", "action_2")
    )
    label = _check_array(path, "label", _squeeze_last(d["label"], 1), (n,))
    rewards = []
    for key in ("reward_1", "reward_2"):
        rewards.append(None if key not in d else _check_array(path, key, _squeeze_last(d[key], 2), (n, L)))
    sides = [
        (d["obs_1"].astype(np.float32), d["action_1"].astype(np.float32), rewards[0]),
        (d["obs_2"].astype(np.float32), d["action_2"].astype(np.float32), rewards[1]),
    ]
    return _import_pairs(store, sides, _cpl_label_to_p(path, label), task=task, source=source)


def score_pairs(n: int, pairing: str, group_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pairs over ``n`` scored segments, as CPL's ``FeedbackBuffer`` forms them.

    ``sparse`` is its ``comparison`` mode: segment ``i`` against ``i + n // 2``. ``dense`` stands for its ``rank``
    mode, which draws fresh random pairs per batch; a store keeps fixed labels, so here every pair inside random
    groups of ``group_size`` is compared (each segment scored once per group, as CPL's dense pairing).
    """
    if pairing == "sparse":
        half = n // 2
        return np.arange(half), np.arange(half, 2 * half)
    if pairing != "dense":
        raise PbrlError(f"pairing: expected 'sparse' or 'dense', got {pairing!r}")
    if group_size < 2:
        raise PbrlError(f"group_size: expected >= 2, got {group_size}")
    perm, first, second = rng.permutation(n), [], []
    for g in range(0, n - group_size + 1, group_size):
        grp = perm[g:g + group_size]
        a, b = np.triu_indices(group_size, k=1)
        first.extend(grp[a])
        second.extend(grp[b])
    return np.asarray(first, int), np.asarray(second, int)


def import_cpl_scored_npz(
    path: str | os.PathLike, store: PreferenceStore, *, task: str, label_key: str = "rl_sum", pairing: str = "sparse",
    group_size: int = 8, seed: int = 0, source: str = "import",
) -> int:
    """Read one of CPL's released datasets (scored segments) into ``store``; returns the pairs added.

    Keys: ``obs`` ``(N, S, obs_dim)``, ``action`` ``(N, S, act_dim)``, ``reward`` ``(N, S)`` (optional),
    ``timestep`` ``(N, S)`` (optional, the steps' times: the segment's start is kept) and the per-segment score
    ``label_key`` ``(N,)`` (``rl_sum``, ``rl_dir``, ``rl_dis_sum``, ... as CPL's ``add_pref_labels.py`` writes).
    Pairs from :func:`score_pairs`; ``p`` from the scores (module docstring). Every segment is stored once, as its
    own episode (CPL's segments are sampled from a replay buffer without episode ids), in one transaction.
    """
    fmt = "CPL scored-segment dataset"
    d = _read_npz(path, _CPL_SCORED_REQUIRED, fmt)
    obs = _check_array(path, "obs", d["obs"], (None, None, None))
    n, L = obs.shape[:2]
    acts = _check_array(path, "action", d["action"], (n, L, None))
    if label_key not in d:
        scores = sorted(k for k, v in d.items() if np.ndim(v) == 1)
        raise PbrlError(f"{path}: no score key {label_key!r}; per-segment keys in the file: {scores} ({fmt})")
    score = _check_array(path, label_key, _squeeze_last(d[label_key], 1), (n,))
    rew = _check_array(path, "reward", d["reward"], (n, L)) if "reward" in d else np.zeros((n, L), np.float32)
    start = _check_array(path, "timestep", d["timestep"], (n, L))[:, 0].astype(int) if "timestep" in d else np.zeros(n, int)
    first, second = score_pairs(n, pairing, int(group_size), np.random.default_rng(seed))
    if len(first) == 0:
        raise PbrlError(f"{path}: {n} segment(s) make no pair ({pairing} pairing, group_size {group_size})")
    p = np.where(score[first] > score[second], 1.0, np.where(score[first] < score[second], 0.0, 0.5)).astype(np.float32)
    next_ep = store.next_episode_id()
    segs = [Segment(obs=obs[i], acts=acts[i], rewards=rew[i], episode_id=next_ep + i, start=max(0, int(start[i])),
                    task=task) for i in range(n)]
    store.add_comparisons(segs, first, second, Labels(p, np.zeros(len(p), bool)), source=source)
    return len(p)


# --------------------------------------------------------------------------- imitation


def _fragment(seg: Segment) -> Fragment:
    return {
        "obs": np.asarray(seg.obs, np.float32),
        "acts": np.asarray(seg.acts, np.float32),
        "rews": np.asarray(seg.rewards, np.float32),
    }


def to_imitation(
    store: PreferenceStore, sources: Optional[Sequence[str]] = None
) -> tuple[list[tuple[Fragment, Fragment]], np.ndarray]:
    """Answered labels as imitation-style ``(fragment_pairs, preferences)``.

    Each fragment is a dict with ``obs`` ``(L, obs_dim)``, ``acts`` ``(L, act_dim)`` and ``rews``
    ``(L,)``. Note ``obs`` has L rows (the observation at which each action was taken), NOT the
    ``L + 1`` of imitation's ``Trajectory``: a segment does not keep the observation after its last
    action. ``preferences`` is float32 P(first fragment preferred), the same as pbrl's ``p``.
    """
    first, second, p = _answered_pairs(store, sources)
    return [(_fragment(a), _fragment(b)) for a, b in zip(first, second)], p


def _get(frag: Mapping[str, Any] | Any, key: str) -> Any:
    return frag.get(key) if isinstance(frag, Mapping) else getattr(frag, key, None)


def _fragment_stack(
    pairs: Sequence[tuple[Any, Any]], side: int, key: str, where: str
) -> Optional[np.ndarray]:
    """Stack one field of one side across pairs (None if any fragment lacks it, for ``rews``)."""
    values = [_get(pair[side], key) for pair in pairs]
    if any(v is None for v in values):
        if key == "rews":
            return None
        raise PbrlError(f"{where}: fragment {side + 1} lacks {key!r}; expected obs, acts (and rews)")
    arrs = [np.asarray(v) for v in values]
    if key == "obs":  # imitation trajectories carry L + 1 observations; keep those with actions
        arrs = [o[: len(np.asarray(_get(pair[side], "acts")))] for o, pair in zip(arrs, pairs)]
    shapes = {a.shape for a in arrs}
    if len(shapes) > 1:
        raise PbrlError(f"{where}: fragment {side + 1} {key!r} of mismatched shapes {sorted(shapes)[:3]}")
    return np.stack(arrs)


def from_imitation(
    pairs: Sequence[tuple[Any, Any]],
    preferences: np.ndarray,
    store: PreferenceStore,
    *,
    task: str,
    source: str = "import",
) -> int:
    """Add imitation-style fragment pairs and preferences (P(first preferred)) to ``store``.

    Fragments may be dicts or objects (e.g. imitation's ``TrajectoryWithRew``) with ``obs``,
    ``acts`` and optionally ``rews``; an ``obs`` with ``len(acts) + 1`` rows loses its final row.
    Returns the number of pairs added (one transaction).
    """
    where = "from_imitation"
    prefs = np.asarray(preferences, np.float64).reshape(-1)
    if len(prefs) != len(pairs) or not len(pairs):
        raise PbrlError(f"{where}: {len(pairs)} fragment pairs and {len(prefs)} preferences; expected equal, > 0")
    stacks = {(s, k): _fragment_stack(pairs, s, k, where) for s in (0, 1) for k in ("acts", "obs", "rews")}
    n, L = _check_pair_arrays(
        where, (stacks[0, "obs"], stacks[1, "obs"]), (stacks[0, "acts"], stacks[1, "acts"]),
        ("fragment 1 obs", "fragment 2 obs", "fragment 1 acts", "fragment 2 acts"),
    )
    sides = []
    for s in (0, 1):
        rews = stacks[s, "rews"]
        rews = None if rews is None else _check_array(where, f"fragment {s + 1} rews", rews, (n, L))
        sides.append((stacks[s, "obs"].astype(np.float32), stacks[s, "acts"].astype(np.float32), rews))
    return _import_pairs(store, sides, _imitation_p(where, prefs), task=task, source=source)


def _imitation_p(where: object, prefs: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(prefs)) or prefs.min() < 0 or prefs.max() > 1:
        raise PbrlError(f"{where}: key 'preferences': expected P(first preferred) in [0, 1]")
    return prefs.astype(np.float32)


def export_imitation_npz(
    store: PreferenceStore, path: str | os.PathLike, *, sources: Optional[Sequence[str]] = None
) -> int:
    """Save :func:`to_imitation` output as npz; returns the number of pairs.

    Keys: ``obs_1``/``obs_2`` ``(n, L, obs_dim)``, ``acts_1``/``acts_2`` ``(n, L, act_dim)``,
    ``rews_1``/``rews_2`` ``(n, L)``, ``preferences`` ``(n,)`` = P(first preferred) (no flip).
    (imitation itself pickles its datasets; npz avoids unpickling untrusted files.)
    """
    pairs, prefs = to_imitation(store, sources)
    if not pairs:
        raise PbrlError(f"store {store.path}: no answered labels to export (sources={sources})")
    arrays = {"preferences": prefs}
    for side in (0, 1):
        for key in ("obs", "acts", "rews"):
            arrays[f"{key}_{side + 1}"] = _stack([pair[side][key] for pair in pairs], key)
    _write_npz(path, arrays)
    return len(pairs)


def import_imitation_npz(
    path: str | os.PathLike, store: PreferenceStore, *, task: str, source: str = "import"
) -> int:
    """Read a file written by :func:`export_imitation_npz` into ``store``; returns pairs added."""
    fmt = "imitation-convention preference file"
    d = _read_npz(path, _IMITATION_REQUIRED, fmt)
    n, L = _check_pair_arrays(
        path, (d["obs_1"], d["obs_2"]), (d["acts_1"], d["acts_2"]), ("obs_1", "obs_2", "acts_1", "acts_2")
    )
    prefs = _check_array(path, "preferences", _squeeze_last(d["preferences"], 1), (n,))
    sides = []
    for s in ("1", "2"):
        rews = None if f"rews_{s}" not in d else _check_array(path, f"rews_{s}", d[f"rews_{s}"], (n, L))
        sides.append((d[f"obs_{s}"].astype(np.float32), d[f"acts_{s}"].astype(np.float32), rews))
    return _import_pairs(store, sides, _imitation_p(path, prefs), task=task, source=source)


# --------------------------------------------------------------------------- any of the above

#: ``npz_format`` -> (key whose presence identifies it, obs key, action key)
NPZ_FORMATS = {"cpl": ("action_1", "obs_1", "action_1"), "imitation": ("acts_1", "obs_1", "acts_1"),
               "cpl_scored": ("action", "obs", "action")}


def _npz_keys(path: str | os.PathLike) -> list[str]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return list(npz.files)
    except (OSError, ValueError, EOFError, AttributeError, zipfile.BadZipFile) as e:
        raise PbrlError(f"{path}: not a readable .npz archive: {e}") from None


def import_npz(
    path: str | os.PathLike, store: PreferenceStore, *, task: str, fmt: str = "auto", dims: Optional[tuple[int, int]] = None,
    label_key: str = "rl_sum", pairing: str = "sparse", group_size: int = 8, seed: int = 0,
) -> tuple[str, int]:
    """Import a preference file of any supported format into ``store``; returns (format, pairs added).

    ``fmt``: ``cpl`` (pairs, :func:`import_cpl_npz`), ``cpl_scored`` (CPL's released datasets,
    :func:`import_cpl_scored_npz`), ``imitation`` (:func:`import_imitation_npz`) or ``auto`` (told apart by their
    keys). ``dims`` = the task's (obs_dim, act_dim): a file of another task is refused before anything is written.
    """
    keys = _npz_keys(path)
    if fmt == "auto":
        found = [name for name, (marker, _, _) in NPZ_FORMATS.items() if marker in keys]
        if not found:
            raise PbrlError(f"{path}: keys {sorted(keys)[:8]} match no format; expected {sorted(NPZ_FORMATS)}")
        fmt = found[0]
    if fmt not in NPZ_FORMATS:
        raise PbrlError(f"npz_format: expected auto or one of {sorted(NPZ_FORMATS)}, got {fmt!r}")
    _, obs_key, act_key = NPZ_FORMATS[fmt]
    if dims is not None:
        with np.load(path, allow_pickle=False) as npz:
            got = tuple(int(npz[k].shape[-1]) if k in npz.files else -1 for k in (obs_key, act_key))
        if got != tuple(dims):
            raise PbrlError(f"{path}: obs/action sizes {got} (keys {obs_key!r}, {act_key!r}); task {task} expects {tuple(dims)}")
    if fmt == "cpl":
        return fmt, import_cpl_npz(path, store, task=task)
    if fmt == "imitation":
        return fmt, import_imitation_npz(path, store, task=task)
    return fmt, import_cpl_scored_npz(path, store, task=task, label_key=label_key, pairing=pairing,
                                      group_size=group_size, seed=seed)

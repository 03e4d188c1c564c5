"""What the reward-free offline learners (CPL, OPPO, BC) share: the dataset as arrays, batches, networks.

The dataset is a :class:`~pbrl.data.store.PreferenceStore`'s answered labels, turned into unique segments
(``obs``/``acts``) and index pairs into them, so a segment compared many times is stored and scored once.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from pbrl.data.store import PreferenceStore
from pbrl.types import PbrlError


@dataclasses.dataclass(frozen=True)
class OfflineData:
    """Unique segments and the labelled pairs between them.

    Attributes:
        obs: ``(N, L, obs_dim)`` float32 segment observations.
        acts: ``(N, L, act_dim)`` float32 segment actions (in [-1, 1]).
        first, second: ``(M,)`` int indices into the segments, one per answered label.
        p: ``(M,)`` float32 P(first preferred) (pbrl convention; 0.5 = equal).
    """

    obs: np.ndarray
    acts: np.ndarray
    first: np.ndarray
    second: np.ndarray
    p: np.ndarray

    @classmethod
    def from_store(cls, store: PreferenceStore) -> "OfflineData":
        rows = store.labels()
        if not rows:
            raise PbrlError(f"data {store.path}: no answered labels; expected an offline preference dataset "
                            f"(`pbrl data collect`)")
        ids = sorted({r.first_id for r in rows} | {r.second_id for r in rows})
        index = {sid: k for k, sid in enumerate(ids)}
        segs = store.get_segments(ids)
        if len({len(s) for s in segs}) > 1:
            raise PbrlError(f"data {store.path}: segments of different lengths; expected one segment length")
        return cls(obs=np.stack([s.obs for s in segs]).astype(np.float32),
                   acts=np.stack([s.acts for s in segs]).astype(np.float32),
                   first=np.array([index[r.first_id] for r in rows]), second=np.array([index[r.second_id] for r in rows]),
                   p=np.array([r.label for r in rows], np.float32))

    @property
    def dims(self) -> tuple[int, int]:
        return int(self.obs.shape[-1]), int(self.acts.shape[-1])

    def preferred(self) -> np.ndarray:
        """Index of the preferred segment of every strict pair (a segment preferred k times appears k times)."""
        strict = self.p != 0.5
        return np.where(self.p[strict] > 0.5, self.first[strict], self.second[strict])

    def components(self) -> list[np.ndarray]:
        """Pair indices grouped by connected component of the comparison graph (union-find).

        A dense dataset's groups come out as components, so sampling whole components scores each segment
        once and uses every comparison among them (CPL's dense pairing).
        """
        parent = np.arange(len(self.obs))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for a, b in zip(self.first, self.second):
            parent[root(a)] = root(b)
        roots = np.array([root(a) for a in self.first])
        order = np.argsort(roots, kind="stable")
        _, starts = np.unique(roots[order], return_index=True)
        return np.split(order, starts[1:])


def obs_stats(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std (floored) of ``(..., obs_dim)`` observations, for input normalisation."""
    flat = obs.reshape(-1, obs.shape[-1])
    return flat.mean(0).astype(np.float32), np.maximum(flat.std(0), 1e-3).astype(np.float32)


class MaskDropout(nn.Module):
    """Dropout (Srivastava et al. 2014): zero each unit with probability ``p`` in training, scale the rest by
    ``1 / (1 - p)``; the identity in eval mode. Same distribution as ``nn.Dropout``, but the mask comes from
    ``torch.rand``, which on CPU is several times faster than the ``bernoulli_`` kernel behind ``nn.Dropout``
    (offline CPL steps ~20% faster, measured in ``bench/offline_prefs.py``'s docstring)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise PbrlError(f"dropout: expected a probability in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        return x * ((torch.rand_like(x) < keep).to(x.dtype) * (1.0 / keep))


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, dropout: float = 0.0) -> nn.Sequential:
    """ReLU MLP with optional dropout after every hidden layer (CPL's actor uses dropout)."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), nn.ReLU()] + ([MaskDropout(dropout)] if dropout > 0 else [])
        in_dim = h
    return nn.Sequential(*layers, nn.Linear(in_dim, out_dim))


class ObsNorm(nn.Module):
    """Fixed input normalisation, kept inside the policy so an exported module needs no extra step."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.mean) / self.std


class PairBatchIdx(NamedTuple):
    """A training batch as indices: ``segs`` unique segment indices, pair ends ``i1``/``i2`` into ``segs``."""

    segs: np.ndarray
    i1: np.ndarray
    i2: np.ndarray
    p: np.ndarray


class PairSampler:
    """Mini-batches of labelled pairs: uniform pairs (``sparse``) or whole components (``dense``)."""

    def __init__(self, data: OfflineData, *, batch_pairs: int, pairing: str, rng: np.random.Generator) -> None:
        if pairing not in ("sparse", "dense"):
            raise PbrlError(f"algo.pairing: expected 'sparse' or 'dense', got {pairing!r}")
        self.data, self.batch_pairs, self.pairing, self.rng = data, int(batch_pairs), pairing, rng
        self.comps = data.components() if pairing == "dense" else []

    def sample(self) -> PairBatchIdx:
        d = self.data
        if self.pairing == "sparse":
            pairs = self.rng.integers(0, len(d.p), self.batch_pairs)
        else:
            chosen, total = [], 0
            for c in self.rng.permutation(len(self.comps)):
                chosen.append(self.comps[c])
                total += len(self.comps[c])
                if total >= self.batch_pairs:
                    break
            pairs = np.concatenate(chosen)
        segs, inv = np.unique(np.concatenate([d.first[pairs], d.second[pairs]]), return_inverse=True)
        return PairBatchIdx(segs, inv[: len(pairs)], inv[len(pairs) :], d.p[pairs])


def tensors(data: OfflineData, segs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``(obs, acts)`` tensors of the given segments."""
    return torch.as_tensor(data.obs[segs]), torch.as_tensor(data.acts[segs])


class OfflineLearner:
    """Base of the offline learners: ``update()`` one gradient step, ``policy`` the deployable module.

    Subclasses fill ``self.modules`` / ``self.optims`` (checkpointed by name) and ``self.policy``.
    """

    modules: dict[str, nn.Module]
    optims: dict[str, torch.optim.Optimizer]
    policy: nn.Module

    def update(self, step: int) -> dict[str, float]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"modules": {k: m.state_dict() for k, m in self.modules.items()},
                "optims": {k: o.state_dict() for k, o in self.optims.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optims.items():
            o.load_state_dict(state["optims"][k])

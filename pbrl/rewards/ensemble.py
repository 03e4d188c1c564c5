"""Ensemble of Bradley-Terry reward networks (PEBBLE, Lee et al. 2021; Christiano et al. 2017).

All members live in one set of stacked parameters ``(M, in, out)`` so the whole ensemble is trained
and evaluated in a single batched forward pass (``torch.baddbmm``), not a Python loop over members.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pbrl.rewards.losses import bradley_terry_loss, check_label_noise, heldout_metrics
from pbrl.types import PairBatch, PbrlError, validate_label_values

BOOTSTRAP_MODES: tuple[str, ...] = ("permutation", "bootstrap")
#: Rows per forward pass at prediction time (bounds memory when relabelling a whole replay buffer).
PREDICT_CHUNK: int = 65536


class BatchedMLP(nn.Module):
    """``M`` independent MLPs evaluated together: LeakyReLU hidden layers, tanh output (PEBBLE).

    Attributes:
        weights: per layer ``(M, in, out)``.
        biases: per layer ``(M, 1, out)``.
    """

    def __init__(self, n_members: int, in_dim: int, hidden: Sequence[int], generator: torch.Generator):
        super().__init__()
        sizes = [in_dim, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            # Same distribution as torch.nn.Linear's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
            bound = 1.0 / math.sqrt(fan_in)
            w = (torch.rand(n_members, fan_in, fan_out, generator=generator) * 2 - 1) * bound
            b = (torch.rand(n_members, 1, fan_out, generator=generator) * 2 - 1) * bound
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-member rewards ``(M, N)`` for inputs ``(N, in)`` (shared) or ``(M, N, in)`` (per member)."""
        h = x
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            if h.dim() == 2:  # shared input: broadcast over members without copying it M times
                h = torch.matmul(h, w) + b
            else:
                h = torch.baddbmm(b, h, w)
            h = torch.tanh(h) if k == last else F.leaky_relu(h)
        return h.squeeze(-1)


class EnsembleReward:
    """Ensemble of per-step reward networks r(s, a) trained with the Bradley-Terry loss.

    Each member sees its own permutation (or bootstrap resample) of the labelled pairs every epoch,
    as in B-Pref's ``train_reward``; the training loss is the sum of the members' losses. ``label_noise`` > 0
    trains with the noise-robust likelihood of :func:`~pbrl.rewards.losses.bradley_terry_loss`.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        *,
        n_members: int = 3,
        hidden: Sequence[int] = (256, 256, 256),
        lr: float = 3e-4,
        batch_size: int = 128,
        weight_decay: float = 0.0,
        bootstrap: str = "permutation",
        label_noise: float = 0.0,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        self.label_noise = check_label_noise(label_noise, "reward.model.label_noise")
        if bootstrap not in BOOTSTRAP_MODES:
            raise PbrlError(f"EnsembleReward.bootstrap: expected one of {BOOTSTRAP_MODES}, got {bootstrap!r}")
        for name, value in (("obs_dim", obs_dim), ("act_dim", act_dim), ("n_members", n_members),
                            ("batch_size", batch_size)):
            if int(value) < 1:
                raise PbrlError(f"EnsembleReward.{name}: expected a positive integer, got {value}")
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.n_members, self.batch_size = int(n_members), int(batch_size)
        self.hidden = tuple(int(h) for h in hidden)
        self.bootstrap = bootstrap
        self.device = torch.device(device)
        self._gen = torch.Generator().manual_seed(int(seed))
        self.net = BatchedMLP(self.n_members, self.obs_dim + self.act_dim, self.hidden, self._gen)
        self.net.to(self.device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr, weight_decay=weight_decay)

    # ------------------------------------------------------------------ training
    def fit(self, pairs: PairBatch, *, epochs: int, stop_at_acc: Optional[float] = None,
            on_epoch: Optional[Callable[[dict[str, float]], None]] = None) -> dict[str, float]:
        """Train every member for ``epochs`` passes over ``pairs``.

        Args:
            pairs: labelled pairs (skipped queries must already be removed).
            epochs: passes over the data; each member draws a fresh permutation/bootstrap per epoch.
            stop_at_acc: stop early once the epoch's training accuracy exceeds this (PEBBLE stops
                reward updates at 97% train accuracy); None trains all epochs.
            on_epoch: called with each epoch's metrics (a progress bar's hook).

        Returns:
            ``{"loss", "train_acc", "epochs"}`` of the last epoch (loss: mean member BT loss;
            train_acc: members' accuracy on their own strict-label batches, NaN if none).
        """
        if int(epochs) < 1:
            raise PbrlError(f"reward fit: epochs must be >= 1, got {epochs}")
        data = self._pairs_to_tensors(pairs, "reward fit")
        n = data["p"].shape[0]
        metrics: dict[str, float] = {}
        self.net.train()
        for epoch in range(int(epochs)):
            order = self._sample_indices(n)
            metrics = self._train_epoch(data, order)
            metrics["epochs"] = float(epoch + 1)
            if on_epoch is not None:
                on_epoch(metrics)
            if stop_at_acc is not None and metrics["train_acc"] > stop_at_acc:
                break
        return metrics

    def _sample_indices(self, n: int) -> torch.Tensor:
        """``(M, n)`` pair indices: one permutation or bootstrap resample per member."""
        if self.bootstrap == "bootstrap":
            idx = torch.randint(0, n, (self.n_members, n), generator=self._gen)
        else:  # argsort of i.i.d. uniforms is a uniformly random permutation per row
            idx = torch.argsort(torch.rand(self.n_members, n, generator=self._gen), dim=1)
        return idx.to(self.device)

    def _train_epoch(self, data: dict[str, torch.Tensor], order: torch.Tensor) -> dict[str, float]:
        n = order.shape[1]
        # Accumulate on the device: one host sync per epoch, not per batch.
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        strict = torch.zeros((), device=self.device)
        for start in range(0, n, self.batch_size):
            idx = order[:, start:start + self.batch_size]  # (M, B)
            objective, loss, gap, p = self._batch_loss(data, idx)
            self.optimizer.zero_grad(set_to_none=True)
            objective.backward()
            self.optimizer.step()
            with torch.no_grad():
                loss_sum += loss * idx.shape[1]
                mask = p != 0.5
                correct += (torch.where(p > 0.5, gap > 0, gap < 0) & mask).sum()
                strict += mask.sum()
        acc = float(correct / strict) if float(strict) > 0 else math.nan
        return {"loss": float(loss_sum) / n, "train_acc": acc}

    def _batch_loss(self, data: dict[str, torch.Tensor], idx: torch.Tensor):
        """(objective to minimise, reported loss, predicted return gap R1-R2, labels) of one minibatch."""
        r1, r2 = self._pair_returns(data, idx)
        p, w = data["p"][idx], data["weight"][idx]
        loss = bradley_terry_loss(r1, r2, p, w, self.label_noise)
        # Sum over members (B-Pref sums member losses): each member's gradient is its own loss's.
        return loss * self.n_members, loss, (r1 - r2).detach(), p

    def _pair_returns(self, data: dict[str, torch.Tensor], idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member summed returns ``(M, B)`` of both segments of the pairs ``idx`` in one forward."""
        m, b = idx.shape
        length = data["obs1"].shape[1]
        sa1 = torch.cat([data["obs1"][idx], data["act1"][idx]], dim=-1)  # (M, B, L, in)
        sa2 = torch.cat([data["obs2"][idx], data["act2"][idx]], dim=-1)
        x = torch.cat([sa1, sa2], dim=1).reshape(m, 2 * b * length, -1)
        rets = self.net(x).reshape(m, 2 * b, length).sum(dim=-1)
        return rets[:, :b], rets[:, b:]

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def _member_rewards(self, obs: np.ndarray, act: np.ndarray) -> torch.Tensor:
        """Per-member rewards ``(M, *lead)`` in chunks of :data:`PREDICT_CHUNK` rows (float32, on CPU)."""
        obs, act = self._check_inputs(obs, act)
        lead = obs.shape[:-1]
        x = np.concatenate([obs.reshape(-1, self.obs_dim), act.reshape(-1, self.act_dim)], axis=1)
        self.net.eval()
        out = [
            self.net(torch.from_numpy(x[i:i + PREDICT_CHUNK]).to(self.device)).cpu()
            for i in range(0, x.shape[0], PREDICT_CHUNK)
        ]
        flat = torch.cat(out, dim=1) if out else torch.zeros(self.n_members, 0)
        return flat.reshape(self.n_members, *lead)

    def predict(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        """Ensemble-mean reward, shape ``obs.shape[:-1]``, float32."""
        return self._member_rewards(obs, act).mean(dim=0).numpy()

    def predict_std(self, obs: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std over members) of the reward, each shape ``obs.shape[:-1]``, float32."""
        r = self._member_rewards(obs, act)
        return r.mean(dim=0).numpy(), r.std(dim=0, correction=0).numpy()

    def segment_return_samples(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        """Per-member segment returns ``(M, n)`` for ``(n, L, obs_dim)``, ``(n, L, act_dim)`` inputs."""
        if np.ndim(obs) != 3:
            raise PbrlError(
                f"segment_return_samples: expected obs of shape (n, L, obs_dim={self.obs_dim}), "
                f"got {np.shape(obs)}"
            )
        return self._member_rewards(obs, act).sum(dim=-1).numpy()

    def evaluate(self, pairs: PairBatch) -> dict[str, float]:
        """Held-out ``{"loss", "accuracy"}``: mean member BT loss; accuracy of the ensemble-mean returns."""
        self._check_pairs(pairs, "reward evaluate")
        r1 = torch.from_numpy(self.segment_return_samples(pairs.obs1, pairs.act1))
        r2 = torch.from_numpy(self.segment_return_samples(pairs.obs2, pairs.act2))
        return heldout_metrics(r1, r2, pairs.p, pairs.weight)

    # ------------------------------------------------------------------ validation
    def _check_inputs(self, obs: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        obs = np.asarray(obs, dtype=np.float32)
        act = np.asarray(act, dtype=np.float32)
        if obs.ndim < 1 or obs.shape[-1] != self.obs_dim:
            raise PbrlError(f"EnsembleReward: obs of shape {obs.shape}; expected (..., obs_dim={self.obs_dim})")
        if act.ndim < 1 or act.shape[-1] != self.act_dim:
            raise PbrlError(f"EnsembleReward: act of shape {act.shape}; expected (..., act_dim={self.act_dim})")
        if obs.shape[:-1] != act.shape[:-1]:
            raise PbrlError(
                f"EnsembleReward: obs {obs.shape} and act {act.shape} must share leading dims"
            )
        return obs, act

    def _check_pairs(self, pairs: PairBatch, where: str) -> None:
        """One-line errors for an empty or mis-shaped PairBatch."""
        n = int(np.shape(pairs.p)[0])
        if n == 0:
            raise PbrlError(f"{where}: no labelled pairs (the PairBatch is empty); collect labels first")
        length = np.shape(pairs.obs1)[1] if np.ndim(pairs.obs1) == 3 else "L"
        for name, exp in self._pair_shapes(n, length).items():
            got = np.shape(getattr(pairs, name))
            if got != exp:
                raise PbrlError(
                    f"{where}: PairBatch.{name} has shape {got}; expected {exp} (one length L for all segments)"
                )
        validate_label_values(pairs.p, name=f"{where}: PairBatch.p")
        w = np.asarray(pairs.weight, np.float64)
        if not np.all(np.isfinite(w)) or w.min() < 0 or w.sum() <= 0:
            raise PbrlError(f"{where}: PairBatch.weight must be finite and >= 0 with a positive sum")

    def _pair_shapes(self, n: int, length: Any) -> dict[str, tuple]:
        seg_obs, seg_act = (n, length, self.obs_dim), (n, length, self.act_dim)
        return {"obs1": seg_obs, "act1": seg_act, "obs2": seg_obs, "act2": seg_act, "p": (n,), "weight": (n,)}

    def _pairs_to_tensors(self, pairs: PairBatch, where: str) -> dict[str, torch.Tensor]:
        """Validate a PairBatch and move it to the device once (training indexes it on-device)."""
        self._check_pairs(pairs, where)
        return {
            name: torch.as_tensor(np.asarray(getattr(pairs, name), np.float32), device=self.device)
            for name in PairBatch._fields
        }

    # ------------------------------------------------------------------ persistence
    def _config(self) -> dict[str, Any]:
        """The architecture a checkpoint must match to be loaded."""
        return {"obs_dim": self.obs_dim, "act_dim": self.act_dim, "n_members": self.n_members,
                "hidden": list(self.hidden)}

    def state_dict(self) -> dict[str, Any]:
        """Network, optimiser and sampling-generator state, so a resumed fit continues identically."""
        return {
            "config": self._config(),
            "net": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()},
            # deepcopy: Optimizer.state_dict() aliases the live moment tensors, which later steps mutate
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "generator": self._gen.get_state(),
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; the architecture must match this instance."""
        missing = {"config", "net", "optimizer", "generator"} - set(d)
        if missing:
            raise PbrlError(f"EnsembleReward.load_state_dict: missing keys {sorted(missing)}")
        if dict(d["config"]) != self._config():
            raise PbrlError(
                f"EnsembleReward.load_state_dict: checkpoint config {d['config']} does not match "
                f"this model {self._config()}"
            )
        self.net.load_state_dict(d["net"])
        self.optimizer.load_state_dict(d["optimizer"])
        self._gen.set_state(d["generator"])

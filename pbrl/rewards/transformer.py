"""Preference Transformer reward (Kim et al. 2023, "Preference Transformer: Modeling Human Preferences using
Transformers for RL", ICLR).

A causal transformer reads a segment as tokens ``(a_1, s_1, a_2, s_2, ...)`` (learned position embedding of the
step added to both, as the reference code); the hidden state of the ``s_t`` token has seen the segment up to step
``t`` and is projected to a non-Markovian reward ``r_t`` and a query/key pair. The *preference attention* layer
then weights the rewards bidirectionally, ``z_t = sum_i softmax_i(q_t . k_i) r_i``, and the segment's
preference score is ``S = (1/L) sum_t z_t`` (:func:`preference_weighted_score`). Training is the Bradley-Terry
loss on the scores with pbrl's labels (``p = P(first preferred)``, soft ties, per-label weights, optional
label noise; :func:`~pbrl.rewards.losses.bradley_terry_loss`), with AdamW on the reference's learning-rate schedule
(:func:`warmup_cosine_lr`).

Where the paper leaves details open, the reference code (csmile-1006/PreferenceTransformer) decides: the preference
attention's logits are not scaled (its ``ops.attention`` divides by the square root of the value size, which is 1),
the blocks' MLP uses ReLU (``--activations relu``) with dropout only on its output, and each fit warms the learning
rate up from ``lr`` to 10 ``lr`` over its first 10% of updates, then decays it back to ``lr`` on a cosine.
(``ARCH_VERSION`` 2; models saved before, with sqrt(d)-scaled logits, GELU and a constant rate, do not load.)

Per-step rewards (what :meth:`PreferenceTransformerReward.predict` returns, what an agent is trained on) are the
``r_t`` before the preference attention, as the reference code relabels D4RL for IQL (``label_mode="last"``): the
reward of step ``t`` is read at the last token of a window of the ``context`` steps up to and including ``t``
(fewer at the start of a sequence). Hence:

* ``predict(obs, act)`` with ``(n, L, dim)`` inputs treats each row as a time-ordered sequence (a segment, or a
  whole episode for offline relabelling); longer rows than ``context`` are evaluated in sliding windows;
* ``(dim,)`` or ``(N, dim)`` inputs are single transitions without history (e.g. PEBBLE relabelling a replay
  buffer, the reward wrapper scoring one env step): each is a window of length one, the reward the model assigns
  to a step that opens a segment.

``segment_return_samples`` returns the preference scores ``S`` the model was trained on (one per member), so query
selection sees the model's own ``P(first preferred) = sigmoid(S1 - S2)``.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from pbrl.rewards.losses import bradley_terry_loss, check_label_noise, heldout_metrics
from pbrl.types import PairBatch, PbrlError, validate_label_values

#: Sequences per forward pass at prediction time (bounds memory when relabelling a dataset).
PREDICT_ROWS: int = 1024

#: Saved in checkpoints: 2 = the reference code's unscaled preference attention, ReLU blocks (1: sqrt(d), GELU).
ARCH_VERSION: int = 2

LR_SCHEDULES = ("warmup_cosine", "constant")


def warmup_cosine_lr(step: int, total: int, lr: float, *, peak_mult: float = 10.0, warmup_frac: float = 0.1) -> float:
    """The reference's rate for update ``step`` (0-based) of ``total``: optax's
    ``warmup_cosine_decay_schedule(init_value=lr, peak_value=peak_mult * lr, warmup_steps=int(warmup_frac * total),
    decay_steps=total, end_value=lr)`` (PrefTransformer.py; new_preference_reward_main.py sets the 10% warm-up):
    linear from ``lr`` to the peak, then a half cosine back to ``lr``."""
    warm, peak = int(warmup_frac * total), peak_mult * lr
    if step < warm:
        return lr + (peak - lr) * step / warm
    decay = max(total - warm, 1)
    return lr + (peak - lr) * 0.5 * (1.0 + math.cos(math.pi * min(step - warm, decay) / decay))


def preference_weighted_score(q: torch.Tensor, k: torch.Tensor, r: torch.Tensor,
                              mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Preference attention of the Preference Transformer (Kim et al. 2023, Sec. 4.2, Eq. 4-5).

    ``w_ti = softmax_i(q_t . k_i)``, ``z_t = sum_i w_ti r_i``, score ``S = (1/L) sum_t z_t``: a convex combination of
    the per-step rewards (bidirectional: every step attends to the whole segment). The logits are not scaled by
    ``sqrt(d)``, as in the reference code (module docstring).

    Args:
        q, k: ``(B, L, d)`` queries and keys.
        r: ``(B, L)`` non-Markovian per-step rewards.
        mask: ``(B, L)`` bool, True for real steps (padding is neither attended to nor averaged); None = all real.

    Returns:
        ``(B,)`` segment scores, the logits of the Bradley-Terry model.
    """
    logits = torch.einsum("btd,bid->bti", q, k)
    if mask is not None:
        logits = logits.masked_fill(~mask[:, None, :], float("-inf"))
    z = torch.einsum("bti,bi->bt", torch.softmax(logits, dim=-1), r)
    if mask is None:
        return z.mean(-1)
    m = mask.to(z.dtype)
    return (z * m).sum(-1) / m.sum(-1)


class PTNet(nn.Module):
    """One Preference Transformer: embeddings, causal GPT-2-style blocks (pre-LN, ReLU MLP with dropout on its
    output only, as the reference code's), preference head."""

    def __init__(self, obs_dim: int, act_dim: int, *, d_model: int, n_layers: int, n_heads: int, attn_dim: int,
                 dropout: float, max_len: int) -> None:
        super().__init__()
        self.attn_dim = attn_dim
        self.obs_emb, self.act_emb = nn.Linear(obs_dim, d_model), nn.Linear(act_dim, d_model)
        self.pos_emb = nn.Embedding(max_len, d_model)
        self.in_norm, self.drop = nn.LayerNorm(d_model), nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 4 * d_model, dropout, activation="relu",
                                           batch_first=True, norm_first=True)
        layer.dropout = nn.Identity()  # torch drops out inside the MLP too; the reference only after it (dropout2)
        self.blocks = nn.TransformerEncoder(layer, n_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        self.head = nn.Linear(d_model, 2 * attn_dim + 1)  # query, key, reward

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(q, k, r)`` for ``(B, L, *)`` segments: ``(B, L, attn_dim)`` twice and ``(B, L)`` rewards."""
        b, length = obs.shape[:2]
        pos = self.pos_emb(torch.arange(length, device=obs.device))
        tokens = torch.stack([self.act_emb(act) + pos, self.obs_emb(obs) + pos], dim=2).reshape(b, 2 * length, -1)
        causal = torch.triu(torch.full((2 * length, 2 * length), float("-inf"), device=obs.device), diagonal=1)
        hidden = self.blocks(self.drop(self.in_norm(tokens)), mask=causal)
        out = self.head(hidden.reshape(b, length, 2, -1)[:, :, 1])  # read at the s_t token (reference code)
        q, k, r = out.split([self.attn_dim, self.attn_dim, 1], dim=-1)
        return q, k, r.squeeze(-1)


class PreferenceTransformerReward:
    """Preference Transformer reward model (an ensemble of ``members`` independent transformers).

    Args:
        obs_dim, act_dim: input sizes.
        members: independent transformers, each trained on its own data order (1 = the paper's single model;
            more give query selection a disagreement and ``predict_std`` a spread).
        d_model, n_layers, n_heads: transformer width, depth and heads (reference: 256, 1, 4 on D4RL).
        attn_dim: query/key size of the preference attention (None = ``d_model``).
        dropout: embedding, attention and residual dropout (reference: 0.1).
        max_len: longest segment (steps) the position embedding covers.
        context: steps of history behind a per-step reward (None = the length of the segments it was fitted on).
        lr, weight_decay: AdamW's base rate and weight decay (reference: 1e-4 and optax's default 1e-4).
        lr_schedule: ``warmup_cosine`` (the reference: :func:`warmup_cosine_lr` over each fit's updates, peak
            ``peak_lr_mult * lr`` after ``warmup_frac`` of them) or ``constant`` (``lr`` throughout).
        batch_size: pairs per update.
        label_noise: assumed share of random answers (robust Bradley-Terry), 0 = plain.
        seed: initialisation and data order.
        device: torch device.
    """

    def __init__(self, obs_dim: int, act_dim: int, *, members: int = 1, d_model: int = 128, n_layers: int = 1,
                 n_heads: int = 4, attn_dim: Optional[int] = None, dropout: float = 0.1, max_len: int = 1000,
                 context: Optional[int] = None, lr: float = 1e-4, weight_decay: float = 1e-4, batch_size: int = 64,
                 lr_schedule: str = "warmup_cosine", peak_lr_mult: float = 10.0, warmup_frac: float = 0.1,
                 label_noise: float = 0.0, seed: int = 0, device: str = "cpu") -> None:
        for name, value in (("obs_dim", obs_dim), ("act_dim", act_dim), ("members", members), ("d_model", d_model),
                            ("n_layers", n_layers), ("n_heads", n_heads), ("max_len", max_len),
                            ("batch_size", batch_size)):
            if int(value) < 1:
                raise PbrlError(f"PreferenceTransformerReward.{name}: expected a positive integer, got {value}")
        if int(d_model) % int(n_heads):
            raise PbrlError(f"PreferenceTransformerReward.n_heads: d_model={d_model} must divide by n_heads={n_heads}")
        if context is not None and not 1 <= int(context) <= int(max_len):
            raise PbrlError(f"PreferenceTransformerReward.context: expected 1..max_len={max_len} or null, got {context}")
        if not 0.0 <= float(dropout) < 1.0:
            raise PbrlError(f"PreferenceTransformerReward.dropout: expected a rate in [0, 1), got {dropout}")
        if lr_schedule not in LR_SCHEDULES:
            raise PbrlError(f"PreferenceTransformerReward.lr_schedule: expected one of {LR_SCHEDULES}, got {lr_schedule!r}")
        if not (float(lr) > 0 and float(peak_lr_mult) >= 1.0 and 0.0 <= float(warmup_frac) < 1.0):
            raise PbrlError(f"PreferenceTransformerReward: expected lr > 0, peak_lr_mult >= 1 and warmup_frac in "
                            f"[0, 1), got {lr}, {peak_lr_mult}, {warmup_frac}")
        self.lr, self.lr_schedule = float(lr), str(lr_schedule)
        self.peak_lr_mult, self.warmup_frac = float(peak_lr_mult), float(warmup_frac)
        self.label_noise = check_label_noise(label_noise, "reward.model.label_noise")
        self.obs_dim, self.act_dim, self.members = int(obs_dim), int(act_dim), int(members)
        self.max_len, self.batch_size = int(max_len), int(batch_size)
        self.context: Optional[int] = None if context is None else int(context)
        self.arch = {"d_model": int(d_model), "n_layers": int(n_layers), "n_heads": int(n_heads),
                     "attn_dim": int(attn_dim or d_model), "dropout": float(dropout), "max_len": self.max_len}
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):  # initialisation depends on ``seed`` only, not on global state
            torch.manual_seed(int(seed))
            self.nets = nn.ModuleList(PTNet(self.obs_dim, self.act_dim, **self.arch) for _ in range(self.members))
        self.nets.to(self.device)
        self._gen = torch.Generator().manual_seed(int(seed))
        self.optimizer = torch.optim.AdamW(self.nets.parameters(), lr=lr, weight_decay=weight_decay)

    # ------------------------------------------------------------------ training
    def fit(self, pairs: PairBatch, *, epochs: int, stop_at_acc: Optional[float] = None,
            on_epoch: Optional[Callable[[dict[str, float]], None]] = None) -> dict[str, float]:
        """Train every member for ``epochs`` passes over ``pairs`` (each its own permutation per epoch), the
        learning rate on its schedule over this fit's updates (a later fit, e.g. PEBBLE's next session, starts a new
        one; an early stop at ``stop_at_acc`` cuts it short).

        Returns ``{"loss", "train_acc", "epochs"}`` of the last epoch (accuracy of the members' scores on the
        strict labels of their batches; NaN if none is strict).
        """
        if int(epochs) < 1:
            raise PbrlError(f"reward fit: epochs must be >= 1, got {epochs}")
        data = self._pairs_to_tensors(pairs, "reward fit")
        if self.context is None:  # per-step rewards later see as much history as the training segments had
            self.context = int(data["obs1"].shape[1])
        n = data["p"].shape[0]
        per_epoch = -(-n // self.batch_size)
        metrics: dict[str, float] = {}
        for epoch in range(int(epochs)):
            self.nets.train()  # (again: an on_epoch callback may have evaluated the model)
            order = torch.argsort(torch.rand(self.members, n, generator=self._gen), dim=1).to(self.device)
            metrics = self._train_epoch(data, order, epoch * per_epoch, int(epochs) * per_epoch)
            metrics["epochs"] = float(epoch + 1)
            if on_epoch is not None:
                on_epoch(metrics)
            if stop_at_acc is not None and metrics["train_acc"] > stop_at_acc:
                break
        return metrics

    def _train_epoch(self, data: dict[str, torch.Tensor], order: torch.Tensor, step: int,
                     total: int) -> dict[str, float]:
        """One pass; ``step`` is the fit's update count before it and ``total`` the fit's planned updates."""
        n, loss_sum, correct, strict = order.shape[1], 0.0, 0, 0
        for i, start in enumerate(range(0, n, self.batch_size)):
            losses = []
            for m, net in enumerate(self.nets):
                idx = order[m, start:start + self.batch_size]
                s1, s2 = self._scores(net, data["obs1"][idx], data["act1"][idx], data["obs2"][idx], data["act2"][idx])
                p = data["p"][idx]
                losses.append(bradley_terry_loss(s1, s2, p, data["weight"][idx], self.label_noise))
                with torch.no_grad():
                    mask = p != 0.5
                    correct += int((torch.where(p > 0.5, s1 > s2, s1 < s2) & mask).sum())
                    strict += int(mask.sum())
            loss = torch.stack(losses).sum()  # each member's gradient is its own loss's (as the ensemble)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr_at(step + i, total)
            self.optimizer.step()
            loss_sum += float(loss.detach()) / self.members * min(self.batch_size, n - start)
        return {"loss": loss_sum / n, "train_acc": correct / strict if strict else math.nan}

    def lr_at(self, step: int, total: int) -> float:
        """The learning rate of update ``step`` of a fit of ``total`` updates."""
        if self.lr_schedule == "constant":
            return self.lr
        return warmup_cosine_lr(step, total, self.lr, peak_mult=self.peak_lr_mult, warmup_frac=self.warmup_frac)

    @staticmethod
    def _scores(net: PTNet, obs1, act1, obs2, act2) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of both sides of a batch of pairs in one forward pass."""
        s = preference_weighted_score(*net(torch.cat([obs1, obs2]), torch.cat([act1, act2])))
        return s[: len(obs1)], s[len(obs1):]

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def _member_step_rewards(self, obs: np.ndarray, act: np.ndarray) -> torch.Tensor:
        """Per-member per-step rewards ``(M, *lead)`` (see the module docstring for what history a step sees)."""
        obs, act = self._check_inputs(obs, act)
        lead = obs.shape[:-1]
        if obs.ndim <= 2:  # single transitions: each is its own one-step window
            seq_obs, seq_act = obs.reshape(-1, 1, self.obs_dim), act.reshape(-1, 1, self.act_dim)
        else:
            seq_obs, seq_act = obs.reshape(-1, *obs.shape[-2:]), act.reshape(-1, *act.shape[-2:])
        return self._sequence_rewards(seq_obs, seq_act).reshape(self.members, *lead)

    def _sequence_rewards(self, obs: np.ndarray, act: np.ndarray) -> torch.Tensor:
        """``(M, N, L)`` rewards of ``(N, L, *)`` sequences, each step with up to ``context`` steps of history."""
        n, length = obs.shape[:2]
        window = min(length, self.context or length, self.max_len)
        head = self._causal_rewards(obs[:, :window], act[:, :window])  # a prefix: step t sees steps 0..t
        if length == window:
            return head
        # Later steps: the window of ``window`` steps ending at t, re-positioned from 0 (reference relabelling).
        obs_w = np.lib.stride_tricks.sliding_window_view(obs, window, axis=1)[:, 1:]  # (N, L-W, obs_dim, W)
        act_w = np.lib.stride_tricks.sliding_window_view(act, window, axis=1)[:, 1:]
        tail = self._causal_rewards(np.moveaxis(obs_w, -1, -2).reshape(-1, window, self.obs_dim),
                                    np.moveaxis(act_w, -1, -2).reshape(-1, window, self.act_dim))[..., -1]
        return torch.cat([head, tail.reshape(self.members, n, length - window)], dim=-1)

    def _causal_rewards(self, obs: np.ndarray, act: np.ndarray) -> torch.Tensor:
        """``(M, N, L)`` non-Markovian rewards of ``(N, L, *)`` sequences (L <= max_len), in chunks."""
        self.nets.eval()
        out = []
        for i in range(0, len(obs), PREDICT_ROWS):
            o = torch.as_tensor(np.ascontiguousarray(obs[i:i + PREDICT_ROWS]), device=self.device)
            a = torch.as_tensor(np.ascontiguousarray(act[i:i + PREDICT_ROWS]), device=self.device)
            out.append(torch.stack([net(o, a)[2] for net in self.nets]).cpu())
        if not out:
            return torch.zeros(self.members, 0, obs.shape[1])
        return torch.cat(out, dim=1)

    def predict(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        """Mean per-step reward over members, shape ``obs.shape[:-1]``, float32."""
        return self._member_step_rewards(obs, act).mean(0).numpy()

    def predict_std(self, obs: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std over members) of the per-step reward, each ``obs.shape[:-1]`` (std 0 for one member)."""
        r = self._member_step_rewards(obs, act)
        return r.mean(0).numpy(), r.std(0, correction=0).numpy()

    @torch.no_grad()
    def segment_return_samples(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        """Per-member preference scores ``(M, n)`` of ``(n, L, *)`` segments (the Bradley-Terry logits)."""
        if np.ndim(obs) != 3:
            raise PbrlError(f"segment_return_samples: expected obs of shape (n, L, obs_dim={self.obs_dim}), "
                            f"got {np.shape(obs)}")
        obs, act = self._check_inputs(obs, act)
        self.nets.eval()
        out = []
        for i in range(0, len(obs), PREDICT_ROWS):
            o, a = (torch.as_tensor(x[i:i + PREDICT_ROWS], device=self.device) for x in (obs, act))
            out.append(torch.stack([preference_weighted_score(*net(o, a)) for net in self.nets]).cpu())
        return torch.cat(out, dim=1).numpy() if out else np.zeros((self.members, 0), np.float32)

    def evaluate(self, pairs: PairBatch) -> dict[str, float]:
        """Held-out ``{"loss", "accuracy"}``: mean member BT loss on the scores; accuracy of the mean scores."""
        self._check_pairs(pairs, "reward evaluate")
        sides = ((pairs.obs1, pairs.act1), (pairs.obs2, pairs.act2))
        return heldout_metrics(*(torch.from_numpy(self.segment_return_samples(o, a)) for o, a in sides), pairs.p,
                               pairs.weight)

    # ------------------------------------------------------------------ validation
    def _check_inputs(self, obs: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        obs, act = np.asarray(obs, dtype=np.float32), np.asarray(act, dtype=np.float32)
        if obs.ndim < 1 or obs.shape[-1] != self.obs_dim:
            raise PbrlError(f"PreferenceTransformerReward: obs of shape {obs.shape}; expected (..., obs_dim={self.obs_dim})")
        if act.shape[:-1] != obs.shape[:-1] or act.shape[-1] != self.act_dim:
            raise PbrlError(f"PreferenceTransformerReward: act of shape {act.shape}; expected "
                            f"{(*obs.shape[:-1], self.act_dim)} to match obs {obs.shape}")
        return obs, act

    def _check_pairs(self, pairs: PairBatch, where: str) -> None:
        if pairs.n_pairs < 1:
            raise PbrlError(f"{where}: no labelled pairs")
        validate_label_values(pairs.p, name=f"{where} labels")
        length = np.shape(pairs.obs1)[1] if np.ndim(pairs.obs1) == 3 else None
        if length is None or np.shape(pairs.obs2)[1] != length:
            raise PbrlError(f"{where}: expected segments (n, L, obs_dim) of one length, got {np.shape(pairs.obs1)} "
                            f"and {np.shape(pairs.obs2)}")
        if length > self.max_len:
            raise PbrlError(f"{where}: segments of {length} steps exceed reward.model.max_len={self.max_len}")

    def _pairs_to_tensors(self, pairs: PairBatch, where: str) -> dict[str, torch.Tensor]:
        self._check_pairs(pairs, where)
        for side in ("1", "2"):
            self._check_inputs(getattr(pairs, "obs" + side), getattr(pairs, "act" + side))
        w = np.asarray(pairs.weight, np.float32)
        if w.shape != (pairs.n_pairs,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise PbrlError(f"{where}: label weights must be {pairs.n_pairs} finite values >= 0, not all zero")
        arrays = {"obs1": pairs.obs1, "act1": pairs.act1, "obs2": pairs.obs2, "act2": pairs.act2, "p": pairs.p, "weight": w}
        return {k: torch.as_tensor(np.asarray(v, np.float32), device=self.device) for k, v in arrays.items()}

    # ------------------------------------------------------------------ checkpointing
    def _config(self) -> dict[str, Any]:
        return {"kind": "transformer", "version": ARCH_VERSION, "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                "members": self.members, **self.arch}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume fitting: networks, optimiser, data-order generator, context."""
        return {"config": self._config(), "nets": copy.deepcopy(self.nets.state_dict()),
                "optimizer": copy.deepcopy(self.optimizer.state_dict()), "generator": self._gen.get_state(),
                "context": self.context}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; the architecture must match this instance."""
        missing = {"config", "nets", "optimizer", "generator", "context"} - set(d)
        if missing:
            raise PbrlError(f"PreferenceTransformerReward.load_state_dict: missing keys {sorted(missing)}")
        version = dict(d["config"]).get("version", 1)
        if version != ARCH_VERSION:
            raise PbrlError(f"PreferenceTransformerReward.load_state_dict: the checkpoint is a version-{version} "
                            f"Preference Transformer (sqrt(d)-scaled attention, GELU); "
                            f"this pbrl builds version {ARCH_VERSION} (the reference code's): fit the reward again")
        if dict(d["config"]) != self._config():
            raise PbrlError(f"PreferenceTransformerReward.load_state_dict: checkpoint config {d['config']} does not "
                            f"match this model {self._config()}")
        self.nets.load_state_dict(d["nets"])
        self.optimizer.load_state_dict(d["optimizer"])
        self._gen.set_state(d["generator"])
        self.context = d["context"]


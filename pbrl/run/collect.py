"""Offline preference datasets: expert rollouts with noise -> segments -> labelled pairs in a PreferenceStore.

Follows the recipe of CPL (Hejna et al. 2024, Sec. 5): a mixture of (noisy) expert and worse episodes, fixed-length
segments cut from them, and labels from a scripted teacher on the true return or, when an oracle critic is given,
on the segment's summed advantage ``Σ_t A(s_t, a_t) = Σ_t Q(s_t, a_t) - V(s_t)`` (CPL's regret labels).

Pairing (CPL's two data regimes):

* ``sparse``: disjoint pairs, every segment is compared once (CPL's ~20k-segment datasets);
* ``dense``: segments are labelled in groups of ``group_size``, every pair inside a group is compared, so a
  learner that scores a group once gets ``g(g-1)/2`` comparisons from it (CPL's 2.5k-segment "dense" datasets).
"""

from __future__ import annotations

import dataclasses
import json
from itertools import combinations
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Segment, Trajectory
from pbrl.envs.make import make_env
from pbrl.envs.simstate import obs_renderable
from pbrl.envs.rollout import PolicyFn, expert_policy, rollout
from pbrl.envs.tasks import TaskSpec
from pbrl.types import Labels, PbrlError

PAIRINGS = ("sparse", "dense")


@dataclasses.dataclass(frozen=True)
class CollectSpec:
    """How an offline preference dataset is built.

    Attributes:
        episodes: episodes to roll out.
        episode_length: steps per episode (None = the task's horizon).
        noise_std: Gaussian action noise of the expert episodes (std, actions in [-1, 1]).
        random_frac: share of episodes with uniformly random actions.
        suboptimal_frac: share of sub-optimal episodes: the expert with ``suboptimal_noise`` and ``suboptimal_bias``.
        suboptimal_noise: action-noise std of the sub-optimal episodes.
        suboptimal_bias: norm of a constant action offset added in every sub-optimal episode, in one direction drawn
            once per dataset (a consistently mis-aimed expert). Zero-mean noise alone leaves the expert as the mean
            action, so cloning all data recovers it; a shared bias makes the average behaviour wrong, like the
            partly trained SAC policies behind CPL's datasets, and only the preference contrast can undo it.
        segment_length: steps per segment (CPL uses 64).
        stride: steps between the starts of consecutive segments of one episode.
        pairing: ``sparse`` or ``dense`` (see the module docstring).
        n_segments: segments kept (sampled without replacement from all cut ones; None = all).
        group_size: segments per fully compared group in ``dense`` pairing.
        aligned: pair only segments with the same start step (see :func:`pair_indices`).
    """

    episodes: int = 20
    episode_length: Optional[int] = None
    noise_std: float = 0.1
    random_frac: float = 0.1
    suboptimal_frac: float = 0.3
    suboptimal_noise: float = 1.0
    suboptimal_bias: float = 0.0
    segment_length: int = 64
    stride: int = 16
    pairing: str = "sparse"
    n_segments: Optional[int] = None
    group_size: int = 8
    aligned: bool = True

    def __post_init__(self) -> None:
        if self.pairing not in PAIRINGS:
            raise PbrlError(f"collect.pairing: expected one of {PAIRINGS}, got {self.pairing!r}")
        if self.episodes < 1 or self.segment_length < 1 or self.stride < 1:
            raise PbrlError("collect: episodes, segment_length and stride must be >= 1")
        if not (0 <= self.random_frac and 0 <= self.suboptimal_frac and self.random_frac + self.suboptimal_frac <= 1):
            raise PbrlError("collect.random_frac + collect.suboptimal_frac: expected shares in [0, 1] summing to <= 1")
        if self.suboptimal_bias < 0:
            raise PbrlError(f"collect.suboptimal_bias: expected >= 0, got {self.suboptimal_bias}")
        if self.group_size < 2:
            raise PbrlError(f"collect.group_size: expected >= 2, got {self.group_size}")
        if self.n_segments is not None and self.n_segments < 2:
            raise PbrlError(f"collect.n_segments: expected >= 2 (at least one pair) or null, got {self.n_segments}")


def load_expert(task: TaskSpec, checkpoint: Optional[str]) -> PolicyFn:
    """The behaviour expert: a trained SB3 policy (``policy.zip`` or a run dir holding one) or the scripted one."""
    if not checkpoint:
        return expert_policy(task)
    path = Path(checkpoint)
    path = path / "policy.zip" if path.is_dir() else path
    if not path.is_file():
        raise PbrlError(f"collect.expert: {path} not found; expected an SB3 policy.zip or a pbrl run dir")
    model = _load_sb3(path)
    return lambda obs: np.asarray(model.predict(obs, deterministic=True)[0], np.float32)


def _load_sb3(path: Path):
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.sac.policies import SACPolicy

    for cls, policy_cls in ((SAC, SACPolicy), (PPO, ActorCriticPolicy)):
        try:
            model = cls.load(path, device="cpu")
        except (ValueError, KeyError, TypeError, AssertionError, AttributeError):
            continue
        if isinstance(model.policy, policy_cls):  # SAC.load happily reads a PPO zip; check what came out
            return model
    raise PbrlError(f"{path}: not a stable-baselines3 SAC or PPO checkpoint")


def behaviour_kinds(spec: CollectSpec, rng: np.random.Generator) -> list[str]:
    """Per-episode behaviour (``expert`` / ``suboptimal`` / ``random``) in the requested shares, shuffled."""
    n_rand = int(round(spec.random_frac * spec.episodes))
    n_sub = int(round(spec.suboptimal_frac * spec.episodes))
    kinds = ["random"] * n_rand + ["suboptimal"] * n_sub + ["expert"] * (spec.episodes - n_rand - n_sub)
    rng.shuffle(kinds)
    return kinds


def bias_vector(spec: CollectSpec, act_dim: int, seed: int) -> np.ndarray:
    """The sub-optimal episodes' shared action offset: norm ``spec.suboptimal_bias``, direction fixed by ``seed``."""
    direction = np.random.default_rng([seed, 13]).standard_normal(act_dim)
    return (spec.suboptimal_bias * direction / np.linalg.norm(direction)).astype(np.float32)


def noisy(policy: PolicyFn, kind: str, spec: CollectSpec, rng: np.random.Generator, bias: np.ndarray) -> PolicyFn:
    """The expert with the episode's action noise (and offset, if sub-optimal), clipped to the [-1, 1] box."""
    act_dim = len(bias)
    if kind == "random":
        return lambda obs: rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)
    std = spec.noise_std if kind == "expert" else spec.suboptimal_noise
    offset = bias if kind == "suboptimal" else np.zeros_like(bias)
    return lambda obs: np.clip(policy(obs) + offset + std * rng.standard_normal(act_dim), -1.0, 1.0).astype(np.float32)


def collect_episodes(task: TaskSpec, expert: PolicyFn, spec: CollectSpec, seed: int) -> list[Trajectory]:
    """Roll out ``spec.episodes`` episodes of the behaviour mixture (seeds ``seed, seed+1, ...``)."""
    rng = np.random.default_rng([seed, 11])
    # Tasks whose observations cannot pose the simulator keep its states, so the viewer can show them.
    env = make_env(task, seed=seed, episode_length=spec.episode_length, record_states=not obs_renderable(task))
    bias = bias_vector(spec, int(env.action_space.shape[0]), seed)
    try:
        return [rollout(env, noisy(expert, kind, spec, rng, bias), seed=seed + i, episode_id=i, task_name=task.name)
                for i, kind in enumerate(behaviour_kinds(spec, rng))]
    finally:
        env.close()


def cut_segments(trajs: list[Trajectory], length: int, stride: int) -> list[Segment]:
    """Overlapping windows ``[k*stride, k*stride + length)`` of every episode (short episodes are padded)."""
    out = []
    for traj in trajs:
        traj = traj.padded(length)
        out.extend(traj.segment(s, length) for s in range(0, len(traj) - length + 1, stride))
    return out


def pair_indices(n: int, pairing: str, group_size: int, rng: np.random.Generator,
                 starts: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs over ``n`` segments: disjoint pairs (sparse) or all pairs inside random groups (dense).

    With ``starts`` (each segment's start step) only segments that start at the same step are paired, so a
    return label compares behaviour in the same phase of the task, a proxy for CPL's regret labels: across
    phases, return differences mostly measure *where* in the task a segment is, not how well it acts.
    """
    if starts is not None:
        buckets = [np.flatnonzero(starts == s) for s in np.unique(starts)]
        parts = [pair_indices(len(b), pairing, group_size, rng) for b in buckets]
        return (np.concatenate([b[f] for b, (f, _) in zip(buckets, parts)]).astype(int),
                np.concatenate([b[s] for b, (_, s) in zip(buckets, parts)]).astype(int))
    perm = rng.permutation(n)
    if pairing == "sparse":
        m = n // 2
        return perm[:m], perm[m : 2 * m]
    firsts, seconds = [], []
    for g in range(0, n - group_size + 1, group_size):
        for a, b in combinations(perm[g : g + group_size], 2):
            firsts.append(a)
            seconds.append(b)
    return np.asarray(firsts, int), np.asarray(seconds, int)


#: A labelling function (e.g. a teacher's ``label``): first and second segments -> their labels.
LabelFn = Callable[[list[Segment], list[Segment]], Labels]


def build_dataset(
    store: PreferenceStore, trajs: list[Trajectory], spec: CollectSpec, labeller: LabelFn, *, seed: int,
    score_fn: Optional[Callable[[Segment], np.ndarray]] = None,
) -> dict[str, int]:
    """Cut, sub-sample, pair and label segments, and write them to ``store`` (segments, then labels).

    ``score_fn`` adds a per-step ``advantage`` term to every segment (oracle-critic labels read it).
    """
    rng = np.random.default_rng([seed, 12])
    segs = cut_segments(trajs, spec.segment_length, spec.stride)
    if spec.n_segments is not None and spec.n_segments < len(segs):
        segs = [segs[i] for i in sorted(rng.choice(len(segs), spec.n_segments, replace=False))]
    if score_fn is not None:
        segs = [dataclasses.replace(s, terms={**s.terms, "advantage": score_fn(s)}) for s in segs]
    starts = np.array([s.start for s in segs]) if spec.aligned else None
    first, second = pair_indices(len(segs), spec.pairing, spec.group_size, rng, starts)
    if len(first) == 0:
        raise PbrlError(f"collect: only {len(segs)} segment(s); need more episodes or a shorter segment_length")
    ids = store.add_segments(segs)
    labels = labeller([segs[i] for i in first], [segs[i] for i in second])
    store.add_labels([ids[i] for i in first], [ids[i] for i in second], labels, source="scripted")
    store.set_meta("collect", json.dumps(dataclasses.asdict(spec)))
    store.set_meta("segment_length", str(spec.segment_length))
    return {"segments": len(segs), "pairs": len(first), "answered": labels.n_answered}


def critic_advantage(checkpoint: str, *, n_samples: int = 8) -> Callable[[Segment], np.ndarray]:
    """Per-step advantage ``A(s, a) = Q(s, a) - V(s)`` from an SB3 SAC run (CPL's oracle regret labels).

    ``Q`` is the minimum of SAC's twin critics; ``V(s) = E_{a'~π(s)} Q(s, a')`` is estimated with ``n_samples``
    actions from the SAC actor. A segment's score is the sum of its advantages (CPL, Eq. 4 with γ = 1).
    """
    import torch

    path = Path(checkpoint)
    path = path / "policy.zip" if path.is_dir() else path
    if not path.is_file():
        raise PbrlError(f"collect.critic: {path} not found; expected an SB3 SAC policy.zip or a pbrl run dir")
    model = _load_sb3(path)
    from stable_baselines3 import SAC

    if not isinstance(model, SAC):
        raise PbrlError(f"collect.critic: {path} is not a SAC checkpoint (advantage labels need a Q-function)")
    policy = model.policy

    def q(obs: "torch.Tensor", act: "torch.Tensor") -> "torch.Tensor":
        # SB3 critics see actions scaled to [-1, 1]; pbrl's tasks already use that box.
        return torch.min(torch.cat(policy.critic(obs, act), dim=-1), dim=-1).values

    def score(seg: Segment) -> np.ndarray:
        with torch.no_grad():
            obs = torch.as_tensor(seg.obs, dtype=torch.float32)
            q_sa = q(obs, torch.as_tensor(seg.acts, dtype=torch.float32))
            rep = obs.repeat(n_samples, 1)
            v = q(rep, policy.actor(rep, deterministic=False)).reshape(n_samples, -1).mean(0)
        return (q_sa - v).numpy().astype(np.float32)

    return score

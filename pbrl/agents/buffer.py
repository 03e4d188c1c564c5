"""SB3 replay buffer that PEBBLE can relabel, with true rewards kept aside for metrics.

PEBBLE (Lee et al. 2021, Alg. 1) relabels the *whole* buffer with the current learned reward after
every reward update, and trains the agent on an intrinsic state-entropy reward during unsupervised
pre-training. Both are done here, so the SB3 SAC update itself stays untouched.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
import torch
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples

RewardFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: stored states compared with a batch at once by the k-NN search (bounds its memory to batch x chunk floats)
KNN_CHUNK = 8192


class RunningStd:
    """Running mean/variance of a stream of batches (Chan et al.'s parallel update), started like BPref's
    ``TorchRunningMeanStd`` (mean 0, variance 1, count 1e-4).

    BPref's ``update_mean_var_count_from_moments`` adds ``batch_count / tot_count`` to the mean where the
    textbook update multiplies ``delta`` by it; the exact update is used here (it changes the std only through
    the spread of the batch means).
    """

    def __init__(self, epsilon: float = 1e-4) -> None:
        self.mean, self.var, self.count = 0.0, 1.0, float(epsilon)

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64).reshape(-1)
        if x.size == 0:
            return
        b_mean, b_var, b_count = float(x.mean()), float(x.var(ddof=1)) if x.size > 1 else 0.0, x.size
        delta, total = b_mean - self.mean, self.count + b_count
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.mean, self.var, self.count = self.mean + delta * b_count / total, m2 / total, total

    @property
    def std(self) -> float:
        return float(np.sqrt(self.var))


def knn_distance(states: torch.Tensor, pool: torch.Tensor, k: int) -> torch.Tensor:
    """Euclidean distance from each of ``states`` ``(B, d)`` to its ``k``-th nearest row of ``pool`` ``(N, d)``,
    counting a state itself when it is in the pool (BPref's ``compute_state_entropy`` takes the ``k + 1``-th
    smallest distance for the k-th neighbour). ``pool`` is scanned in chunks of :data:`KNN_CHUNK` rows."""
    k = min(k, pool.shape[0])
    best = torch.full((states.shape[0], 0), float("inf"), dtype=states.dtype)
    for start in range(0, pool.shape[0], KNN_CHUNK):
        dist = torch.cdist(states, pool[start:start + KNN_CHUNK])
        best = torch.cat([best, dist], dim=1).topk(min(k, best.shape[1] + dist.shape[1]), dim=1, largest=False).values
    return best[:, k - 1]


class PreferenceReplayBuffer(ReplayBuffer):
    """A ReplayBuffer with ``relabel(reward_fn)``, ``true_rewards`` and an intrinsic-reward mode.

    A dense VLM reward term (``info["vlm_reward_term"]`` on an episode's last step) is kept in
    ``vlm_rewards`` and added to the stored reward, also after every relabel.

    Actions are stored as SAC stores them (scaled to [-1, 1]); :meth:`env_actions` maps them back to
    the env's units, which is what the reward model sees.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.true_rewards = np.zeros((self.buffer_size, self.n_envs), dtype=np.float32)
        self.vlm_rewards = np.zeros((self.buffer_size, self.n_envs), dtype=np.float32)  # weighted VLM term
        self.intrinsic_k: Optional[int] = None  # k of the k-NN entropy reward while pre-training
        self.entropy_stats = RunningStd()  # running std of the k-NN distances (PEBBLE's s_ent_stats)

    def add(self, obs, next_obs, action, reward, done, infos) -> None:  # noqa: D102 (SB3 signature)
        self.true_rewards[self.pos] = [info.get("true_reward", 0.0) for info in infos]
        pos = self.pos
        self.vlm_rewards[pos] = 0.0  # a reused row loses the old episode's term until its own episode ends
        super().add(obs, next_obs, action, reward, done, infos)
        for i, info in enumerate(infos):
            if "vlm_reward_term" in info:
                self._add_vlm_term(pos, i, np.asarray(info["vlm_reward_term"], dtype=np.float32))

    def _add_vlm_term(self, last: int, env: int, term: np.ndarray) -> None:
        """Write a finished episode's VLM term (its steps end at row ``last``) and add it to the rewards.

        VLM-RM scores come once per episode, in a batch, when it ends (:class:`LearnedRewardVecEnv`); the
        episode's transitions are the rows just before, wrapping around the ring buffer.
        """
        term = term[-self.buffer_size:]
        rows = (last - np.arange(len(term))[::-1]) % self.buffer_size
        self.vlm_rewards[rows, env] = term
        self.rewards[rows, env] += term

    @property
    def size_now(self) -> int:
        return self.buffer_size if self.full else self.pos

    def env_actions(self, actions: np.ndarray) -> np.ndarray:
        """Undo SAC's [-1, 1] action scaling."""
        low, high = self.action_space.low, self.action_space.high
        return (low + 0.5 * (actions + 1.0) * (high - low)).astype(np.float32)

    def relabel(self, reward_fn: RewardFn) -> int:
        """Overwrite every stored reward with ``reward_fn(obs, env_action)``; returns the number relabelled."""
        n = self.size_now
        if n == 0:
            return 0
        obs = self.observations[:n].reshape(n * self.n_envs, -1)
        acts = self.env_actions(self.actions[:n].reshape(n * self.n_envs, -1))
        learned = np.asarray(reward_fn(obs, acts), dtype=np.float32).reshape(n, self.n_envs)
        self.rewards[:n] = learned + self.vlm_rewards[:n]  # the VLM term (zero unless reward.vlm.weight) stays
        return n * self.n_envs

    def stored_transitions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(obs, env actions, true rewards) of everything stored, flattened over envs."""
        n = self.size_now
        return (
            self.observations[:n].reshape(n * self.n_envs, -1),
            self.env_actions(self.actions[:n].reshape(n * self.n_envs, -1)),
            self.true_rewards[:n].reshape(-1),
        )

    def _get_samples(self, batch_inds: np.ndarray, env=None) -> ReplayBufferSamples:
        samples = super()._get_samples(batch_inds, env)
        if self.intrinsic_k is None:
            return samples
        reward = self._state_entropy_reward(samples.observations)
        return samples._replace(rewards=reward.reshape(-1, 1))

    def _state_entropy_reward(self, states: torch.Tensor) -> torch.Tensor:
        """PEBBLE's unsupervised reward ``r(s_t) = ||s_t - s_t^{kNN}|| / std`` (Lee et al. 2021, Eq. 5; Liu & Abbeel
        2021), as BPref's ``update_critic_state_ent``: the distance from each sampled observation to its k-th nearest
        neighbour among *all* stored observations, divided by the running std of those distances (updated with
        this batch first; no mean is subtracted, so the reward stays positive and larger where states are rare).
        """
        n = self.size_now * self.n_envs
        pool = self.to_torch(self.observations.reshape(-1, states.shape[-1])[:n])
        knn = knn_distance(states.to(pool.dtype), pool, self.intrinsic_k + 1)  # +1: a stored state is its own 1st
        self.entropy_stats.update(knn.cpu().numpy())
        return knn / self.entropy_stats.std

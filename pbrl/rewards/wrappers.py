"""Putting a learned reward in front of an SB3 agent, and normalising it first."""

from __future__ import annotations

import collections
import dataclasses
from typing import Any, Callable, Deque, Optional, Sequence

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from pbrl.data.trajectory import Trajectory
from pbrl.envs.simstate import recorded_states
from pbrl.types import PbrlError

RewardFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
FrameRewardFn = Callable[[np.ndarray], np.ndarray]  # (T, H, W, 3) uint8 frames -> (T,) rewards


NORMALIZE_MODES: tuple[str, ...] = ("standard", "scale", "none", "auto")


def resolve_normalize(mode: str, *, early_termination: bool) -> str:
    """The normalisation a run uses: ``auto`` is PEBBLE's raw ensemble mean (``none``; BPref never normalises
    ``r_hat``) where episodes can end early, since a zero-mean reward turns staying alive from a gain into a
    cost there, and ``standard`` elsewhere, where a constant shift leaves the optimal policy unchanged."""
    if mode not in NORMALIZE_MODES:
        raise PbrlError(f"reward.normalize: expected {' | '.join(NORMALIZE_MODES)}, got {mode!r}")
    if mode != "auto":
        return mode
    return "none" if early_termination else "standard"


@dataclasses.dataclass
class RewardNormalizer:
    """Affine map ``(r - shift) / scale`` fitted on a sample of predicted rewards.

    ``mode="standard"`` makes the reward zero-mean, unit-variance (what imitation's normalised reward
    nets do); ``"scale"`` only divides by the std, keeping the sign, which matters in tasks whose
    episodes end early (Hopper, Walker2d); ``"none"`` passes rewards through (PEBBLE's raw ensemble mean).
    The config's ``auto`` picks one per task (:func:`resolve_normalize`).
    """

    mode: str = "standard"
    shift: float = 0.0
    scale: float = 1.0

    def fit(self, rewards: np.ndarray) -> None:
        if self.mode == "none" or rewards.size == 0:
            return
        self.scale = float(rewards.std()) + 1e-8
        self.shift = float(rewards.mean()) if self.mode == "standard" else 0.0

    def __call__(self, rewards: np.ndarray) -> np.ndarray:
        return ((rewards - self.shift) / self.scale).astype(np.float32)


class LearnedRewardVecEnv(VecEnvWrapper):
    """Replaces the env reward by ``reward_fn(obs, action)`` and records finished episodes.

    The true reward goes into ``info["true_reward"]`` (for metrics and scripted teachers only), and the
    last ``max_episodes`` complete episodes are kept as :class:`Trajectory` objects: the pool that query
    candidates are cut from (PEBBLE keeps a bounded FIFO of recent episodes the same way).
    With ``reward_fn=None`` the agent sees zero reward (used before the first reward fit).

    With ``frame_reward`` (a VLM reward over frames, :class:`pbrl.rewards.vlm.ClipReward`) every sub-env is
    rendered each step (the costly part: ~55 ms per 128x128 MuJoCo frame on a slow CPU core), and when an
    episode ends its frames are scored in one batch: the scores become the episode's ``vlm`` reward term
    (``feedback=vlm`` compares those), and ``vlm_weight * scores`` go to ``info["vlm_reward_term"]`` on the
    episode's last step, which :class:`pbrl.agents.buffer.PreferenceReplayBuffer` adds to that episode's
    stored rewards (VLM-RM as a dense term; the steps of an open episode lack it until it ends).
    With ``frame_stride = k > 1`` only every k-th step is rendered and scored, and the steps in between get
    the linear interpolation of their neighbours' scores: k times less rendering, for a smooth reward.
    """

    def __init__(self, venv: VecEnv, *, reward_fn: Optional[RewardFn] = None, max_episodes: int = 100,
                 task_name: str = "", term_names: Sequence[str] = (), has_success: bool = False,
                 frame_reward: Optional[FrameRewardFn] = None, vlm_weight: float = 0.0,
                 frame_stride: int = 1) -> None:
        super().__init__(venv)
        if int(frame_stride) < 1:
            raise PbrlError(f"reward.vlm.frame_stride: expected an integer >= 1, got {frame_stride}")
        self.reward_fn = reward_fn
        self.frame_reward = frame_reward
        self.vlm_weight = float(vlm_weight)
        self.frame_stride = int(frame_stride)
        self._next_frames: list = [None] * self.num_envs
        self.episodes: Deque[Trajectory] = collections.deque(maxlen=max_episodes)
        self.episodes_done = 0
        self.task_name = task_name
        self.term_names = tuple(term_names)
        self.has_success = has_success
        self._last_obs: Optional[np.ndarray] = None
        self._actions: Optional[np.ndarray] = None
        self._open = [self._new_episode() for _ in range(self.num_envs)]

    def state_dict(self) -> dict[str, Any]:
        """The finished episodes kept as query candidates and the episode counter (open episodes restart)."""
        return {"episodes": list(self.episodes), "episodes_done": self.episodes_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.episodes.clear()
        self.episodes.extend(state["episodes"])
        self.episodes_done = int(state["episodes_done"])

    @staticmethod
    def _new_episode() -> dict[str, list]:
        return {"obs": [], "acts": [], "rew": [], "terms": [], "succ": [], "frames": [], "states": []}

    def reset(self) -> np.ndarray:
        self._last_obs = self.venv.reset()
        self._open = [self._new_episode() for _ in range(self.num_envs)]
        self._render_all()
        return self._last_obs

    def _render_all(self) -> None:
        """Frames of the current observations (after an auto-reset: the new episode's first frame), for
        the sub-envs whose next step is one of every ``frame_stride`` (None for the others)."""
        if self.frame_reward is None:
            return
        due = [i for i, ep in enumerate(self._open) if len(ep["acts"]) % self.frame_stride == 0]
        frames = self.venv.env_method("render", indices=due) if due else []
        self._next_frames = [None] * self.num_envs
        for i, frame in zip(due, frames):
            self._next_frames[i] = frame

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.float32)
        self.venv.step_async(actions)

    def step_wait(self):
        obs, true_rew, dones, infos = self.venv.step_wait()
        prev, frames = self._last_obs, self._next_frames
        if self.reward_fn is None:
            rewards = np.zeros(self.num_envs, dtype=np.float32)
        else:
            rewards = np.asarray(self.reward_fn(prev, self._actions), dtype=np.float32).reshape(self.num_envs)
        for i, info in enumerate(infos):
            info["true_reward"] = float(true_rew[i])
            self._record(i, prev[i], self._actions[i], float(true_rew[i]), info, bool(dones[i]), frames[i])
        self._render_all()  # after recording: the open episodes' lengths say which steps are due
        self._last_obs = obs
        return obs, rewards, dones, infos

    def _record(self, i: int, obs: np.ndarray, act: np.ndarray, rew: float, info: dict, done: bool,
                frame: Optional[np.ndarray] = None) -> None:
        ep = self._open[i]
        if frame is not None:
            ep["frames"].append(frame)
        ep["obs"].append(obs)
        ep["acts"].append(act)
        ep["rew"].append(rew)
        ep["terms"].append(info.get("reward_terms", np.zeros(0, np.float32)))
        ep["succ"].append(bool(info.get("is_success", False)))
        if "sim_state" in info:  # make_env(record_states=True): keep what re-renders the step later
            ep["states"].append(info["sim_state"])
        if not done:
            return
        terms = np.asarray(ep["terms"], dtype=np.float32)
        named = {n: terms[:, k] for k, n in enumerate(self.term_names)}
        if self.frame_reward is not None and len(ep["frames"]) == -(-len(ep["acts"]) // self.frame_stride):
            named["vlm"] = self._score_episode(np.asarray(ep["frames"], dtype=np.uint8), len(ep["acts"]), info)
        self.episodes.append(Trajectory(
            obs=np.asarray(ep["obs"] + [info["terminal_observation"]], dtype=np.float32),
            acts=np.asarray(ep["acts"], dtype=np.float32),
            rewards=np.asarray(ep["rew"], dtype=np.float32),
            terms=named,
            success=np.asarray(ep["succ"], dtype=bool) if self.has_success else None,
            episode_id=self.episodes_done,
            task=self.task_name,
            **recorded_states(ep["states"], len(ep["acts"]), info),
        ))
        self.episodes_done += 1
        self._open[i] = self._new_episode()

    def _score_episode(self, frames: np.ndarray, n_steps: int, info: dict) -> np.ndarray:
        """VLM reward of a finished episode's ``n_steps`` steps from its frames (every ``frame_stride``-th
        step), scored in one batch; the weighted term rides on ``info``."""
        scores = np.asarray(self.frame_reward(frames), dtype=np.float32).reshape(len(frames))
        if self.frame_stride > 1:
            scores = np.interp(np.arange(n_steps), np.arange(len(frames)) * self.frame_stride,
                               scores).astype(np.float32)
        if self.vlm_weight:
            info["vlm_reward_term"] = self.vlm_weight * scores
        return scores


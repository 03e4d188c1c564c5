"""PrefPPO: stable-baselines3 PPO on a learned reward (Christiano et al. 2017; B-Pref's PrefPPO baseline).

PPO is on-policy, so there is no buffer to relabel: the learned reward reaches the agent through
:class:`LearnedRewardVecEnv` at every step, and the reward model is refitted between rollouts.
Phases: random warm-up episodes, then repeatedly a feedback session (when due) and one PPO rollout+update.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

from pbrl.agents.pebble import ChunkHook, silent_logger
from pbrl.agents.preference import FeedbackLoop, RoundResult
from pbrl.rewards.wrappers import LearnedRewardVecEnv
from pbrl.types import PbrlError


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Step budget of a PrefPPO run."""

    total_steps: int
    seed_steps: int = 1000  # random-action steps whose episodes seed the first queries

    def __post_init__(self) -> None:
        if self.total_steps <= self.seed_steps:
            raise PbrlError(f"PPOConfig.total_steps ({self.total_steps}) must exceed seed_steps ({self.seed_steps})")


def build_ppo(venv: LearnedRewardVecEnv, *, seed: int, ppo_kwargs: dict[str, Any], device: str = "cpu") -> PPO:
    return PPO("MlpPolicy", venv, seed=seed, device=device, verbose=0, **ppo_kwargs)


class PrefPPOTrainer:
    """Alternates feedback sessions and PPO rollouts until the step budget is spent."""

    def __init__(self, model: PPO, venv: LearnedRewardVecEnv, feedback: FeedbackLoop, cfg: PPOConfig, *,
                 on_chunk: ChunkHook, step_callback: Optional[BaseCallback] = None,
                 next_feedback: int = 0, rng: Optional[np.random.Generator] = None) -> None:
        self.model, self.venv, self.feedback, self.cfg = model, venv, feedback, cfg
        self.on_chunk = on_chunk
        self.step_callback = step_callback
        self.next_feedback = next_feedback
        self.rng = rng or np.random.default_rng(0)
        silent_logger(model)

    def train(self) -> None:
        total = self.cfg.total_steps
        if self.model.num_timesteps == 0 and not self.venv.episodes:
            self.feedback.report_phase("seed", step=0, total=total, next_pairs=self.next_feedback)
            self.warm_up()
        rollout = self.model.n_steps * self.model.n_envs
        while self.model.num_timesteps < total:
            result: Optional[RoundResult] = None
            if self.model.num_timesteps >= self.next_feedback and self.feedback.budget_left > 0:
                self.feedback.report_phase("selecting", step=self.model.num_timesteps, total=total)
                result = self.feedback_session()
            self.feedback.report_phase("training", step=self.model.num_timesteps, total=total,
                                      next_pairs=self.next_feedback)
            self.model.learn(rollout, reset_num_timesteps=False, callback=self.step_callback)
            self.on_chunk(self.model.num_timesteps, result)
        self.feedback.report_phase("finished", step=self.model.num_timesteps, total=total)

    def warm_up(self) -> None:
        """Random-action episodes through the wrapper, so the first queries have segments to compare."""
        self.venv.reset()
        space = self.venv.action_space
        for _ in range(self.cfg.seed_steps):
            acts = self.rng.uniform(space.low, space.high, size=(self.venv.num_envs, *space.shape))
            self.venv.step(acts.astype(np.float32))
        self.model._last_obs = None  # PPO resets the env on its first learn() call

    def feedback_session(self) -> Optional[RoundResult]:
        result = self.feedback.round(self.venv.episodes, step=self.model.num_timesteps)
        if result is None:
            return None
        self.refresh_reward()
        self.next_feedback = self.model.num_timesteps + self.feedback.schedule.every
        return result

    def resume(self) -> None:
        """After :meth:`load_state_dict`: take in rounds labelled after the checkpoint, never asking them again."""
        self.next_feedback, refit = self.feedback.resume(self.next_feedback)
        if refit or self.feedback.fitted:
            self.refresh_reward()

    def state_dict(self) -> dict[str, Any]:
        """The loop's own state (the SB3 model is saved by SB3)."""
        return {"next_feedback": self.next_feedback, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.next_feedback = int(state["next_feedback"])
        self.rng.bit_generator.state = state["rng"]

    def refresh_reward(self) -> None:
        """Refit the normaliser on recent episodes' predicted rewards and hand the reward to the env."""
        episodes = list(self.venv.episodes)
        if episodes:
            obs = np.concatenate([ep.obs[:-1] for ep in episodes])
            acts = np.concatenate([ep.acts for ep in episodes])
            self.feedback.normalizer.fit(self.feedback.reward_model.predict(obs, acts))
        self.venv.reward_fn = self.feedback.reward_fn

"""PEBBLE around SAC from stable-baselines3 or sbx (Lee, Smith & Abbeel 2021, "PEBBLE", Alg. 1).

Phases, in the order ``train`` runs them:
  1. seed steps with random actions (SAC's ``learning_starts``);
  2. optional unsupervised pre-training on a k-NN state-entropy reward;
  3. every ``schedule.every`` steps while labels remain: collect candidate segments, select queries,
     label, fit the reward model, **relabel the whole replay buffer**, and after the first fit reset the
     critic (it was trained on the intrinsic/zero reward) and take ``update_after_reset`` SAC gradient
     steps on the relabelled buffer (BPref ``train_PEBBLE.py``: ``reset_update``, ``update_after_reset``);
  4. SAC updates on the relabelled buffer in between.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger

from pbrl.agents.backends import backend_of, get_backend
from pbrl.agents.buffer import PreferenceReplayBuffer
from pbrl.agents.preference import FeedbackLoop, RoundResult
from pbrl.rewards.wrappers import LearnedRewardVecEnv
from pbrl.types import PbrlError

ChunkHook = Callable[[int, Optional[RoundResult]], None]


@dataclasses.dataclass(frozen=True)
class PebbleConfig:
    """Step budget of a PEBBLE run (feedback timing lives in :class:`FeedbackSchedule`)."""

    total_steps: int
    seed_steps: int = 1000
    unsup_steps: int = 0
    entropy_k: int = 5
    reset_critic: bool = True
    update_after_reset: int = 100  # SAC gradient steps right after the critic reset (BPref reset_update)
    chunk_steps: int = 1000  # granularity of evaluation/checkpoint hooks

    def __post_init__(self) -> None:
        if self.update_after_reset < 0:
            raise PbrlError(f"algo.update_after_reset: expected an integer >= 0, got {self.update_after_reset}")
        if self.total_steps <= self.seed_steps + self.unsup_steps:
            raise PbrlError(
                f"PebbleConfig.total_steps ({self.total_steps}) must exceed seed_steps + unsup_steps "
                f"({self.seed_steps} + {self.unsup_steps}) so that preference learning has steps left"
            )


def build_sac(venv: LearnedRewardVecEnv, *, seed: int, seed_steps: int, buffer_size: int,
              sac_kwargs: dict[str, Any], backend: str = "sb3", device: str = "cpu") -> Any:
    """SAC of the ``backend`` library (``sb3`` | ``sbx``, :mod:`pbrl.agents.backends`) whose buffer PEBBLE relabels."""
    return get_backend(backend, "sac").build(venv, algo="sac", seed=seed, seed_steps=seed_steps,
                                             buffer_size=buffer_size, kwargs=sac_kwargs, device=device)


def reset_critic(model: Any) -> None:
    """Re-initialise Q-networks, their targets and optimiser (PEBBLE after unsupervised pre-training)."""
    backend_of(model).reset_critic(model)


def silent_logger(model: Any) -> None:
    """Give ``model`` a logger that writes nothing, unless it already has one of its own (``logger=tensorboard``).

    Why: without a custom logger, SB3 (and sbx, through SB3's ``learn``) builds a new one at every ``learn`` call, and
    each build makes an empty ``/tmp/SB3-<time>`` directory; PEBBLE and PrefPPO call ``learn`` once per chunk, so a
    run left hundreds of them behind. ``verbose=0`` models log nothing either way.
    """
    if not getattr(model, "_custom_logger", False):
        model.set_logger(Logger(folder=None, output_formats=[]))


def train_now(model: SAC, gradient_steps: int) -> None:
    """``gradient_steps`` SAC updates outside ``learn`` (BPref's ``update_after_reset``); a model just loaded from a
    checkpoint has no logger until ``learn``, so it gets the silent one first."""
    silent_logger(model)
    model.train(gradient_steps=gradient_steps, batch_size=model.batch_size)


class PebbleTrainer:
    """Runs the PEBBLE phases on a SAC model (SB3 or sbx); ``on_chunk`` is called after each chunk of steps."""

    def __init__(self, model: Any, venv: LearnedRewardVecEnv, feedback: FeedbackLoop,
                 cfg: PebbleConfig, *, on_chunk: ChunkHook, step_callback: Optional[BaseCallback] = None,
                 next_feedback: Optional[int] = None, critic_was_reset: bool = False) -> None:
        self.model, self.venv, self.feedback, self.cfg = model, venv, feedback, cfg
        self.on_chunk = on_chunk
        self.step_callback = step_callback
        self.pretrain_end = cfg.seed_steps + cfg.unsup_steps
        self.next_feedback = self.pretrain_end if next_feedback is None else next_feedback
        self.critic_was_reset = critic_was_reset
        self.relabel_due = False  # set by resume(): relabel once the seed steps have filled the buffer
        silent_logger(model)

    @property
    def buffer(self) -> PreferenceReplayBuffer:
        return self.model.replay_buffer  # type: ignore[return-value]

    def train(self) -> None:
        while self.model.num_timesteps < self.cfg.total_steps:
            step = self.model.num_timesteps
            self.buffer.intrinsic_k = self.cfg.entropy_k if self.cfg.unsup_steps and step < self.pretrain_end else None
            result = None
            if self.relabel_due and step >= self.pretrain_end:  # a restart's fit, relabelled once steps exist
                self.after_fit()
                self.relabel_due = False
            if step >= self.next_feedback and self.feedback.budget_left > 0:
                self.feedback.report_phase("selecting", step=step, total=self.cfg.total_steps)
                result = self.feedback_session()
            self.feedback.report_phase(self.phase(step), step=step, total=self.cfg.total_steps,
                                      next_pairs=self.next_feedback)
            self.model.learn(self._chunk(step), reset_num_timesteps=False, callback=self.step_callback)
            self.on_chunk(self.model.num_timesteps, result)
        self.feedback.report_phase("finished", step=self.model.num_timesteps, total=self.cfg.total_steps)

    def phase(self, step: int) -> str:
        """PEBBLE's phase at ``step``: ``seed`` (random actions), ``unsupervised`` or ``training``."""
        if step < self.cfg.seed_steps:
            return "seed"
        return "unsupervised" if step < self.pretrain_end else "training"

    def feedback_session(self) -> Optional[RoundResult]:
        """Collect, select, label, fit (FeedbackLoop), then relabel the buffer and reset the critic."""
        step = self.model.num_timesteps
        result = self.feedback.round(self.venv.episodes, step=step)
        if result is None:  # no episode long enough yet: try again a little later
            self.next_feedback = step + max(1, self.feedback.schedule.segment_length)
            return None
        self.after_fit()
        self.next_feedback = step + self.feedback.schedule.every
        return result

    def after_fit(self) -> None:
        """Relabel with the new reward model; the first fit also resets the critic and re-fits it (PEBBLE)."""
        self.refresh_reward()
        if self.cfg.reset_critic and not self.critic_was_reset:
            reset_critic(self.model)
            self.critic_was_reset = True
            if self.cfg.update_after_reset:  # re-fit the fresh critic (and the actor) on the relabelled buffer
                train_now(self.model, self.cfg.update_after_reset)

    def resume(self) -> None:
        """After :meth:`load_state_dict`: take in rounds labelled after the checkpoint, never asking them again.

        A run restarted from step 0 (killed before its first checkpoint) has no buffer to relabel yet: the relabel
        and critic reset of its refit happen at the end of the seed steps, where its first round was.
        """
        self.next_feedback, refit = self.feedback.resume(self.next_feedback)
        if refit and self.buffer.size_now == 0:
            self.relabel_due = True
        elif refit:
            self.after_fit()
        if self.feedback.fitted:
            self.venv.reward_fn = self.feedback.reward_fn

    def state_dict(self) -> dict[str, Any]:
        """The loop's own state (the SB3 model and its buffer are saved by SB3)."""
        return {"next_feedback": self.next_feedback, "critic_was_reset": self.critic_was_reset}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.next_feedback, self.critic_was_reset = int(state["next_feedback"]), bool(state["critic_was_reset"])

    def refresh_reward(self) -> None:
        """Refit the normaliser on the buffer's predicted rewards and relabel the whole buffer."""
        obs, acts, _ = self.buffer.stored_transitions()
        self.feedback.normalizer.fit(self.feedback.reward_model.predict(obs, acts))
        self.buffer.relabel(self.feedback.reward_fn)
        self.venv.reward_fn = self.feedback.reward_fn

    def _chunk(self, step: int) -> int:
        events = [self.cfg.total_steps, (step // self.cfg.chunk_steps + 1) * self.cfg.chunk_steps]
        if self.feedback.budget_left > 0 and self.next_feedback > step:
            events.append(self.next_feedback)
        if (self.cfg.unsup_steps or self.relabel_due) and step < self.pretrain_end:
            events.append(self.pretrain_end)
        return max(1, min(events) - step)


def sac_policy_fn(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Deterministic action in env units, for evaluation."""
    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model.predict(obs, deterministic=True)[0]
    return act

"""Book-keeping around a trainer: progress bar, periodic evaluation, metrics rows and checkpoints."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from tqdm.auto import tqdm

from pbrl.agents.metrics import reward_alignment
from pbrl.agents.preference import FeedbackLoop, RoundResult
from pbrl.data.trajectory import Trajectory
from pbrl.envs.rollout import PolicyFn, eval_seed, evaluate
from pbrl.envs.tasks import TaskSpec
from pbrl.report import MetricsLog
from pbrl.run.progress import progress_bar

log = logging.getLogger(__name__)


def random_policy_return(task: TaskSpec, low: np.ndarray, high: np.ndarray, *, seed: int,
                         episode_length: Optional[int]) -> float:
    """Return of one uniformly random episode: the floor drawn in ``curves.png`` and reported in the summary."""
    rand = np.random.default_rng(int(seed))
    return evaluate(task, lambda o: rand.uniform(low, high), n_episodes=1, seed=eval_seed(seed),
                    episode_length=episode_length).return_mean


def fmt_metric(value: Optional[float]) -> str:
    """A metric for a log line: three decimals, ``n/a`` when missing."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


class ProgressCallback(BaseCallback):
    """Advances the run's progress bar by one per environment step (SB3 calls it every step)."""

    def __init__(self, bar: tqdm, postfix: Callable[[], dict[str, str]], every: int = 500) -> None:
        super().__init__()
        self.bar, self.postfix, self.every = bar, postfix, every

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        if self.num_timesteps % self.every == 0:
            self.bar.set_postfix(self.postfix(), refresh=False)
        return True


@dataclasses.dataclass
class EvalSettings:
    every: int
    episodes: int
    reward_pairs: int
    checkpoint_every: int
    seed: int
    episode_length: Optional[int]


class RunSession:
    """Called after every chunk of training steps; owns everything a person watches or resumes from."""

    def __init__(self, *, run_dir: Path, task: TaskSpec, feedback: FeedbackLoop, settings: EvalSettings,
                 policy_fn: PolicyFn, episodes_fn: Callable[[], Sequence[Trajectory]], total_steps: int,
                 initial_step: int = 0, state: Optional[dict[str, Any]] = None) -> None:
        self.run_dir, self.task, self.feedback, self.settings = run_dir, task, feedback, settings
        self.policy_fn = policy_fn
        self.episodes_fn = episodes_fn
        self.metrics = MetricsLog(run_dir / "metrics.csv")
        self.metrics.truncate_after(initial_step)
        self.load_state_dict(state or {})
        self.rng = np.random.default_rng([settings.seed, 7, initial_step])
        self.t0 = time.time()
        self.bar = progress_bar(total_steps, task.name, initial=initial_step)
        self.callback = ProgressCallback(self.bar, self.postfix)
        self.checkpoint_fn: Optional[Callable[[], None]] = None  # set by the runner
        self.on_row: Optional[Callable[[dict[str, Any]], None]] = None  # e.g. logger=tensorboard (run/tblog.py)

    def phase(self, name: str, message: str, *args: Any) -> None:
        """Log a phase of the run to train.log and show it on the progress bar."""
        log.info(message, *args, extra={"phase": name})
        self.bar.set_description(f"{self.task.name} [{name}]", refresh=False)

    def postfix(self) -> dict[str, str]:
        """What the progress bar shows next to the step count."""
        return {"labels": f"{self.feedback.labels_used}/{self.feedback.schedule.max_labels}",
                "ret": f"{self.last_return:.1f}"}

    @property
    def wall_s(self) -> float:
        return self.wall_before + time.time() - self.t0

    def on_chunk(self, step: int, result: Optional[RoundResult]) -> None:
        """After each chunk of training steps: evaluate and checkpoint when due."""
        if result is not None and not math.isnan(result.heldout_accuracy):
            self.heldout = result.heldout_accuracy
        self.phase("train", "step %d/%d, labels %d/%d", step, self.bar.total, self.feedback.labels_used,
                   self.feedback.schedule.max_labels)
        if step >= self.next_eval:
            row = self.evaluate_now(step)
            log.info("evaluation at step %d: return %.1f +- %.1f, success %s, reward accuracy %s", step,
                     row["return_mean"], row["return_std"], fmt_metric(row["success_rate"]),
                     fmt_metric(row.get("reward_accuracy")),
                     extra={"phase": "eval"})
            self.next_eval = (step // self.settings.every + 1) * self.settings.every
        self.bar.set_postfix(self.postfix(), refresh=False)
        if step >= self.next_ckpt and self.checkpoint_fn is not None:
            self.next_ckpt = (step // self.settings.checkpoint_every + 1) * self.settings.checkpoint_every
            self.checkpoint_fn()
            log.info("checkpoint at step %d", step, extra={"phase": "checkpoint"})

    def evaluate_now(self, step: int, episodes: Optional[int] = None) -> dict[str, Any]:
        """Evaluate the policy in fresh episodes and the reward model on oracle pairs; append a metrics row."""
        t0 = time.time()
        res = evaluate(self.task, self.policy_fn, n_episodes=episodes or self.settings.episodes,
                       seed=eval_seed(self.settings.seed), episode_length=self.settings.episode_length)
        row: dict[str, Any] = {
            "env_steps": step,
            "labels_used": self.feedback.labels_used,
            "labels_answered": self.feedback.store.count_labels(sources=[self.feedback.source]),
            "return_mean": res.return_mean,
            "return_std": float(res.returns.std()),
            "success_rate": res.success_rate,
            "reward_heldout_acc": self.heldout,
            "wall_s": self.wall_s,
        }
        row.update(self.feedback.labeller.session_metrics())  # feedback=transfer: the last session's reliability
        if self.feedback.fitted:
            row.update(reward_alignment(self.feedback.reward_model, self.episodes_fn(),
                                        segment_length=self.feedback.schedule.segment_length, rng=self.rng,
                                        n_pairs=self.settings.reward_pairs))
        self.metrics.append(row)
        if self.on_row is not None:
            self.on_row(row)
        self.last_return = res.return_mean
        self.eval_s += time.time() - t0
        return row

    def state_dict(self) -> dict[str, Any]:
        return {"wall_s": self.wall_s, "next_eval": self.next_eval, "next_ckpt": self.next_ckpt,
                "heldout": self.heldout, "last_return": self.last_return, "eval_s": self.eval_s}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (an empty dict: a new run)."""
        self.wall_before = float(state.get("wall_s", 0.0))
        self.next_eval = int(state.get("next_eval", self.settings.every))
        self.next_ckpt = int(state.get("next_ckpt", self.settings.checkpoint_every))
        self.heldout = float(state.get("heldout", math.nan))
        self.last_return = float(state.get("last_return", math.nan))
        self.eval_s = float(state.get("eval_s", 0.0))

    def close(self) -> None:
        self.bar.close()

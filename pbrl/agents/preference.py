"""The preference half of an online loop (:class:`FeedbackLoop`): collect candidates, select, label, store, fit.

Shared by PEBBLE (SAC) and PrefPPO; the policy learner's half (relabel, critic reset, train) lives in their
own modules so each loop reads top to bottom as its phases. In pbrl a *learner* is always what trains a policy
(SB3/sbx SAC, PPO, CPL, OPPO, BC); the reward model and its labels belong to the feedback loop.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any, Optional, Sequence

import numpy as np

from pbrl.data.run_status import write_run_status
from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Segment, Trajectory, random_segments, stack_pairs
from pbrl.feedback.labeller import Labeller, check_labeller
from pbrl.feedback.query import select_pairs
from pbrl.agents.metrics import pair_accuracy
from pbrl.rewards.wrappers import RewardNormalizer
from pbrl.types import Labels, PbrlError, RewardModel

#: annotator of the free labels a labeller hands over once (:meth:`FeedbackLoop.seed_initial_pairs`)
INITIAL_ANNOTATOR = "initial-pairs"
#: store meta key of the round log (:class:`RoundRecord` list, JSON)
ROUNDS_META = "pbrl.rounds"

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class FeedbackSchedule:
    """When and how many queries are asked (PEBBLE: ``num_interact``, ``max_feedback``, ``reward_batch``).

    Attributes:
        max_labels: total queries over the run (skipped ones count: the labeller was still asked).
        per_round: queries per feedback session.
        every: env steps between sessions.
        segment_length: steps per segment.
        strategy: ``uniform``, ``disagreement`` or ``entropy``.
        oversample: candidate pairs considered per kept query (disagreement/entropy).
        reward_epochs: reward-model epochs after each session (at most).
        reward_stop_acc: stop a fit early once training accuracy reaches this (PEBBLE: 0.97); None = never.
        candidate_episodes: candidates are cut from this many most recent episodes.
    """

    max_labels: int
    per_round: int
    every: int
    segment_length: int
    strategy: str = "disagreement"
    oversample: int = 10
    reward_epochs: int = 50
    reward_stop_acc: Optional[float] = 0.97
    candidate_episodes: int = 100

    def __post_init__(self) -> None:
        for name in ("max_labels", "per_round", "every", "segment_length", "reward_epochs"):
            if getattr(self, name) < 1:
                raise PbrlError(f"FeedbackSchedule.{name}: expected >= 1, got {getattr(self, name)}")


@dataclasses.dataclass(frozen=True)
class RoundRecord:
    """One feedback round in the store's round log, written before anyone is asked.

    A round is complete once ``asked`` labels were stored after ``labels_before`` (scripted labels are
    stored in one transaction; a person's answers one by one). A restarted run reads the log to fit on
    the labels of a complete round instead of asking it again, and to finish an incomplete one.

    Attributes:
        index: 0, 1, ... in the order rounds were held.
        step: env step at which the round was held.
        asked: queries of the round.
        labels_before: :attr:`FeedbackLoop.labels_used` when the round began.
    """

    index: int
    step: int
    asked: int
    labels_before: int


@dataclasses.dataclass(frozen=True)
class RoundResult:
    """What one feedback session did."""

    asked: int
    answered: int
    heldout_accuracy: float  # current model on the new labels *before* fitting on them (NaN at first)
    fit_loss: float
    fit_accuracy: float


class FeedbackLoop:
    """Owns the reward model, the labeller and the store; one :meth:`round` is one feedback session.

    Every :class:`~pbrl.feedback.labeller.Labeller` hook is called on every labeller (their defaults do nothing).
    """

    def __init__(self, *, reward_model: RewardModel, labeller: Labeller, store: PreferenceStore,
                 schedule: FeedbackSchedule, source: str, rng: np.random.Generator,
                 normalizer: Optional[RewardNormalizer] = None, conservative_k: float = 0.0) -> None:
        self.reward_model = reward_model
        self.labeller = check_labeller(labeller)
        self.store = store
        self.schedule = schedule
        self.source = source
        self.rng = rng
        self.normalizer = normalizer or RewardNormalizer()
        if not conservative_k >= 0:
            raise PbrlError(f"reward.conservative_k: expected a number >= 0, got {conservative_k}")
        self.conservative_k = float(conservative_k)
        self.fitted = False
        self.labels_fitted = 0  # answered labels the reward model was last fitted on
        self._progress = (0, 0, None)  # (step, total, next feedback step) as last reported

    def report_phase(self, phase: str, *, step: Optional[int] = None, total: Optional[int] = None,
                     next_pairs: Optional[int] = None) -> None:
        """Record the run's phase in the store, where the labelling page shows it (no step: keep the last)."""
        if step is not None:
            self._progress = (int(step), int(total if total is not None else self._progress[1]), next_pairs)
        step_, total_, next_ = self._progress
        write_run_status(self.store, phase, step=step_, total=total_, next_pairs=next_ if self.budget_left else None)

    @property
    def labels_used(self) -> int:
        """Labels of this run's source against ``budget.labels`` (free initial pairs not counted)."""
        return self.store.count_labels(include_skipped=True, sources=[self.source]) - self._n_initial()

    def _n_initial(self) -> int:
        rows = self.store.labels(sources=[self.source], include_skipped=True)
        return sum(r.annotator == INITIAL_ANNOTATOR for r in rows)

    def seed_initial_pairs(self) -> int:
        """Store the free labels a labeller offers once (PEARL's target pool), before the first fit.

        They are marked with the annotator :data:`INITIAL_ANNOTATOR`, which keeps them out of the label
        budget and tells a resumed run they are already there. Returns how many were added.
        """
        if self._n_initial():
            return 0
        offered = self.labeller.initial_pairs(self.rng, self.schedule.segment_length)
        if offered is None:
            return 0
        first, second, labels = offered
        self.store.add_pairs(first, second, labels, source=self.source, annotator=INITIAL_ANNOTATOR,
                             weight=labels.weight)
        return len(first)

    @property
    def budget_left(self) -> int:
        return max(0, self.schedule.max_labels - self.labels_used)

    def cut_segments(self, episodes: Sequence[Trajectory], n: int) -> list[Segment]:
        """``n`` segments at uniform random episodes/starts among the recent episodes.

        Episodes shorter than the segment (they terminated early) are padded with their absorbing
        state (:meth:`Trajectory.padded`), so tasks with early termination still get queries.
        """
        L = self.schedule.segment_length
        pool = [ep.padded(L) for ep in list(episodes)[-self.schedule.candidate_episodes:]]
        return random_segments(pool, n, L, self.rng)

    def rounds(self) -> list[RoundRecord]:
        """The round log of this run's store, oldest first."""
        return [RoundRecord(**r) for r in json.loads(self.store.get_meta(ROUNDS_META, "[]") or "[]")]

    def _log_round(self, record: RoundRecord) -> None:
        rounds = [r for r in self.rounds() if r.index != record.index] + [record]
        self.store.set_meta(ROUNDS_META, json.dumps([dataclasses.asdict(r) for r in rounds]))

    def _open_round(self) -> Optional[RoundRecord]:
        """The last round of the log when its labels are not all stored (a run killed while asking it)."""
        rounds = self.rounds()
        if rounds and self.labels_used - rounds[-1].labels_before < rounds[-1].asked:
            return rounds[-1]
        return None

    def last_complete_round(self) -> Optional[RoundRecord]:
        """The last round whose labels are all stored."""
        rounds = self.rounds()
        if rounds and self._open_round() is not None:
            rounds = rounds[:-1]
        return rounds[-1] if rounds else None

    def round(self, episodes: Sequence[Trajectory], step: int = 0) -> Optional[RoundResult]:
        """One session at env ``step``: collect, select, label, store, fit. None when no episode is long enough yet.

        The round goes to the store's round log before anyone is asked (:class:`RoundRecord`). A round a killed
        run left unfinished is finished first, under its own index: a labeller that kept its unanswered pairs
        (the human viewer) has them answered instead of a new selection, so the person never sees two rounds at
        once; otherwise only the round's missing labels are asked.
        """
        open_round = self._open_round()
        pending = self.labeller.unfinished_pairs()
        if pending is None:
            n_queries = (open_round.asked - (self.labels_used - open_round.labels_before) if open_round
                         else min(self.schedule.per_round, self.budget_left))
            selected = self._select(episodes, n_queries)
            if selected is None:
                return None
            first, second = selected
            record: Optional[RoundRecord] = RoundRecord(len(self.rounds()), step, len(first), self.labels_used)
            if open_round is not None:  # the missing labels of the unfinished round (fewer if candidates ran out)
                record = dataclasses.replace(open_round, step=step, asked=open_round.asked - (n_queries - len(first)))
        else:
            first, second = pending
            record = None if open_round is None else dataclasses.replace(open_round, step=step)
        if record is not None:
            self._log_round(record)
        index = record.index if record is not None else len(self.rounds())
        log.info("feedback round %d at step %d: asking %d queries (labels %d/%d)", index, step, len(first),
                 self.labels_used, self.schedule.max_labels, extra={"phase": "round"})
        self.report_phase("labelling")
        labels = self.labeller.label(first, second)
        heldout = self._accuracy_on(first, second, labels) if self.fitted else float("nan")
        self.seed_initial_pairs()
        if not self.labeller.stores_labels:  # the human viewer commits each answer itself
            self.store.add_pairs(first, second, labels, source=self.source, weight=labels.weight)  # one transaction: never half a pair
        log.info("feedback round %d: %d answered, %d skipped; labels %d/%d", index, labels.n_answered,
                 len(first) - labels.n_answered, self.labels_used, self.schedule.max_labels,
                 extra={"phase": "labelled"})
        self.report_phase("fitting")
        fit = self.fit()
        return RoundResult(len(first), labels.n_answered, heldout, fit.get("loss", float("nan")),
                           fit.get("train_acc", float("nan")))

    def _select(self, episodes: Sequence[Trajectory],
                n_queries: int) -> Optional[tuple[list[Segment], list[Segment]]]:
        """Cut candidates and select ``n_queries`` pairs (None when there are too few)."""
        candidates = self.cut_segments(episodes, max(2, 2 * n_queries * self.schedule.oversample))
        if n_queries == 0 or len(candidates) < 2:
            return None
        strategy = self.schedule.strategy if self.fitted else "uniform"
        i1, i2 = select_pairs(strategy, candidates, n_queries, rng=self.rng,
                              reward_model=self.reward_model if self.fitted else None,
                              oversample=self.schedule.oversample)
        self.labeller.set_margin(float(np.mean([abs(c.true_return) for c in candidates])))  # B-Pref thresholds
        self.labeller.set_pool(candidates)  # HERON margins / PEARL alignment use the whole candidate pool
        return [candidates[i] for i in i1], [candidates[i] for i in i2]

    def fit(self) -> dict[str, float]:
        """Fit the reward model on every answered label of this source in the store."""
        n = self.store.count_labels(sources=[self.source])
        if n == 0:
            return {}
        log.info("fitting the reward model on %d labels", n, extra={"phase": "fit"})
        batch = self.store.pair_batch(sources=[self.source])
        metrics = self.reward_model.fit(batch, epochs=self.schedule.reward_epochs,
                                        stop_at_acc=self.schedule.reward_stop_acc)
        self.fitted = True
        self.labels_fitted = n
        log.info("reward model fitted: loss %.4f, training accuracy %.3f", metrics.get("loss", float("nan")),
                 metrics.get("train_acc", float("nan")), extra={"phase": "fitted"})
        return metrics

    def resume(self, next_feedback: int) -> tuple[int, bool]:
        """Continue after a restart from a checkpoint whose schedule holds the next round at ``next_feedback``.

        A round whose labels were all stored after that checkpoint is not asked again: the reward model is
        fitted on its labels and the schedule moves past it. Returns the step of the next round and whether
        the reward model was refitted (the caller then relabels, as after a round).
        """
        done = self.last_complete_round()
        if done is not None and done.step >= next_feedback:
            log.info("feedback round %d (step %d) was labelled before the restart: fitting on its labels, not "
                     "asking it again", done.index, done.step, extra={"phase": "resume"})
            next_feedback = done.step + self.schedule.every
        if not self.needs_fit():
            return next_feedback, False
        self.fit()
        return next_feedback, True

    def needs_fit(self) -> bool:
        """Labels were stored since the last fit (e.g. by a run killed before fitting on them)."""
        return self.store.count_labels(sources=[self.source]) > self.labels_fitted

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs: reward-model weights, normaliser, random state, fitted label count."""
        return {"reward_model": self.reward_model.state_dict(), "fitted": self.fitted,
                "labels_fitted": self.labels_fitted, "rng": self.rng.bit_generator.state,
                "normalizer": {"shift": self.normalizer.shift, "scale": self.normalizer.scale}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reward_model.load_state_dict(state["reward_model"])
        self.fitted, self.labels_fitted = bool(state["fitted"]), int(state["labels_fitted"])
        self.rng.bit_generator.state = state["rng"]
        self.normalizer.shift, self.normalizer.scale = state["normalizer"]["shift"], state["normalizer"]["scale"]

    def _accuracy_on(self, first: list[Segment], second: list[Segment], labels: Labels) -> float:
        keep = ~labels.skipped
        if not keep.any():
            return float("nan")
        pairs = stack_pairs([f for f, k in zip(first, keep) if k], [s for s, k in zip(second, keep) if k],
                            labels.p[keep])
        r1 = self.reward_model.predict(pairs.obs1, pairs.act1).sum(-1)
        r2 = self.reward_model.predict(pairs.obs2, pairs.act2).sum(-1)
        return pair_accuracy(r1, r2, pairs.p)

    def reward_fn(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        """Normalised learned reward, what the agent trains on.

        With ``conservative_k > 0`` it is the pessimistic ``mean - k * std`` of the reward model
        (ensemble spread or Gaussian sigma), so the agent is not drawn to where the model is unsure.
        """
        if self.conservative_k == 0.0:
            return self.normalizer(self.reward_model.predict(obs, act))
        mean, std = self.reward_model.predict_std(obs, act)
        return self.normalizer(mean - self.conservative_k * std)

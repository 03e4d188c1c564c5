"""A reward model restricted to observations: ``r(s)`` instead of ``r(s, a)``.

Why: fitted on a few hundred or thousand offline labels, an ``r(s, a)`` model readily explains preferences by the
*actions* of the compared segments (behaviour types differ in their actions), and IQL's advantage weights then follow
those action features rather than progress in the task. Measured on drawer-open at a small scale (README,
``algo.reward_inputs``; 3 seeds): P-IQL with ``r(s, a)`` stayed below a random policy, with ``r(s)`` it reached 50%
success. Any :class:`~pbrl.types.RewardModel` is wrapped: its action inputs are replaced by zeros when it is fitted
and queried.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from pbrl.types import PairBatch, RewardModel


class ObsOnlyReward:
    """``model`` seeing observations only (zero actions), with the same interface."""

    def __init__(self, model: RewardModel) -> None:
        self.model = model

    def fit(self, pairs: PairBatch, *, epochs: int, stop_at_acc: Optional[float] = None,
            on_epoch: Optional[Callable[[dict[str, float]], None]] = None) -> dict[str, float]:
        hidden = pairs._replace(act1=np.zeros_like(pairs.act1), act2=np.zeros_like(pairs.act2))
        return self.model.fit(hidden, epochs=epochs, stop_at_acc=stop_at_acc, on_epoch=on_epoch)

    def predict(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        return self.model.predict(obs, np.zeros_like(np.asarray(act, np.float32)))

    def predict_std(self, obs: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.model.predict_std(obs, np.zeros_like(np.asarray(act, np.float32)))

    def segment_return_samples(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        return self.model.segment_return_samples(obs, np.zeros_like(np.asarray(act, np.float32)))

    def state_dict(self) -> dict[str, Any]:
        return self.model.state_dict()  # type: ignore[attr-defined]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state)  # type: ignore[attr-defined]

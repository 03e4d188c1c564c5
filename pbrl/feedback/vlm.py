"""A vision-language model as the feedback source (``feedback=vlm``): prefer the segment CLIP scores higher.

Like RL-VLM-F/VLM-RM-style labelling, but with the VLM-RM score (:mod:`pbrl.rewards.vlm`) rather than a
generative VLM: a segment's score is its mean per-frame VLM reward, and a pair whose scores differ by
less than ``margin`` is labelled equal (0.5), as a B-Pref teacher's equal threshold.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from pbrl.data.trajectory import Segment
from pbrl.feedback.labeller import Labeller
from pbrl.types import EQUAL, FIRST_BETTER, SECOND_BETTER, Labels, PbrlError

#: Name of the per-step VLM reward term that :class:`pbrl.rewards.wrappers.LearnedRewardVecEnv` records.
VLM_TERM = "vlm"

FrameReward = Callable[[np.ndarray], np.ndarray]


class VLMLabeller(Labeller):
    """Labels pairs by mean VLM reward; the scores come from the segments' ``terms["vlm"]`` (computed once
    per episode by the env wrapper) or, for segments that carry frames but no such term, from ``reward``
    in one batch over all those frames.

    Args:
        reward: frames ``(B, H, W, 3)`` uint8 -> ``(B,)`` rewards (a :class:`pbrl.rewards.vlm.ClipReward`),
            or None when every segment carries the ``vlm`` term.
        margin: score difference below which the pair is labelled equal.
    """

    def __init__(self, reward: Optional[FrameReward], *, margin: float = 0.0) -> None:
        if not margin >= 0.0:
            raise PbrlError(f"feedback.margin: expected a number >= 0, got {margin}")
        self.reward, self.margin = reward, float(margin)

    def scores(self, segments: Sequence[Segment]) -> np.ndarray:
        """Mean VLM reward per segment; NaN where a segment has neither the term nor frames."""
        out = np.full(len(segments), np.nan, dtype=np.float64)
        need = []
        for k, seg in enumerate(segments):
            if VLM_TERM in seg.terms:
                out[k] = float(np.mean(seg.terms[VLM_TERM]))
            elif seg.frames is not None:
                need.append(k)
        if need:
            if self.reward is None:
                raise PbrlError("feedback=vlm: segments carry frames but no VLM model was given to score them")
            frames = np.concatenate([segments[k].frames for k in need])
            per_frame = np.asarray(self.reward(frames), dtype=np.float64)
            bounds = np.cumsum([0] + [len(segments[k].frames) for k in need])
            for j, k in enumerate(need):
                out[k] = per_frame[bounds[j]:bounds[j + 1]].mean()
        return out

    def label(self, first: Sequence[Segment], second: Sequence[Segment]) -> Labels:
        """P(first preferred): 1 / 0 by the higher score, 0.5 within ``margin``; skipped without scores."""
        if len(first) != len(second):
            raise PbrlError(f"feedback=vlm: {len(first)} first segments but {len(second)} second ones")
        s = self.scores(list(first) + list(second))
        s1, s2 = s[:len(first)], s[len(first):]
        skipped = ~(np.isfinite(s1) & np.isfinite(s2))
        if len(first) and skipped.all():
            raise PbrlError(
                "feedback=vlm: no segment has VLM scores or frames; the env must render frames "
                "(pbrl enables this for feedback=vlm; check that the task can render)"
            )
        diff = np.where(skipped, 0.0, s1 - s2)
        p = np.where(diff > self.margin, FIRST_BETTER, np.where(diff < -self.margin, SECOND_BETTER, EQUAL))
        return Labels(p=p.astype(np.float32), skipped=skipped)

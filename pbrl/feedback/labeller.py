"""What every feedback source is to the online loop: a :class:`Labeller`, with its optional hooks declared once.

The loop (:class:`pbrl.agents.preference.FeedbackLoop`) calls every hook on every labeller; the defaults do
nothing, so a labeller overrides only what it uses, and the loop never asks ``hasattr``:

============================  ==========================================================================
hook                          used by
============================  ==========================================================================
:meth:`~Labeller.set_margin`  scripted B-Pref teachers: skip/equal thresholds scale with the mean return
:meth:`~Labeller.set_pool`    HERON (factor std over the candidates), PEARL transfer (aligned segments)
``initial_pairs``             labels offered once per run outside the budget (target pool pairs)
``unfinished_pairs``          the human viewer: the round a killed run left queued is answered first
``stores_labels``             the human viewer commits each answer itself; the loop must not store them
``state_dict``                PEARL transfer: its remembered target labels survive a resume
``session_metrics``           PEARL transfer: the last session's reliability, a metrics.csv column
============================  ==========================================================================
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Optional, Sequence

import numpy as np

from pbrl.data.trajectory import Segment
from pbrl.types import Labels, PbrlError

#: ``initial_pairs``' answer: first segments, second segments and their labels.
OfferedPairs = tuple[list[Segment], list[Segment], Labels]


class Labeller(abc.ABC):
    """Anything that answers queries "is ``first[i]`` better than ``second[i]``?": scripted teachers, HERON,
    PEARL transfer, a VLM, a person through the viewer."""

    #: True when :meth:`label` commits each answer to the run's store itself (the human viewer).
    stores_labels: ClassVar[bool] = False

    @abc.abstractmethod
    def label(self, first: Sequence[Segment], second: Sequence[Segment]) -> Labels:
        """Answers in pbrl's label convention (``p = P(first preferred)``, skipped queries masked)."""

    def set_margin(self, mean_segment_return: float) -> None:
        """The mean ``|return|`` of this session's candidate segments, before they are asked (B-Pref)."""

    def set_pool(self, candidates: Sequence[Segment]) -> None:
        """All candidate segments of this session, before the selected pairs are asked."""

    def initial_pairs(self, rng: np.random.Generator, segment_length: int) -> Optional[OfferedPairs]:
        """Labelled pairs offered once per run, stored outside the label budget (None: none offered)."""
        return None

    def unfinished_pairs(self) -> Optional[tuple[list[Segment], list[Segment]]]:
        """Pairs asked before a restart and not all answered yet, to be asked again first (None: none)."""
        return None

    def session_metrics(self) -> dict[str, Any]:
        """Columns about the last session for the run's metrics rows (none by default)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to label as the killed one would have (nothing by default)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; a labeller without state accepts only an empty one."""
        if state:
            raise PbrlError(f"{type(self).__name__}: the checkpoint holds labeller state {sorted(state)}, but this "
                            "labeller keeps none (was the run resumed with another feedback source?)")


def check_labeller(labeller: Any) -> Labeller:
    """``labeller`` itself, or a one-line error when it is not a :class:`Labeller`."""
    if not isinstance(labeller, Labeller):
        raise PbrlError(f"labeller: expected a pbrl.feedback.labeller.Labeller (subclass it; its optional hooks "
                        f"default to doing nothing), got {type(labeller).__name__}")
    return labeller

"""Feedback sources (:class:`Labeller`: scripted B-Pref teachers, HERON ranking, PEARL transfer, VLM, a person)
and query selection."""

from pbrl.feedback.heron import HeronFactor, HeronLabeller
from pbrl.feedback.labeller import Labeller
from pbrl.feedback.query import STRATEGIES, select_pairs
from pbrl.feedback.teachers import PRESETS, ScriptedTeacher, TeacherSpec, teacher_from_preset
from pbrl.feedback.transfer import TransferLabeller

__all__ = ["HeronFactor", "HeronLabeller", "Labeller", "TransferLabeller", "PRESETS", "STRATEGIES", "ScriptedTeacher",
           "TeacherSpec", "select_pairs", "teacher_from_preset"]

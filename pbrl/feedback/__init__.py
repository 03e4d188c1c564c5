"""Feedback sources (scripted B-Pref teachers, HERON ranking, PEARL transfer) and query selection."""

from pbrl.feedback.heron import HeronFactor, HeronLabeller
from pbrl.feedback.query import STRATEGIES, select_pairs
from pbrl.feedback.teachers import PRESETS, ScriptedTeacher, TeacherSpec, teacher_from_preset
from pbrl.feedback.transfer import TransferLabeller

__all__ = ["HeronFactor", "HeronLabeller", "TransferLabeller", "PRESETS", "STRATEGIES", "ScriptedTeacher", "TeacherSpec", "select_pairs", "teacher_from_preset"]

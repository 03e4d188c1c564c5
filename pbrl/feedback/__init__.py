"""Feedback sources (scripted B-Pref teachers) and query selection."""

from pbrl.feedback.query import STRATEGIES, select_pairs
from pbrl.feedback.teachers import PRESETS, ScriptedTeacher, TeacherSpec, teacher_from_preset

__all__ = ["PRESETS", "STRATEGIES", "ScriptedTeacher", "TeacherSpec", "select_pairs", "teacher_from_preset"]

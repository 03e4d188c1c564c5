"""PoolPairs: any teacher labels pairs of a task-segment pool once, outside the budget (true-label reference)."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from pbrl.agents.preference import INITIAL_ANNOTATOR
from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Segment
from pbrl.envs.tasks import load_task
from pbrl.feedback.pool import PoolPairs
from pbrl.feedback.teachers import ScriptedTeacher, teacher_from_preset
from pbrl.feedback.transfer_data import true_return_labels
from pbrl.resources import resource_dir
from pbrl.run.builder import build_labeller
from pbrl.types import PbrlError
from tiny_parts import tiny_episode, tiny_feedback


def _segments(n: int, length: int, seed: int) -> list[Segment]:
    rng = np.random.default_rng(seed)
    return [Segment(obs=rng.normal(size=(length, 2)).astype(np.float32), acts=np.zeros((length, 1), np.float32),
                    rewards=rng.normal(size=length).astype(np.float32)) for _ in range(n)]


def _feedback(labeller, store: PreferenceStore, segment_length: int = 3):
    return tiny_feedback(labeller, store, source="scripted", max_labels=4, per_round=2, segment_length=segment_length)


def test_scripted_pool_pairs_are_true_labels_stored_once_outside_the_budget(tmp_path):
    pool = _segments(20, 3, seed=1)
    labeller = PoolPairs(teacher_from_preset("oracle", rng=np.random.default_rng(0)), pool, pool_pairs=15)
    episode = tiny_episode(2)
    with PreferenceStore(tmp_path / "run.sqlite") as store:
        feedback = _feedback(labeller, store)
        assert feedback.round([episode]).asked == 2
        rows = store.labels(sources=["scripted"])
        initial = [r for r in rows if r.annotator == INITIAL_ANNOTATOR]
        assert len(initial) == 15 and feedback.labels_used == 2 and feedback.budget_left == 2
        segs = dict(zip(store.segment_ids(), store.get_segments(store.segment_ids())))
        truth = true_return_labels([segs[r.first_id] for r in initial], [segs[r.second_id] for r in initial])
        np.testing.assert_array_equal(np.array([r.label for r in initial]), truth)  # the teacher's own answers
        assert _feedback(labeller, store).seed_initial_pairs() == 0  # a resumed run does not add them again
    with PreferenceStore(tmp_path / "other.sqlite") as store:
        with pytest.raises(PbrlError, match="feedback.target_pool: segments of 3 steps; this run uses segment_length=4"):
            _feedback(labeller, store, segment_length=4).round([episode])
        assert store.count_labels() == 0
    with pytest.raises(PbrlError, match="feedback.pool_pairs: expected > 0"):
        PoolPairs(labeller.inner, pool, pool_pairs=0)


def test_feedback_scripted_builds_the_pool_from_config(tmp_path):
    with PreferenceStore(tmp_path / "pool.sqlite") as store:
        store.add_segments(_segments(6, 3, seed=3))
    fb = OmegaConf.load(resource_dir("configs") / "feedback" / "scripted.yaml")
    cfg = OmegaConf.create({"feedback": fb})
    labeller, source = build_labeller(cfg, load_task("halfcheetah"), np.random.default_rng(0))
    assert source == "scripted" and isinstance(labeller, ScriptedTeacher)  # no pool: the plain teacher, which
    assert labeller.initial_pairs(np.random.default_rng(0), 3) is None  # offers no pairs of its own
    cfg.feedback.target_pool, cfg.feedback.pool_pairs = str(tmp_path / "pool.sqlite"), 4
    labeller, _ = build_labeller(cfg, load_task("halfcheetah"), np.random.default_rng(0))
    first, second, labels = labeller.initial_pairs(np.random.default_rng(0), 3)
    assert len(first) == len(second) == len(labels.p) == 4
    cfg.feedback.pool_pairs = 0
    with pytest.raises(PbrlError, match="feedback.pool_pairs"):
        build_labeller(cfg, load_task("halfcheetah"), np.random.default_rng(0))

"""The Labeller contract: every feedback source declares the online loop's optional hooks, which default to nothing."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest

import pbrl.feedback
from pbrl.agents.preference import FeedbackLoop, FeedbackSchedule
from pbrl.data.store import PreferenceStore
from pbrl.feedback.labeller import Labeller
from pbrl.feedback.pool import PoolPairs
from pbrl.feedback.teachers import teacher_from_preset
from pbrl.rewards.ensemble import EnsembleReward
from pbrl.types import Labels, PbrlError
from tiny_parts import tiny_episode


class Recording(Labeller):
    """Labels by true return and records every hook the loop calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def label(self, first, second) -> Labels:
        self.calls.append(("label", len(first)))
        r1, r2 = np.array([s.true_return for s in first]), np.array([s.true_return for s in second])
        return Labels(p=(r1 > r2).astype(np.float32), skipped=np.zeros(len(first), bool))

    def set_margin(self, mean_segment_return: float) -> None:
        self.calls.append(("set_margin", mean_segment_return))

    def set_pool(self, candidates) -> None:
        self.calls.append(("set_pool", list(candidates)))


def _loop(labeller, store, **kw) -> FeedbackLoop:
    return FeedbackLoop(reward_model=EnsembleReward(2, 1, n_members=1, hidden=(8,), seed=0), labeller=labeller,
                        store=store, source="scripted", rng=np.random.default_rng(0),
                        schedule=FeedbackSchedule(max_labels=4, per_round=2, every=1, segment_length=3,
                                                  strategy="uniform", reward_epochs=1, oversample=2), **kw)


def test_every_feedback_source_is_a_labeller() -> None:
    """Any class in pbrl.feedback that answers queries subclasses Labeller (the loop never probes with hasattr)."""
    answering = set()
    for info in pkgutil.iter_modules(pbrl.feedback.__path__):
        module = importlib.import_module(f"pbrl.feedback.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and "label" in vars(cls):
                answering.add(cls.__name__)
                assert issubclass(cls, Labeller), cls
    assert {"ScriptedTeacher", "HeronLabeller", "TransferLabeller", "HumanLabeller", "VLMLabeller",
            "PoolPairs"} <= answering


def test_the_loop_calls_each_hook_and_the_defaults_do_nothing(tmp_path) -> None:
    labeller = Recording()
    with PreferenceStore(tmp_path / "s.sqlite") as store:
        loop = _loop(labeller, store)
        result = loop.round([tiny_episode(i) for i in range(3)])
        assert loop.seed_initial_pairs() == 0  # the default offers no pairs
        n_stored = store.count_labels(include_skipped=True)
    names = [name for name, _ in labeller.calls]
    assert names == ["set_margin", "set_pool", "label"]
    margin, pool = labeller.calls[0][1], labeller.calls[1][1]
    assert len(pool) == 2 * 2 * 2  # candidates: 2 per query x 2 queries x oversample 2
    assert margin == pytest.approx(np.mean([abs(s.true_return) for s in pool]))  # B-Pref's margin, by hand
    assert result.asked == labeller.calls[2][1] == 2 and n_stored == 2  # stores_labels False: the loop stores them
    assert (labeller.initial_pairs(np.random.default_rng(0), 3), labeller.unfinished_pairs()) == (None, None)
    assert labeller.session_metrics() == {} and labeller.state_dict() == {}


def test_something_that_is_not_a_labeller_is_refused(tmp_path) -> None:
    class DuckTyped:
        def label(self, first, second) -> Labels:
            raise AssertionError("never asked")

    with PreferenceStore(tmp_path / "s.sqlite") as store:
        for bad in (DuckTyped(), None):
            with pytest.raises(PbrlError, match=f"labeller: expected a pbrl.feedback.labeller.Labeller .*got "
                                                f"{type(bad).__name__}"):
                _loop(bad, store)
    with pytest.raises(TypeError, match="abstract"):
        Labeller()


def test_a_labeller_without_state_refuses_a_foreign_one() -> None:
    teacher = teacher_from_preset("oracle", rng=np.random.default_rng(0))
    teacher.load_state_dict({})  # what its own checkpoint holds
    with pytest.raises(PbrlError, match=r"ScriptedTeacher: the checkpoint holds labeller state \['calls', 'p'\]"):
        teacher.load_state_dict({"p": [1.0], "calls": 3})


def test_pool_pairs_hands_every_hook_to_the_wrapped_labeller() -> None:
    teacher = teacher_from_preset("equal", rng=np.random.default_rng(0))  # eps_equal = 0.1
    pool = [tiny_episode(i).segment(0, 3) for i in range(4)]
    wrapped = PoolPairs(teacher, pool, pool_pairs=2)
    wrapped.set_margin(10.0)
    assert teacher.thresholds() == (0.0, pytest.approx(1.0))  # 0.1 x the margin set through the wrapper

    class Stateful(Recording):
        stores_labels = True

        def state_dict(self) -> dict:
            return {"seen": 1}

        def session_metrics(self) -> dict:
            return {"reliable": 1.0}

        def unfinished_pairs(self):
            return pool[:1], pool[1:2]

    inner = Stateful()
    wrapped = PoolPairs(inner, pool, pool_pairs=2)
    wrapped.set_pool(pool)
    assert inner.calls == [("set_pool", pool)] and wrapped.stores_labels
    assert (wrapped.state_dict(), wrapped.session_metrics()) == ({"seen": 1}, {"reliable": 1.0})
    assert wrapped.unfinished_pairs() == (pool[:1], pool[1:2])
    first, second, labels = wrapped.initial_pairs(np.random.default_rng(0), 3)
    assert len(first) == len(second) == labels.n_answered == 2 and inner.calls[-1] == ("label", 2)

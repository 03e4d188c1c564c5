"""Declared observation slices: parsed from task YAMLs, used only where both tasks declare them (by hand)."""

from __future__ import annotations

import numpy as np
import pytest

from pbrl.data.trajectory import Segment
from pbrl.envs.tasks import list_tasks, load_task, parse_obs_slices, task_from_dict
from pbrl.feedback.declared import check_layout, declared_matrix, fused_cost, parse_pairs, shared_features
from pbrl.types import PbrlError

FULL = {"hand": (0, 2), "object": (2, 4), "goal": (4, 6)}


def _seg(rows) -> Segment:
    obs = np.asarray(rows, np.float32)
    return Segment(obs=obs, acts=np.zeros((len(obs), 1), np.float32), rewards=np.zeros(len(obs), np.float32))


def test_declared_matrix_by_hand():
    # hand (0,0) -> (3,4); object fixed at (3,0); goal fixed at (3,4)
    s = _seg([[0, 0, 3, 0, 3, 4], [3, 4, 3, 0, 3, 4]])
    X = declared_matrix([s], FULL, [("hand", "object"), ("hand", "goal")])
    # |hand-object|: 3 then 4 -> mean 3.5, change +1 ; |hand-goal|: 5 then 0 -> mean 2.5, change -5
    np.testing.assert_allclose(X, [[3.5, 1.0, 2.5, -5.0]])


def test_only_names_both_tasks_declare_are_used():
    reach = {"hand": (0, 2), "goal": (4, 6)}  # no `object`: its obs[2:4] means nothing the reward uses
    feats = shared_features(["hand-object", "object-goal", "hand-goal"], reach, FULL, source_store="s.sqlite",
                            target_name="the run")
    assert feats.pairs == (("hand", "goal"),) and feats.names == ["hand-goal"]
    assert set(feats.source) == set(feats.target) == {"hand", "goal"}
    assert shared_features(["hand-object"], reach, FULL, source_store="s", target_name="t") is None
    assert shared_features(["hand-goal"], {}, FULL, source_store="s", target_name="t") is None  # MuJoCo: none
    with pytest.raises(PbrlError, match=r"target \(the run\) declares hand with 2 and goal with 3 dimensions"):
        shared_features(["hand-goal"], FULL, {"hand": (0, 2), "goal": (2, 5)}, source_store="s", target_name="the run")
    with pytest.raises(PbrlError, match="feedback.fused.features: expected 'a-b'"):
        parse_pairs(["hand"])


def test_fused_cost_is_shared_scale_and_checks_layout():
    feats = shared_features(["hand-goal"], FULL, FULL, source_store="s", target_name="pool.sqlite")
    near, far = _seg([[0, 0, 0, 0, 1, 0]] * 2), _seg([[0, 0, 0, 0, 4, 0]] * 2)
    C = fused_cost([near, far], [far, near], feats)
    # features (mean, change): near (1, 0), far (4, 0); pooled std makes both columns unit-scale, then / max
    np.testing.assert_allclose(C, [[1.0, 0.0], [0.0, 1.0]], atol=1e-6)
    with pytest.raises(PbrlError, match="target pool.sqlite has 3-dimensional observations.*obs_slices.goal"):
        fused_cost([near], [_seg([[0, 0, 0]] * 2)], feats)
    with pytest.raises(PbrlError, match="source store s.sqlite has 6-dimensional"):
        check_layout([near], {"goal": (36, 39)}, side="source", where="store s.sqlite")


@pytest.mark.parametrize("raw, match", [
    ({"hand": [3, 3]}, "obs_slices.hand"), ({"hand": [0, 1, 2]}, "obs_slices.hand"),
    ({"Hand": [0, 3]}, "obs_slices.Hand"), ({"hand": [-1, 3]}, "obs_slices.hand"),
    ({"hand": [0.0, 3]}, "obs_slices.hand"), ([0, 3], "must be a mapping"),
])
def test_bad_obs_slices_are_one_line(raw, match):
    with pytest.raises(PbrlError, match=match):
        parse_obs_slices(raw, source="task file x.yaml")
    with pytest.raises(PbrlError, match="obs_slices"):  # the task schema names the key too
        task_from_dict({"name": "x", "suite": "mujoco", "env_id": "X", "episode_length": 5, "reward_terms": ["r"],
                        "obs_slices": raw})


def test_shipped_tasks_declare_slices_only_where_meaningful():
    for name in list_tasks():
        task = load_task(name)
        if task.suite == "mujoco":
            assert task.obs_slices == {}  # joint angles: nothing shared with other tasks
        else:  # Meta-World: 39-d observations, hand xyz first, goal xyz last
            assert task.obs_slices["hand"] == (0, 3) and task.obs_slices["goal"] == (36, 39)
            assert all(stop <= 39 for _, stop in task.obs_slices.values())
    assert "object" not in load_task("reach").obs_slices  # reach's obs[4:7] is a puck its reward ignores
    assert load_task("drawer-open").obs_slices["object"] == (4, 7)

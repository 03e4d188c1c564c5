"""PEARL cross-task preference alignment: label arithmetic, GW alignment, source loading, errors, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Segment
from pbrl.feedback.ot import FeatureSpec, GWSettings, distance_matrix, segment_features
from pbrl.agents.preference import INITIAL_ANNOTATOR, PreferenceLearner
from pbrl.feedback.transfer import (GWConvergenceWarning, SourcePairs, TransferLabeller, load_source,
                                    load_target_pool, transfer_labeller, transfer_pair_labels)
from pbrl.feedback.transfer_data import true_return_labels, write_labelled_store
from pbrl.feedback.teachers import teacher_from_preset
from pbrl.testing import tiny_episode, tiny_learner
from pbrl.types import PbrlError


def point_segment(xy: np.ndarray, reward: float) -> Segment:
    obs = np.repeat(np.asarray(xy, np.float32)[None], 3, axis=0)
    return Segment(obs=obs, acts=np.zeros((3, 1), np.float32), rewards=np.full(3, reward / 3, np.float32))


def test_pair_labels_by_hand():
    src = SourcePairs(segments=[None] * 3, first=np.array([0, 1]), second=np.array([1, 2]), p=np.array([1.0, 0.25]))
    # Target 0 <-> source 0, target 1 <-> source 1, target 2 is half source 1, half source 2.
    T = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.0, 0.0, 0.5]])
    p, mass = transfer_pair_labels(T, src, np.array([0, 1, 2, 0]), np.array([1, 0, 1, 2]))
    # (0,1): 1.0 ; (1,0): reversed 0.0 ; (2,1): half (1,1) unlabelled, half (2,1) = 1-0.25 -> 0.75 ;
    # (0,2): half (0,1)=1.0, half (0,2) unlabelled -> 1.0
    np.testing.assert_allclose(p, [1.0, 0.0, 0.75, 1.0])
    np.testing.assert_allclose(mass, [1.0, 1.0, 0.5, 0.5])


TIGHT = {"epsilon": 1e-3, "max_iterations": 1, "threshold": 1e-12}  # stops before converging


def _clouds(n: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(n, 2)) * np.array([3.0, 1.0])  # anisotropic: no symmetric ambiguity left
    perm = rng.permutation(n)
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])
    source = [point_segment(p, p[0]) for p in pts]  # reward = x coordinate
    target = [point_segment(pts[i] @ rot.T + 5.0, pts[i][0]) for i in perm]  # rotated, shifted, shuffled copy
    return source, target


def test_gw_transfers_labels_to_a_rotated_shuffled_copy(rng):
    source, target = _clouds()
    first, second = rng.integers(0, 24, 200), rng.integers(0, 24, 200)
    keep = first != second
    src = SourcePairs(source, first[keep], second[keep], true_return_labels(
        [source[i] for i in first[keep]], [source[i] for i in second[keep]]))
    lab = TransferLabeller(src, features=FeatureSpec(kind="mean", standardize=False), anchor="none",
                           gw=GWSettings(epsilon=1e-3, max_iterations=100))
    a, b = [target[i] for i in range(0, 24, 2)], [target[i] for i in range(1, 24, 2)]
    labels = lab.label(a, b)
    truth = true_return_labels(a, b)
    assert np.mean((labels.p > 0.5) == (truth > 0.5)) >= 0.9
    assert labels.weight is not None and labels.weight.shape == (12,) and labels.weight.min() >= 0
    report = lab.reports[-1]
    assert report["converged"] and report["n_source"] == 24 and report["n_target"] == 24 and report["epsilon"] == 1e-3


def test_nonconvergence_warns_or_raises():
    source, target = _clouds(12)
    src = SourcePairs(source, np.array([0, 1]), np.array([1, 2]), np.array([1.0, 0.0]))
    tight = GWSettings(**TIGHT)
    lab = TransferLabeller(src, features=FeatureSpec(kind="mean"), gw=tight, anchor="none")
    with pytest.warns(GWConvergenceWarning, match="did not converge in 1 iterations"):
        lab.label(target[:2], target[2:4])
    assert lab.reports[-1]["converged"] is False
    strict = TransferLabeller(src, features=FeatureSpec(kind="mean"), gw=tight, anchor="none",
                              on_nonconvergence="error")
    with pytest.raises(PbrlError, match="did not converge"):
        strict.label(target[:2], target[2:4])


def test_load_source_and_few_shot(tmp_path, rng):
    source, target = _clouds(12)
    write_labelled_store(tmp_path / "src.sqlite", source, n_pairs=60, labeller=teacher_from_preset("oracle", rng=rng),
                         rng=rng).close()
    src = load_source(tmp_path / "src.sqlite", max_segments=8, rng=rng)
    assert 2 <= len(src.segments) <= 8 and len(src.first) >= 1
    assert src.first.max() < len(src.segments) and src.second.max() < len(src.segments)
    # The same solver settings and sizes as test_nonconvergence_warns_or_raises: one compilation for both.
    lab = transfer_labeller(source_store=str(tmp_path / "src.sqlite"), max_source=12, source_sources=None,
                            features={"kind": "mean"}, gw=TIGHT, anchor="none", max_target=100,
                            confidence="none", on_nonconvergence="warn", target_labels=1, rng=rng,
                            target_teacher=teacher_from_preset("oracle", rng=rng))
    assert len(lab.source.segments) == 12
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GWConvergenceWarning)
        labels = lab.label(target[:2], target[2:4])
    assert labels.p[0] == true_return_labels(target[:1], target[2:3])[0]  # the few-shot (true) label
    assert labels.weight.tolist() == [1.0, 1.0] and not labels.skipped.any()


@pytest.mark.parametrize("kwargs, match", [
    ({"source_store": None}, "feedback.source_store: expected the path"),
    ({"source_store": "/nonexistent/x.sqlite"}, "no such file"),
    ({"features": {"kind": "fourier"}}, "feedback.features.kind"),
    ({"gw": {"epsilon": 0}}, "feedback.gw.epsilon"),
    ({"gw": {"eps": 0.1}}, "unexpected keyword"),
    ({"anchor": "elbow"}, "feedback.anchor"),
])
def test_bad_config_is_one_line(tmp_path, rng, kwargs, match):
    source, _ = _clouds(8)
    write_labelled_store(tmp_path / "s.sqlite", source, n_pairs=10, labeller=teacher_from_preset("oracle", rng=rng),
                         rng=rng).close()
    args = dict(source_store=str(tmp_path / "s.sqlite"), max_source=100, source_sources=None, features={}, gw={},
                anchor="none", max_target=100, confidence="agreement", on_nonconvergence="warn", target_labels=0,
                rng=rng)
    with pytest.raises(PbrlError, match=match):
        transfer_labeller(**{**args, **kwargs})


def _pool_labeller(n: int = 24, **kw) -> tuple[TransferLabeller, list[Segment]]:
    """Source = the point cloud with its true labels; the target pool = its rotated, shuffled copy."""
    source, target = _clouds(n)
    rng = np.random.default_rng(3)
    first, second = rng.integers(0, n, 300), rng.integers(0, n, 300)
    keep = first != second
    src = SourcePairs(source, first[keep], second[keep], true_return_labels(
        [source[i] for i in first[keep]], [source[i] for i in second[keep]]))
    lab = TransferLabeller(src, features=FeatureSpec(kind="mean", standardize=False), anchor="none",
                           gw=GWSettings(epsilon=1e-3, max_iterations=100), target_pool=target, **kw)
    return lab, target


def test_target_pool_joins_the_alignment_and_labels_its_own_pairs():
    lab, pool = _pool_labeller(pool_pairs=40)
    first, second, labels = lab.initial_pairs(np.random.default_rng(0), 3)
    assert len(first) == len(second) == 40 and labels.weight.shape == (40,)
    truth = true_return_labels(first, second)
    assert np.mean((labels.p > 0.5) == (truth > 0.5)) >= 0.9  # the pool's structure carries the source labels
    assert lab.reports[-1]["n_target"] == 24  # every pool segment aligned once (queried ones not twice)
    # Two queried segments off the pool: aligned together with all 24 pool segments.
    outside = [point_segment([9.0, 9.0], 0.0), point_segment([-9.0, 9.0], 1.0)]
    lab.label(outside[:1], outside[1:])
    assert lab.reports[-1]["n_target"] == 26
    with pytest.raises(PbrlError, match="feedback.pool_pairs"):
        TransferLabeller(lab.source, pool_pairs=5)  # pairs of a pool that is not there


def test_load_target_pool_reads_segments_not_labels(tmp_path, rng):
    _, target = _clouds(12)
    with PreferenceStore(tmp_path / "pool.sqlite") as store:  # unlabelled segments are enough
        store.add_segments(target)
    pool = load_target_pool(tmp_path / "pool.sqlite", max_segments=5, rng=rng)
    assert len(pool) == 5 and all(s.obs.shape == (3, 2) for s in pool)
    assert len(load_target_pool(tmp_path / "pool.sqlite", max_segments=100, rng=rng)) == 12
    with PreferenceStore(tmp_path / "one.sqlite") as store:
        store.add_segments(target[:1])
    with pytest.raises(PbrlError, match="feedback.target_pool: .* holds 1 segment"):
        load_target_pool(tmp_path / "one.sqlite", max_segments=5, rng=rng)


def _learner(lab: TransferLabeller, store: PreferenceStore, segment_length: int = 3) -> PreferenceLearner:
    return tiny_learner(lab, store, source="transfer", max_labels=6, per_round=3, segment_length=segment_length)


def test_learner_stores_pool_pairs_once_outside_the_budget(tmp_path):
    lab, _ = _pool_labeller(pool_pairs=30)
    episode = tiny_episode(1)
    with PreferenceStore(tmp_path / "run.sqlite") as store:
        learner = _learner(lab, store)
        assert learner.round([episode]).asked == 3
        rows = store.labels(sources=["transfer"])
        assert sum(r.annotator == INITIAL_ANNOTATOR for r in rows) == 30 and len(rows) == 33
        assert learner.labels_used == 3 and learner.budget_left == 3
        learner.round([episode])
        resumed = _learner(lab, store)  # a resumed run finds them and does not add them again
        assert resumed.seed_initial_pairs() == 0
        assert store.count_labels(sources=["transfer"]) == 36 and resumed.labels_used == 6
    with PreferenceStore(tmp_path / "other.sqlite") as store:
        with pytest.raises(PbrlError, match="feedback.target_pool: segments of 3 steps; this run uses segment_length=4"):
            _learner(lab, store, segment_length=4).round([episode])
        assert store.count_labels() == 0  # nothing half-written


def test_features_and_distances():
    segs = [point_segment([x, 0.0], 0.0) for x in (0.0, 1.0, 3.0)]
    D = distance_matrix(segment_features(segs, FeatureSpec(kind="mean", standardize=False)), "euclidean")
    np.testing.assert_allclose(D, np.array([[0, 1, 3], [1, 0, 2], [3, 2, 0]]) / 3, atol=1e-6)
    assert segment_features(segs, FeatureSpec(kind="flat", stride=2)).shape == (3, 4)
    with pytest.raises(PbrlError, match="feedback.features.metric"):
        FeatureSpec(metric="manhattan")


@pytest.mark.slow  # builds a Meta-World source store, then a tiny PEBBLE run with the Gaussian reward
def test_train_feedback_transfer_end_to_end(tmp_path: Path):
    from pbrl.envs.tasks import load_task
    from pbrl.feedback.transfer_data import noisy_expert_segments

    rng = np.random.default_rng(0)
    segs = noisy_expert_segments(load_task("button-press"), n_episodes=5, episode_length=60, segment_length=20,
                                 per_episode=6, seed=0)
    write_labelled_store(tmp_path / "src.sqlite", segs, n_pairs=100, labeller=teacher_from_preset("oracle", rng=rng),
                         rng=rng).close()
    with PreferenceStore(tmp_path / "pool.sqlite") as pool:  # unlabelled target-task segments (PEARL's setting)
        pool.add_segments(noisy_expert_segments(load_task("button-press-topdown"), n_episodes=4, episode_length=60,
                                                segment_length=20, per_episode=6, seed=1))
    res = subprocess.run([sys.executable, "-m", "pbrl.cli", "train", f"out={tmp_path}/run", "task=button-press-topdown",
                          "feedback=transfer", f"feedback.source_store={tmp_path}/src.sqlite", "reward=gaussian",
                          f"feedback.target_pool={tmp_path}/pool.sqlite", "feedback.pool_pairs=40",
                          "episode_length=100", "segment_length=20", "budget.labels=10", "budget.per_round=10",
                          "budget.every=200", "budget.env_steps=400", "algo.seed_steps=200", "algo.sac.batch_size=32",
                          "algo.sac.policy_kwargs.net_arch=[32,32]", "eval.every=400", "eval.episodes=1",
                          "eval.final_episodes=1", "eval.video=false", "eval.reward_pairs=50", "checkpoint_every=400",
                          "reward.epochs=3", "reward.model.hidden=[32,32]", "threads=1"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "PEARL CPA: GW" in (tmp_path / "run" / "train.log").read_text()  # epsilon, iterations, convergence
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["feedback"] == "transfer" and summary["labels_used"] == 10
    with PreferenceStore(tmp_path / "run" / "store.sqlite", create=False) as store:
        rows = store.labels(sources=["transfer"])
        assert len(rows) == 50 and all(0.0 <= r.label <= 1.0 and 0.0 <= r.weight <= 1.0 for r in rows)
        assert sum(r.annotator == INITIAL_ANNOTATOR for r in rows) == 40  # the pool's pairs, outside the budget

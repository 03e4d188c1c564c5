"""PEARL cross-task preference alignment: label arithmetic, GW alignment, orientation by target labels,
reliability, refusals, source loading, CLI."""

from __future__ import annotations

import dataclasses
import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

from checks import true_order_agreement
from cli_runs import TINY_TRAIN, run_cli
from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Segment
from pbrl.feedback.few_shot import FewShotSettings
from pbrl.feedback.ot import FeatureSpec, GWSettings, distance_matrix, segment_features
from pbrl.agents.preference import INITIAL_ANNOTATOR, FeedbackLoop
from pbrl.feedback.pool import load_target_pool
from pbrl.feedback.transfer import (GWConvergenceWarning, SourcePairs, TransferLabeller, TransferReliabilityWarning,
                                    load_source, transfer_labeller, transfer_pair_labels)
from pbrl.feedback.transfer_data import true_return_labels, write_labelled_store
from pbrl.feedback.teachers import teacher_from_preset
from pbrl.types import PbrlError
from tiny_parts import tiny_episode, tiny_feedback


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
    lab = TransferLabeller(src, features=FeatureSpec(kind="mean", standardize=False),
                           gw=GWSettings(epsilon=1e-3, max_iterations=100))
    a, b = [target[i] for i in range(0, 24, 2)], [target[i] for i in range(1, 24, 2)]
    labels = lab.label(a, b)
    truth = true_return_labels(a, b)
    assert np.mean((labels.p > 0.5) == (truth > 0.5)) >= 0.9
    assert labels.weight is not None and labels.weight.shape == (12,) and labels.weight.min() >= 0
    report = lab.reports[-2]  # plain/product, then plain/mirror
    assert report["plan"] == "plain/product" and lab.reports[-1]["plan"] == "plain/mirror"
    assert report["converged"] and report["n_source"] == 24 and report["n_target"] == 24 and report["epsilon"] == 1e-3
    rel = lab.reliability  # zero-shot, and no declared features: unverified at best
    assert rel.status in ("unverified", "unreliable") and rel.n_labels == 0 and rel.chosen == "plain/product"


def test_nonconvergence_warns_or_raises():
    source, target = _clouds(12)
    src = SourcePairs(source, np.array([0, 1]), np.array([1, 2]), np.array([1.0, 0.0]))
    tight = GWSettings(**TIGHT)
    lab = TransferLabeller(src, features=FeatureSpec(kind="mean"), gw=tight)
    with pytest.warns(GWConvergenceWarning, match=r"\(plain/product\) did not converge in 1 iterations"):
        lab.label(target[:2], target[2:4])
    assert lab.reports[-1]["converged"] is False
    strict = TransferLabeller(src, features=FeatureSpec(kind="mean"), gw=tight, on_nonconvergence="error")
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
    with pytest.warns(UserWarning, match="holds only 60 answered labels"):
        lab = transfer_labeller(source_store=str(tmp_path / "src.sqlite"), max_source=12, features={"kind": "mean"},
                                gw=TIGHT, max_target=100, confidence="none", target_labels=1, rng=rng,
                                target_teacher=teacher_from_preset("oracle", rng=rng))
    assert len(lab.source.segments) == 12
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GWConvergenceWarning)
        warnings.simplefilter("ignore", TransferReliabilityWarning)
        labels = lab.label(target[:2], target[2:4])
    assert labels.p[0] == true_return_labels(target[:1], target[2:3])[0]  # the few-shot (true) label
    assert labels.weight.tolist() == [1.0, 1.0] and not labels.skipped.any()
    assert len(lab.memory) == 1 and lab.reliability.n_labels == 1  # remembered: it chose the candidate


@pytest.mark.parametrize("kwargs, match", [
    ({"source_store": None}, "feedback.source_store: expected the path"),
    ({"source_store": "/nonexistent/x.sqlite"}, "no such file"),
    ({"features": {"kind": "fourier"}}, "feedback.features.kind"),
    ({"gw": {"epsilon": 0}}, "feedback.gw.epsilon"),
    ({"gw": {"eps": 0.1}}, "unexpected keyword"),
    ({"orientation": {"fused": "always"}}, "feedback.orientation.fused"),
    ({"orientation": {"flip": True}}, "unexpected keyword"),
    ({"on_unreliable": "ignore"}, "feedback.on_unreliable: expected warn | error"),
    ({"few_shot": {"model": "deep"}}, "feedback.few_shot.model: expected one of"),
    ({"few_shot": {"prior_weight": 0}}, "feedback.few_shot.prior_weight"),
    ({"few_shot": {"weight": 1}}, "feedback.few_shot: .*unexpected keyword"),
])
def test_bad_config_is_one_line(tmp_path, rng, kwargs, match):
    source, _ = _clouds(8)
    write_labelled_store(tmp_path / "s.sqlite", source, n_pairs=10, labeller=teacher_from_preset("oracle", rng=rng),
                         rng=rng).close()
    args = dict(source_store=str(tmp_path / "s.sqlite"), max_source=100, features={}, gw={}, max_target=100,
                confidence="agreement", on_nonconvergence="warn", target_labels=0, rng=rng, min_source_labels=0)
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
    lab = TransferLabeller(src, features=FeatureSpec(kind="mean", standardize=False),
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


def _line_pair(sign: float, n: int = 24):
    """Evenly spaced points on a line in both tasks (GW cannot tell x -> x from x -> 1 - x); source reward = x,
    target reward = sign * position. Returns the source pairs and the (shuffled) target segments."""
    xs = np.linspace(0.0, 1.0, n)
    rng = np.random.default_rng(1)
    source = [point_segment([x, 0.0], x) for x in xs]
    target = [point_segment([0.0, 3.0 * x], sign * x) for x in xs[rng.permutation(n)]]
    first, second = rng.integers(0, n, 300), rng.integers(0, n, 300)
    keep = first != second
    src = SourcePairs(source, first[keep], second[keep], true_return_labels(
        [source[i] for i in first[keep]], [source[i] for i in second[keep]]))
    return src, target


def _line_labeller(src, target, **kw) -> TransferLabeller:
    return TransferLabeller(src, features=FeatureSpec(kind="mean", standardize=False),
                            gw=GWSettings(epsilon=1e-3, max_iterations=100), target_pool=target, **kw)


def _accuracy(lab: TransferLabeller, target, rng) -> float:
    a, b = rng.integers(0, len(target), 200), rng.integers(0, len(target), 200)
    keep = a != b
    first, second = [target[i] for i in a[keep]], [target[i] for i in b[keep]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TransferReliabilityWarning)
        labels = lab.label(first, second)
    return float(np.mean((labels.p > 0.5) == (true_return_labels(first, second) > 0.5)))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_target_labels_choose_the_orientation_gw_cannot_see(sign):
    src, target = _line_pair(sign)
    zero = _line_labeller(src, target)
    with pytest.warns(TransferReliabilityWarning, match="unreliable: a GW solve started from the mirror image stays"):
        zero.label(target[:2], target[2:4])
    assert zero.reliability.status == "unreliable" and zero.reliability.mirror_agreement < 0.5
    strict = _line_labeller(src, target, on_unreliable="error")
    with pytest.raises(PbrlError, match=r"unreliable: .*\(feedback.on_unreliable=error\)"):
        strict.label(target[:2], target[2:4])
    # five true target labels per session: whichever way GW points, the labels pick the right candidate
    few = _line_labeller(src, target, target_labels=5, target_teacher=teacher_from_preset("oracle",
                                                                                        rng=np.random.default_rng(0)))
    assert _accuracy(few, target, np.random.default_rng(2)) >= 0.95
    rel = few.reliability
    assert rel.status == "verified" and rel.n_labels == 5 and rel.agreement >= 0.8
    assert rel.metrics()["transfer_labels"] == 5 and rel.gw_cost >= 0 and 0 <= rel.entropy <= 1


@pytest.mark.parametrize("model", ["linear", "none"])
def test_target_labels_fit_a_reward_where_no_alignment_fits(model):
    """Source labels that say nothing (random): every candidate is near chance, and choosing among them cannot
    help. The few-shot fit (the default) learns the target's order from 10 labels per session; choosing only
    (``few_shot.model=none``) stays near chance."""
    src, target = _line_pair(1.0)
    noise = np.random.default_rng(7).integers(0, 2, len(src.p)).astype(np.float64)
    src = dataclasses.replace(src, p=noise)
    lab = _line_labeller(src, target, target_labels=10, few_shot=FewShotSettings(model=model),
                         target_teacher=teacher_from_preset("oracle", rng=np.random.default_rng(0)))
    _accuracy(lab, target, np.random.default_rng(2))  # the first session: 10 labels remembered
    acc = _accuracy(lab, target, np.random.default_rng(3))
    if model == "linear":
        assert acc >= 0.9 and lab.reliability.chosen.endswith("+ linear fit")
        assert lab.reliability.status == "verified" and lab.reliability.agreement >= 0.8
    else:
        assert acc < 0.75 and "linear" not in lab.reliability.chosen


def test_remembered_target_labels_survive_a_resume():
    src, target = _line_pair(-1.0)
    teacher = teacher_from_preset("oracle", rng=np.random.default_rng(0))
    lab = _line_labeller(src, target, target_labels=4, target_teacher=teacher)
    _accuracy(lab, target, np.random.default_rng(3))
    _accuracy(lab, target, np.random.default_rng(4))
    assert len(lab.memory) == 8  # four per session, kept across sessions
    state = pickle.loads(pickle.dumps(lab.state_dict()))  # what the checkpoint keeps (components.pt, "labeller")
    resumed = _line_labeller(src, target)  # zero-shot from here on, but it remembers the 8 labels
    resumed.load_state_dict(state)
    assert _accuracy(resumed, target, np.random.default_rng(5)) >= 0.95
    assert resumed.reliability.n_labels == 8 and resumed.reliability.status == "verified"


def _store(path: Path, segments, n_pairs: int = 40) -> str:
    rng = np.random.default_rng(0)
    write_labelled_store(path, segments, n_pairs=n_pairs, labeller=teacher_from_preset("oracle", rng=rng),
                         rng=rng).close()
    return str(path)


def _with_task(segments, task: str):
    return [dataclasses.replace(s, task=task) for s in segments]


def test_refusals_name_both_sides(tmp_path, rng):
    from pbrl.envs.tasks import load_task

    source, target = _clouds(12)
    args = dict(max_source=100, rng=rng, min_source_labels=0, target_task=load_task("drawer-close"))
    src = _store(tmp_path / "src.sqlite", _with_task(source, "drawer-open"))
    with pytest.raises(PbrlError, match=r"feedback.source_store=.*src.sqlite: segments of \[3\] steps, but the run "
                                        r"\(task drawer-close\) uses segment_length=4: transfer between segment"):
        transfer_labeller(source_store=src, segment_length=4, **args)
    with PreferenceStore(tmp_path / "pool.sqlite") as store:
        store.add_segments([point_segment([0.0, 1.0], 0.0)] * 1 + [Segment(
            obs=np.zeros((4, 2), np.float32), acts=np.zeros((4, 1), np.float32), rewards=np.zeros(4, np.float32))])
    with pytest.raises(PbrlError, match=r"feedback.target_pool=.*pool.sqlite: segments of \[4\] steps, but "
                                        r"feedback.source_store=.*src.sqlite holds segments of \[3\] steps"):
        transfer_labeller(source_store=src, target_pool=str(tmp_path / "pool.sqlite"), **args)
    hopper = _store(tmp_path / "hopper.sqlite", _with_task(source, "hopper"))
    with pytest.raises(PbrlError, match=r"hopper.sqlite holds mujoco segments \(hopper\); the run \(task "
                                        r"drawer-close\) is a metaworld task \(drawer-close\): cross-suite"):
        transfer_labeller(source_store=hopper, **args)
    # drawer-open declares obs_slices up to index 39, but these observations have 2 dimensions
    with pytest.raises(PbrlError, match=r"source store .*src.sqlite has 2-dimensional observations, but its task "
                                        r"declares obs_slices"):
        transfer_labeller(source_store=src, **args)
    reach = _store(tmp_path / "reach.sqlite", _with_task(source, "reach"))
    with pytest.raises(PbrlError, match=r"fused=only: .*reach.sqlite \(reach\) and the run \(task drawer-close\) "
                                        r"\(drawer-close\) share no declared feature of \['hand-object'\]"):
        transfer_labeller(source_store=reach, orientation={"fused": "only"}, fused_features=["hand-object"], **args)
    with pytest.warns(UserWarning, match=r"source task\(s\) \['mystery'\] are not known tasks"):
        lab = transfer_labeller(source_store=_store(tmp_path / "m.sqlite", _with_task(source, "mystery")), **args)
    assert lab.declared is None and lab.plan_names == ["plain/product", "plain/mirror"]
    with pytest.warns(UserWarning, match=r"holds only 40 answered labels \(fewer than feedback.min_source_labels=500"):
        transfer_labeller(source_store=src, **{**args, "min_source_labels": 500, "orientation": {"fused": "off"}})


def test_declared_features_make_fused_candidates_first(tmp_path, rng):
    from pbrl.envs.tasks import load_task

    obs = lambda x: np.concatenate([[x, 0, 0, 0], [0.5, 0, 0], np.zeros(29), [1.0, 0, 0]])  # noqa: E731
    segs = [Segment(obs=np.repeat(obs(x)[None], 3, 0).astype(np.float32), acts=np.zeros((3, 4), np.float32),
                    rewards=np.full(3, x, np.float32), task="drawer-open") for x in np.linspace(0, 1, 12)]
    src = _store(tmp_path / "src.sqlite", segs)
    lab = transfer_labeller(source_store=src, max_source=100, rng=rng, min_source_labels=0, segment_length=3,
                            target_task=load_task("drawer-close"))
    assert lab.declared.names == ["hand-object", "object-goal", "hand-goal"]
    assert lab.plan_names == ["fused/product", "fused/mirror", "plain/product", "plain/mirror"]
    reach = transfer_labeller(source_store=src, max_source=100, rng=rng, min_source_labels=0,
                              target_task=load_task("reach"))
    assert reach.declared.names == ["hand-goal"]  # reach declares no object


def _feedback(lab: TransferLabeller, store: PreferenceStore, segment_length: int = 3) -> FeedbackLoop:
    return tiny_feedback(lab, store, source="transfer", max_labels=6, per_round=3, segment_length=segment_length)


def test_feedback_loop_stores_pool_pairs_once_outside_the_budget(tmp_path):
    lab, _ = _pool_labeller(pool_pairs=30)
    episode = tiny_episode(1)
    with PreferenceStore(tmp_path / "run.sqlite") as store:
        feedback = _feedback(lab, store)
        assert feedback.round([episode]).asked == 3
        rows = store.labels(sources=["transfer"])
        assert sum(r.annotator == INITIAL_ANNOTATOR for r in rows) == 30 and len(rows) == 33
        assert feedback.labels_used == 3 and feedback.budget_left == 3
        feedback.round([episode])
        resumed = _feedback(lab, store)  # a resumed run finds them and does not add them again
        assert resumed.seed_initial_pairs() == 0
        assert store.count_labels(sources=["transfer"]) == 36 and resumed.labels_used == 6
    with PreferenceStore(tmp_path / "other.sqlite") as store:
        with pytest.raises(PbrlError, match="feedback.target_pool: segments of 3 steps; this run uses segment_length=4"):
            _feedback(lab, store, segment_length=4).round([episode])
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
    res = run_cli("train", f"out={tmp_path}/run", *TINY_TRAIN, "task=button-press-topdown", "budget.labels=10",
                  "budget.env_steps=400", "eval.every=400", "checkpoint_every=400", "reward=gaussian",
                  "feedback=transfer", f"feedback.source_store={tmp_path}/src.sqlite",
                  f"feedback.target_pool={tmp_path}/pool.sqlite", "feedback.pool_pairs=40",
                  "feedback.target_labels=3", "feedback.min_source_labels=50")
    assert res.returncode == 0, res.stderr[-2000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert "PEARL CPA: GW fused/product" in log and "PEARL CPA: GW plain/mirror" in log  # every candidate plan
    assert "PEARL transfer reliability: " in log
    import csv
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert rows[-1]["transfer_status"] in ("verified", "unreliable") and rows[-1]["transfer_labels"] == "3"
    assert 0.0 <= float(rows[-1]["transfer_agreement"]) <= 1.0 and float(rows[-1]["transfer_entropy"]) <= 1.0
    from pbrl.run.checkpoint import read_components

    state = read_components(tmp_path / "run" / "checkpoint")["labeller"]
    assert len(state["p"]) == 3 and len(state["first"]) == 3  # the remembered target labels are checkpointed
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["feedback"] == "transfer" and summary["labels_used"] == 10
    with PreferenceStore(tmp_path / "run" / "store.sqlite", create=False) as store:
        rows = store.labels(sources=["transfer"])
        assert len(rows) == 50 and all(0.0 <= r.label <= 1.0 and 0.0 <= r.weight <= 1.0 for r in rows)
        assert sum(r.annotator == INITIAL_ANNOTATOR for r in rows) == 40  # the pool's pairs, outside the budget
    # not inverted on its pool: the stored transferred labels agree with the target's true-return order
    agreement, counted = true_order_agreement(tmp_path / "run" / "store.sqlite", ["transfer"])
    print(f"transfer end to end: {agreement:.2f} agreement with the true order over {counted} labels")
    assert counted >= 30 and agreement > 0.55, (agreement, counted)  # 0.64 over 50 here; inverted would be < 0.5

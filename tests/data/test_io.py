"""Import/export conversions; every round trip is built so that a flipped label fails.

Each segment's true return decides the preference, so a label can be checked both against the
value we stored and against the returns that justify it.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pbrl.data import (
    PreferenceStore,
    Segment,
    export_cpl_npz,
    export_imitation_npz,
    from_imitation,
    import_cpl_npz,
    import_imitation_npz,
    to_imitation,
)
from pbrl.types import Labels, PbrlError

L, OBS, ACT = 5, 3, 2


def seg(ret: float, tag: int) -> Segment:
    """A segment with true return ``ret`` and observations tagged by ``tag``."""
    return Segment(
        obs=np.full((L, OBS), tag, np.float32) + np.arange(L, dtype=np.float32)[:, None],
        acts=np.full((L, ACT), tag / 10, np.float32),
        rewards=np.full(L, ret / L, np.float32),
        task="toy",
    )


#: (return of first, return of second, pbrl p): first better, second better, equal, soft first.
PAIRS = [(10.0, -10.0, 1.0), (-5.0, 5.0, 0.0), (3.0, 3.0, 0.5), (4.0, 1.0, 0.75)]


def labelled_store(path: Path) -> PreferenceStore:
    store = PreferenceStore(path)
    ids = store.add_segments([seg(r, 2 * k + j) for k, pair in enumerate(PAIRS) for j, r in enumerate(pair[:2])])
    p = np.array([pair[2] for pair in PAIRS], np.float32)
    store.add_labels(ids[0::2], ids[1::2], Labels(p, np.zeros(len(p), bool)), source="scripted")
    store.add_labels([ids[0]], [ids[1]], Labels(np.array([0.0], np.float32), np.array([True])), source="human")
    return store


def assert_labels_agree_with_returns(store: PreferenceStore) -> None:
    """The imported labels equal the originals AND point at the higher-return segment."""
    rows = store.labels()
    assert len(rows) == len(PAIRS)
    for row, (r1, r2, p) in zip(rows, PAIRS):
        first, second = store.get_segments([row.first_id, row.second_id])
        assert first.true_return == pytest.approx(r1) and second.true_return == pytest.approx(r2)
        assert row.label == pytest.approx(p)
        if first.true_return > second.true_return:
            assert row.label > 0.5
        elif first.true_return < second.true_return:
            assert row.label < 0.5
        else:
            assert row.label == 0.5


def test_cpl_round_trip_keeps_polarity(tmp_path: Path) -> None:
    with labelled_store(tmp_path / "a.sqlite") as store:
        assert export_cpl_npz(store, tmp_path / "cpl.npz") == len(PAIRS)  # the skipped query is dropped
    with np.load(tmp_path / "cpl.npz") as f:
        raw = dict(f)
    # CPL: label 1 = SECOND preferred; ties 0.5; soft 1 - p.
    np.testing.assert_allclose(raw["label"], [0.0, 1.0, 0.5, 0.25])
    ret1, ret2 = raw["reward_1"].sum(1), raw["reward_2"].sum(1)
    assert np.all((raw["label"] > 0.5) == (ret2 > ret1))
    assert raw["obs_1"].shape == (len(PAIRS), L, OBS) and raw["action_2"].shape == (len(PAIRS), L, ACT)
    with PreferenceStore(tmp_path / "b.sqlite") as fresh:
        assert import_cpl_npz(tmp_path / "cpl.npz", fresh, task="toy") == len(PAIRS)
        assert_labels_agree_with_returns(fresh)
        assert {r.source for r in fresh.labels()} == {"import"}


def test_hand_written_cpl_file(tmp_path: Path) -> None:
    """label=1 in a CPL file means the second segment won: pbrl must read p = 0.0."""
    n = 3
    path = tmp_path / "bpref.npz"
    np.savez(
        path,
        obs_1=np.zeros((n, L, OBS)),
        obs_2=np.ones((n, L, OBS)),
        action_1=np.zeros((n, L, ACT)),
        action_2=np.ones((n, L, ACT)),
        label=np.array([[1.0], [0.0], [-1.0]]),  # B-Pref style (n, 1) with -1 = tie
    )
    with PreferenceStore(tmp_path / "s.sqlite") as store:
        import_cpl_npz(path, store, task="toy")
        assert [r.label for r in store.labels()] == [0.0, 1.0, 0.5]
        first = store.get_segments([store.labels()[0].first_id])[0]
        assert np.all(first.obs == 0) and np.all(first.rewards == 0)  # obs_1 is the first segment


def _cpl_arrays(n: int = 2) -> dict[str, np.ndarray]:
    return {
        "obs_1": np.zeros((n, L, OBS)),
        "obs_2": np.zeros((n, L, OBS)),
        "action_1": np.zeros((n, L, ACT)),
        "action_2": np.zeros((n, L, ACT)),
        "label": np.zeros(n),
    }


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(label=None), r"bad.npz: missing key 'label'"),
        (dict(action_2=np.zeros((2, L, ACT + 1))), r"bad.npz: key 'action_2': expected shape \(2, 5, 2\)"),
        (dict(obs_1=np.zeros((2, L))), r"bad.npz: key 'obs_1': expected shape \(\*, \*, \*\)"),
        (dict(label=np.array([0.0, 2.0])), r"bad.npz: key 'label': expected values in \[0, 1\].*got \[2.0\]"),
        (dict(reward_1=np.full((2, L), np.nan)), r"bad.npz: key 'reward_1': contains NaN"),
        (dict(label=np.array(["a", "b"])), r"bad.npz: key 'label': expected numbers"),
    ],
)
def test_cpl_import_errors_name_file_and_key(tmp_path: Path, change: dict, match: str) -> None:
    arrays = {**_cpl_arrays(), **change}
    np.savez(tmp_path / "bad.npz", **{k: v for k, v in arrays.items() if v is not None})
    with PreferenceStore(tmp_path / "s.sqlite") as store:
        with pytest.raises(PbrlError, match=match):
            import_cpl_npz(tmp_path / "bad.npz", store, task="toy")
        assert store.num_segments() == 0 and store.count_labels() == 0


def test_import_of_non_npz_file(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with PreferenceStore(tmp_path / "s.sqlite") as store:
        with pytest.raises(PbrlError, match=r"junk.npz: not a readable .npz file"):
            import_cpl_npz(tmp_path / "junk.npz", store, task="toy")
        with pytest.raises(PbrlError, match=r"missing.npz: not a readable .npz file"):
            import_imitation_npz(tmp_path / "missing.npz", store, task="toy")
        np.save(tmp_path / "one.npy", np.zeros(3))
        with pytest.raises(PbrlError, match=r"one.npy: a single .npy array, expected an .npz archive"):
            import_cpl_npz(tmp_path / "one.npy", store, task="toy")
        np.savez(tmp_path / "obj.npz", label=np.array([{"a": 1}], dtype=object))
        with pytest.raises(PbrlError, match=r"obj.npz: not a readable .npz file"):
            import_cpl_npz(tmp_path / "obj.npz", store, task="toy")


def test_export_without_answered_labels(tmp_path: Path) -> None:
    with PreferenceStore(tmp_path / "s.sqlite") as store:
        with pytest.raises(PbrlError, match="no answered labels to export"):
            export_cpl_npz(store, tmp_path / "out.npz")
        assert not (tmp_path / "out.npz").exists()
        a, b = store.add_segments([seg(1.0, 0), seg(0.0, 1)])
        store.add_labels([a], [b], Labels(np.ones(1, np.float32), np.zeros(1, bool)), source="human")
        with pytest.raises(PbrlError, match=r"no_dir/out.npz: cannot write"):
            export_cpl_npz(store, tmp_path / "no_dir" / "out.npz")
        with pytest.raises(PbrlError, match=r"out.txt: expected a path ending in .npz"):
            export_imitation_npz(store, tmp_path / "out.txt")


def test_imitation_round_trip_in_memory(tmp_path: Path) -> None:
    with labelled_store(tmp_path / "a.sqlite") as store:
        pairs, prefs = to_imitation(store)
    # imitation's preferences are P(first preferred): the same numbers as pbrl, no flip.
    np.testing.assert_allclose(prefs, [p for *_, p in PAIRS])
    assert prefs.dtype == np.float32 and len(pairs) == len(PAIRS)
    frag1, frag2 = pairs[0]
    assert frag1["obs"].shape == (L, OBS) and frag1["acts"].shape == (L, ACT) and frag1["rews"].shape == (L,)
    assert frag1["rews"].sum() > frag2["rews"].sum() and prefs[0] == 1.0
    with PreferenceStore(tmp_path / "b.sqlite") as fresh:
        assert from_imitation(pairs, prefs, fresh, task="toy") == len(PAIRS)
        assert_labels_agree_with_returns(fresh)


def test_imitation_npz_round_trip(tmp_path: Path) -> None:
    with labelled_store(tmp_path / "a.sqlite") as store:
        assert export_imitation_npz(store, tmp_path / "imi.npz") == len(PAIRS)
    with np.load(tmp_path / "imi.npz") as f:
        raw = dict(f)
    np.testing.assert_allclose(raw["preferences"], [1.0, 0.0, 0.5, 0.75])
    assert np.all((raw["preferences"] > 0.5) == (raw["rews_1"].sum(1) > raw["rews_2"].sum(1)))
    with PreferenceStore(tmp_path / "b.sqlite") as fresh:
        assert import_imitation_npz(tmp_path / "imi.npz", fresh, task="toy") == len(PAIRS)
        assert_labels_agree_with_returns(fresh)


def test_from_imitation_trajectory_objects(tmp_path: Path) -> None:
    """imitation's TrajectoryWithRew carries L + 1 observations; the final one is dropped."""

    def traj(value: float) -> SimpleNamespace:
        return SimpleNamespace(obs=np.full((L + 1, OBS), value), acts=np.zeros((L, ACT)), rews=np.full(L, value))

    with PreferenceStore(tmp_path / "s.sqlite") as store:
        from_imitation([(traj(1.0), traj(-1.0))], np.array([0.9]), store, task="toy")
        row = store.labels()[0]
        first, second = store.get_segments([row.first_id, row.second_id])
        assert row.label == pytest.approx(0.9) and first.obs.shape == (L, OBS)
        assert first.true_return > second.true_return
        with pytest.raises(PbrlError, match="key 'preferences': expected P\\(first preferred\\)"):
            from_imitation([(traj(1.0), traj(2.0))], np.array([1.5]), store, task="toy")
        with pytest.raises(PbrlError, match="1 fragment pairs and 2 preferences"):
            from_imitation([(traj(1.0), traj(2.0))], np.array([1.0, 0.0]), store, task="toy")
        with pytest.raises(PbrlError, match="fragment 2 lacks 'acts'"):
            from_imitation([(traj(1.0), {"obs": np.zeros((L, OBS))})], np.array([1.0]), store, task="toy")
        assert store.count_labels() == 1

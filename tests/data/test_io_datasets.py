"""Preference files users already have: CPL's released (scored-segment) datasets, format detection, `npz_in=`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pbrl.agents.offline_data import OfflineData
from pbrl.data.io import export_cpl_npz, import_cpl_scored_npz, import_npz, score_pairs
from pbrl.data.store import PreferenceStore
from pbrl.data.trajectory import Segment
from pbrl.types import Labels, PbrlError


def _scored_file(path: Path, scores, n_steps: int = 3, obs_dim: int = 2, **extra) -> Path:
    n = len(scores)
    rng = np.random.default_rng(0)
    arrays = {"obs": rng.standard_normal((n, n_steps, obs_dim)).astype(np.float32),
              "action": rng.uniform(-1, 1, (n, n_steps, 1)).astype(np.float32),
              "reward": rng.standard_normal((n, n_steps)).astype(np.float32),
              "timestep": np.arange(n_steps)[None].repeat(n, 0) + 10 * np.arange(n)[:, None],
              "rl_sum": np.asarray(scores, np.float32), **extra}
    np.savez_compressed(path, **arrays)
    return path


def test_cpl_scored_sparse_pairs_and_polarity(tmp_path: Path) -> None:
    f = _scored_file(tmp_path / "mw.npz", [3.0, 1.0, 1.0, 5.0, 2.0, 2.0])
    with PreferenceStore(tmp_path / "s.sqlite") as store:
        assert import_cpl_scored_npz(f, store, task="t") == 3
        rows = store.labels()
        segs = store.get_segments(store.segment_ids())
    # CPL's comparison mode: i against i + n/2 -> (0, 3), (1, 4), (2, 5); scores 3 vs 5, 1 vs 2, 1 vs 2
    assert [r.label for r in rows] == [0.0, 0.0, 0.0]
    # CPL writes label = 1[s1 < s2] = 1 here: pbrl's p = 1 - label = 0 (second preferred)
    assert len(segs) == 6 and len({s.episode_id for s in segs}) == 6
    assert [s.start for s in segs] == [0, 10, 20, 30, 40, 50]  # from `timestep`
    first = {r.first_id for r in rows}
    assert {s.segment_id for s in segs[:3]} == first


def test_cpl_scored_dense_groups_store_each_segment_once(tmp_path: Path) -> None:
    scores = [4.0, 1.0, 3.0, 3.0, 0.0, 2.0, 7.0, 5.0]
    f = _scored_file(tmp_path / "mw.npz", scores)
    with PreferenceStore(tmp_path / "s.sqlite") as store:
        n = import_cpl_scored_npz(f, store, task="t", pairing="dense", group_size=4, seed=3)
        rows, ids = store.labels(), store.segment_ids()
        data = OfflineData.from_store(store)
    assert n == 12 and len(ids) == 8  # two groups of 4: 6 pairs each, 8 segments stored once
    by_id = {sid: scores[k] for k, sid in enumerate(ids)}
    for r in rows:
        a, b = by_id[r.first_id], by_id[r.second_id]
        assert r.label == (1.0 if a > b else 0.0 if a < b else 0.5)
    assert sorted(len(c) for c in data.components()) == [6, 6]  # CPL's dense pairing sees whole groups


def test_score_pairs_hand_cases() -> None:
    f, s = score_pairs(5, "sparse", 8, np.random.default_rng(0))
    assert f.tolist() == [0, 1] and s.tolist() == [2, 3]
    f, s = score_pairs(7, "dense", 3, np.random.default_rng(0))
    assert len(f) == 6 and len(set(f.tolist() + s.tolist())) == 6  # two groups of 3, the 7th left out
    with pytest.raises(PbrlError, match="pairing"):
        score_pairs(4, "rank", 2, np.random.default_rng(0))


def test_cpl_scored_errors(tmp_path: Path) -> None:
    f = _scored_file(tmp_path / "a.npz", [1.0, 2.0], rl_dir=np.zeros(2, np.float32))
    with PreferenceStore(tmp_path / "s.sqlite") as store:
        with pytest.raises(PbrlError, match=r"no score key 'oracle'; per-segment keys in the file: \['rl_dir', 'rl_sum'\]"):
            import_cpl_scored_npz(f, store, task="t", label_key="oracle")
        with pytest.raises(PbrlError, match="make no pair"):
            import_cpl_scored_npz(_scored_file(tmp_path / "b.npz", [1.0]), store, task="t")
        assert store.num_segments() == 0


def test_import_npz_detects_formats_and_refuses_other_tasks(tmp_path: Path) -> None:
    scored = _scored_file(tmp_path / "scored.npz", [1.0, 2.0, 3.0, 0.0])
    with PreferenceStore(tmp_path / "a.sqlite") as store:
        with pytest.raises(PbrlError, match=r"obs/action sizes \(2, 1\).*expects \(39, 4\)"):
            import_npz(scored, store, task="drawer-open", dims=(39, 4))
        assert store.num_segments() == 0  # refused before anything was written
        assert import_npz(scored, store, task="t", dims=(2, 1)) == ("cpl_scored", 2)
        seg = Segment(obs=np.zeros((3, 2), np.float32), acts=np.zeros((3, 1), np.float32), rewards=np.zeros(3, np.float32))
        store.add_pairs([seg], [seg], Labels(np.array([1.0], np.float32), np.zeros(1, bool)), source="scripted")
        export_cpl_npz(store, tmp_path / "pairs.npz", sources=["scripted"])
    with PreferenceStore(tmp_path / "b.sqlite") as store:
        assert import_npz(tmp_path / "pairs.npz", store, task="t") == ("cpl", 1)
        assert store.labels()[0].label == 1.0  # the pairs file kept pbrl's polarity through CPL's
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with PreferenceStore(tmp_path / "c.sqlite") as store, pytest.raises(PbrlError, match="match no format"):
        import_npz(tmp_path / "other.npz", store, task="t")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with PreferenceStore(tmp_path / "d.sqlite") as store, pytest.raises(PbrlError, match="not a readable .npz"):
        import_npz(tmp_path / "junk.npz", store, task="t")

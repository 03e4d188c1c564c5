"""PreferenceStore on real SQLite files: round trips, validation, atomicity, crashes, concurrency."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import pbrl
from pbrl.data import PreferenceStore, Segment
from pbrl.types import Labels, PbrlError


def make_seg(value: float, *, L: int = 6, full: bool = True, episode_id: int = 0) -> Segment:
    """A segment whose every entry encodes ``value`` (so corruption or mix-ups are visible)."""
    rng = np.random.default_rng(int(abs(value) * 1000))
    return Segment(
        obs=rng.normal(size=(L, 3)).astype(np.float32) + value,
        acts=np.full((L, 2), value, np.float32),
        rewards=np.full(L, value, np.float32),
        terms={"reward_forward": np.full(L, value, np.float32), "reward_ctrl": -np.ones(L, np.float32)}
        if full
        else {},
        success=(np.arange(L) % 2 == 0) if full else None,
        frames=rng.integers(0, 256, size=(L, 8, 8, 3), dtype=np.uint8) if full else None,
        episode_id=episode_id,
        start=2,
        task="toy",
    )


def labels(p: list[float], skipped: list[bool] | None = None) -> Labels:
    return Labels(np.array(p, np.float32), np.array(skipped or [False] * len(p)))


@pytest.fixture
def store(tmp_path: Path) -> PreferenceStore:
    with PreferenceStore(tmp_path / "run" / "store.sqlite") as s:
        yield s


def assert_same_segment(a: Segment, b: Segment, *, frames: bool) -> None:
    for name in ("obs", "acts", "rewards", "success"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(x, y)
            assert x.dtype == y.dtype, name
    assert a.terms.keys() == b.terms.keys()
    for k in a.terms:
        np.testing.assert_array_equal(a.terms[k], b.terms[k])
    assert (a.episode_id, a.start, a.task) == (b.episode_id, b.start, b.task)
    if frames:
        assert (a.frames is None) == (b.frames is None)
        if a.frames is not None:
            np.testing.assert_array_equal(a.frames, b.frames)
            assert b.frames.dtype == np.uint8


# ---------------------------------------------------------------- segments


def test_segment_round_trip_all_fields(store: PreferenceStore, tmp_path: Path) -> None:
    segs = [make_seg(1.0, episode_id=3), make_seg(2.0, full=False, episode_id=4)]
    ids = store.add_segments(segs)
    assert store.num_segments() == 2 and len(set(ids)) == 2
    store.close()
    with PreferenceStore(tmp_path / "run" / "store.sqlite", create=False) as reopened:
        light = reopened.get_segments(ids)
        heavy = reopened.get_segments(ids, with_frames=True)
    for orig, got in zip(segs, heavy):
        assert_same_segment(orig, got, frames=True)
    assert [s.segment_id for s in light] == ids and all(s.frames is None for s in light)
    assert light[0].obs.dtype == np.float32 and light[0].success.dtype == bool


def test_get_segments_order_repeats_and_unknown(store: PreferenceStore) -> None:
    ids = store.add_segments([make_seg(v, full=False) for v in (1.0, 2.0, 3.0)])
    got = store.get_segments([ids[2], ids[0], ids[2]])
    assert [s.rewards[0] for s in got] == [3.0, 1.0, 3.0]
    with pytest.raises(PbrlError, match=r"unknown segment id\(s\) \[999\]"):
        store.get_segments([ids[0], 999])


def test_frames_must_be_uint8(store: PreferenceStore) -> None:
    seg = make_seg(1.0)
    bad = Segment(obs=seg.obs, acts=seg.acts, rewards=seg.rewards, frames=seg.frames.astype(np.float32))
    with pytest.raises(PbrlError, match="frames: expected uint8"):
        store.add_segments([make_seg(2.0), bad])
    assert store.num_segments() == 0


def test_meta(store: PreferenceStore) -> None:
    assert store.get_meta("task") is None and store.get_meta("task", "x") == "x"
    store.set_meta("task", "reacher")
    store.set_meta("task", "walker")
    assert store.get_meta("task") == "walker" and store.get_meta("schema_version") == "1"
    with pytest.raises(PbrlError, match="reserved"):
        store.set_meta("schema_version", "2")


# ---------------------------------------------------------------- labels


def test_labels_round_trip_with_skipped(store: PreferenceStore) -> None:
    a, b, c = store.add_segments([make_seg(v, full=False) for v in (1.0, 2.0, 3.0)])
    pids = store.add_labels([a, b, c], [b, c, a], labels([0.7, 0.0, 0.3], [False, False, True]), source="human",
                            annotator="ann", weight=[1.0, 0.5, 2.0])  # fmt: skip
    store.add_labels([a], [c], labels([0.5]), source="scripted")
    rows = store.labels(include_skipped=True)
    assert [r.pair_id for r in rows[:3]] == pids
    assert rows[0].label == pytest.approx(0.7) and rows[0].label == float(np.float32(0.7))
    assert (rows[1].label, rows[1].weight, rows[1].annotator) == (0.0, 0.5, "ann")
    assert rows[2].skipped and rows[2].label is None
    assert rows[3].source == "scripted" and abs(rows[3].created_at - time.time()) < 60
    assert [r.pair_id for r in store.labels()] == [pids[0], pids[1], rows[3].pair_id]
    assert store.count_labels() == 3 and store.count_labels(include_skipped=True) == 4
    assert store.count_labels(sources=["human"]) == 2 and store.labels(sources=["heron"]) == []
    batch = store.pair_batch(sources=["human"])
    np.testing.assert_allclose(batch.p, [0.7, 0.0])
    np.testing.assert_array_equal(batch.weight, [1.0, 0.5])
    np.testing.assert_array_equal(batch.act1[:, 0, 0], [1.0, 2.0])  # first of each pair stays first
    np.testing.assert_array_equal(batch.act2[:, 0, 0], [2.0, 3.0])
    assert store.pair_batch(pair_ids=[pids[1], pids[2]]).n_pairs == 1  # skipped pair left out


def test_pair_batch_errors(store: PreferenceStore) -> None:
    a, b = store.add_segments([make_seg(1.0, full=False), make_seg(2.0, full=False)])
    with pytest.raises(PbrlError, match="no answered labels"):
        store.pair_batch()
    store.add_labels([a], [b], labels([1.0], [True]), source="human")
    with pytest.raises(PbrlError, match="no answered labels"):
        store.pair_batch()
    with pytest.raises(PbrlError, match=r"unknown pair id\(s\) \[42\]"):
        store.pair_batch(pair_ids=[42])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(source="oracle"), "unknown label source 'oracle'"),
        (dict(source="human", p=[1.5]), r"P\(first preferred\) in \[0, 1\]"),
        (dict(source="human", p=[float("inf")]), r"P\(first preferred\)"),
        (dict(source="human", weight=[-1.0]), "weights must be finite and >= 0"),
        (dict(source="human", second=[1, 2]), "got 1 first and 2 second"),
        (dict(source="human", first=[1], second=[999]), r"unknown segment id\(s\) \[999\]"),
    ],
)
def test_add_labels_validation(store: PreferenceStore, kwargs: dict, match: str) -> None:
    store.add_segments([make_seg(1.0, full=False), make_seg(2.0, full=False)])
    first, second = kwargs.pop("first", [1]), kwargs.pop("second", [2])
    p = kwargs.pop("p", [1.0])
    with pytest.raises(PbrlError, match=match):
        store.add_labels(first, second, labels(p), **kwargs)
    assert store.count_labels(include_skipped=True) == 0


def test_skipped_value_is_ignored_even_if_out_of_range(store: PreferenceStore) -> None:
    a, b = store.add_segments([make_seg(1.0, full=False), make_seg(2.0, full=False)])
    store.add_labels([a], [b], labels([np.nan], [True]), source="human")
    assert store.labels(include_skipped=True)[0].label is None


def test_check_constraint_rejects_raw_writes(store: PreferenceStore) -> None:
    """The schema itself refuses labels that break the convention, whoever writes them."""
    store.add_segments([make_seg(1.0, full=False), make_seg(2.0, full=False)])
    conn = sqlite3.connect(store.path)
    conn.execute("PRAGMA foreign_keys=ON")
    insert = "INSERT INTO labels (first_id, second_id, label, skipped, source, created_at) VALUES (?,?,?,?,?,0)"
    for bad in [(1, 2, None, 0), (1, 2, 0.5, 1), (1, 2, 1.5, 0), (1, 2, -0.1, 0), (1, 2, None, 2)]:
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute(insert, (*bad, "human"))
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        conn.execute(insert, (1, 99, 1.0, 0, "human"))
    conn.rollback()
    conn.close()
    assert store.count_labels(include_skipped=True) == 0


def test_failing_add_labels_leaves_nothing(store: PreferenceStore) -> None:
    """A write that fails half-way (after some rows were inserted) is rolled back entirely."""
    a, b = store.add_segments([make_seg(1.0, full=False), make_seg(2.0, full=False)])
    conn = sqlite3.connect(store.path)
    conn.execute(
        "CREATE TRIGGER boom BEFORE INSERT ON labels WHEN NEW.label = 0.25 "
        "BEGIN SELECT RAISE(ABORT, 'boom'); END"
    )
    conn.commit()
    conn.close()
    with pytest.raises(PbrlError, match="rejected write.*boom"):
        store.add_labels([a, a, a], [b, b, b], labels([1.0, 0.0, 0.25]), source="human")
    assert store.count_labels(include_skipped=True) == 0
    with pytest.raises(PbrlError, match="rejected write"):
        store.add_pairs([make_seg(3.0)], [make_seg(4.0)], labels([0.25]), source="import")
    assert store.num_segments() == 2  # the pair's segments were rolled back too
    assert len(store.add_labels([a], [b], labels([1.0]), source="human")) == 1  # still usable


# ---------------------------------------------------------------- opening


def test_missing_file_with_create_false(tmp_path: Path) -> None:
    path = tmp_path / "nope.sqlite"
    with pytest.raises(PbrlError, match=r"nope.sqlite: no such file; expected a pbrl preference store"):
        PreferenceStore(path, create=False)
    assert not path.exists()


def _foreign_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    "content,reason",
    [
        (os.urandom(4096), "not an SQLite database"),
        (b"SQLite format 3\x00" + os.urandom(4080), "not a database|malformed"),
        (b"", "empty file"),
        (None, "missing table"),
    ],
)
def test_not_a_store_is_refused_and_untouched(tmp_path: Path, content: bytes | None, reason: str) -> None:
    path = tmp_path / "store.sqlite"
    if content is None:
        _foreign_sqlite(path)
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    with pytest.raises(PbrlError, match=rf"store .*store.sqlite: not a pbrl preference store \(.*({reason})"):
        PreferenceStore(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.sqlite"]


def _store_edited_outside(path: Path, sql: str) -> Path:
    """A new store, then one statement run on it by another SQLite client."""
    PreferenceStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(sql)
    conn.commit()
    conn.close()
    return path


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = _store_edited_outside(tmp_path / "store.sqlite", "UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(PbrlError, match="schema_version 99 is newer than this pbrl supports"):
        PreferenceStore(path)


def test_closed_store_raises(tmp_path: Path) -> None:
    s = PreferenceStore(tmp_path / "s.sqlite")
    s.close()
    s.close()
    with pytest.raises(PbrlError, match="is closed"):
        s.num_segments()


def test_durability_pragmas(store: PreferenceStore) -> None:
    names = ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
    pragmas = {k: store._read(f"PRAGMA {k}")[0][0] for k in names}
    assert pragmas == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 30000}


# ---------------------------------------------------------------- crashes and concurrency

_WRITER = r"""
import sys
import numpy as np
from pbrl.data import PreferenceStore, Segment
from pbrl.types import Labels

store = PreferenceStore(sys.argv[1])
i = int(sys.argv[2])
while True:
    seg = lambda: Segment(obs=np.full((16, 4), i, np.float32), acts=np.full((16, 2), i, np.float32),
                          rewards=np.full(16, i, np.float32), episode_id=i,
                          frames=np.full((16, 32, 32, 3), i % 256, np.uint8))
    a, b = store.add_segments([seg(), seg()])
    p, skip = np.array([(i % 3) / 2], np.float32), np.array([i % 5 == 4])
    (pid,) = store.add_labels([a], [b], Labels(p, skip), source="scripted", annotator=str(i))
    print(pid, i, flush=True)
    i += 1
"""


def _run_and_kill(path: Path, start: int, n_commits: int) -> list[tuple[int, int]]:
    """Run the writer until it reports ``n_commits`` labels, SIGKILL it, return what it reported."""
    env = {**os.environ, "PYTHONPATH": str(Path(pbrl.__file__).parent.parent)}
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(start)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    reported = []
    try:
        for line in proc.stdout:
            reported.append(tuple(map(int, line.split())))
            if len(reported) >= n_commits:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    return reported


def test_store_survives_sigkill_during_writes(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    reported = []
    for round_ in range(2):  # the second run reopens a store left behind by a killed process
        reported += _run_and_kill(path, start=1000 * round_, n_commits=40)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with PreferenceStore(path, create=False) as store:
        rows = {r.pair_id: r for r in store.labels(include_skipped=True)}
        for pid, i in reported:  # every acknowledged label is there, with its value
            assert rows[pid].annotator == str(i)
        for row in rows.values():  # and every stored row is intact and consistent
            i = int(row.annotator)
            assert row.skipped == (i % 5 == 4)
            assert row.skipped or row.label == (i % 3) / 2
            first, second = store.get_segments([row.first_id, row.second_id], with_frames=True)
            for seg in (first, second):
                assert np.all(seg.obs == i) and np.all(seg.rewards == i) and np.all(seg.frames == i % 256)
        assert len(rows) >= len(reported) and store.num_segments() >= 2 * len(rows)
        assert not list(tmp_path.glob(".*.tmp"))


def test_concurrent_writes_from_two_threads(tmp_path: Path) -> None:
    """One shared store (a web server) and a second connection to the same file, writing at once."""
    path = tmp_path / "store.sqlite"
    shared = PreferenceStore(path)
    other = PreferenceStore(path)
    a, b = shared.add_segments([make_seg(1.0, full=False), make_seg(2.0, full=False)])
    errors: list[BaseException] = []

    def work(store: PreferenceStore, tag: str) -> None:
        try:
            for k in range(40):
                (s,) = store.add_segments([make_seg(k, full=False)])
                store.add_labels([a, s], [s, b], labels([1.0, 0.0]), source="human", annotator=tag)
                store.count_labels()
        except BaseException as e:  # surfaced below; a thread's exception would be lost otherwise
            errors.append(e)

    threads = [threading.Thread(target=work, args=(st, tag)) for st, tag in
               [(shared, "t1"), (shared, "t2"), (other, "t3")]]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    rows = shared.labels()
    assert len(rows) == 240 and len({r.pair_id for r in rows}) == 240
    for tag in ("t1", "t2", "t3"):
        assert sum(r.annotator == tag for r in rows) == 80
    assert shared.num_segments() == 2 + 120
    shared.close()
    other.close()


def test_segment_digests_follow_content_not_ids(tmp_path: Path) -> None:
    with PreferenceStore(tmp_path / "a.sqlite") as a, PreferenceStore(tmp_path / "b.sqlite") as b:
        seg = make_seg(1.0)
        other_frames = dataclasses.replace(seg, frames=seg.frames[::-1].copy())  # same arrays, other pictures
        (x,) = a.add_segments([seg])
        (y, z) = b.add_segments([seg, other_frames])
        da, db = a.segment_digests([x]), b.segment_digests([y, z])
        assert da[x] == db[y] and db[y] != db[z] and len(da[x]) == 64
        with pytest.raises(PbrlError, match=r"unknown segment id\(s\) \[7\]"):
            a.segment_digests([7])
        assert a.uid() != b.uid() and a.uid() == a.uid()


def test_a_store_older_than_its_uid_gets_one_once(tmp_path: Path) -> None:
    path = _store_edited_outside(tmp_path / "old.sqlite", "DELETE FROM meta WHERE key = 'store_uid'")
    with PreferenceStore(path) as s:
        uid = s.uid()
        with pytest.raises(PbrlError, match="meta key 'store_uid' is reserved"):
            s.set_meta("store_uid", "forged")
    with PreferenceStore(path) as s:
        assert s.uid() == uid and len(uid) == 32

"""The label queue inside the store: migration, answers, idempotency, undo, agreement."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from pbrl.data.store import PreferenceStore
from pbrl.types import PbrlError
from pbrl.viewer.queue import LabelQueue, check_annotator, choice_to_p


def test_choice_maps_to_first_preferred_for_both_placements() -> None:
    assert choice_to_p("left", first_left=True) == 1.0 and choice_to_p("left", first_left=False) == 0.0
    assert choice_to_p("right", first_left=True) == 0.0 and choice_to_p("right", first_left=False) == 1.0
    assert choice_to_p("equal", first_left=False) == 0.5 and choice_to_p("skip", first_left=True) is None
    with pytest.raises(PbrlError, match="choice: expected one of left, right, equal, skip"):
        choice_to_p("up", first_left=True)


def test_annotator_names_are_validated() -> None:
    assert check_annotator("ann_1.x") == "ann_1.x"
    for bad in ("", "a b", "../x", "x" * 41, "<script>"):
        with pytest.raises(PbrlError, match="annotator: expected 1-40 characters"):
            check_annotator(bad)


def test_old_store_is_migrated_additively(tmp_path) -> None:
    from viewer_fixtures import framed_segment

    path = tmp_path / "old.sqlite"
    with PreferenceStore(path) as store:  # a store as written before the viewer existed
        ids = store.add_segments([framed_segment(0), framed_segment(1)])
        store.add_labels([ids[0]], [ids[1]], _labels([1.0]), source="scripted")
    with PreferenceStore(path) as store:
        queue = LabelQueue(store)
        assert store.get_meta("queue_version") == "1" and store.get_meta("schema_version") == "1"
        assert store.count_labels() == 1  # existing rows untouched
        queue.enqueue([ids[0]], [ids[1]], rng=np.random.default_rng(0))
    with PreferenceStore(path) as store:  # reopening does not migrate again and keeps the queue
        assert LabelQueue(store).progress()["queued"] == 1


def test_answers_are_labels_and_double_submit_is_idempotent(queued_store) -> None:
    path, qids = queued_store
    with PreferenceStore(path) as store:
        queue = LabelQueue(store)
        q = queue.get(qids[0])
        a1 = queue.answer(q.query_id, "alice", "left")
        a2 = queue.answer(q.query_id, "alice", "left")
        assert (a2.duplicate, a2.pair_id) == (True, a1.pair_id) and not a1.duplicate
        with pytest.raises(PbrlError, match="already answered 'left'; undo first"):
            queue.answer(q.query_id, "alice", "right")
        (row,) = store.labels(sources=["human"])
        assert row.label == (1.0 if q.first_left else 0.0) and row.annotator == "alice"
        assert (row.first_id, row.second_id) == (q.first_id, q.second_id)
        queue.answer(qids[1], "alice", "skip")
        assert store.count_labels(include_skipped=True) == 2 and store.count_labels() == 1
        assert queue.progress()["annotators"]["alice"]["skip"] == 1
        assert [x.query_id for x in queue.next_for("alice", 10)] == qids[2:]


def test_undo_withdraws_the_last_answer(queued_store) -> None:
    path, qids = queued_store
    with PreferenceStore(path) as store:
        queue = LabelQueue(store)
        queue.answer(qids[0], "bob", "equal")
        queue.answer(qids[1], "bob", "right")
        assert queue.undo("bob") == qids[1]
        assert queue.get(qids[1]).status == "pending" and store.count_labels() == 1
        assert queue.undo("nobody") is None


def test_agreement_and_overlap(queued_store) -> None:
    path, qids = queued_store
    with PreferenceStore(path) as store:
        queue = LabelQueue(store)
        for q, (ca, cb) in zip(qids[:3], [("left", "left"), ("right", "left"), ("equal", "equal")]):
            queue.answer(q, "ann", ca)
            assert q in [x.query_id for x in queue.next_for("bea", 10, overlap=True)]
            assert q not in [x.query_id for x in queue.next_for("bea", 10)]
            queue.answer(q, "bea", cb)
        agree = queue.agreement()
        assert agree["queries_multi"] == 3 and agree["unanimous"] == 2
        assert agree["pairs"] == [{"a": "ann", "b": "bea", "shared": 3, "agree": 2, "rate": 2 / 3}]
        first = queue.answers_for(qids)
        assert sorted(first) == qids[:3]  # the first answer per query wins
        assert first[qids[1]][0] == (0.0 if queue.get(qids[1]).first_left else 1.0)


def test_enqueue_rejects_unknown_segments_and_queue_tables_are_constrained(queued_store) -> None:
    path, qids = queued_store
    with PreferenceStore(path) as store:
        with pytest.raises(PbrlError, match=r"enqueue: unknown segment id\(s\) \[999\]"):
            LabelQueue(store).enqueue([1], [999], rng=np.random.default_rng(0))
        with pytest.raises(PbrlError, match="rejected write"):
            with store._write() as cur:
                cur.execute("UPDATE queries SET status = 'bogus' WHERE id = ?", (qids[0],))
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM queries WHERE status='pending'").fetchone()[0] == 4


def _labels(p):
    from pbrl.types import Labels

    return Labels(np.asarray(p, np.float32), np.zeros(len(p), bool))


def test_offline_queue_of_random_pairs_and_cli_errors(tmp_path) -> None:
    from viewer_fixtures import framed_segment

    from pbrl.viewer.cli import main, queue_random_pairs

    path = tmp_path / "collected.sqlite"
    with PreferenceStore(path) as store:
        store.add_segments([framed_segment(i) for i in range(5)])
        queue = LabelQueue(store)
        qids = queue_random_pairs(store, queue, 6, np.random.default_rng(0))
        pairs = [queue.get(q) for q in qids]
        assert len(pairs) == 6 and all(q.first_id != q.second_id for q in pairs)
        assert len({q.first_left for q in pairs}) == 2  # placement is randomised
    with pytest.raises(PbrlError, match="no such file; expected a pbrl preference store"):
        main([str(tmp_path / "missing.sqlite")])
    with pytest.raises(PbrlError, match="--host 0.0.0.0: binding a non-loopback interface requires an access token"):
        main([str(path), "--host", "0.0.0.0", "--token", ""])
    with pytest.raises(PbrlError, match="--queue: expected >= 0"):
        main([str(path), "--queue", "-1"])
    with pytest.raises(PbrlError, match="pbrl label: argument --port: invalid int value"):
        main([str(path), "--port", "x"])

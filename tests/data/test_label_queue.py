"""The label queue inside the store: migration, answers, idempotency, undo, agreement."""

from __future__ import annotations

import sqlite3
import time

import numpy as np
import pytest

from pbrl.data.store import PreferenceStore
from pbrl.types import PbrlError
from pbrl.data.label_queue import LabelQueue, check_annotator, choice_to_p


def test_choice_maps_to_first_preferred_for_both_placements() -> None:
    assert choice_to_p("left", first_left=True) == 1.0 and choice_to_p("left", first_left=False) == 0.0
    assert choice_to_p("right", first_left=True) == 0.0 and choice_to_p("right", first_left=False) == 1.0
    assert choice_to_p("equal", first_left=False) == 0.5 and choice_to_p("skip", first_left=True) is None
    with pytest.raises(PbrlError, match="choice: expected one of left, right, equal, skip"):
        choice_to_p("up", first_left=True)


def test_annotator_names_are_validated() -> None:
    assert check_annotator("ann_1.x") == "ann_1.x"
    for bad in ("", "a b", "../x", "x" * 41, "<script>", "qa\n", "qa\r\n", "\nqa", 7, None):
        with pytest.raises(PbrlError, match="annotator: expected 1-40 characters"):
            check_annotator(bad)


def test_old_store_is_migrated_additively(tmp_path) -> None:
    from label_fixtures import framed_segment

    path = tmp_path / "old.sqlite"
    with PreferenceStore(path) as store:  # a store as written before the viewer existed
        ids = store.add_segments([framed_segment(0), framed_segment(1)])
        store.add_labels([ids[0]], [ids[1]], _labels([1.0]), source="scripted")
    with PreferenceStore(path) as store:
        queue = LabelQueue(store)
        assert store.get_meta("queue_version") == "2" and store.get_meta("schema_version") == "1"
        assert store.count_labels() == 1  # existing rows untouched
        queue.queue_pairs([ids[0]], [ids[1]], rng=np.random.default_rng(0))
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
        assert queue.undo("bob").query_id == qids[1]
        assert queue.get(qids[1]).status == "pending" and store.count_labels() == 1
        assert [q.query_id for q in queue.next_for("eve", 10)] == qids[2:]  # the undone pair is bob's again
        assert [q.query_id for q in queue.next_for("bob", 1)] == [qids[1]]
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


def test_queue_rejects_unknown_segments_and_queue_tables_are_constrained(queued_store) -> None:
    path, qids = queued_store
    with PreferenceStore(path) as store:
        with pytest.raises(PbrlError, match=r"queue_pairs: unknown segment id\(s\) \[999\]"):
            LabelQueue(store).queue_pairs([1], [999], rng=np.random.default_rng(0))
        with pytest.raises(PbrlError, match="rejected write"):
            with store._write() as cur:
                cur.execute("UPDATE queries SET status = 'bogus' WHERE id = ?", (qids[0],))
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM queries WHERE status='pending'").fetchone()[0] == 4


def _labels(p):
    from pbrl.types import Labels

    return Labels(np.asarray(p, np.float32), np.zeros(len(p), bool))


def test_offline_queue_of_random_pairs_and_cli_errors(tmp_path) -> None:
    from label_fixtures import framed_segment

    from pbrl.cli.label import main

    path = tmp_path / "collected.sqlite"
    with PreferenceStore(path) as store:
        store.add_segments([framed_segment(i) for i in range(5)])
        queue = LabelQueue(store)
        qids = queue.queue_random_pairs(6, np.random.default_rng(0))
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
    with pytest.raises(PbrlError, match="--lease-s: expected > 0 seconds"):
        main([str(path), "--lease-s", "0"])


def test_pairs_are_leased_to_one_annotator_at_a_time(queued_store) -> None:
    """Without overlap two people are handed different pending pairs; a lease lapses, or ends with the answer."""
    path, qids = queued_store
    with PreferenceStore(path) as store:
        queue = LabelQueue(store)
        ann = [q.query_id for q in queue.next_for("ann", 2)]
        bea = [q.query_id for q in queue.next_for("bea", 2)]
        assert ann == qids[:2] and bea == qids[2:]
        assert queue.next_for("cy", 4) == []  # everything is leased to someone
        assert [q.query_id for q in queue.next_for("ann", 4)] == qids[:2]  # a reload gets ann's own pairs back
        queue.answer(qids[0], "ann", "left")
        assert queue.next_for("cy", 4) == []  # answered: done, not handed out again
        queue.next_for("bea", 0, lease_s=-1.0)  # bea goes quiet: her leases lapse
        assert [q.query_id for q in queue.next_for("cy", 4)] == qids[2:]


def test_leases_are_renewed_while_the_annotator_is_active(queued_store) -> None:
    path, qids = queued_store
    with PreferenceStore(path) as store:
        queue = LabelQueue(store)
        queue.next_for("ann", 2, lease_s=0.3)
        time.sleep(0.2)
        queue.next_for("ann", 0, lease_s=0.3)  # the page asks again: its pairs stay leased
        time.sleep(0.2)
        assert [q.query_id for q in queue.next_for("bea", 4)] == qids[2:]
        time.sleep(0.35)
        assert [q.query_id for q in queue.next_for("cy", 4)] == qids[:2]  # ann stopped asking: lapsed


def test_an_answer_names_the_pair_it_was_given_for(queued_store) -> None:
    path, qids = queued_store
    with PreferenceStore(path) as store:
        queue = LabelQueue(store)
        q = queue.get(qids[0])
        with pytest.raises(PbrlError, match=rf"query {qids[0]}: shows segments .* but the answer is for"):
            queue.answer(q.query_id, "ann", "left", shown=(q.right_id, q.left_id))
        assert store.count_labels(include_skipped=True) == 0
        queue.answer(q.query_id, "ann", "left", shown=(q.left_id, q.right_id))
        assert store.count_labels() == 1


def test_rounds_remember_who_queued_them(tmp_path) -> None:
    from label_fixtures import framed_segment

    with PreferenceStore(tmp_path / "s.sqlite") as store:
        ids = store.add_segments([framed_segment(i) for i in range(6)])
        queue = LabelQueue(store)
        rng = np.random.default_rng(0)
        assert queue.unfinished_round() is None
        offline = queue.queue_pairs(ids[:1], ids[1:2], rng=rng)
        train = queue.queue_pairs(ids[2:4], ids[4:6], rng=rng, origin="training")
        rnd = queue.unfinished_round("training")
        assert (rnd.number, rnd.query_ids, rnd.answered) == (1, train, 0)
        assert queue.unfinished_round("offline").query_ids == offline
        queue.answer(train[0], "ann", "left")
        assert queue.progress()["round"] == {"number": 1, "origin": "training", "size": 2, "answered": 1}
        queue.answer(train[1], "ann", "skip")
        assert queue.unfinished_round("training") is None
        with pytest.raises(PbrlError, match="queue_pairs: origin 'viewer'"):
            queue.queue_pairs(ids[:1], ids[1:2], rng=rng, origin="viewer")


def test_a_version_1_queue_is_migrated_with_its_pending_pairs(tmp_path) -> None:
    """A store whose queue was written by the previous viewer (queue_version 1: queries + answers only)."""
    from label_fixtures import framed_segment

    path = tmp_path / "v1.sqlite"
    with PreferenceStore(path) as store:
        a, b = store.add_segments([framed_segment(0), framed_segment(1)])
    conn = sqlite3.connect(path)
    conn.executescript(f"""
        CREATE TABLE queries (id INTEGER PRIMARY KEY, first_id INTEGER NOT NULL, second_id INTEGER NOT NULL,
            round INTEGER NOT NULL DEFAULT 0, first_left INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
            created_at REAL NOT NULL);
        CREATE TABLE answers (query_id INTEGER NOT NULL, annotator TEXT NOT NULL, pair_id INTEGER NOT NULL UNIQUE,
            choice TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (query_id, annotator));
        INSERT INTO queries (first_id, second_id, round, first_left, created_at) VALUES ({a}, {b}, 0, 1, 0);
        INSERT INTO meta VALUES ('queue_version', '1');""")
    conn.close()
    with PreferenceStore(path) as store:
        queue = LabelQueue(store)
        assert store.get_meta("queue_version") == "2"
        (q,) = queue.next_for("ann", 5)
        assert (q.first_id, q.second_id, q.first_left) == (a, b, True)
        queue.answer(q.query_id, "ann", "right")
        assert store.labels()[0].label == 0.0


def test_round_history_shows_when_each_round_was_answered(tmp_path) -> None:
    from label_fixtures import framed_segment

    with PreferenceStore(tmp_path / "s.sqlite") as store:
        ids = store.add_segments([framed_segment(i) for i in range(4)])
        queue = LabelQueue(store)
        rng = np.random.default_rng(0)
        r0 = queue.queue_pairs(ids[:2], ids[2:], rng=rng, origin="training")
        queue.answer(r0[0], "ann", "left")
        queue.answer(r0[1], "ann", "skip")
        queue.answer(r0[1], "bea", "left")  # a second opinion later does not move the round's answer time
        r1 = queue.queue_pairs(ids[:1], ids[3:], rng=rng, origin="training")
        (h0, h1) = queue.round_history()
        assert (h0["number"], h0["size"], h1["size"], h1["answered_at"]) == (0, 2, 1, None)
        assert h0["queued_at"] <= h0["answered_at"] <= h1["queued_at"]
        queue.answer(r1[0], "bea", "equal")
        assert queue.round_history()[1]["answered_at"] >= h1["queued_at"]

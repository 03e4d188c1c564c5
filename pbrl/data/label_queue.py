"""The label queue: pairs waiting for a person, who was handed which, and who answered what.

Four extension tables live next to the store's own (``queries``, ``answers``, ``rounds``, ``leases``).
They are created by an additive migration on first use (``CREATE TABLE IF NOT EXISTS`` in one write
transaction, recorded as ``meta.queue_version``), so stores written before the viewer existed open
unchanged and the store's ``schema_version`` keeps describing the tables every pbrl reader relies on.

Every answer is ONE transaction on the store's connection: the label row (``source='human'``), the
answer row and the query status commit together, durably (WAL, ``synchronous=FULL``) before the
caller returns, so an HTTP response is only sent for an answer that survives a SIGKILL.

Handing out pairs leases them to the annotator for a short time, so two people labelling at once are
shown different pairs (unless ``overlap`` asks for several answers per pair).
"""

from __future__ import annotations

import re
import time
from typing import NamedTuple, Optional, Sequence

import numpy as np

from pbrl.data.store import PreferenceStore
from pbrl.types import EQUAL, FIRST_BETTER, SECOND_BETTER, Labels, PbrlError

QUEUE_VERSION = 2
CHOICES = ("left", "right", "equal", "skip")
ORIGINS = ("training", "offline")
LEASE_S = 90.0  # a pair handed to one annotator is not handed to another for this long (renewed while active)
_ANNOTATOR = re.compile(r"[A-Za-z0-9_.@-]{1,40}")
_QUERY = "SELECT id, first_id, second_id, first_left, round, status FROM queries"

_QUEUE_SCHEMA = """
CREATE TABLE IF NOT EXISTS queries (
    id INTEGER PRIMARY KEY,
    first_id INTEGER NOT NULL REFERENCES segments(id),
    second_id INTEGER NOT NULL REFERENCES segments(id),
    round INTEGER NOT NULL DEFAULT 0,
    first_left INTEGER NOT NULL CHECK (first_left IN (0, 1)),
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done')),
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS queries_status ON queries(status, id);
CREATE TABLE IF NOT EXISTS answers (
    query_id INTEGER NOT NULL REFERENCES queries(id),
    annotator TEXT NOT NULL,
    pair_id INTEGER NOT NULL UNIQUE REFERENCES labels(pair_id),
    choice TEXT NOT NULL CHECK (choice IN ('left', 'right', 'equal', 'skip')),
    created_at REAL NOT NULL,
    PRIMARY KEY (query_id, annotator)
);
-- who queued each round: a resumed training run waits for its own unfinished round instead of queuing another
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY,
    origin TEXT NOT NULL CHECK (origin IN ('training', 'offline')),
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    query_id INTEGER PRIMARY KEY REFERENCES queries(id),
    annotator TEXT NOT NULL,
    expires_at REAL NOT NULL
);
"""


class Query(NamedTuple):
    """A queued pair as shown: ``left_id``/``right_id`` are segment ids in screen order."""

    query_id: int
    first_id: int
    second_id: int
    first_left: bool
    round: int
    status: str

    @property
    def left_id(self) -> int:
        return self.first_id if self.first_left else self.second_id

    @property
    def right_id(self) -> int:
        return self.second_id if self.first_left else self.first_id


class Answer(NamedTuple):
    """The result of :meth:`LabelQueue.answer`; ``duplicate`` is True for an idempotent repeat."""

    query_id: int
    pair_id: int
    choice: str
    duplicate: bool


class Round(NamedTuple):
    """One batch of queued pairs: its number, who queued it and its queries (in queue order)."""

    number: int
    origin: str
    query_ids: list[int]
    answered: int


def check_annotator(name: object) -> str:
    """Annotator names are short identifiers (they end up in the store and in URLs); the whole name must match."""
    if not isinstance(name, str) or not _ANNOTATOR.fullmatch(name):
        raise PbrlError(f"annotator: expected 1-40 characters from [A-Za-z0-9_.@-], got {name!r}")
    return name


def choice_to_p(choice: object, first_left: bool) -> Optional[float]:
    """Screen answer -> P(first preferred) (pbrl convention); None for a skip."""
    if choice not in CHOICES:
        raise PbrlError(f"choice: expected one of {', '.join(CHOICES)}, got {choice!r}")
    if choice == "skip":
        return None
    if choice == "equal":
        return EQUAL
    left_better = choice == "left"
    return FIRST_BETTER if left_better == first_left else SECOND_BETTER


def _query(r: tuple) -> Query:
    return Query(int(r[0]), int(r[1]), int(r[2]), bool(r[3]), int(r[4]), str(r[5]))


def _ids(values: Sequence[int]) -> tuple[str, list[int]]:
    """Placeholders and values of an ``IN (...)`` list; never empty (-1 is no row id, and unlike NULL it
    keeps ``NOT IN`` true)."""
    ids = [int(v) for v in values] or [-1]
    return ",".join("?" * len(ids)), ids


class LabelQueue:
    """Queue of pairs for human labelling, stored in (and sharing the connection of) a PreferenceStore."""

    def __init__(self, store: PreferenceStore) -> None:
        self.store = store
        if store.get_meta("queue_version") != str(QUEUE_VERSION):
            self._migrate()

    def _migrate(self) -> None:
        version = self.store.get_meta("queue_version")
        if version is not None and int(version) > QUEUE_VERSION:
            raise PbrlError(f"store {self.store.path}: queue_version {version} is newer than this pbrl "
                            f"supports ({QUEUE_VERSION}); upgrade pbrl")
        with self.store._write() as cur:  # additive only: existing rows are never touched
            for stmt in filter(str.strip, _QUEUE_SCHEMA.split(";")):
                cur.execute(stmt)
            cur.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('queue_version', ?)", (str(QUEUE_VERSION),))

    # ------------------------------------------------------------------------------------------- queueing

    def queue_pairs(self, first_ids: Sequence[int], second_ids: Sequence[int], *, rng: np.random.Generator,
                    origin: str = "offline") -> list[int]:
        """Queue pairs (stored segment ids) as one new round; left/right placement is drawn from ``rng``."""
        if len(first_ids) != len(second_ids):
            raise PbrlError(f"queue_pairs: got {len(first_ids)} first and {len(second_ids)} second ids; "
                            "expected equal")
        if origin not in ORIGINS:
            raise PbrlError(f"queue_pairs: origin {origin!r}; expected one of {ORIGINS}")
        left = rng.random(len(first_ids)) < 0.5
        wanted = sorted({int(i) for i in (*first_ids, *second_ids)})
        known = {int(r[0]) for r in self.store._select_in("SELECT id FROM segments WHERE id IN ({})", wanted)}
        unknown = [i for i in wanted if i not in known]
        if unknown:
            raise PbrlError(f"store {self.store.path}: queue_pairs: unknown segment id(s) {unknown[:10]}")
        now, ids = time.time(), []
        with self.store._write() as cur:
            rnd = int(cur.execute("SELECT COALESCE(MAX(round) + 1, 0) FROM queries").fetchone()[0])
            rnd = max(rnd, int(cur.execute("SELECT COALESCE(MAX(round) + 1, 0) FROM rounds").fetchone()[0]))
            cur.execute("INSERT INTO rounds (round, origin, created_at) VALUES (?, ?, ?)", (rnd, origin, now))
            for a, b, fl in zip(first_ids, second_ids, left):
                cur.execute("INSERT INTO queries (first_id, second_id, round, first_left, created_at) "
                            "VALUES (?, ?, ?, ?, ?)", (int(a), int(b), rnd, int(fl), now))
                ids.append(int(cur.lastrowid))
        return ids

    def queue_random_pairs(self, n: int, rng: np.random.Generator) -> list[int]:
        """Queue ``n`` random pairs of distinct stored segments of the same length (offline labelling)."""
        by_len: dict[int, list[int]] = {}
        for sid, length in self.store._read("SELECT id, length FROM segments ORDER BY id"):
            by_len.setdefault(int(length), []).append(int(sid))
        pool = max(by_len.values(), key=len, default=[])
        if len(pool) < 2:
            raise PbrlError(f"store {self.store.path}: --queue needs >= 2 segments of equal length, "
                            f"found {len(pool)}")
        pairs = [rng.choice(len(pool), size=2, replace=False) for _ in range(n)]
        return self.queue_pairs([pool[a] for a, _ in pairs], [pool[b] for _, b in pairs], rng=rng)

    def get(self, query_id: int) -> Query:
        rows = self.store._read(f"{_QUERY} WHERE id = ?", (int(query_id),))
        if not rows:
            raise KeyError(query_id)
        return _query(rows[0])

    # ------------------------------------------------------------------------------------------- labelling

    def next_for(self, annotator: str, n: int = 1, *, exclude: Sequence[int] = (), overlap: bool = False,
                 lease_s: float = LEASE_S) -> list[Query]:
        """The next ``n`` queries for ``annotator``, oldest first, leased to them for ``lease_s`` seconds.

        Pending queries that are neither answered by ``annotator`` nor leased to someone else; each call
        also renews the annotator's other leases (they are still looking at those pairs). With ``overlap``
        nothing is leased and queries others answered follow, so several people label the same pairs.
        """
        check_annotator(annotator)
        marks, skip = _ids(exclude)
        if overlap:
            return [_query(r) for r in self.store._read(
                f"{_QUERY} q WHERE NOT EXISTS (SELECT 1 FROM answers a WHERE a.query_id = q.id AND a.annotator = ?) "
                f"AND q.id NOT IN ({marks}) ORDER BY q.status = 'done', q.id LIMIT ?", (annotator, *skip, int(n)))]
        now = time.time()
        with self.store._write() as cur:
            cur.execute("DELETE FROM leases WHERE expires_at <= ?", (now,))
            cur.execute("UPDATE leases SET expires_at = ? WHERE annotator = ?", (now + lease_s, annotator))
            rows = cur.execute(
                f"{_QUERY} q WHERE q.status = 'pending' "
                "AND NOT EXISTS (SELECT 1 FROM answers a WHERE a.query_id = q.id AND a.annotator = ?) "
                "AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.query_id = q.id AND l.annotator != ?) "
                f"AND q.id NOT IN ({marks}) ORDER BY q.id LIMIT ?", (annotator, annotator, *skip, int(n))).fetchall()
            cur.executemany("INSERT OR REPLACE INTO leases (query_id, annotator, expires_at) VALUES (?, ?, ?)",
                            [(int(r[0]), annotator, now + lease_s) for r in rows])
        return [_query(r) for r in rows]

    def answer(self, query_id: int, annotator: str, choice: str, *,
               shown: Optional[tuple[int, int]] = None) -> Answer:
        """Commit one answer durably (label + answer + status in one transaction); idempotent.

        ``shown`` is the (left, right) segment ids the person saw; an answer for another pair than the
        query's is refused. A repeat of the same answer returns the stored one (``duplicate=True``); a
        different answer to a query this annotator already answered is refused (undo first).
        """
        check_annotator(annotator)
        choice_to_p(choice, True)  # bad input is refused before anything is looked up
        with self.store._write() as cur:
            q = cur.execute(f"{_QUERY} WHERE id = ?", (int(query_id),)).fetchone()
            if q is None:
                raise KeyError(query_id)
            q = _query(q)
            if shown is not None and tuple(int(s) for s in shown) != (q.left_id, q.right_id):
                raise PbrlError(f"query {q.query_id}: shows segments ({q.left_id}, {q.right_id}), but the answer "
                                f"is for ({shown[0]}, {shown[1]}); not stored")
            p = choice_to_p(choice, q.first_left)
            prev = cur.execute("SELECT pair_id, choice FROM answers WHERE query_id = ? AND annotator = ?",
                               (q.query_id, annotator)).fetchone()
            if prev is not None:
                if prev[1] != choice:
                    raise PbrlError(f"query {q.query_id}: {annotator} already answered {prev[1]!r}; undo first")
                return Answer(q.query_id, int(prev[0]), choice, True)
            labels = Labels(np.array([p if p is not None else 0.0], np.float32), np.array([p is None]))
            rows = self.store._label_rows(1, 1, labels, "human", annotator, None)
            pair_id = self.store._insert_labels(cur, [q.first_id], [q.second_id], rows)[0]
            cur.execute("INSERT INTO answers (query_id, annotator, pair_id, choice, created_at) VALUES (?, ?, ?, ?, ?)",
                        (q.query_id, annotator, pair_id, choice, time.time()))
            cur.execute("UPDATE queries SET status = 'done' WHERE id = ?", (q.query_id,))
            cur.execute("DELETE FROM leases WHERE query_id = ?", (q.query_id,))
        return Answer(q.query_id, pair_id, choice, False)

    def undo(self, annotator: str, *, lease_s: float = LEASE_S) -> Optional[Query]:
        """Withdraw ``annotator``'s most recent answer (label row included); the query, leased back to
        them, or None when there is nothing to undo."""
        check_annotator(annotator)
        with self.store._write() as cur:
            row = cur.execute("SELECT query_id, pair_id FROM answers WHERE annotator = ? ORDER BY pair_id DESC "
                              "LIMIT 1", (annotator,)).fetchone()
            if row is None:
                return None
            cur.execute("DELETE FROM answers WHERE pair_id = ?", (row[1],))
            cur.execute("DELETE FROM labels WHERE pair_id = ?", (row[1],))
            cur.execute("UPDATE queries SET status = 'pending' WHERE id = ? AND NOT EXISTS "
                        "(SELECT 1 FROM answers WHERE query_id = ?)", (row[0], row[0]))
            cur.execute("INSERT OR REPLACE INTO leases (query_id, annotator, expires_at) VALUES (?, ?, ?)",
                        (row[0], annotator, time.time() + lease_s))
            return _query(cur.execute(f"{_QUERY} WHERE id = ?", (row[0],)).fetchone())

    # ------------------------------------------------------------------------------------------- status

    def progress(self) -> dict:
        """Counts for the progress bar: labelled / queued queries, the latest round, answers per annotator."""
        status = dict(self.store._read("SELECT status, COUNT(*) FROM queries GROUP BY status"))
        per = self.store._read("SELECT annotator, choice, COUNT(*) FROM answers GROUP BY annotator, choice")
        annotators: dict[str, dict[str, int]] = {}
        for name, choice, count in per:
            annotators.setdefault(name, {c: 0 for c in CHOICES})[choice] = int(count)
        done, pending = int(status.get("done", 0)), int(status.get("pending", 0))
        last = self.latest_round()
        rnd = None if last is None else {"number": last.number, "origin": last.origin,
                                         "size": len(last.query_ids), "answered": last.answered}
        return {"labelled": done, "queued": pending, "total": done + pending, "annotators": annotators,
                "round": rnd}

    def _round(self, row: Optional[tuple]) -> Optional[Round]:
        if row is None:
            return None
        qs = self.store._read("SELECT id, status FROM queries WHERE round = ? ORDER BY id", (int(row[0]),))
        return Round(int(row[0]), str(row[1]), [int(q) for q, _ in qs], sum(s == "done" for _, s in qs))

    def latest_round(self) -> Optional[Round]:
        """The most recently queued round (None before any)."""
        rows = self.store._read("SELECT round, origin FROM rounds ORDER BY round DESC LIMIT 1")
        return self._round(rows[0] if rows else None)

    def unfinished_round(self, origin: str = "training") -> Optional[Round]:
        """The latest round queued by ``origin`` if some of its pairs still wait for an answer.

        A resumed training run waits for it (answers given meanwhile count) instead of queuing another.
        """
        rows = self.store._read("SELECT round, origin FROM rounds WHERE origin = ? ORDER BY round DESC LIMIT 1",
                                (origin,))
        rnd = self._round(rows[0] if rows else None)
        return rnd if rnd is not None and rnd.answered < len(rnd.query_ids) else None

    def round_history(self) -> list[dict]:
        """Every round: number, origin, size, when it was queued and when its last pair got a first answer
        (None while some are pending). Shows, e.g., whether a round was queued while another was pending."""
        rows = self.store._read(
            "SELECT r.round, r.origin, r.created_at, COUNT(q.id), SUM(q.status = 'pending'), "
            "MAX((SELECT MIN(a.created_at) FROM answers a WHERE a.query_id = q.id)) "
            "FROM rounds r LEFT JOIN queries q ON q.round = r.round GROUP BY r.round ORDER BY r.round")
        return [{"number": int(n), "origin": str(o), "queued_at": float(t), "size": int(size),
                 "answered_at": None if pending else (None if last is None else float(last))}
                for n, o, t, size, pending, last in rows]

    def pending_segment_ids(self, limit: int = 200) -> list[int]:
        """Segments of the oldest ``limit`` pending queries, in the order they will be shown."""
        rows = self.store._read("SELECT first_id, second_id, first_left FROM queries WHERE status = 'pending' "
                                "ORDER BY id LIMIT ?", (int(limit),))
        out: dict[int, None] = {}
        for a, b, first_left in rows:
            for sid in ((a, b) if first_left else (b, a)):
                out.setdefault(int(sid))
        return list(out)

    def answers_for(self, query_ids: Sequence[int]) -> dict[int, tuple[Optional[float], bool]]:
        """First answer (label, skipped) of each answered query among ``query_ids``."""
        marks, ids = _ids(query_ids)
        rows = self.store._read(
            "SELECT a.query_id, l.label, l.skipped FROM answers a JOIN labels l ON l.pair_id = a.pair_id "
            f"WHERE a.query_id IN ({marks}) ORDER BY a.pair_id DESC", ids)
        return {int(q): (lab, bool(s)) for q, lab, s in rows}  # DESC + dict: the first answer wins

    def answer_rows(self) -> list[tuple[int, str, int, str]]:
        """Every stored answer as (query_id, annotator, pair_id, choice), in commit order."""
        return [(int(q), str(a), int(p), str(c)) for q, a, p, c in self.store._read(
            "SELECT query_id, annotator, pair_id, choice FROM answers ORDER BY pair_id")]

    def agreement(self) -> dict:
        """Pairwise agreement between annotators on the queries both answered (skips left out)."""
        rows = self.store._read(
            "SELECT a.query_id, a.annotator, l.label FROM answers a JOIN labels l ON l.pair_id = a.pair_id "
            "WHERE l.skipped = 0")
        by_query: dict[int, dict[str, float]] = {}
        for q, who, lab in rows:
            by_query.setdefault(int(q), {})[who] = float(lab)
        pairs: dict[tuple[str, str], list[int]] = {}
        for answers in by_query.values():
            names = sorted(answers)
            for i, a in enumerate(names):
                for b in names[i + 1:]:
                    pairs.setdefault((a, b), []).append(int(answers[a] == answers[b]))
        shared = [v for v in by_query.values() if len(v) > 1]
        return {
            "queries_multi": len(shared),
            "unanimous": sum(len(set(v.values())) == 1 for v in shared),
            "pairs": [{"a": a, "b": b, "shared": len(v), "agree": sum(v), "rate": sum(v) / len(v)}
                      for (a, b), v in sorted(pairs.items())],
        }

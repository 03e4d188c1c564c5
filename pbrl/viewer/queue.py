"""The label queue: pairs waiting for a person, and who answered what, inside the preference store.

Two extension tables live next to the store's own (``queries``, ``answers``). They are created by an
additive migration on first use (``CREATE TABLE IF NOT EXISTS`` in one write transaction, recorded as
``meta.queue_version``), so stores written before the viewer existed open unchanged and the store's
``schema_version`` keeps describing the tables every pbrl reader relies on.

Every answer is ONE transaction on the store's connection: the label row (``source='human'``), the
answer row and the query status commit together, durably (WAL, ``synchronous=FULL``) before the
caller returns, so an HTTP response is only sent for an answer that survives a SIGKILL.
"""

from __future__ import annotations

import re
import time
from typing import NamedTuple, Optional, Sequence

import numpy as np

from pbrl.data.store import PreferenceStore
from pbrl.types import EQUAL, FIRST_BETTER, SECOND_BETTER, Labels, PbrlError

QUEUE_VERSION = 1
CHOICES = ("left", "right", "equal", "skip")
_ANNOTATOR = re.compile(r"^[A-Za-z0-9_.@-]{1,40}$")

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


def check_annotator(name: str) -> str:
    """Annotator names are short identifiers (they end up in the store and in URLs)."""
    if not isinstance(name, str) or not _ANNOTATOR.match(name):
        raise PbrlError(f"annotator: expected 1-40 characters from [A-Za-z0-9_.@-], got {name!r}")
    return name


def choice_to_p(choice: str, first_left: bool) -> Optional[float]:
    """Screen answer -> P(first preferred) (pbrl convention); None for a skip."""
    if choice not in CHOICES:
        raise PbrlError(f"choice: expected one of {', '.join(CHOICES)}, got {choice!r}")
    if choice == "skip":
        return None
    if choice == "equal":
        return EQUAL
    left_better = choice == "left"
    return FIRST_BETTER if left_better == first_left else SECOND_BETTER


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

    def enqueue(self, first_ids: Sequence[int], second_ids: Sequence[int], *, rng: np.random.Generator,
                round: int = 0) -> list[int]:
        """Queue pairs (stored segment ids); left/right placement is drawn from ``rng`` and recorded."""
        if len(first_ids) != len(second_ids):
            raise PbrlError(f"enqueue: got {len(first_ids)} first and {len(second_ids)} second ids; expected equal")
        left = rng.random(len(first_ids)) < 0.5
        known = {r[0] for r in self.store._read("SELECT id FROM segments")}
        unknown = sorted({int(i) for i in (*first_ids, *second_ids)} - known)
        if unknown:
            raise PbrlError(f"store {self.store.path}: enqueue: unknown segment id(s) {unknown[:10]}")
        now, ids = time.time(), []
        with self.store._write() as cur:
            for a, b, fl in zip(first_ids, second_ids, left):
                cur.execute("INSERT INTO queries (first_id, second_id, round, first_left, created_at) "
                            "VALUES (?, ?, ?, ?, ?)", (int(a), int(b), int(round), int(fl), now))
                ids.append(int(cur.lastrowid))
        return ids

    def get(self, query_id: int) -> Query:
        rows = self.store._read("SELECT id, first_id, second_id, first_left, round, status FROM queries "
                                "WHERE id = ?", (int(query_id),))
        if not rows:
            raise KeyError(query_id)
        return self._query(rows[0])

    @staticmethod
    def _query(r: tuple) -> Query:
        return Query(int(r[0]), int(r[1]), int(r[2]), bool(r[3]), int(r[4]), str(r[5]))

    def next_for(self, annotator: str, n: int = 1, *, exclude: Sequence[int] = (),
                 overlap: bool = False) -> list[Query]:
        """The next ``n`` queries ``annotator`` has not answered, oldest first.

        Only pending queries, unless ``overlap``: then queries others answered follow, so several
        people label the same pairs (for the agreement page).
        """
        check_annotator(annotator)
        skip = ",".join(str(int(i)) for i in exclude) or "-1"
        status = "" if overlap else "AND q.status = 'pending'"
        rows = self.store._read(
            "SELECT q.id, q.first_id, q.second_id, q.first_left, q.round, q.status FROM queries q "
            "WHERE NOT EXISTS (SELECT 1 FROM answers a WHERE a.query_id = q.id AND a.annotator = ?) "
            f"AND q.id NOT IN ({skip}) {status} ORDER BY q.status = 'done', q.id LIMIT ?",
            (annotator, int(n)))
        return [self._query(r) for r in rows]

    def answer(self, query_id: int, annotator: str, choice: str) -> Answer:
        """Commit one answer durably (label + answer + status in one transaction); idempotent.

        A repeat of the same answer returns the stored one (``duplicate=True``); a different answer to
        a query this annotator already answered is refused (undo first).
        """
        check_annotator(annotator)
        with self.store._write() as cur:
            q = cur.execute("SELECT id, first_id, second_id, first_left, round, status FROM queries WHERE id = ?",
                            (int(query_id),)).fetchone()
            if q is None:
                raise KeyError(query_id)
            q = self._query(q)
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
        return Answer(q.query_id, pair_id, choice, False)

    def undo(self, annotator: str) -> Optional[int]:
        """Withdraw ``annotator``'s most recent answer (label row included); returns its query id or None."""
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
        return int(row[0])

    def progress(self) -> dict:
        """Counts for the progress bar: labelled / queued queries and answers per annotator."""
        status = dict(self.store._read("SELECT status, COUNT(*) FROM queries GROUP BY status"))
        per = self.store._read("SELECT annotator, choice, COUNT(*) FROM answers GROUP BY annotator, choice")
        annotators: dict[str, dict[str, int]] = {}
        for name, choice, count in per:
            annotators.setdefault(name, {c: 0 for c in CHOICES})[choice] = int(count)
        done, pending = int(status.get("done", 0)), int(status.get("pending", 0))
        return {"labelled": done, "queued": pending, "total": done + pending, "annotators": annotators}

    def answers_for(self, query_ids: Sequence[int]) -> dict[int, tuple[Optional[float], bool]]:
        """First answer (label, skipped) of each answered query among ``query_ids``."""
        ids = ",".join(str(int(i)) for i in query_ids) or "-1"
        rows = self.store._read(
            "SELECT a.query_id, l.label, l.skipped FROM answers a JOIN labels l ON l.pair_id = a.pair_id "
            f"WHERE a.query_id IN ({ids}) ORDER BY a.pair_id DESC")
        return {int(q): (lab, bool(s)) for q, lab, s in rows}  # DESC + dict: the first answer wins

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

"""The preference store: segments and their labels in one SQLite file.

Labels are the expensive, irreplaceable part of a run (a person's time), so every write is one
``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction in WAL mode with ``synchronous=FULL``: when a write
method returns, the data is on disk, and a process killed mid-write leaves the store exactly as it
was before that write. Labels follow the pbrl convention of :mod:`pbrl.types` (``p`` = P(first
preferred)); skipped queries are rows with ``skipped = 1`` and ``label`` NULL, enforced by a CHECK.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator, NamedTuple, Optional, Sequence

import numpy as np

from pbrl.data.schema import FORMAT, REQUIRED_COLUMNS, SCHEMA, SCHEMA_VERSION
from pbrl.data.sqlite import SharedConnection, acquire, connect, release
from pbrl.data.trajectory import Segment, stack_pairs
from pbrl.types import SOURCES, Labels, PairBatch, PbrlError, validate_label_values
from pbrl.utils import fsync_path

_RESERVED_META = ("schema_version", "format", "store_uid")
_CHUNK = 500  # ids per `IN (...)` query; well under SQLite's bound-variable limit


class LabelRow(NamedTuple):
    """One stored answer to a query.

    Attributes:
        pair_id: id of the labelled pair.
        first_id, second_id: segment ids, in the order the label refers to.
        label: P(first preferred) in [0, 1], or None when skipped.
        skipped: True where the labeller declined to answer.
        source: one of :data:`pbrl.types.SOURCES`.
        annotator: free-form labeller id ('' when unknown).
        weight: confidence weight of the label (1.0 by default).
        created_at: unix time the label was committed.
    """

    pair_id: int
    first_id: int
    second_id: int
    label: Optional[float]
    skipped: bool
    source: str
    annotator: str
    weight: float
    created_at: float


def _to_blob(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _from_blob(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False)


def _npz_blob(arrays: dict[str, np.ndarray], *, compress: bool) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buf, **arrays)
    return buf.getvalue()


def _from_npz_blob(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


class PreferenceStore:
    """Segments and preference labels of one run, in a single SQLite file.

    Safe to share between threads and between processes (SQLite locking with a busy timeout). All
    stores of one process on one file share one connection (:mod:`pbrl.data.sqlite`), so opening the
    run's store again (labeller, viewer) never drops the process's locks. Segments are immutable once stored.

    Attributes:
        path: the SQLite file.
    """

    def __init__(self, path: str | os.PathLike, *, create: bool = True) -> None:
        self.path = Path(path)
        self._shared: Optional[SharedConnection] = None
        if not self.path.exists():
            if not create:
                raise PbrlError(f"store {self.path}: no such file; expected a pbrl preference store (.sqlite)")
            self._create_file()
        self._shared = self._open_checked()

    def _create_file(self) -> None:
        """Build the schema in a temporary file and link it into place.

        Why: a crash during creation must never leave a half-initialised file at ``path`` that the
        next open would reject; ``os.link`` also never clobbers a store another process just made.
        """
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        leftovers = (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            for p in leftovers:  # a stale temp file from a crashed creation must not be reused
                p.unlink(missing_ok=True)
            conn = connect(tmp)
            try:  # the store's identity: its clip cache must never serve another store's clips
                conn.executescript(f"BEGIN;{SCHEMA}INSERT INTO meta VALUES ('store_uid', '{uuid.uuid4().hex}');"
                                   "COMMIT;PRAGMA journal_mode=WAL;")
            finally:
                conn.close()
            fsync_path(tmp)  # a private temp file no connection holds: a plain descriptor is safe here
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                pass  # another process created it first; open theirs
            except OSError:  # no hard links on this filesystem: rename, unless another process won
                if not self.path.exists():
                    os.replace(tmp, self.path)
            with contextlib.suppress(OSError):  # directories cannot be fsynced everywhere
                fsync_path(self.path.parent)
        except (OSError, sqlite3.Error) as e:
            raise PbrlError(f"store {self.path}: cannot create ({e})") from None
        finally:
            for p in leftovers:
                p.unlink(missing_ok=True)

    def _reject(self, reason: str) -> PbrlError:
        return PbrlError(f"store {self.path}: not a pbrl preference store ({reason})")

    def _open_checked(self) -> SharedConnection:
        """Open an existing file, verifying it is a pbrl store before changing anything in it.

        The file is read through SQLite only (see :mod:`pbrl.data.sqlite`), never with ``open()``.
        """
        try:
            if os.stat(self.path).st_size == 0:
                raise self._reject("empty file")
            return acquire(self.path, self._check_schema)
        except OSError as e:
            raise PbrlError(f"store {self.path}: cannot read ({e.strerror})") from None
        except sqlite3.OperationalError as e:  # locked, I/O, permissions: the file may be fine
            raise PbrlError(f"store {self.path}: cannot open ({e})") from None
        except sqlite3.DatabaseError as e:  # not a database / malformed
            raise self._reject(f"not an SQLite database: {e}" if "not a database" in str(e) else str(e)) from None

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        """Raise unless ``conn`` holds pbrl's tables and a supported schema version (read-only)."""
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = sorted(set(REQUIRED_COLUMNS) - tables)
        if missing:
            raise self._reject(f"missing table(s) {', '.join(missing)}")
        for table, cols in REQUIRED_COLUMNS.items():
            have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            if not cols <= have:
                raise self._reject(f"table {table} lacks column(s) {', '.join(sorted(cols - have))}")
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('schema_version', 'format')"))
        if meta.get("format") != FORMAT:
            raise self._reject(f"meta.format is {meta.get('format')!r}, expected {FORMAT!r}")
        try:
            version = int(meta.get("schema_version", ""))
        except ValueError:
            raise self._reject(f"meta.schema_version is {meta.get('schema_version')!r}") from None
        if version > SCHEMA_VERSION:
            raise PbrlError(
                f"store {self.path}: schema_version {version} is newer than this pbrl supports "
                f"({SCHEMA_VERSION}); upgrade pbrl to open it"
            )

    def close(self) -> None:
        """Let go of the connection (idempotent); the process's last store on the file closes it."""
        shared, self._shared = self._shared, None
        if shared is not None:
            release(shared)

    def __enter__(self) -> "PreferenceStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> SharedConnection:
        shared = self._shared
        if shared is None:
            raise PbrlError(f"store {self.path}: is closed")
        return shared

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        """One atomic, durable write transaction; rolled back on any exception."""
        shared = self._connection()
        with shared.lock:
            db = shared.conn
            cur = db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException as e:
                if db.in_transaction:
                    cur.execute("ROLLBACK")
                if isinstance(e, sqlite3.IntegrityError):
                    raise PbrlError(f"store {self.path}: rejected write ({e})") from None
                if isinstance(e, sqlite3.Error):  # locked past busy_timeout, disk full, I/O error
                    raise PbrlError(f"store {self.path}: write failed, nothing written ({e})") from None
                raise

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        shared = self._connection()
        with shared.lock:
            return shared.conn.execute(sql, tuple(params)).fetchall()

    def uid(self) -> str:
        """The store's identity, drawn when it was created (stores older than it get one on first use).

        A copy of the file keeps it; a new store at the same path gets another one.
        """
        rows = self._read("SELECT value FROM meta WHERE key = 'store_uid'")
        if rows:
            return str(rows[0][0])
        with self._write() as cur:  # OR IGNORE + read back: two processes agree on the first one written
            cur.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('store_uid', ?)", (uuid.uuid4().hex,))
            return str(cur.execute("SELECT value FROM meta WHERE key = 'store_uid'").fetchone()[0])

    def set_meta(self, key: str, value: str) -> None:
        """Store a run-level string (config hash, task, ...); schema keys are reserved."""
        if key in _RESERVED_META:
            raise PbrlError(f"store {self.path}: meta key {key!r} is reserved")
        with self._write() as cur:
            cur.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(value)))

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else default

    def _serialise(self, seg: Segment) -> tuple[tuple, Optional[bytes]]:
        """Segment -> (segments row, media blob or None); done before the write lock is taken."""
        if seg.frames is not None and seg.frames.dtype != np.uint8:
            raise PbrlError(f"store {self.path}: Segment.frames: expected uint8, got {seg.frames.dtype}")
        f32 = [_to_blob(np.asarray(x, np.float32)) for x in (seg.obs, seg.acts, seg.rewards)]
        success = None if seg.success is None else _to_blob(np.asarray(seg.success, bool))
        terms = _npz_blob({k: np.asarray(v, np.float32) for k, v in seg.terms.items()}, compress=False)
        row = (seg.task, int(seg.episode_id), int(seg.start), len(seg), *f32, success, terms)
        media = {k: v for k, v in (("frames", seg.frames), ("states", seg.states), ("scene", seg.scene))
                 if v is not None}
        return row, _npz_blob(media, compress=True) if media else None

    def _insert_segments(self, cur: sqlite3.Cursor, rows: list[tuple[tuple, Optional[bytes]]]) -> list[int]:
        ids = []
        for row, frames in rows:
            cur.execute(
                "INSERT INTO segments (task, episode_id, start, length, obs, acts, rewards, success, terms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            ids.append(int(cur.lastrowid))
            if frames is not None:
                cur.execute("INSERT INTO frames (segment_id, data) VALUES (?, ?)", (ids[-1], frames))
        return ids

    def add_segments(self, segments: Sequence[Segment]) -> list[int]:
        """Store segments in one transaction; returns their new ids (any ``segment_id`` is ignored)."""
        rows = [self._serialise(s) for s in segments]
        if not rows:
            return []
        with self._write() as cur:
            return self._insert_segments(cur, rows)

    def _select_in(self, sql: str, ids: Sequence[int], cur: Optional[sqlite3.Cursor] = None) -> list[tuple]:
        """Run ``sql`` (with one ``{}`` for the id list) in chunks below SQLite's variable limit."""
        out: list[tuple] = []
        for k in range(0, len(ids), _CHUNK):
            chunk = list(ids[k : k + _CHUNK])
            query = sql.format(",".join("?" * len(chunk)))
            out.extend(cur.execute(query, chunk).fetchall() if cur else self._read(query, chunk))
        return out

    def get_segments(self, ids: Sequence[int], *, with_frames: bool = False) -> list[Segment]:
        """Load segments in the order of ``ids`` (repeats allowed), with ``segment_id`` set.

        Frames (and simulator states for re-rendering) live in their own table and are only read
        when asked for, so reward learning never pays for video.
        """
        wanted = [int(i) for i in ids]
        uniq = sorted(set(wanted))
        rows = {r[0]: r for r in self._select_in("SELECT * FROM segments WHERE id IN ({})", uniq)}
        unknown = [i for i in uniq if i not in rows]
        if unknown:
            raise PbrlError(f"store {self.path}: unknown segment id(s) {unknown[:10]}")
        frames: dict[int, bytes] = {}
        if with_frames:
            frames = dict(self._select_in("SELECT segment_id, data FROM frames WHERE segment_id IN ({})", uniq))
        return [self._row_to_segment(rows[i], frames.get(i)) for i in wanted]

    @staticmethod
    def _row_to_segment(row: tuple, frames_blob: Optional[bytes]) -> Segment:
        seg_id, task, episode_id, start, _length, obs, acts, rewards, success, terms = row
        media = {} if frames_blob is None else _from_npz_blob(frames_blob)
        success = None if success is None else _from_blob(success)
        return Segment(obs=_from_blob(obs), acts=_from_blob(acts), rewards=_from_blob(rewards),
                       terms=_from_npz_blob(terms), success=success, frames=media.get("frames"),
                       episode_id=episode_id, start=start, task=task, segment_id=seg_id,
                       states=media.get("states"), scene=media.get("scene"))

    def num_segments(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM segments")[0][0])

    def segment_ids(self) -> list[int]:
        """Every stored segment's id, in insertion order (labelled or not)."""
        return [int(r[0]) for r in self._read("SELECT id FROM segments ORDER BY id")]

    def segment_digests(self, ids: Sequence[int]) -> dict[int, str]:
        """A content hash per stored segment, e.g. to key files derived from it (clips).

        It covers the segment's task, length, observations and actions, and its media npz through the
        zip's size and central directory (which holds a CRC-32 of every array), so large frame blobs are
        never copied out of SQLite for it.
        """
        uniq = sorted({int(i) for i in ids})
        rows = self._select_in(
            "SELECT s.id, s.task, s.length, s.obs, s.acts, length(f.data), substr(f.data, -4096) FROM segments s "
            "LEFT JOIN frames f ON f.segment_id = s.id WHERE s.id IN ({})", uniq)
        out = {}
        for sid, *fields in rows:
            h = hashlib.sha256()
            for field in fields:
                h.update(b"\x00" if field is None else str(field).encode() if not isinstance(field, bytes) else field)
                h.update(b"\x1f")
            out[int(sid)] = h.hexdigest()
        unknown = [i for i in uniq if i not in out]
        if unknown:
            raise PbrlError(f"store {self.path}: unknown segment id(s) {unknown[:10]}")
        return out

    def task_name(self) -> str:
        """The run's task (``meta.task``), else the first segment's task, else ''."""
        name = self.get_meta("task")
        if name:
            return name
        rows = self._read("SELECT task FROM segments ORDER BY id LIMIT 1")
        return str(rows[0][0]) if rows else ""

    def next_episode_id(self) -> int:
        """One more than the largest stored episode id (0 when empty), for importers."""
        return int(self._read("SELECT COALESCE(MAX(episode_id) + 1, 0) FROM segments")[0][0])

    def _check_sources(self, sources: Optional[Sequence[str]]) -> None:
        for s in sources or ():
            if s not in SOURCES:
                raise PbrlError(f"store {self.path}: unknown label source {s!r}; expected one of {SOURCES}")

    def _label_rows(
        self, n: int, n2: int, labels: Labels, source: str, annotator: str, weight: Sequence[float] | None
    ) -> list[tuple]:
        """Validate a batch of answers and turn it into rows (without segment ids)."""
        if n != n2:
            raise PbrlError(f"store {self.path}: got {n} first and {n2} second segments; expected equal")
        self._check_sources([source])
        p = np.asarray(labels.p, np.float64).reshape(-1)
        skipped = np.asarray(labels.skipped, bool).reshape(-1)
        w = np.ones(n) if weight is None else np.asarray(weight, np.float64).reshape(-1)
        if not (len(p) == len(skipped) == len(w) == n):
            raise PbrlError(
                f"store {self.path}: got {n} pairs, {len(p)} labels, "
                f"{len(skipped)} skipped flags and {len(w)} weights; expected equal lengths"
            )
        validate_label_values(p[~skipped], name=f"store {self.path}: labels")
        if w.size and (not np.all(np.isfinite(w)) or w.min() < 0):
            raise PbrlError(f"store {self.path}: label weights must be finite and >= 0")
        now = time.time()
        return [
            (None if s else float(np.float32(v)), int(s), source, annotator, float(wi), now)
            for v, s, wi in zip(p, skipped, w)
        ]

    def _insert_labels(
        self, cur: sqlite3.Cursor, first_ids: Sequence[int], second_ids: Sequence[int], rows: list[tuple]
    ) -> list[int]:
        uniq = sorted({int(i) for i in (*first_ids, *second_ids)})
        found = {r[0] for r in self._select_in("SELECT id FROM segments WHERE id IN ({})", uniq, cur)}
        unknown = [i for i in uniq if i not in found]
        if unknown:
            raise PbrlError(f"store {self.path}: add_labels: unknown segment id(s) {unknown[:10]}")
        pair_ids = []
        for a, b, row in zip(first_ids, second_ids, rows):
            cur.execute(
                "INSERT INTO labels (first_id, second_id, label, skipped, source, annotator, weight, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (int(a), int(b), *row),
            )
            pair_ids.append(int(cur.lastrowid))
        return pair_ids

    def add_labels(
        self,
        first_ids: Sequence[int],
        second_ids: Sequence[int],
        labels: Labels,
        *,
        source: str,
        annotator: str = "",
        weight: Sequence[float] | None = None,
    ) -> list[int]:
        """Record answers to queries in one durable transaction; returns the new pair ids.

        ``labels.p`` is P(first preferred); where ``labels.skipped`` is True the value is ignored
        and the row is stored as skipped with a NULL label. Nothing is written if anything is invalid.
        """
        rows = self._label_rows(len(first_ids), len(second_ids), labels, source, annotator, weight)
        if not rows:
            return []
        with self._write() as cur:
            return self._insert_labels(cur, first_ids, second_ids, rows)

    def add_pairs(
        self,
        first: Sequence[Segment],
        second: Sequence[Segment],
        labels: Labels,
        *,
        source: str,
        annotator: str = "",
        weight: Sequence[float] | None = None,
    ) -> list[int]:
        """Store new segment pairs and their labels in ONE transaction (importers, transfer).

        Why: with separate add_segments/add_labels calls a failure in between would leave
        unlabelled orphan segments behind.
        """
        n = len(first)
        return self.add_comparisons([*first, *second], range(n), range(n, n + len(second)), labels, source=source,
                                    annotator=annotator, weight=weight)

    def add_comparisons(
        self, segments: Sequence[Segment], first: Sequence[int], second: Sequence[int], labels: Labels, *,
        source: str, annotator: str = "", weight: Sequence[float] | None = None,
    ) -> list[int]:
        """Store ``segments`` once and labels between them (``first``/``second`` index ``segments``) in ONE
        transaction: a dataset whose segments are compared several times (dense groups) keeps one copy of each."""
        rows = self._label_rows(len(first), len(second), labels, source, annotator, weight)
        segs = [self._serialise(s) for s in segments]
        if not rows:
            return []
        with self._write() as cur:
            ids = self._insert_segments(cur, segs)
            return self._insert_labels(cur, [ids[i] for i in first], [ids[i] for i in second], rows)

    def _where(self, sources: Optional[Sequence[str]], include_skipped: bool) -> tuple[str, list]:
        self._check_sources(sources)
        clauses, params = ["1"], []
        if not include_skipped:
            clauses.append("skipped = 0")
        if sources is not None:
            clauses.append(f"source IN ({','.join('?' * len(sources))})")
            params.extend(sources)
        return " AND ".join(clauses), params

    def labels(self, *, sources: Sequence[str] | None = None, include_skipped: bool = False) -> list[LabelRow]:
        """Stored labels in pair-id (commit) order, optionally filtered by source."""
        where, params = self._where(sources, include_skipped)
        rows = self._read(
            "SELECT pair_id, first_id, second_id, label, skipped, source, annotator, weight, created_at "
            f"FROM labels WHERE {where} ORDER BY pair_id",
            params,
        )
        return [LabelRow(r[0], r[1], r[2], r[3], bool(r[4]), *r[5:]) for r in rows]

    def count_labels(self, *, include_skipped: bool = False, sources: Sequence[str] | None = None) -> int:
        where, params = self._where(sources, include_skipped)
        return int(self._read(f"SELECT COUNT(*) FROM labels WHERE {where}", params)[0][0])

    def pair_batch(
        self, *, sources: Sequence[str] | None = None, pair_ids: Sequence[int] | None = None
    ) -> PairBatch:
        """All answered labels (optionally only ``sources`` / ``pair_ids``) as a stacked batch.

        Skipped pairs are left out. Unknown ``pair_ids`` raise, so a typo cannot silently shrink
        the training set.
        """
        rows = self.labels(sources=sources, include_skipped=True)
        if pair_ids is not None:
            wanted = {int(i) for i in pair_ids}
            unknown = sorted(wanted - {r.pair_id for r in rows})
            if unknown:
                raise PbrlError(f"store {self.path}: unknown pair id(s) {unknown[:10]} (sources={sources})")
            rows = [r for r in rows if r.pair_id in wanted]
        rows = [r for r in rows if not r.skipped]
        if not rows:
            raise PbrlError(
                f"store {self.path}: no answered labels (sources={sources}, pair_ids given: "
                f"{pair_ids is not None}); label some pairs first"
            )
        segs = self.get_segments([r.first_id for r in rows] + [r.second_id for r in rows])
        p, w = (np.array([getattr(r, k) for r in rows], np.float32) for k in ("label", "weight"))
        return stack_pairs(segs[: len(rows)], segs[len(rows) :], p, w)

"""The preference store's SQL schema (the tables every pbrl reader relies on) and its version."""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 1
FORMAT = "pbrl-preference-store"

SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE segments (
    id INTEGER PRIMARY KEY, task TEXT NOT NULL, episode_id INTEGER NOT NULL, start INTEGER NOT NULL,
    length INTEGER NOT NULL CHECK (length >= 1), obs BLOB NOT NULL, acts BLOB NOT NULL,
    rewards BLOB NOT NULL, success BLOB, terms BLOB NOT NULL
);
-- per segment, an npz of its media: "frames" and/or the simulator "states" + "scene" to re-render it from
CREATE TABLE frames (segment_id INTEGER PRIMARY KEY REFERENCES segments(id), data BLOB NOT NULL);
CREATE TABLE labels (
    pair_id INTEGER PRIMARY KEY,
    first_id INTEGER NOT NULL REFERENCES segments(id),
    second_id INTEGER NOT NULL REFERENCES segments(id),
    label REAL, skipped INTEGER NOT NULL, source TEXT NOT NULL, annotator TEXT NOT NULL DEFAULT '',
    weight REAL NOT NULL DEFAULT 1.0 CHECK (weight >= 0), created_at REAL NOT NULL,
    -- `label IS NOT NULL` is needed: a CHECK that evaluates to NULL passes in SQLite.
    CHECK ((skipped = 1 AND label IS NULL)
           OR (skipped = 0 AND label IS NOT NULL AND label BETWEEN 0 AND 1))
);
CREATE INDEX labels_source ON labels(source);
INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}'), ('format', '{FORMAT}');
"""


def _schema_columns() -> dict[str, set[str]]:
    """Tables and columns of the current schema, read from the DDL itself so they cannot drift."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(SCHEMA)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: {r[1] for r in conn.execute(f"PRAGMA table_info({t})")} for t in tables}
    finally:
        conn.close()


#: Columns every supported store must have; checked on open so a foreign SQLite file is refused.
REQUIRED_COLUMNS = _schema_columns()

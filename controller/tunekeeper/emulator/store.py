"""The emulator's persistent state: JSON documents in SQLite, grouped by kind.

Every emulated object (file, job, event, checkpoint, deployment, operation, ...) is one row
``(kind, id) -> JSON``. With a data dir the database is a file, so a restarted emulator finds
every object where it left it; without one it lives in memory. Thread-safe: the HTTP server
runs in its own thread while tests read the store from theirs. File contents are kept as
blobs in their own table so that listing documents stays cheap.

A database that SQLite cannot open or read (not a database, damaged, locked by a writer that
never lets go) is an ``EmulatorStateError`` naming the file, raised when the store is opened.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from tunekeeper.errors import TunekeeperError


class EmulatorStateError(TunekeeperError):
    """The emulator's saved state cannot be used; the message names the file and the hint what to do."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS docs_kind_seq ON docs (kind, seq);
CREATE TABLE IF NOT EXISTS blobs (id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


class Store:
    """A small document store. ``seq`` preserves insertion order for stable listings."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        target = str(path) if path is not None else ":memory:"
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL" if path is not None else "PRAGMA journal_mode=MEMORY")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute("SELECT COUNT(*) FROM meta").fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise EmulatorStateError(
                f"cannot open the emulator's database {self.location}: {exc}",
                hint="if it is damaged, move it away (or choose another --data-dir) to start afresh; "
                "if another emulator uses it, stop that one first",
            ) from None
        self._lock = threading.RLock()

    @property
    def location(self) -> str:
        """Where the state lives, as messages name it."""
        return str(self.path) if self.path is not None else "memory"

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several writes atomically (re-entrant)."""
        with self._lock:
            if self._db.in_transaction:
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # documents
    def put(self, kind: str, id: str, doc: dict[str, Any]) -> None:
        body = orjson.dumps(doc)
        with self._lock:
            row = self._db.execute("SELECT seq FROM docs WHERE kind=? AND id=?", (kind, id)).fetchone()
            if row is None:
                seq = self._next_seq()
                self._db.execute(
                    "INSERT INTO docs (kind, id, seq, body) VALUES (?, ?, ?, ?)", (kind, id, seq, body)
                )
            else:
                self._db.execute("UPDATE docs SET body=? WHERE kind=? AND id=?", (body, kind, id))

    def get(self, kind: str, id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM docs WHERE kind=? AND id=?", (kind, id)).fetchone()
        return None if row is None else orjson.loads(row[0])

    def delete(self, kind: str, id: str) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM docs WHERE kind=? AND id=?", (kind, id))
        return cur.rowcount > 0

    def list(self, kind: str) -> list[dict[str, Any]]:
        """All documents of a kind, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT body FROM docs WHERE kind=? ORDER BY seq", (kind,)).fetchall()
        return [orjson.loads(r[0]) for r in rows]

    def _next_seq(self) -> int:
        row = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM docs").fetchone()
        return int(row[0])

    # blobs (file contents)
    def put_blob(self, id: str, data: bytes) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO blobs (id, data) VALUES (?, ?)", (id, data))

    def get_blob(self, id: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM blobs WHERE id=?", (id,)).fetchone()
        return None if row is None else bytes(row[0])

    def delete_blob(self, id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM blobs WHERE id=?", (id,))

    # small key/value settings (clock offset, counters)
    def get_meta(self, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else orjson.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, orjson.dumps(value))
            )

    def reset(self) -> None:
        """Forget everything (tests reset state between cases)."""
        with self._lock:
            self._db.executescript("DELETE FROM docs; DELETE FROM blobs; DELETE FROM meta;")

    def close(self) -> None:
        with self._lock:
            self._db.close()

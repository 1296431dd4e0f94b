"""One SQLite database in WAL mode: a single writer (serialised by a lock) and per-thread readers.

Every write goes through `Database.write()`, a `BEGIN IMMEDIATE` transaction that commits or rolls
back as a whole, so a message is never partially stored. Commits are durable (synchronous=FULL)
before they are answered: an edge deletes the events central acknowledged and an enterprise trusts
a receipt, so a power cut after the answer must not lose what it said was stored (NORMAL could).
This is the one place that knows the database is SQLite; the rest of central/store speaks plain SQL
that PostgreSQL also understands except where marked.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from central.store.schema import MIGRATIONS


def _connect(path: Path | str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    # SQLite's default page cache is 2 MB: at a million clearances the upper levels of the indexes a
    # lookup or an insert walks no longer stay in it, and every miss is a read from the OS. 64 MB per
    # connection (taken as used) keeps them (issue 11 J).
    conn.execute("PRAGMA cache_size=-65536")
    return conn


class Database:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = _connect(path)
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self.migrate()

    # --- connections ---
    def reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            self._local.conn = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One serialised write transaction; commits on success, rolls back on any exception."""
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        self._writer.close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()

    # --- schema ---
    def migrate(self) -> list[str]:
        """Apply every migration not yet applied, in order; returns the names applied."""
        applied: list[str] = []
        with self.write() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT)"
            )
            done = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
            db = sqlite_utils.Database(conn)
            for name, migration in MIGRATIONS:
                if name in done:
                    continue
                migration(db)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, strftime('%Y-%m-%dT%H:%M:%fZ','now'))",
                    (name,),
                )
                applied.append(name)
        return applied

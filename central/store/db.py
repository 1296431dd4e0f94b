"""One SQLite database in WAL mode: a single writer (serialised by a lock) and per-thread readers.

Every write goes through `Database.write()`, a `BEGIN IMMEDIATE` transaction that commits or rolls
back as a whole, so a message is never partially stored. Commits are durable (synchronous=FULL)
before they are answered: an edge deletes the events central acknowledged and an enterprise trusts
a receipt, so a power cut after the answer must not lose what it said was stored (NORMAL could).
Callers run on FastAPI's threadpool: each thread reads through a connection of its own, and writers
wait for the lock. The migrations (central/store/schema.py) run when the database is opened.
This is the one place that knows the database is SQLite; the rest of central/store speaks plain SQL
that PostgreSQL also understands except where marked.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from central.store.schema import MIGRATIONS
from kernel import sqlite

# A page cache of 64 MB per connection (taken as used, not reserved): the upper levels of the indexes
# a lookup or an insert walks stay in it at a million clearances, where SQLite's 2 MB default misses.
PRAGMAS = sqlite.Pragmas(synchronous="FULL", foreign_keys=True, cache_kib=65536)


class Database:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = sqlite.connect(path, PRAGMAS)
        self._write_lock = threading.Lock()
        self._readers = sqlite.Readers(path, PRAGMAS)
        self.migrate()

    # --- connections ---
    def reader(self) -> sqlite3.Connection:
        return self._readers.get()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One serialised write transaction; commits on success, rolls back on any exception."""
        with self._write_lock, sqlite.transaction(self._writer) as conn:
            yield conn

    def close(self) -> None:
        self._writer.close()
        self._readers.close_mine()

    # --- schema ---
    def migrate(self) -> list[str]:
        """Apply every migration not yet applied, in order; returns the names applied."""
        with self._write_lock:
            return sqlite.migrate(self._writer, MIGRATIONS)

"""Central's database: SQLite (one file, the embedded default) or PostgreSQL (several central
processes over one server), chosen by the `database` setting (`open_database`).

Every write goes through `Database.write()`, one transaction that commits or rolls back as a whole,
so a message is never partially stored, and writes are serialised: on SQLite by `BEGIN IMMEDIATE`
and a lock in the process, on PostgreSQL by one advisory transaction lock that every central process
takes first (central/store/postgres.py), so several processes behave exactly as one. Commits are
durable before they are answered: an edge deletes the events central acknowledged and an enterprise
trusts a receipt. Reads go through `reader()`, a connection of the calling thread's own (callers run
on FastAPI's threadpool). The migrations run when the database is opened.

`listen(callback)` calls `callback(park_id)` after a transaction that appended to the park's feed
commits, in any central process over the same database (the feed's long poll waits on it).
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from central.store.connection import Connection
from central.store.schema import MIGRATIONS
from kernel import sqlite

FeedListener = Callable[[str], None]


class DatabaseUnavailable(Exception):
    """The database could not be reached, or a lock was not granted in time: nothing was stored,
    and the same request may be sent again (the API answers 503)."""


# A page cache of 64 MB per connection (taken as used, not reserved): the upper levels of the indexes
# a lookup or an insert walks stay in it at a million clearances, where SQLite's 2 MB default misses.
PRAGMAS = sqlite.Pragmas(synchronous="FULL", foreign_keys=True, cache_kib=65536)

FEED_NOTIFY_FUNCTION = "bondgate_feed_appended"  # SQLite: the SQL function a feed append calls
FEED_CHANNEL = "bondgate_feed"  # PostgreSQL: the NOTIFY channel; the payload is the park id


class Database(ABC):
    dialect: str

    @abstractmethod
    def reader(self) -> Connection:
        """The calling thread's reading connection (each statement sees the latest commit)."""

    @abstractmethod
    def write(self) -> AbstractContextManager[Connection]:
        """One serialised write transaction; commits on success, rolls back on any exception."""

    @abstractmethod
    def snapshot(self) -> AbstractContextManager[Connection]:
        """One read transaction: every query in it sees the same committed state."""

    @abstractmethod
    def migrate(self) -> list[str]:
        """Apply every migration not yet applied, in order; returns the names applied."""

    @abstractmethod
    def listen(self, callback: FeedListener) -> None:
        """Call `callback(park_id)` (from any thread) after each commit that appended to a feed."""

    @abstractmethod
    def close(self) -> None: ...

    def upkeep(self) -> list[str]:
        """Periodic upkeep while the service runs; returns what it did (nothing, on SQLite)."""
        return []

    @property
    @abstractmethod
    def target(self) -> str:
        """Where the data is, for logs (a PostgreSQL URL without its password)."""


def open_database(target: str | Path) -> Database:
    """SQLite for a file path, PostgreSQL for a `postgresql://` (or `postgres://`) URL."""
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        from central.store.postgres import PostgresDatabase  # psycopg only where it is used

        return PostgresDatabase(text)
    return SqliteDatabase(target)


class SqliteDatabase(Database):
    """One SQLite file in WAL mode: a single writer (serialised by a lock) and per-thread readers."""

    dialect = "sqlite"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = sqlite.connect(path, PRAGMAS)
        self._appended: list[str] = []  # parks whose feed the open transaction appended to
        self._writer.create_function(FEED_NOTIFY_FUNCTION, 1, self._appended.append)
        self._listeners: list[FeedListener] = []
        self._write_lock = threading.Lock()
        self._readers = sqlite.Readers(path, PRAGMAS)
        self.migrate()

    @property
    def target(self) -> str:
        return str(self.path)

    def reader(self) -> sqlite3.Connection:
        return self._readers.get()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            self._appended.clear()
            try:
                with sqlite.transaction(self._writer) as conn:
                    yield conn
                parks = list(dict.fromkeys(self._appended))
            finally:
                self._appended.clear()
        for park_id in parks:
            for callback in self._listeners:
                callback(park_id)

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        with sqlite.read_transaction(self.reader()) as conn:
            yield conn

    def listen(self, callback: FeedListener) -> None:
        self._listeners.append(callback)

    def close(self) -> None:
        self._writer.close()
        self._readers.close_all()

    def migrate(self) -> list[str]:
        with self._write_lock:
            return sqlite.migrate(self._writer, MIGRATIONS)

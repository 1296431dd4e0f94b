"""SQLite as every store uses it: connections opened one way, write transactions, migrations.

`connect` opens a connection in autocommit mode (`isolation_level=None`: transactions are the
caller's, explicit) in WAL mode with the given `Pragmas`, rows as `sqlite3.Row`. `transaction` is one
`BEGIN IMMEDIATE` … `COMMIT` that rolls back as a whole on any exception, including a failed COMMIT,
so the connection is never left inside a transaction. `read_transaction` is one consistent snapshot
for several reads. The threading around them (which connection writes, from which thread) is each
store's own.

`migrate` applies named migrations in order, each in its own transaction together with its record in
`schema_migrations` (name, applied_at), and mirrors their count into `PRAGMA user_version`. A
database whose migrations were counted in `user_version` alone (the edge's, before they had names)
has its first `user_version` migrations recorded as applied, once, when it is first opened.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Migration = tuple[str, Callable[[sqlite3.Connection], None]]  # (name, step): append; never edit or reorder


@dataclass(frozen=True)
class Pragmas:
    """What each connection of a store is opened with (WAL always)."""

    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    foreign_keys: bool = False
    busy_timeout_ms: int = 30_000
    cache_kib: int | None = None  # page cache per connection; None: SQLite's default (2 MB)


def connect(path: Path | str, pragmas: Pragmas = Pragmas()) -> sqlite3.Connection:
    """A connection usable from any thread (the caller keeps it to one at a time)."""
    conn = sqlite3.connect(
        str(path), isolation_level=None, check_same_thread=False, timeout=pragmas.busy_timeout_ms / 1000
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={pragmas.synchronous}")
    if pragmas.foreign_keys:
        conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={int(pragmas.busy_timeout_ms)}")
    if pragmas.cache_kib is not None:
        conn.execute(f"PRAGMA cache_size=-{int(pragmas.cache_kib)}")
    return conn


class Readers:
    """One reading connection per thread, opened on a thread's first read and kept for the next.

    Every connection opened is also listed, so `close_all` closes them all when the store closes: a
    thread-local connection of a thread that lives on (an executor's, a server's worker) would
    otherwise hold its file descriptors for the life of the process. A thread reading after that
    gets a new connection."""

    def __init__(self, path: Path | str, pragmas: Pragmas) -> None:
        self.path, self.pragmas = path, pragmas
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._generation = 0

    def get(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "generation", -1) != self._generation:
            conn = connect(self.path, self.pragmas)
            self._local.conn, self._local.generation = conn, self._generation
            with self._lock:
                self._opened.append(conn)
        return conn

    def close_mine(self) -> None:
        """Close the calling thread's connection, if it opened one."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
            with self._lock:
                if conn in self._opened:
                    self._opened.remove(conn)

    def close_all(self) -> None:
        """Close every thread's connection (the store is closing: nothing reads any more)."""
        with self._lock:
            opened, self._opened = self._opened, []
            self._generation += 1
        for conn in opened:
            conn.close()


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: committed when the block ends, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # also when COMMIT itself failed
            conn.execute("ROLLBACK")
        raise


@contextmanager
def read_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One snapshot: every read in the block sees the same committed state; nothing is written."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
    return row is not None


def integrity_check(conn: sqlite3.Connection) -> list[str]:
    """SQLite's own check of the file: ["ok"], or what it found damaged."""
    return [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> list[str]:
    """Apply every migration not recorded yet, in list order; returns the names applied."""
    with transaction(conn):
        counted = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if not has_table(conn, "schema_migrations"):
            conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
            conn.executemany(  # counted before migrations had names: applied, when unknown
                "INSERT INTO schema_migrations (name, applied_at) VALUES (?, NULL)",
                [(name,) for name, _ in migrations[:counted]],
            )
        done = {str(r[0]) for r in conn.execute("SELECT name FROM schema_migrations")}
        if counted != len(done):
            conn.execute(f"PRAGMA user_version = {len(done)}")
    applied: list[str] = []
    for name, step in migrations:
        if name in done:
            continue
        with transaction(conn):
            step(conn)
            conn.execute(
                "INSERT INTO schema_migrations (name, applied_at)"
                " VALUES (?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                (name,),
            )
            done.add(name)
            conn.execute(f"PRAGMA user_version = {len(done)}")
        applied.append(name)
    return applied

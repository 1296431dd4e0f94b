"""The store's SQL on PostgreSQL: `?` placeholders and rows read by name or by position, as on SQLite.

Central's store is written as SQL strings with `?` placeholders, reading rows as `sqlite3.Row` does
(`row["status"]`, `row[0]`, `dict(row)`). `PgConnection` wraps a psycopg 3 connection so the same
strings and the same row access work there:

- `translate(sql)` turns each `?` outside a quoted literal or identifier into psycopg's `%s`, and
  doubles every `%` outside them, which psycopg would otherwise read as a placeholder. A `?` or `%`
  inside `'…'` or `"…"` is left as it is written.
- `Row` is a tuple whose values are also found by column name, with `keys()`, so `dict(row)` works.

`PostgresDatabase` is central's `Database` on PostgreSQL. Several central processes share one
server, and each write transaction first takes one advisory transaction lock (`WRITE_LOCK`), held
to its commit: writes are serialised across every process exactly as SQLite's `BEGIN IMMEDIATE`
serialises them in one, so what one process guarantees (a set compared once, a feed seq never
passed by a reader, an event stored once, one winner of two status changes) holds for many. What
runs outside the write transaction (HTTP, parsing and validating documents, reads, pages) runs in
parallel. docs/scaling.md says what that carries and what comes after it.

A feed append runs `pg_notify('bondgate_feed', park)`, delivered to every process's listening
connection when the transaction commits: a long poll in one process wakes on a commit in another.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import RowMaker

from central.store.connection import as_postgresql_stores
from central.store.db import FEED_CHANNEL, Database, DatabaseUnavailable, FeedListener
from kernel.backoff import Backoff

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4096)  # the store's statements are a few hundred fixed strings
def translate(sql: str) -> str:
    """`sql` with `?` placeholders as psycopg's `%s` (and literal `%` doubled), quotes respected."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            if ch == quote:
                quote = None  # a doubled quote ('') closes and reopens: the same result
            out.append("%%" if ch == "%" else ch)
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


class Row(tuple[Any, ...]):
    """A result row read by position (`row[0]`) or by column name (`row["status"]`)."""

    _index: dict[str, int]

    def __new__(cls, values: Sequence[Any], index: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:  # also by name, as sqlite3.Row
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


@functools.lru_cache(maxsize=4096)
def _index(names: tuple[bytes, ...]) -> dict[str, int]:
    return {name.decode(): i for i, name in enumerate(names)}


def row_factory(cursor: psycopg.Cursor[Any]) -> RowMaker[Row]:
    # the column names straight from the result: `cursor.description` builds a Column (with its
    # type's info) per column per statement, a fifth of intake's client time
    result = cursor.pgresult
    names = tuple(result.fname(i) or b"" for i in range(result.nfields)) if result is not None else ()
    index = _index(names)

    def make(values: Sequence[Any]) -> Row:
        return Row(values, index)

    return make


class PgConnection:
    """A psycopg connection that takes the store's SQL and returns `Row`s."""

    dialect = "postgresql"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn
        self.announced: set[str] = set()  # parks whose feed this transaction NOTIFYed already

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Row]:
        cursor = self.raw.cursor(row_factory=row_factory)
        try:
            return cursor.execute(translate(sql), _storable(params))
        except psycopg.OperationalError as exc:  # the server went away, or a lock was not granted
            raise DatabaseUnavailable(str(exc)) from exc

    def executemany(self, sql: str, rows: Iterator[Sequence[Any]] | Sequence[Sequence[Any]]) -> None:
        with self.raw.cursor() as cursor:
            try:
                cursor.executemany(translate(sql), (_storable(row) for row in rows))
            except psycopg.OperationalError as exc:
                raise DatabaseUnavailable(str(exc)) from exc


def _storable(params: Sequence[Any]) -> Sequence[Any]:
    """PostgreSQL text cannot hold NUL (SQLite's can): a NUL in a value is stored, and looked up, as
    U+FFFD, the replacement character, so a scanner's stray 0x00 is kept rather than refused (an
    edge's event chain must not stop at it)."""
    for p in params:
        if type(p) is str and "\x00" in p:
            return [as_postgresql_stores(p) if isinstance(p, str) else p for p in params]
    return params


PgMigration = tuple[str, Callable[[PgConnection], None]]  # (name, step): append; never edit or reorder
MIGRATION_LOCK = 0x626F6E64  # pg_advisory_lock key ("bond") held while a process migrates


@contextmanager
def migration_lock(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """The session-level advisory lock a process holds while it changes the schema (migrations, the
    months' partitions), so that processes starting together take turns. Re-entrant in a session."""
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def migrate(conn: psycopg.Connection[Any], migrations: Sequence[PgMigration]) -> list[str]:
    """Apply every migration not recorded yet, in list order, each in its own transaction with its
    record in `schema_migrations`; returns the names this call applied.

    Several central processes start together: each takes the same session-level advisory lock
    first, so one migrates while the others wait, and then find everything recorded. `conn` must be
    in autocommit mode (the steps' transactions are this function's)."""
    if not conn.autocommit:
        raise ValueError("migrate needs an autocommit connection: it runs one transaction per step")
    store = PgConnection(conn)
    with migration_lock(conn):
        with conn.transaction():
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {str(r[0]) for r in conn.execute("SELECT name FROM schema_migrations")}
        applied: list[str] = []
        for name, step in migrations:
            if name in done:
                continue
            with conn.transaction():
                step(store)
                conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
            applied.append(name)
        return applied


WRITE_LOCK = 0x62677772  # pg_advisory_xact_lock key ("bgwr") every write transaction takes first
SESSION_SETTINGS = (
    # a process frozen inside its write transaction (stopped, swapped out, cut off) holds every other
    # process's writes: the server ends its transaction after this long idle (a live writer never
    # idles between its statements for more than milliseconds)
    "SET idle_in_transaction_session_timeout = '5s'",
    "SET lock_timeout = '15s'",  # waiting for the write lock longer than this is a 503
    # central's queries are lookups of a few rows through an index: a parallel plan (chosen where
    # an expression index's estimate is poor, e.g. a pending inventory by invtNo) spends 5-10 ms
    # starting workers for a query that takes 0.1 ms without them (p50 14.9 ms at 1,000,000)
    "SET max_parallel_workers_per_gather = 0",
)


STUCK_AFTER_S = 5  # as idle_in_transaction_session_timeout: a holder waiting on its client this long is stuck
# the sessions of this database holding WRITE_LOCK (a single bigint key: classid is its high half,
# objid its low, objsubid 1) that have waited on their client, with nothing run, for that long
END_STUCK_WRITER = (
    "WITH stuck AS MATERIALIZED (SELECT a.pid, a.state"
    " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    " AND ((l.classid::bigint << 32) | l.objid::bigint) = %s"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND a.state IN ('active', 'idle in transaction') AND a.wait_event = 'ClientRead'"
    " AND a.state_change < now() - make_interval(secs => %s))"
    " SELECT pid, state FROM stuck WHERE pg_terminate_backend(pid)"
)


def redacted(text: str) -> str:
    """`text` (a URL, or a message quoting one) without passwords, for logs and errors: the
    password of `user:password@` and a `password=` parameter, however malformed the URL is."""
    text = re.sub(r"(postgres(?:ql)?://[^/@\s]*?:)[^@\s]*@", r"\1***@", text, flags=re.IGNORECASE)
    return re.sub(r"(password\s*=\s*)[^&\s'\"]*", r"\1***", text, flags=re.IGNORECASE)


class PostgresDatabase(Database):
    """Central's database on a PostgreSQL server; see the module's docstring."""

    dialect = "postgresql"

    def __init__(self, dsn: str) -> None:
        from central.store.pg_schema import PG_MIGRATIONS, ensure_partitions

        self.dsn = dsn
        self._migrations = PG_MIGRATIONS
        self._ensure_partitions = ensure_partitions
        self._write_lock = threading.Lock()
        self._writer: psycopg.Connection[Any] | None = None
        self._local = threading.local()
        self._readers: list[psycopg.Connection[Any]] = []  # every thread's, closed by close()
        self._readers_lock = threading.Lock()
        self._listeners: list[FeedListener] = []
        self._listener_thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._waiting_since: float | None = None  # when this process began to wait for the write lock
        self._watch = threading.Thread(target=self._watch_write_lock, name="write-lock-watch", daemon=True)
        self.migrate()
        self._watch.start()

    @property
    def target(self) -> str:
        return redacted(self.dsn)

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.dsn, autocommit=True)
        for statement in SESSION_SETTINGS:
            conn.execute(statement)
        return conn

    def reader(self) -> PgConnection:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.broken or conn.closed:
            try:
                conn = self._connect()
            except psycopg.OperationalError as exc:
                raise DatabaseUnavailable(str(exc)) from exc
            self._local.conn = conn
            with self._readers_lock:
                self._readers = [c for c in self._readers if not c.closed]
                self._readers.append(conn)
        return PgConnection(conn)

    @contextmanager
    def write(self) -> Iterator[PgConnection]:
        """One transaction under the write lock. A lost connection or a lock not granted in time
        rolls it back and raises `DatabaseUnavailable`; the next write connects again."""
        with self._write_lock:
            try:
                if self._writer is None or self._writer.broken or self._writer.closed:
                    self._writer = self._connect()
                with self._writer.pipeline(), self._writer.transaction():
                    conn = PgConnection(self._writer)
                    self._waiting_since = time.monotonic()
                    try:  # waited for: the watch below ends a holder that is stuck
                        conn.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,)).fetchone()
                    finally:
                        self._waiting_since = None
                    yield conn
            except psycopg.OperationalError as exc:
                raise DatabaseUnavailable(str(exc)) from exc

    def _watch_write_lock(self) -> None:
        """While this process waits for the write lock, end the holder if it is stuck.

        A process frozen inside its write transaction (stopped, swapped out, cut off) would hold
        every process's writes. The server ends a session idle in its transaction for
        `idle_in_transaction_session_timeout`, but a pipelined transaction is not idle: until its
        Sync the session stays "active", reading the client's next message, possibly half of one,
        and no timeout of the server's applies. Its state is stamped at each statement, so a holder
        that has waited on its client that long (`STUCK_AFTER_S`) is stuck: this terminates it,
        which rolls its transaction back (its client answered nothing yet), and the wait goes on.
        The check runs only while a process waits, once a second."""
        while not self._closing.wait(1.0):
            since = self._waiting_since
            if since is None or time.monotonic() - since < 1.0:
                continue
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    ended = conn.execute(END_STUCK_WRITER, (WRITE_LOCK, STUCK_AFTER_S)).fetchall()
                for pid, state in ended:
                    log.warning(
                        "ended a database session stuck holding the write lock",
                        extra={"pid": pid, "state": state, "stuck_after_s": STUCK_AFTER_S},
                    )
            except psycopg.Error as exc:
                log.warning("could not look for a stuck writer", extra={"error": str(exc)})

    @contextmanager
    def snapshot(self) -> Iterator[PgConnection]:
        conn = self.reader()
        conn.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        try:
            yield conn
        finally:
            if not conn.raw.broken:
                conn.raw.execute("ROLLBACK")

    def migrate(self) -> list[str]:
        try:
            with self._write_lock, psycopg.connect(self.dsn, autocommit=True) as conn:
                with migration_lock(conn):  # the months' partitions in the same turn as the migrations
                    applied = migrate(conn, self._migrations)
                    self._partitions(conn)
                self._check_collation(conn)
                return applied
        except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:  # unreachable, refused, bad URL
            detail = redacted(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            raise DatabaseUnavailable(f"cannot open {self.target}: {detail}") from exc

    def _check_collation(self, conn: psycopg.Connection[Any]) -> None:
        """Times are ISO text: ordered byte-wise everywhere only in a C-collated database."""
        row = conn.execute("SELECT datcollate FROM pg_database WHERE datname = current_database()").fetchone()
        if row is not None and str(row[0]).split(".")[0] not in ("C", "POSIX"):
            log.warning(
                "the database is not C-collated: lists order text as its locale does, not as SQLite"
                " (create it with --locale=C)",
                extra={"collation": row[0]},
            )

    def upkeep(self) -> list[str]:
        """Create the coming months' partitions (at start, and every few hours while running)."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return self._partitions(conn)

    def _partitions(self, conn: psycopg.Connection[Any]) -> list[str]:
        """Under the migration lock: processes starting together would race to create a month."""
        with migration_lock(conn), conn.transaction():
            return self._ensure_partitions(PgConnection(conn))

    def listen(self, callback: FeedListener) -> None:
        self._listeners.append(callback)
        if self._listener_thread is None:
            self._listener_thread = threading.Thread(
                target=self._listen_forever, name="feed-listener", daemon=True
            )
            self._listener_thread.start()

    def _listen_forever(self) -> None:
        """One LISTEN connection, reconnected after a failure. Notifications sent while it was away
        are lost, so every reconnection wakes every waiting poll (park "*"): they read again."""
        backoff = Backoff(initial=0.2, maximum=5.0)
        while not self._closing.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {FEED_CHANNEL}")
                    backoff.reset()
                    self._tell("*")
                    while not self._closing.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._tell(note.payload)
            except psycopg.Error as exc:
                log.warning("feed listener lost its connection", extra={"error": str(exc)})
                self._closing.wait(backoff.next_delay())

    def _tell(self, park_id: str) -> None:
        for callback in self._listeners:
            try:
                callback(park_id)
            except Exception:  # a listener's failure must not end the listening thread
                log.exception("feed listener callback failed")

    def close(self) -> None:
        """Close the writer and every thread's reader (a server's worker threads outlive it)."""
        self._closing.set()
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()

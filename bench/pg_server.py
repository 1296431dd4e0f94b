"""PostgreSQL for the benches: one cluster of the benches' own, kept under bench/.cache/ (gitignored)
with the databases they build in it, started with the server settings a measurement asks for.

testkit/postgres.py runs a throwaway cluster with fsync off (it tests what several processes do, not
what a power cut does). A bench that sets PostgreSQL beside SQLite needs durable commits on both
(central's SQLite runs with synchronous=FULL), and a large database it can build once and reuse, so
this runner differs in three ways:

- the cluster lives in `bench/.cache/postgres-<major>/` and outlives the bench; databases built in
  it are recorded by a marker file in the same folder (`built/<database>.json`), written last;
- the server settings are the caller's: `DURABLE` (fsync, synchronous_commit and full_page_writes
  on: PostgreSQL's defaults, a commit is on disk before it is answered), `NOT_DURABLE` (testkit's),
  or `BULK` for building the cached databases (no WAL for loads, then a clean shutdown and a sync);
- `cpu_seconds()` is the CPU time the whole cluster used: the postmaster and every process it
  started (backends, checkpointer, WAL writer, autovacuum), those still running and those it reaped.

PostgreSQL refuses to run as root: then, as in testkit, the cluster's folder belongs to the
`postgres` user and `initdb` and the server run as that user. Authentication is `trust` on loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench.central_process import tree_cpu_seconds
from testkit.postgres import postgres_bin, start_server, stop_server

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"

DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
NOT_DURABLE = {"fsync": "off", "synchronous_commit": "on", "full_page_writes": "off"}
# building the cached databases: nothing of it is measured; COPY into tables of the same transaction
# writes no WAL with wal_level=minimal, and the index builds get memory
BULK = {
    **NOT_DURABLE,
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "16GB",
    "checkpoint_timeout": "1h",
    "shared_buffers": "2GB",
    "maintenance_work_mem": "1GB",
    "autovacuum": "off",
    "jit": "off",  # the tallies rebuild's UPDATE costs enough to be JIT-compiled: seconds, for nothing
}
SHOWN = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "shared_buffers",
    "work_mem",
    "jit",
)


@dataclass
class PgServer:
    port: int
    folder: Path
    bin: Path
    settings: dict[str, str]
    as_user: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn_for(database), autocommit=True)

    def execute(self, sql: str, database: str = "postgres") -> list[tuple[Any, ...]]:
        with self.connect(database) as conn:
            cur = conn.execute(sql)
            return cur.fetchall() if cur.description else []

    def exists(self, database: str) -> bool:
        with self.connect() as conn:
            return (
                conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
                is not None
            )

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database, empty or a file copy of `template` (no one may be connected to it)."""
        copy = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
        self.execute(f'CREATE DATABASE "{name}"{copy}')
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def database_bytes(self, name: str) -> int:
        return int(self.execute(f"SELECT pg_database_size('{name}')")[0][0])

    # --- databases built once and kept in the cluster ---

    def _marker(self, name: str) -> Path:
        return self.folder / "built" / f"{name}.json"

    def built(self, name: str) -> dict[str, Any] | None:
        """The meta of a database built before (its marker is written after it is complete)."""
        marker = self._marker(name)
        if marker.exists() and self.exists(name):
            return dict(json.loads(marker.read_text()))
        return None

    def mark_built(self, name: str, meta: Mapping[str, Any]) -> None:
        marker = self._marker(name)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(meta))

    def forget(self, prefix: str) -> None:
        """Drop every built database whose name starts with `prefix` (built for an older schema)."""
        for (name,) in self.execute(f"SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%'"):
            self.drop_database(name)
        for marker in (self.folder / "built").glob(f"{prefix}*.json"):
            marker.unlink()

    # --- what it ran with, what it used ---

    def describe(self) -> str:
        with self.connect() as conn:
            shown = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in SHOWN}  # type: ignore[index]
        version = shown.pop("server_version").split()[0]
        listed = ", ".join(f"{k}={v}" for k, v in shown.items())
        return f"PostgreSQL {version} ({listed}), psycopg {psycopg.__version__}"

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])

    def cpu_seconds(self) -> float:
        """CPU seconds (user + system) of the postmaster and all its processes so far, those it
        reaped included: a difference of two readings is what the cluster used in between."""
        return tree_cpu_seconds(self.postmaster_pid())


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The benches' options for the database: which, and the PostgreSQL server's settings."""
    ap.add_argument(
        "--backend",
        choices=("sqlite", "postgresql", "both"),
        default="sqlite",
        help="central's database: SQLite (as before), PostgreSQL, or both in the same run",
    )
    ap.add_argument(
        "--pg-fsync",
        choices=("on", "off"),
        default="on",
        help="PostgreSQL with durable commits (fsync, synchronous_commit, full_page_writes on), or not",
    )
    ap.add_argument(
        "--pg-set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="another PostgreSQL server setting",
    )


def settings_for(durable: bool, extra: list[str] | None = None) -> dict[str, str]:
    """The measurement settings: `DURABLE` or `NOT_DURABLE`, then NAME=VALUE pairs from the command line."""
    settings = dict(DURABLE if durable else NOT_DURABLE)
    for pair in extra or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--pg-set wants NAME=VALUE, got {pair!r}")
        settings[name.strip()] = value.strip()
    return settings


@contextmanager
def running(
    settings: Mapping[str, str], *, folder: Path | None = None, start_s: float = 120
) -> Iterator[PgServer]:
    """The benches' cluster (created the first time), running with `settings` until the block ends,
    then stopped (a fast shutdown writes a checkpoint) and, after a session without fsync, synced."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL is not installed (scripts/system-packages.sh installs it)")
    major = bin_dir.parts[-2] if bin_dir.parts[-3] == "postgresql" else "local"
    folder = folder or CACHE / f"postgres-{major}"
    data = folder / "data"
    as_user: list[str] = []
    folder.mkdir(parents=True, exist_ok=True)
    socket_dir = Path(tempfile.mkdtemp(prefix="bench-pg-sock-"))
    if os.geteuid() == 0:  # PostgreSQL will not run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        for path in (folder, socket_dir):
            shutil.chown(path, "postgres", "postgres")
    if not (data / "PG_VERSION").exists():
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(folder / "built", ignore_errors=True)
        subprocess.run(
            [
                *as_user,
                *(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"),
                *("-E", "UTF8", "--locale=C.UTF-8", "--no-sync"),
            ],
            capture_output=True,
            timeout=300,
            check=True,
        )
    (folder / "built").mkdir(exist_ok=True)
    if (data / "postmaster.pid").exists():
        pid = (data / "postmaster.pid").read_text().split("\n", 1)[0]
        if Path(f"/proc/{pid}").exists():
            raise SystemExit(
                f"the benches' PostgreSQL in {data} is running already (pid {pid}): another bench uses it,"
                f" or one was killed; stop it with `kill -INT {pid}`"
            )
    log = folder / "server.log"  # the last session's, kept for a look after a failure
    proc: subprocess.Popen[bytes] | None = None
    try:
        try:
            sockets = {"unix_socket_directories": str(socket_dir), **settings}
            proc, port = start_server(bin_dir, data, as_user, sockets, log, start_s)
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from exc
        server = PgServer(port=port, folder=folder, bin=bin_dir, settings=dict(settings), as_user=as_user)
        yield server
    finally:
        if proc is not None and proc.poll() is None:
            stop_server(data, proc, timeout=600)  # the shutdown checkpoint of a big load takes a while
        if settings.get("fsync") == "off":
            os.sync()  # what the session wrote is in the page cache only; the cluster is kept
        shutil.rmtree(socket_dir, ignore_errors=True)


# --- a SQLite database of central's, loaded into PostgreSQL ----------------------------------------

LOADER = 2  # bump when load_from_sqlite changes what it builds, so cached databases are rebuilt
SKIPPED = {"schema_migrations", "tallies"}  # PostgreSQL's own; tallies are recomputed there


def _months(conn: Any) -> list[datetime]:
    """The first day of every month the partitioned tables' rows fall in, to now."""
    from central.store.pg_schema import PARTITIONED

    firsts = []
    for spec in PARTITIONED:
        key = "return_time" if spec.table == "receipts" else "received_at"  # as pg_schema partitions them
        try:
            low = conn.execute(f"SELECT MIN({key}) FROM {spec.table}").fetchone()[0]
        except sqlite3.OperationalError:
            continue
        if low:
            number = int(low[5:7]) if spec.month_format == "%Y-%m" else int(low[4:6])
            firsts.append(datetime(int(low[:4]), number, 1, tzinfo=UTC))
    out: list[datetime] = []
    now = datetime.now(UTC)
    first = min(firsts, default=now)
    while first <= now:
        out.append(first)
        first = datetime(first.year + first.month // 12, first.month % 12 + 1, 1, tzinfo=UTC)
    return out


def load_from_sqlite(server: PgServer, name: str, sqlite_path: Path) -> dict[str, float]:
    """A new database `name` with central's PostgreSQL schema (its migrations, as central opens it)
    holding every row of the SQLite database at `sqlite_path`; returns seconds per step.

    The partitions of every month the data spans are made first, as a running central would have
    made them month by month (none of the rows lands in a DEFAULT partition). The rows go in by COPY
    in stored order, the secondary indexes dropped meanwhile and rebuilt after, the triggers off
    (`session_replication_role = replica`): the report's tallies and flags are then recomputed by
    `central.store.tallies.rebuild`, as after any load around the triggers (the two tables it
    rewrites row by row are then compacted by VACUUM FULL). Identity sequences move past the loaded
    rows. Then VACUUM ANALYZE: what autovacuum does to a table in service (hint bits, visibility
    map, statistics)."""
    from central.store import tallies
    from central.store.db import open_database
    from central.store.pg_schema import ensure_partitions
    from central.store.postgres import PgConnection

    steps: dict[str, float] = {}
    t0 = time.perf_counter()
    server.drop_database(name)
    dsn = server.create_database(name)
    open_database(dsn).close()  # the schema, as central makes it
    src = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    with server.connect(name) as conn:
        for month in _months(src):
            ensure_partitions(PgConnection(conn), now=month)
    steps["schema and partitions"] = time.perf_counter() - t0
    with psycopg.connect(dsn) as dst:  # one transaction
        dst.execute("SET session_replication_role = replica")
        dst.execute("SET maintenance_work_mem = '1GB'")
        indexes = dst.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x"
            " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
            " JOIN pg_namespace n ON n.oid = t.relnamespace"
            " WHERE n.nspname = 'public' AND NOT i.relispartition AND NOT t.relispartition"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)"
        ).fetchall()
        for index, _ in indexes:
            dst.execute(f'DROP INDEX "{index}"')
        tables = [
            r[0]
            for r in dst.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
            )
        ]
        sqlite_tables = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table in sorted(tables, key=lambda t: (t != "parks", t)):
            if table in SKIPPED or table not in sqlite_tables:
                continue
            t1 = time.perf_counter()
            pg_columns = [
                (r[0], r[1], r[2])
                for r in dst.execute(
                    "SELECT column_name,"
                    " is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO',"
                    " is_identity = 'YES' FROM information_schema.columns"
                    " WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
                    (table,),
                )
            ]
            theirs = {r[1] for r in src.execute(f"PRAGMA table_info({table})")}
            has_rowid = _has_rowid(src, table)
            columns = [c for c, _, _ in pg_columns if c in theirs or (c == "rowid" and has_rowid)]
            missing = [c for c, required, _ in pg_columns if required and c not in columns]
            if missing:
                raise SystemExit(f"{table}: PostgreSQL needs {missing}, which SQLite's table lacks")
            listed = ", ".join(columns)
            order = " ORDER BY rowid" if has_rowid else ""
            with dst.cursor().copy(f"COPY {table} ({listed}) FROM STDIN") as copy:
                for row in src.execute(f"SELECT {listed} FROM {table}{order}"):
                    copy.write_row(row)
            for column, _, identity in pg_columns:
                if identity:
                    dst.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                        f" COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
                    )
            steps[f"copy {table}"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        for _, sql in indexes:
            # a partitioned table's index is stored as `ON ONLY` the parent (its partitions' indexes
            # attached one by one); made again as one statement, for every partition
            dst.execute(sql.replace(" ON ONLY ", " ON ", 1))
        invalid = dst.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid"
        ).fetchall()
        if invalid:
            raise SystemExit(f"indexes left invalid after the load: {[r[0] for r in invalid]}")
        steps["recreate indexes"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        dst.execute("ANALYZE")  # the rebuild's correlated subqueries want their index plans
        tallies.rebuild(PgConnection(dst))
        steps["tallies rebuild"] = time.perf_counter() - t1
    src.close()
    t1 = time.perf_counter()
    with server.connect(name) as conn:
        # the rebuild rewrote every clearance and release event (a new row version each, and new
        # index entries: `released` is in a partial index's predicate): those two are rewritten
        # compact, as a load of already-computed rows would have left them
        conn.execute("VACUUM (FULL) clearances, events")
        conn.execute("VACUUM (ANALYZE)")
    steps["vacuum analyze"] = time.perf_counter() - t1
    return steps


def _has_rowid(conn: sqlite3.Connection, table: str) -> bool:
    try:
        conn.execute(f"SELECT rowid FROM {table} LIMIT 0")
    except sqlite3.OperationalError:
        return False
    return True

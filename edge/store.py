"""The edge's local database: clearance cache, sync cursor, decisions, outbox and event chain.

SQLite in WAL mode with synchronous=FULL: a decision and the events that report it are one
transaction that is on disk before any output moves (DESIGN.md §6 — NORMAL could lose the last
commits on power loss). Only writes whose loss is harmless ask for NORMAL, one transaction at a
time (`Store.write(durable=False)`: the uplink's acknowledgement, whose loss means a resend). All
writes go through one writer thread (`Store.write`), so the event loop never waits on fsync and
there is exactly one writer. Reads use a per-thread connection.

WAL checkpoints (copying committed pages back into the database file) run on a thread of their own,
not inside a decision's COMMIT: SQLite's default runs one in whichever commit takes the log past
1000 pages, which at 80 decisions a second made about one decision in a hundred wait 1–3 ms for it
(bench/edge_pipeline.py). A checkpoint never blocks the writer (PASSIVE). Should the log still grow
past `WAL_FRAMES_LIMIT` — the writer never pausing long enough for one to finish —, the writer
checkpoints itself between two transactions, as SQLite would, so the log stays bounded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from kernel.wire import GENESIS_HASH, Event, FeedRecord, release_entry_hash

T = TypeVar("T")
log = logging.getLogger(__name__)

CHECKPOINT_AFTER_COMMITS = 100  # a decision writes ~7 pages: about 700 pages, SQLite's default is 1000
CHECKPOINT_AFTER_CHANGES = 2000  # rows; a feed page of 5000 records asks at once
WAL_FRAMES_LIMIT = 4000  # ~16 MB of log left behind by background checkpoints: the writer does one

# Migrations: MIGRATIONS[i] takes the database from user_version i to i + 1. Append; never edit.
SCHEMA_V1 = [
    """CREATE TABLE IF NOT EXISTS clearances (
        logistics_no TEXT NOT NULL,
        logistics_code TEXT NOT NULL,
        feed_seq INTEGER NOT NULL,
        version INTEGER NOT NULL,
        status TEXT NOT NULL,
        cancelled INTEGER NOT NULL,
        record TEXT NOT NULL,              -- the signed wire.FeedRecord as received
        PRIMARY KEY (logistics_no, logistics_code)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS sync_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        cursor INTEGER NOT NULL,
        last_success TEXT,                 -- ISO time of the last successful pull
        records INTEGER NOT NULL DEFAULT 0
    )""",
    "INSERT OR IGNORE INTO sync_state (id, cursor) VALUES (1, 0)",
    """CREATE TABLE IF NOT EXISTS decisions (
        id INTEGER PRIMARY KEY,
        decision_id TEXT NOT NULL UNIQUE,
        station TEXT NOT NULL,
        code TEXT,                         -- scanned waybill code (NULL: no read)
        logistics_code TEXT,
        verdict TEXT NOT NULL,
        codes TEXT NOT NULL,               -- JSON list of discrepancy codes
        reason TEXT NOT NULL,
        checked TEXT NOT NULL,             -- JSON: what was checked (record version, signature, weight…)
        weight_kg TEXT,
        evidence TEXT,
        operator TEXT,                     -- set for overrides
        overrides INTEGER,                 -- the decision id this one overrides
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS decisions_code ON decisions (code)",
    """CREATE TABLE IF NOT EXISTS releases (
        logistics_no TEXT NOT NULL,
        logistics_code TEXT NOT NULL,
        decision INTEGER NOT NULL REFERENCES decisions(id),
        PRIMARY KEY (logistics_no, logistics_code)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY,           -- the event's seq: contiguous from 1 per edge
        event TEXT NOT NULL,               -- wire.Event JSON, hash-chained
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS chain (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_seq INTEGER NOT NULL,
        last_hash TEXT NOT NULL,
        acked_seq INTEGER NOT NULL DEFAULT 0
    )""",
    f"INSERT OR IGNORE INTO chain (id, last_seq, last_hash) VALUES (1, 0, '{GENESIS_HASH}')",
]
# V2: what the outputs did for each decision (confirmed by read-back, failed, or withheld), so a
# release that never moved the diverter is on the record and reported (issue 9 D)
SCHEMA_V2 = [
    "ALTER TABLE decisions ADD COLUMN actuation TEXT",  # NULL: not (yet) actuated
    "ALTER TABLE decisions ADD COLUMN actuation_detail TEXT",
]
# V3: re-provisioning (edge/chain.py): the chain has an epoch; a closed one is remembered in chain_history.
SCHEMA_V2_EPOCHS = [
    "ALTER TABLE chain ADD COLUMN epoch INTEGER NOT NULL DEFAULT 1",
    """CREATE TABLE IF NOT EXISTS chain_history (
        epoch INTEGER PRIMARY KEY,         -- the closed epoch
        last_seq INTEGER NOT NULL,         -- where this database's chain of it ended
        last_hash TEXT NOT NULL,
        acked_seq INTEGER NOT NULL,        -- what central had acknowledged of it here
        delivered INTEGER NOT NULL,        -- pending events central turned out to hold: dropped
        carried INTEGER NOT NULL,          -- pending events central never got: now seq 1..carried
        next_epoch INTEGER NOT NULL,       --   of this epoch, in their order
        closed_at TEXT NOT NULL
    )""",
]


def _ledger_from_markers(conn: sqlite3.Connection) -> None:
    """Migration 4: the releases made before the ledger existed become its first entries, in order."""
    rows = conn.execute(
        """SELECT r.logistics_no, r.logistics_code, d.decision_id, d.checked FROM releases r
           JOIN decisions d ON d.id = r.decision ORDER BY r.decision"""
    ).fetchall()
    prev = GENESIS_HASH
    for n, (no, carrier, decision_id, checked) in enumerate(rows, start=1):
        try:
            version = int(json.loads(checked).get("record_version") or 0)
        except (TypeError, ValueError, AttributeError):
            version = 0
        prev = Store.append_ledger(conn, n, no, carrier, decision_id, version, prev)


# V4 (issue 9 B): the feed checkpoint verified last, each clearance's highest version seen, and the
# hash-chained, append-only ledger of every release this edge made.
SCHEMA_V4_LEDGER: list[str | Callable[[sqlite3.Connection], None]] = [
    "ALTER TABLE sync_state ADD COLUMN checkpoint TEXT",  # wire.FeedCheckpoint JSON; NULL: none yet
    """CREATE TABLE versions_seen (
        logistics_no TEXT NOT NULL,
        logistics_code TEXT NOT NULL,
        version INTEGER NOT NULL,          -- the highest version of this clearance ever stored
        PRIMARY KEY (logistics_no, logistics_code)
    ) WITHOUT ROWID""",
    "INSERT INTO versions_seen (logistics_no, logistics_code, version)"
    " SELECT logistics_no, logistics_code, version FROM clearances",
    """CREATE TABLE release_ledger (
        n INTEGER PRIMARY KEY,             -- 1, 2, 3 … with no gap
        logistics_no TEXT NOT NULL,
        logistics_code TEXT NOT NULL,
        decision_id TEXT NOT NULL,
        record_version INTEGER NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL                 -- wire.release_entry_hash(prev_hash, …)
    )""",
    "CREATE INDEX release_ledger_parcel ON release_ledger (logistics_no, logistics_code)",
    _ledger_from_markers,
    """CREATE TRIGGER release_ledger_no_update BEFORE UPDATE ON release_ledger
       BEGIN SELECT RAISE(ABORT, 'release_ledger is append-only'); END""",
    """CREATE TRIGGER release_ledger_no_delete BEFORE DELETE ON release_ledger
       BEGIN SELECT RAISE(ABORT, 'release_ledger is append-only'); END""",
]
MIGRATIONS: list[Sequence[str | Callable[[sqlite3.Connection], None]]] = [
    SCHEMA_V1,
    SCHEMA_V2,
    SCHEMA_V2_EPOCHS,
    SCHEMA_V4_LEDGER,
]


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


@dataclass(frozen=True)
class CachedRecord:
    record: FeedRecord
    raw: str  # exactly what was stored (for the SIGNATURE_INVALID check of local tampering)
    readable: bool = True  # False: `record` is a stand-in built from the row's columns, never signed


def _unreadable(no: str, carrier: str, seq: int, version: int, status: str, cancelled: int) -> FeedRecord:
    """A stand-in for a stored record that no longer parses: unsigned, so it can never be released."""
    return FeedRecord.model_construct(
        seq=seq,
        park_id="",
        invtNo=None,
        orderNo="",
        ebpCode="",
        ebcCode="",
        logisticsCode=carrier,
        logisticsNo=no,
        grossWeight=Decimal(0),
        netWeight=Decimal(0),
        goods="(cached record unreadable)",
        status=status,
        cancelled=bool(cancelled),
        version=version,
        updated_at=datetime.fromtimestamp(0, UTC),
        signature="",
    )


class Applied(NamedTuple):
    """What `Store.apply_feed` did with a page's records."""

    stored: int
    rolled_back: list[FeedRecord]  # older than a version of their clearance stored before: refused


class RecordFacts(NamedTuple):
    """`Store.record_facts`: the version mark and the release witnesses of one clearance."""

    version_seen: int | None  # the highest version of it ever stored (None: no mark)
    released: ReleaseWitnesses


class ReleaseWitnesses(NamedTuple):
    """What the edge's own records say of one parcel having left (edge/checker.py)."""

    marker: bool  # the `releases` row the decision path writes
    ledger_n: int | None  # its entry in the hash-chained release ledger
    decision_id: str | None  # a RELEASE decision for it

    def evidence(self) -> tuple[str, ...]:
        found = ("release marker",) if self.marker else ()
        if self.ledger_n is not None:
            found += (f"release ledger entry {self.ledger_n}",)
        if self.decision_id is not None:
            found += (f"RELEASE decision {self.decision_id}",)
        return found


@dataclass
class CheckpointStats:
    """What the checkpoints did (shown in /api/status)."""

    runs: int = 0
    by_writer: int = 0  # the log passed WAL_FRAMES_LIMIT and the writer checkpointed itself
    failures: int = 0
    wal_frames: int = 0  # frames in the log when the last checkpoint ran
    backfilled: int = 0  # of which that checkpoint copied into the database


class Store:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = _connect(self.path)
        self._writer.execute("PRAGMA wal_autocheckpoint=0")  # see the module's docstring
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-store-writer")
        self._checkpointer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-store-checkpoint")
        self._checkpointing = threading.Lock()  # held while a checkpoint is asked for or running
        self._commits_since = 0
        self._changes_mark = 0
        self.checkpoints = CheckpointStats()
        self._local = threading.local()
        self.migrate()

    def migrate(self) -> int:
        """Bring the schema up to date, each step in its own transaction; returns the version."""
        version = int(self._writer.execute("PRAGMA user_version").fetchone()[0])
        for target, statements in enumerate(MIGRATIONS[version:], start=version + 1):

            def step(
                conn: sqlite3.Connection,
                statements: Sequence[str | Callable[[sqlite3.Connection], None]] = statements,
                target: int = target,
            ) -> None:
                for statement in statements:
                    if callable(statement):
                        statement(conn)
                    else:
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")

            self._transaction(step)
            version = target
        return version

    # --- plumbing ------------------------------------------------------------------------------
    def reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            self._local.conn = conn
        return conn

    def _transaction(self, work: Callable[[sqlite3.Connection], T], durable: bool = True) -> T:
        conn = self._writer
        if not durable:
            conn.execute("PRAGMA synchronous=NORMAL")  # this commit only: no fsync of its own
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # also when COMMIT itself failed
                    conn.execute("ROLLBACK")
                raise
        finally:
            if not durable:
                conn.execute("PRAGMA synchronous=FULL")
                if conn.execute("PRAGMA synchronous").fetchone()[0] != 2:  # never decide at NORMAL
                    raise sqlite3.OperationalError("could not restore synchronous=FULL on the writer")
        self._after_commit(conn)
        return result

    # --- checkpoints ---------------------------------------------------------------------------
    def _after_commit(self, conn: sqlite3.Connection) -> None:
        """On the writer thread: ask for a background checkpoint once enough has been written."""
        self._commits_since += 1
        changes = conn.total_changes
        if (
            self._commits_since < CHECKPOINT_AFTER_COMMITS
            and changes - self._changes_mark < CHECKPOINT_AFTER_CHANGES
        ):
            return
        stats = self.checkpoints
        if stats.wal_frames > WAL_FRAMES_LIMIT:
            with self._checkpointing:  # let a running one finish; nothing is written meanwhile
                stats.by_writer += 1
                self._checkpoint(conn)
                if stats.backfilled == stats.wal_frames:
                    stats.wal_frames = 0  # complete: the next write starts the log over
            self._commits_since, self._changes_mark = 0, changes
            return
        if not self._checkpointing.acquire(blocking=False):
            return  # one is running: the next commit asks again
        self._commits_since, self._changes_mark = 0, changes
        try:
            self._checkpointer.submit(self._checkpoint_in_background)
        except RuntimeError:  # shutting down: closing the last connection checkpoints anyway
            self._checkpointing.release()

    def _checkpoint_in_background(self) -> None:
        try:
            self._checkpoint(None)
        finally:
            self._checkpointing.release()

    def _checkpoint(self, conn: sqlite3.Connection | None) -> None:
        """PASSIVE checkpoint through `conn` (None: this thread's own connection)."""
        stats = self.checkpoints
        try:
            conn = conn or self.reader()
            _busy, frames, backfilled = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # the log only grows meanwhile; the next one tries again
            stats.failures += 1
            log.warning("WAL checkpoint failed", extra={"error": str(exc), "failures": stats.failures})
            return
        stats.runs += 1
        stats.wal_frames, stats.backfilled = int(frames), int(backfilled)

    async def write(self, work: Callable[[sqlite3.Connection], T], *, durable: bool = True) -> T:
        """Run `work(conn)` as one transaction on the writer thread, on disk when this returns.

        `durable=False` is for writes whose loss on power failure is harmless (an acknowledgement:
        the events are sent again and central keeps one copy): the commit skips its own fsync and
        is on disk with the next durable commit: the log is written in order, so no later durable
        commit (a decision) can be on disk without it."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._transaction, work, durable)

    def write_sync(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """The same, from a thread that is not the event loop (CLI tools, tests)."""
        return self._executor.submit(self._transaction, work).result()

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._checkpointer.shutdown(wait=True)
        self._writer.close()

    # --- clearance cache -------------------------------------------------------------------------
    @staticmethod
    def apply_feed(
        conn: sqlite3.Connection,
        records: Iterable[tuple[FeedRecord, str]],
        cursor: int,
        now: str,
        *,
        checkpoint: str | None = None,
    ) -> Applied:
        """Upsert records (newer versions win) and move the cursor, in the caller's transaction.

        A record older than the highest version of its clearance ever stored (`versions_seen`) is
        not stored: a clearance's version never goes down, whatever the cache row says now. Those
        come back in `Applied.rolled_back`; the others raise their clearance's mark. `checkpoint`
        (wire.FeedCheckpoint JSON, verified by the caller) is stored with the cursor it covers.

        `Applied.stored` is how many records were stored, also added to `sync_state.records`: each
        insert, and each update that took effect (a record older than the cached version changes
        nothing). `FeedSync` passes only the newest valid record of each clearance in a page, so a
        first sync counts one per clearance per page it appears in, not one per feed change; the
        records it did not pass (older versions it never checked, records that failed) are counted
        in its `SyncStatus`."""
        records = list(records)
        marks = Store._marks(conn, {r.logisticsNo for r, _ in records})
        rows, rolled_back = [], []
        for r, raw in records:
            mark = marks.get((r.logisticsNo, r.logisticsCode))
            if mark is not None and r.version < mark:
                rolled_back.append(r)
                continue
            rows.append((r.logisticsNo, r.logisticsCode, r.seq, r.version, r.status, int(r.cancelled), raw))
        conn.executemany(
            """INSERT INTO versions_seen (logistics_no, logistics_code, version) VALUES (?, ?, ?)
               ON CONFLICT (logistics_no, logistics_code) DO UPDATE SET version = excluded.version
               WHERE excluded.version > versions_seen.version""",
            [row[:2] + row[3:4] for row in rows],
        )
        stored = conn.executemany(
            """INSERT INTO clearances (logistics_no, logistics_code, feed_seq, version, status, cancelled,
                                       record)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (logistics_no, logistics_code) DO UPDATE SET feed_seq = excluded.feed_seq,
                   version = excluded.version, status = excluded.status, cancelled = excluded.cancelled,
                   record = excluded.record
               WHERE excluded.version >= clearances.version""",
            rows,
        ).rowcount  # the statements' changes summed: a skipped DO UPDATE counts 0
        conn.execute(
            "UPDATE sync_state SET cursor = ?, last_success = ?, records = records + ?,"
            " checkpoint = COALESCE(?, checkpoint) WHERE id = 1",
            (cursor, now, stored, checkpoint),
        )
        return Applied(stored, rolled_back)

    @staticmethod
    def _marks(conn: sqlite3.Connection, numbers: set[str]) -> dict[tuple[str, str], int]:
        """versions_seen of these logisticsNo, a few hundred per statement (a page's worth at once)."""
        found: dict[tuple[str, str], int] = {}
        listed = list(numbers)
        for i in range(0, len(listed), 500):
            chunk = listed[i : i + 500]
            rows = conn.execute(
                "SELECT logistics_no, logistics_code, version FROM versions_seen"
                f" WHERE logistics_no IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            found.update(((no, code), int(version)) for no, code, version in rows)
        return found

    @staticmethod
    def version_seen(conn: sqlite3.Connection, logistics_no: str, logistics_code: str) -> int | None:
        """The highest version of this clearance ever stored (None: none)."""
        row = conn.execute(
            "SELECT version FROM versions_seen WHERE logistics_no = ? AND logistics_code = ?",
            (logistics_no, logistics_code),
        ).fetchone()
        return int(row[0]) if row is not None else None

    def mark_synced(self, conn: sqlite3.Connection, now: str) -> None:
        conn.execute("UPDATE sync_state SET last_success = ? WHERE id = 1", (now,))

    @staticmethod
    def sync_age_s(conn: sqlite3.Connection) -> float | None:
        """Seconds since the last successful pull, from the database (so it survives restarts);
        None — never synced, which the rules treat as stale — if there is none or it is unreadable."""
        row = conn.execute("SELECT last_success FROM sync_state WHERE id = 1").fetchone()
        try:
            last = datetime.fromisoformat(row[0]) if row is not None and row[0] else None
            return (datetime.now(UTC) - last).total_seconds() if last is not None else None
        except (TypeError, ValueError):  # not ISO 8601, or without a time zone
            log.error("sync_state.last_success unreadable", extra={"value": str(row[0])[:64]})
            return None

    def sync_state(self) -> dict[str, Any]:
        row = (
            self.reader()
            .execute("SELECT cursor, last_success, records, checkpoint FROM sync_state")
            .fetchone()
        )
        return dict(row)

    def lookup(self, code: str) -> list[CachedRecord]:
        """Cached records whose logisticsNo is the scanned code (normally one)."""
        return Store.find(self.reader(), code)

    @staticmethod
    def find(conn: sqlite3.Connection, code: str) -> list[CachedRecord]:
        """`lookup` through `conn`: a decision reads inside the transaction that commits it.

        A stored text that is no longer a feed record (a damaged or hand-edited row) comes back as a
        stand-in built from the row's own columns, with no signature: it fails the signature check,
        so the parcel is held as SIGNATURE_INVALID instead of the decision failing."""
        rows = conn.execute(
            """SELECT logistics_no, logistics_code, feed_seq, version, status, cancelled, record
               FROM clearances WHERE logistics_no = ?""",
            (code,),
        )
        found = []
        for no, carrier, seq, version, status, cancelled, stored in rows:
            try:
                # a BLOB (a hand-edited row) is read as the UTF-8 text it would have been
                raw = stored.decode() if isinstance(stored, bytes) else stored
                record = FeedRecord.model_validate_json(raw)
            except (ValueError, TypeError):  # ValidationError and UnicodeDecodeError are ValueErrors
                log.error("cached record unreadable", extra={"logistics_no": no, "logistics_code": carrier})
                found.append(
                    CachedRecord(_unreadable(no, carrier, seq, version, status, cancelled), "", False)
                )
                continue
            found.append(CachedRecord(record, raw))
        return found

    def count_clearances(self) -> int:
        return int(self.reader().execute("SELECT COUNT(*) FROM clearances").fetchone()[0])

    # --- decisions ---------------------------------------------------------------------------------
    @staticmethod
    def set_actuation(conn: sqlite3.Connection, decision: int, outcome: str, detail: str) -> None:
        """What the outputs did for decision row `decision`, in the caller's transaction."""
        conn.execute(
            "UPDATE decisions SET actuation = ?, actuation_detail = ? WHERE id = ?",
            (outcome, detail, decision),
        )

    # --- releases: the marker, the ledger and the decisions that say a parcel left ----------------
    @staticmethod
    def record_facts(conn: sqlite3.Connection, logistics_no: str, logistics_code: str) -> RecordFacts:
        """What the edge's own records say of one clearance, in one statement of index lookups: its
        highest version ever stored, and every record that says the parcel left."""
        row = conn.execute(
            """SELECT (SELECT version FROM versions_seen WHERE logistics_no = ?1 AND logistics_code = ?2),
                      (SELECT 1 FROM releases WHERE logistics_no = ?1 AND logistics_code = ?2),
                      (SELECT MIN(n) FROM release_ledger WHERE logistics_no = ?1 AND logistics_code = ?2),
                      (SELECT MIN(decision_id) FROM decisions
                        WHERE code = ?1 AND logistics_code = ?2 AND verdict = 'RELEASE')""",
            (logistics_no, logistics_code),
        ).fetchone()
        return RecordFacts(row[0], ReleaseWitnesses(row[1] is not None, row[2], row[3]))

    @staticmethod
    def import_release(
        conn: sqlite3.Connection,
        logistics_no: str,
        logistics_code: str,
        decision_id: str,
        version: int,
        now: str,
    ) -> bool:
        """A release central holds of this edge but this database does not (it was restored from an
        older copy, or lost): recorded as one — a decision, its marker, a ledger entry — so the
        parcel is held as already released. False when this database knows it already."""
        known = conn.execute(
            "SELECT 1 FROM releases WHERE logistics_no = ? AND logistics_code = ?",
            (logistics_no, logistics_code),
        ).fetchone()
        if known is not None:
            return False
        row = conn.execute(
            """INSERT INTO decisions (decision_id, station, code, logistics_code, verdict, codes, reason,
                                      checked, created_at)
               VALUES (?, '(central)', ?, ?, 'RELEASE', '[]', ?, '{}', ?)
               ON CONFLICT (decision_id) DO NOTHING RETURNING id""",
            (
                decision_id,
                logistics_no,
                logistics_code,
                "released before this database was restored: known from central's copy of the events",
                now,
            ),
        ).fetchone()
        if row is None:  # that decision is here, its marker gone: the ledger/marker checks hold it
            return False
        conn.execute(
            "INSERT INTO releases (logistics_no, logistics_code, decision) VALUES (?, ?, ?)",
            (logistics_no, logistics_code, int(row[0])),
        )
        n, head = Store.ledger_head(conn)
        Store.append_ledger(conn, n + 1, logistics_no, logistics_code, decision_id, version, head)
        return True

    @staticmethod
    def ledger_head(conn: sqlite3.Connection) -> tuple[int, str]:
        row = conn.execute("SELECT n, hash FROM release_ledger ORDER BY n DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row is not None else (0, GENESIS_HASH)

    @staticmethod
    def append_ledger(
        conn: sqlite3.Connection,
        n: int,
        logistics_no: str,
        logistics_code: str,
        decision_id: str,
        record_version: int,
        prev_hash: str,
    ) -> str:
        """Append entry `n` after the entry whose hash is `prev_hash`; returns the new entry's hash."""
        entry_hash = release_entry_hash(
            prev_hash,
            n=n,
            logistics_no=logistics_no,
            logistics_code=logistics_code,
            decision_id=decision_id,
            record_version=record_version,
        )
        conn.execute(
            """INSERT INTO release_ledger (n, logistics_no, logistics_code, decision_id, record_version,
                                           prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)""",
            (n, logistics_no, logistics_code, decision_id, record_version, prev_hash, entry_hash),
        )
        return entry_hash

    @staticmethod
    def ledger_entries(conn: sqlite3.Connection) -> Iterator[sqlite3.Row]:
        """Every ledger entry in order, streamed."""
        return conn.execute(
            "SELECT n, logistics_no, logistics_code, decision_id, record_version, prev_hash, hash"
            " FROM release_ledger ORDER BY n"
        )

    @staticmethod
    def unledgered_releases(conn: sqlite3.Connection, limit: int = 20) -> list[tuple[str, str, str]]:
        """(logisticsNo, carrier, what) of release markers and RELEASE decisions with no ledger entry."""
        rows = conn.execute(
            """SELECT r.logistics_no, r.logistics_code, 'release marker' FROM releases r
                 WHERE NOT EXISTS (SELECT 1 FROM release_ledger l WHERE l.logistics_no = r.logistics_no
                                                                    AND l.logistics_code = r.logistics_code)
               UNION ALL
               SELECT d.code, d.logistics_code, 'RELEASE decision ' || d.decision_id FROM decisions d
                 WHERE d.verdict = 'RELEASE'
                   AND NOT EXISTS (SELECT 1 FROM release_ledger l WHERE l.logistics_no = d.code
                                                                    AND l.logistics_code = d.logistics_code)
               LIMIT ?""",
            (limit,),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    @staticmethod
    def unmarked_ledger_entries(conn: sqlite3.Connection, limit: int = 20) -> list[tuple[int, str, str]]:
        """(n, logisticsNo, carrier) of ledger entries whose release marker is gone."""
        rows = conn.execute(
            """SELECT l.n, l.logistics_no, l.logistics_code FROM release_ledger l
               WHERE NOT EXISTS (SELECT 1 FROM releases r WHERE r.logistics_no = l.logistics_no
                                                           AND r.logistics_code = l.logistics_code)
               ORDER BY l.n LIMIT ?""",
            (limit,),
        )
        return [(int(r[0]), r[1], r[2]) for r in rows]

    # --- outbox and chain -------------------------------------------------------------------------
    @staticmethod
    def chain_epoch(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT epoch FROM chain WHERE id = 1").fetchone()[0])

    @staticmethod
    def chain_head(conn: sqlite3.Connection) -> tuple[int, str]:
        row = conn.execute("SELECT last_seq, last_hash FROM chain WHERE id = 1").fetchone()
        return int(row[0]), str(row[1])

    @staticmethod
    def chain_position(conn: sqlite3.Connection) -> tuple[int, str, int]:
        """(last seq, last hash, epoch) of the chain: where the next event goes."""
        row = conn.execute("SELECT last_seq, last_hash, epoch FROM chain WHERE id = 1").fetchone()
        return int(row[0]), str(row[1]), int(row[2])

    @staticmethod
    def chain_hash_at(conn: sqlite3.Connection, seq: int) -> str | None:
        """The hash of this database's event `seq` of the open epoch, when it still knows it: the
        chain head, a pending event, or the last acknowledged one (the first pending event links to
        it). None for an older event (deleted once acknowledged) or a seq beyond the chain."""
        last_seq, last_hash, acked = conn.execute(
            "SELECT last_seq, last_hash, acked_seq FROM chain WHERE id = 1"
        ).fetchone()
        if seq == last_seq:
            return str(last_hash)
        if seq == acked:
            column, seq = "$.prev_hash", seq + 1
        elif acked < seq < last_seq:
            column = "$.hash"
        else:
            return None
        sql = "SELECT json_extract(event, ?) FROM outbox WHERE seq = ?"
        row = conn.execute(sql, (column, seq)).fetchone()
        return str(row[0]) if row is not None and row[0] is not None else None

    @staticmethod
    def close_epoch(
        conn: sqlite3.Connection, *, next_epoch: int, delivered: int, carried: int, now: str
    ) -> None:
        """Remember the open chain in chain_history, empty the outbox and open `next_epoch` at seq 0 /
        genesis, in the caller's transaction (which then appends the carried events again)."""
        conn.execute(
            "INSERT INTO chain_history (epoch, last_seq, last_hash, acked_seq, delivered, carried,"
            " next_epoch, closed_at)"
            " SELECT epoch, last_seq, last_hash, acked_seq, ?, ?, ?, ? FROM chain WHERE id = 1",
            (delivered, carried, next_epoch, now),
        )
        conn.execute("DELETE FROM outbox")
        conn.execute(
            "UPDATE chain SET epoch = ?, last_seq = 0, last_hash = ?, acked_seq = 0 WHERE id = 1",
            (next_epoch, GENESIS_HASH),
        )

    @staticmethod
    def append_event(conn: sqlite3.Connection, event: Event, now: str) -> None:
        conn.execute(
            "INSERT INTO outbox (seq, event, created_at) VALUES (?, ?, ?)",
            (event.seq, event.model_dump_json(), now),
        )
        conn.execute("UPDATE chain SET last_seq = ?, last_hash = ? WHERE id = 1", (event.seq, event.hash))

    @staticmethod
    def outbox_rows(conn: sqlite3.Connection) -> list[tuple[int, str]]:
        """(seq, stored event JSON) of every pending event, in seq order, through `conn`."""
        return [(int(r[0]), r[1]) for r in conn.execute("SELECT seq, event FROM outbox ORDER BY seq")]

    def pending_rows(self, limit: int) -> list[tuple[int, str]]:
        """(seq, stored event JSON) of the oldest events not acknowledged yet, in seq order."""
        rows = self.reader().execute("SELECT seq, event FROM outbox ORDER BY seq LIMIT ?", (limit,))
        return [(int(r[0]), r[1]) for r in rows]

    @staticmethod
    def acknowledge(conn: sqlite3.Connection, acked_seq: int, epoch: int | None = None) -> int:
        """Delete the events up to `acked_seq`; with `epoch`, only while that epoch is still open (an
        answer about events re-chained meanwhile into the next epoch deletes nothing)."""
        if epoch is not None and Store.chain_position(conn)[2] != epoch:
            return 0
        cur = conn.execute("DELETE FROM outbox WHERE seq <= ?", (acked_seq,))
        conn.execute("UPDATE chain SET acked_seq = MAX(acked_seq, ?) WHERE id = 1", (acked_seq,))
        return cur.rowcount

    def backlog(self) -> dict[str, Any]:
        conn = self.reader()
        count, oldest = conn.execute("SELECT COUNT(*), MIN(created_at) FROM outbox").fetchone()
        acked = conn.execute("SELECT acked_seq, last_seq, epoch FROM chain WHERE id = 1").fetchone()
        return {
            "size": int(count),
            "oldest": oldest,
            "acked_seq": int(acked[0]),
            "last_seq": int(acked[1]),
            "epoch": int(acked[2]),
        }

    # --- checks ------------------------------------------------------------------------------------
    def integrity_check(self) -> list[str]:
        return [r[0] for r in self.reader().execute("PRAGMA integrity_check")]


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))

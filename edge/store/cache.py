"""The clearance cache: the feed's records as received, each clearance's version mark, the sync state.

`clearances` holds the signed record of each (logisticsNo, carrier) as received; `versions_seen` the
highest version of each clearance ever stored, kept apart so a clearance's version never goes down
whatever the cache row says; `sync_state` the feed cursor, the last successful pull and the feed
checkpoint verified last.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from edge.store.writer import Reads
from kernel.wire import FeedRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedRecord:
    record: FeedRecord
    raw: str  # exactly what was stored (for the SIGNATURE_INVALID check of local tampering)
    readable: bool = True  # False: `record` is a stand-in built from the row's columns, never signed


class Applied(NamedTuple):
    """What `CacheTables.apply_feed` did with a page's records."""

    stored: int
    rolled_back: list[FeedRecord]  # older than a version of their clearance stored before: refused


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


class CacheTables:
    """`Store`'s methods over clearances, versions_seen and sync_state."""

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
        marks = CacheTables._marks(conn, {r.logisticsNo for r, _ in records})
        rows, rolled_back = [], []
        for r, raw in records:
            mark = marks.get((r.logisticsNo, r.logisticsCode))
            if mark is not None and r.version < mark:
                rolled_back.append(r)
                continue
            rows.append(
                (r.logisticsNo, r.logisticsCode, r.seq, r.version, r.status, int(r.cancelled), raw, r.invtNo)
            )
        conn.executemany(
            """INSERT INTO versions_seen (logistics_no, logistics_code, version) VALUES (?, ?, ?)
               ON CONFLICT (logistics_no, logistics_code) DO UPDATE SET version = excluded.version
               WHERE excluded.version > versions_seen.version""",
            [row[:2] + row[3:4] for row in rows],
        )
        stored = conn.executemany(
            """INSERT INTO clearances (logistics_no, logistics_code, feed_seq, version, status, cancelled,
                                       record, invt_no)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (logistics_no, logistics_code) DO UPDATE SET feed_seq = excluded.feed_seq,
                   version = excluded.version, status = excluded.status, cancelled = excluded.cancelled,
                   record = excluded.record, invt_no = excluded.invt_no
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
    def find(conn: sqlite3.Connection, code: str) -> list[CachedRecord]:
        """Cached records whose logisticsNo is the scanned code (normally one), read through `conn`:
        a decision reads inside the transaction that commits it.

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

    def count_clearances(self: Reads) -> int:
        return int(self.reader().execute("SELECT COUNT(*) FROM clearances").fetchone()[0])

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

    def sync_state(self: Reads) -> dict[str, Any]:
        row = (
            self.reader()
            .execute("SELECT cursor, last_success, records, checkpoint FROM sync_state")
            .fetchone()
        )
        return dict(row)

"""Clearance records, their history and the park feed. Writers run inside a write transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from typing import Any

from central.store.connection import Connection, is_postgres
from central.store.db import FEED_CHANNEL, FEED_NOTIFY_FUNCTION, Database
from kernel.wire import GENESIS_HASH


@dataclass(frozen=True)
class ClearanceRow:
    clearance_id: str
    park_id: str | None
    invt_no: str | None
    cop_no: str | None
    pre_no: str | None
    order_no: str
    ebp_code: str
    ebc_code: str
    logistics_code: str
    logistics_no: str
    gross_weight: str
    net_weight: str
    declared_value: str
    goods: str
    status: str
    cancelled: bool
    comparison: list[dict[str, Any]] | None
    risk: list[str] | None
    version: int
    updated_at: str

    def changed(self, **changes: Any) -> ClearanceRow:
        return replace(self, **changes)


_COLUMNS = [f.name for f in fields(ClearanceRow)]
_MARKS = ", ".join("?" for _ in _COLUMNS)
_UPDATES = ", ".join(f"{c} = ?" for c in _COLUMNS[1:])


def _row(row: Any) -> ClearanceRow:
    data = {c: row[c] for c in _COLUMNS}  # not `released`: the triggers own it (schema 0011)
    data["cancelled"] = bool(data["cancelled"])
    data["comparison"] = json.loads(data["comparison"]) if data["comparison"] else None
    data["risk"] = json.loads(data["risk"]) if data["risk"] else None
    return ClearanceRow(**data)


def get(conn: Connection, *, clearance_id: str) -> ClearanceRow | None:
    row = conn.execute("SELECT * FROM clearances WHERE clearance_id = ?", (clearance_id,)).fetchone()
    return _row(row) if row else None


def save(
    conn: Connection,
    row: ClearanceRow,
    *,
    new: bool = False,
    number: int | None = None,
    present: bool = False,
) -> None:
    """Insert or replace. `new`: the caller knows no row has this id (a plain insert); `present`: it
    knows one has (a plain update, which PostgreSQL's pipeline sends without waiting); otherwise an
    update, inserting if none was there (neither is SQLite's upsert, which costs more). `number`: the
    row number to insert it at, as `next_number` gave it (the caller made the customs numbers from it)."""
    values = [getattr(row, c) for c in _COLUMNS]
    values[_COLUMNS.index("cancelled")] = int(row.cancelled)
    values[_COLUMNS.index("comparison")] = (
        json.dumps(row.comparison, ensure_ascii=False) if row.comparison is not None else None
    )
    values[_COLUMNS.index("risk")] = json.dumps(row.risk) if row.risk is not None else None
    insert = f"INSERT INTO clearances (rowid, {', '.join(_COLUMNS)}) VALUES (?, {_MARKS})"
    if present and not new:
        conn.execute(f"UPDATE clearances SET {_UPDATES} WHERE clearance_id = ?", [*values[1:], values[0]])
        return
    if not new:
        found = conn.execute(
            f"UPDATE clearances SET {_UPDATES} WHERE clearance_id = ? RETURNING rowid",
            [*values[1:], values[0]],
        ).fetchone()
        if found is not None:
            return
    conn.execute(insert, [number, *values])


def next_number(conn: Connection) -> int:
    """The row number the next new clearance gets (SQLite's rowid, which it assigns as the largest
    plus one): inside the write transaction nobody else inserts, so the caller can make its customs
    numbers from it before writing it (`save`)."""
    return int(conn.execute("SELECT COALESCE(MAX(rowid), 0) + 1 FROM clearances").fetchone()[0])


def number_of(conn: Connection, *, clearance_id: str) -> int | None:
    """The row number of a stored clearance."""
    row = conn.execute("SELECT rowid FROM clearances WHERE clearance_id = ?", (clearance_id,)).fetchone()
    return int(row[0]) if row else None


def find(
    conn: Connection,
    *,
    ebp_code: str | None = None,
    order_no: str | None = None,
    logistics_code: str | None = None,
    logistics_no: str | None = None,
    invt_no: str | None = None,
    cop_no: str | None = None,
    pre_no: str | None = None,
) -> list[ClearanceRow]:
    """Clearances matching every given field (at least one must be given)."""
    given = {
        "ebp_code": ebp_code,
        "order_no": order_no,
        "logistics_code": logistics_code,
        "logistics_no": logistics_no,
        "invt_no": invt_no,
        "cop_no": cop_no,
        "pre_no": pre_no,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        raise ValueError("find() needs at least one field")
    where = " AND ".join(f"{k} = ?" for k in given)
    rows = conn.execute(f"SELECT * FROM clearances WHERE {where} LIMIT 100", list(given.values()))
    return [_row(r) for r in rows]


def add_history(
    conn: Connection,
    *,
    clearance_id: str,
    from_status: str | None,
    to_status: str,
    action: str,
    actor: str,
    info: str,
    now: str,
) -> None:
    conn.execute(
        "INSERT INTO clearance_history (clearance_id, from_status, to_status, action, actor, info, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (clearance_id, from_status, to_status, action, actor, info, now),
    )


def cancelled_after(conn: Connection, *, clearance_id: str, moment: str) -> str | None:
    """When the clearance's cancellation (CEB623) was approved, if that was after `moment`."""
    row = conn.execute(
        "SELECT MIN(at) FROM clearance_history WHERE clearance_id = ? AND action = 'cancellation' AND at > ?",
        (clearance_id, moment),
    ).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def history(db: Database, *, clearance_id: str) -> list[dict[str, Any]]:
    rows = db.reader().execute(
        "SELECT from_status, to_status, action, actor, info, at FROM clearance_history"
        " WHERE clearance_id = ? ORDER BY id",
        (clearance_id,),
    )
    return [dict(r) for r in rows]


@dataclass(frozen=True)
class FeedPoint:
    """A park's feed up to and including seq `seq`: `n` records, running hash `chain`, and the stored
    checkpoint signature at that row (None: a row from before checkpoints, or the empty feed)."""

    seq: int
    n: int
    chain: str
    signature: str | None = None


def lock_feed_head(conn: Connection, *, park_id: str) -> FeedPoint:
    """The park's feed head, locked until the transaction ends: appends to one park's feed are
    serialised from here to the commit, so their seqs and chain follow commit order. (SQLite's
    BEGIN IMMEDIATE already serialises every writer; on PostgreSQL the UPDATE takes the row lock.)"""
    lock = "UPDATE feed_heads SET n = n WHERE park_id = ? RETURNING seq, n, chain"
    row = conn.execute(lock, (park_id,)).fetchone()
    if row is None:  # the park's first record
        conn.execute(
            "INSERT INTO feed_heads (park_id, seq, n, chain) VALUES (?, 0, 0, ?)"
            " ON CONFLICT (park_id) DO NOTHING",
            (park_id, GENESIS_HASH),
        )
        row = conn.execute(lock, (park_id,)).fetchone()
    return FeedPoint(seq=int(row[0]), n=int(row[1]), chain=str(row[2]))


FEED_ROWS_PER_INSERT = 300  # 900 bound parameters per statement


def append_feed_rows(conn: Connection, *, park_id: str, records: list[tuple[str, str]]) -> list[int]:
    """Insert feed rows, (clearance id, record JSON) each, in this order; their seqs, in the same
    order. Their place in the chain is set by `chain_feed` in the same transaction."""
    seqs: list[int] = []
    for i in range(0, len(records), FEED_ROWS_PER_INSERT):
        part = records[i : i + FEED_ROWS_PER_INSERT]
        rows = conn.execute(
            "INSERT INTO feed (park_id, clearance_id, record) VALUES "
            + ", ".join(["(?, ?, ?)"] * len(part))
            + " RETURNING seq",
            [v for clearance_id, record in part for v in (park_id, clearance_id, record)],
        ).fetchall()
        # rows are numbered in the order the VALUES list them; RETURNING's order is not promised
        seqs.extend(sorted(int(r[0]) for r in rows))
    return seqs


def announce_feed(conn: Connection, *, park_id: str) -> None:
    """Have the park's waiting long polls woken when this transaction commits, in every central
    process (`Database.listen`): PostgreSQL's NOTIFY, or on SQLite the writer's own function."""
    if is_postgres(conn):
        announced: set[str] = conn.announced  # type: ignore[attr-defined]
        if park_id not in announced:  # one NOTIFY per park and transaction is enough
            announced.add(park_id)
            conn.execute("SELECT pg_notify(?, ?)", (FEED_CHANNEL, park_id))
    else:
        conn.execute(f"SELECT {FEED_NOTIFY_FUNCTION}(?)", (park_id,))


def chain_feed(conn: Connection, *, park_id: str, points: list[FeedPoint]) -> None:
    """Record each row's place in the chain (`points`, in seq order) with its checkpoint signature,
    and the last as the park's new head."""
    conn.executemany(
        "UPDATE feed SET n = ?, chain = ?, checkpoint = ? WHERE seq = ?",
        [(p.n, p.chain, p.signature, p.seq) for p in points],
    )
    last = points[-1]
    conn.execute(
        "UPDATE feed_heads SET seq = ?, n = ?, chain = ? WHERE park_id = ?",
        (last.seq, last.n, last.chain, park_id),
    )


def read_feed(db: Database, *, park_id: str, after: int, limit: int) -> list[tuple[int, str]]:
    """(seq, record JSON) of the park's feed after `after`, in commit order."""
    rows = db.reader().execute(
        "SELECT seq, record FROM feed WHERE park_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        (park_id, after, limit),
    )
    return [(r[0], r[1]) for r in rows]


def feed_point(db: Database, *, park_id: str, at: int) -> FeedPoint:
    """The park's feed up to and including seq `at`: its last row at or before `at` (the empty feed
    at seq 0 if none)."""
    row = (
        db.reader()
        .execute(
            "SELECT seq, n, chain, checkpoint FROM feed WHERE park_id = ? AND seq <= ?"
            " ORDER BY seq DESC LIMIT 1",
            (park_id, at),
        )
        .fetchone()
    )
    if row is None:
        return FeedPoint(seq=0, n=0, chain=GENESIS_HASH)
    if row[1] is None or row[2] is None:
        raise RuntimeError(f"feed row {row[0]} has no chain: migration 0004_feed_chain did not run")
    return FeedPoint(seq=int(row[0]), n=int(row[1]), chain=str(row[2]), signature=row[3])


def feed_head(db: Database, *, park_id: str) -> int:
    row = db.reader().execute("SELECT MAX(seq) FROM feed WHERE park_id = ?", (park_id,)).fetchone()
    return int(row[0] or 0)


# --- customs receipts (CEB622) and what became of each ---------------------------------------------


@dataclass(frozen=True)
class CustomsReceiptRow:
    id: int
    clearance_id: str
    guid: str
    return_status: str
    return_time: str
    return_info: str
    state: str  # applied, waiting, stale, refused
    reason: str
    received_at: str


def add_customs_receipt(
    conn: Connection,
    *,
    clearance_id: str,
    guid: str,
    return_status: str,
    return_time: str,
    return_info: str,
    state: str,
    reason: str,
    now: str,
) -> int:
    cur = conn.execute(
        "INSERT INTO customs_receipts (clearance_id, guid, return_status, return_time, return_info, state,"
        " reason, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (clearance_id, guid, return_status, return_time, return_info, state, reason, now),
    )
    return int(cur.fetchone()[0])


def set_customs_receipt_state(conn: Connection, receipt_id: int, *, state: str, reason: str) -> None:
    conn.execute(
        "UPDATE customs_receipts SET state = ?, reason = ? WHERE id = ?", (state, reason, receipt_id)
    )


def last_applied_receipt_time(conn: Connection, *, clearance_id: str) -> str | None:
    row = conn.execute(
        "SELECT MAX(return_time) FROM customs_receipts WHERE clearance_id = ? AND state = 'applied'",
        (clearance_id,),
    ).fetchone()
    return row[0] if row else None


def waiting_receipts(conn: Connection, *, clearance_id: str) -> list[CustomsReceiptRow]:
    rows = conn.execute(
        "SELECT * FROM customs_receipts WHERE clearance_id = ? AND state = 'waiting'"
        " ORDER BY return_time, id",
        (clearance_id,),
    ).fetchall()
    return [CustomsReceiptRow(**dict(r)) for r in rows]


def customs_receipts(db: Database, *, clearance_id: str) -> list[CustomsReceiptRow]:
    rows = (
        db.reader()
        .execute(
            "SELECT * FROM customs_receipts WHERE clearance_id = ? ORDER BY return_time, id", (clearance_id,)
        )
        .fetchall()
    )
    return [CustomsReceiptRow(**dict(r)) for r in rows]

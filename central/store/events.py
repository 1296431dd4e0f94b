"""SQL for edge events, edges and alerts. Writers run inside the caller's write transaction.

Timestamps are stored as `central.timefmt.iso` strings (fixed-width UTC), so comparing and slicing
them as text orders them in time; the reports rely on that.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class EdgeRow:
    edge_id: str
    park_id: str
    last_seq: int
    last_hash: str
    last_seen: str | None
    last_heartbeat: str | None
    backlog: int | None


@dataclass(frozen=True)
class EventRow:
    """One event as stored: the wire event flattened, with the parcel key lifted out of the body."""

    edge_id: str
    seq: int
    park_id: str
    kind: str
    station: str | None
    occurred_at: str
    logistics_code: str | None
    logistics_no: str | None
    body: str
    prev_hash: str
    hash: str
    received_at: str


@dataclass(frozen=True)
class ClearanceState:
    """What central holds for one parcel key in a park, enough to judge a release."""

    clearance_id: str
    invt_no: str | None
    status: str
    cancelled: bool


def _edge(row: sqlite3.Row) -> EdgeRow:
    return EdgeRow(**dict(row))


def get_edge(conn: sqlite3.Connection, *, edge_id: str) -> EdgeRow | None:
    row = conn.execute("SELECT * FROM edges WHERE edge_id = ?", (edge_id,)).fetchone()
    return _edge(row) if row else None


def park_exists(conn: sqlite3.Connection, *, park_id: str) -> bool:
    return conn.execute("SELECT 1 FROM parks WHERE park_id = ?", (park_id,)).fetchone() is not None


def create_edge(conn: sqlite3.Connection, *, edge_id: str, park_id: str, genesis_hash: str) -> EdgeRow:
    """Bind a new edge to its park; its chain starts empty at the genesis hash."""
    conn.execute(
        "INSERT INTO edges (edge_id, park_id, last_seq, last_hash) VALUES (?, ?, 0, ?)",
        (edge_id, park_id, genesis_hash),
    )
    edge = get_edge(conn, edge_id=edge_id)
    assert edge is not None
    return edge


def update_edge(conn: sqlite3.Connection, edge: EdgeRow) -> None:
    conn.execute(
        "UPDATE edges SET last_seq = ?, last_hash = ?, last_seen = ?, last_heartbeat = ?, backlog = ?"
        " WHERE edge_id = ?",
        (edge.last_seq, edge.last_hash, edge.last_seen, edge.last_heartbeat, edge.backlog, edge.edge_id),
    )


def list_edges(conn: sqlite3.Connection, *, park_id: str) -> list[EdgeRow]:
    rows = conn.execute("SELECT * FROM edges WHERE park_id = ? ORDER BY edge_id", (park_id,))
    return [_edge(r) for r in rows]


def stored_hashes(conn: sqlite3.Connection, *, edge_id: str, first: int, last: int) -> dict[int, str]:
    """Hashes of the edge's stored events with seq in [first, last]: one range read per batch."""
    rows = conn.execute(
        "SELECT seq, hash FROM events WHERE edge_id = ? AND seq BETWEEN ? AND ?", (edge_id, first, last)
    )
    return {int(r[0]): str(r[1]) for r in rows}


def insert_event(conn: sqlite3.Connection, event: EventRow) -> None:
    """Plain INSERT: the primary key (edge_id, seq) makes a second copy fail loudly, never overwrite."""
    conn.execute(
        "INSERT INTO events (edge_id, seq, park_id, kind, station, occurred_at, logistics_code,"
        " logistics_no, body, prev_hash, hash, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event.edge_id, event.seq, event.park_id, event.kind, event.station, event.occurred_at,
            event.logistics_code, event.logistics_no, event.body, event.prev_hash, event.hash,
            event.received_at,
        ),
    )


def clearance_states(
    conn: sqlite3.Connection, *, park_id: str, logistics_code: str, logistics_no: str
) -> list[ClearanceState]:
    """Every clearance of the park for this parcel key (a logisticsNo may in time be reused), newest first.

    The park is filtered here, not in SQL: with `park_id = ?` in the WHERE clause SQLite's planner
    (no ANALYZE statistics) picks the (park_id, status) index and walks the whole park.
    """
    rows = conn.execute(
        "SELECT clearance_id, park_id, invt_no, status, cancelled FROM clearances"
        " WHERE logistics_code = ? AND logistics_no = ? ORDER BY updated_at DESC",
        (logistics_code, logistics_no),
    )
    return [
        ClearanceState(
            clearance_id=r["clearance_id"], invt_no=r["invt_no"], status=r["status"],
            cancelled=bool(r["cancelled"]),
        )
        for r in rows
        if r["park_id"] == park_id
    ]


def other_releases(
    conn: sqlite3.Connection, *, park_id: str, logistics_code: str, logistics_no: str,
    edge_id: str, seq: int,
) -> list[tuple[str, int]]:
    """(edge_id, seq) of the park's other release events for this parcel, from any edge."""
    rows = conn.execute(
        "SELECT edge_id, seq FROM events WHERE logistics_code = ? AND logistics_no = ? AND kind = 'release'"
        " AND park_id = ? AND NOT (edge_id = ? AND seq = ?) ORDER BY received_at, edge_id, seq",
        (logistics_code, logistics_no, park_id, edge_id, seq),
    )
    return [(str(r[0]), int(r[1])) for r in rows]


def insert_alert(
    conn: sqlite3.Connection, *, park_id: str, edge_id: str | None, kind: str, detail: str, now: str
) -> int:
    cur = conn.execute(
        "INSERT INTO alerts (park_id, edge_id, kind, detail, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
        (park_id, edge_id, kind, detail, now),
    )
    return int(cur.fetchone()[0])


def latest_alert(conn: sqlite3.Connection, *, park_id: str, edge_id: str) -> tuple[str, str] | None:
    """(kind, detail) of the newest alert about this edge, to avoid repeating it on every resend."""
    row = conn.execute(
        "SELECT kind, detail FROM alerts WHERE park_id = ? AND edge_id = ? ORDER BY created_at DESC, id DESC"
        " LIMIT 1",
        (park_id, edge_id),
    ).fetchone()
    return (str(row[0]), str(row[1])) if row else None

"""SQL for edge events, edges and alerts. Writers run inside the caller's write transaction.

Timestamps are stored as `kernel.timefmt.iso` strings (fixed-width UTC), so comparing and slicing
them as text orders them in time; the reports rely on that.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from central.store.connection import Connection
from central.store.db import Database


@dataclass(frozen=True)
class EdgeRow:
    """An edge and the head of its open chain (epoch `epoch`)."""

    edge_id: str
    park_id: str
    last_seq: int
    last_hash: str
    last_seen: str | None
    last_heartbeat: str | None
    backlog: int | None
    epoch: int = 1
    epoch_opened_at: str | None = None


@dataclass(frozen=True)
class ClosedChainRow:
    """An epoch of an edge that was closed by re-provisioning; its events stay stored."""

    edge_id: str
    epoch: int
    park_id: str
    last_seq: int
    last_hash: str
    opened_at: str | None
    closed_at: str
    closed_by: str
    reason: str


@dataclass(frozen=True)
class EventRow:
    """One event as stored: the wire event flattened, with the parcel key lifted out of the body."""

    edge_id: str
    epoch: int
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


def _edge(row: Any) -> EdgeRow:
    return EdgeRow(**dict(row))


def get_edge(conn: Connection, *, edge_id: str) -> EdgeRow | None:
    row = conn.execute("SELECT * FROM edges WHERE edge_id = ?", (edge_id,)).fetchone()
    return _edge(row) if row else None


def park_exists(conn: Connection, *, park_id: str) -> bool:
    return conn.execute("SELECT 1 FROM parks WHERE park_id = ?", (park_id,)).fetchone() is not None


def create_edge(conn: Connection, *, edge_id: str, park_id: str, genesis_hash: str, now: str) -> EdgeRow:
    """Bind a new edge to its park; its chain (epoch 1) starts empty at the genesis hash."""
    conn.execute(
        "INSERT INTO edges (edge_id, park_id, last_seq, last_hash, epoch, epoch_opened_at)"
        " VALUES (?, ?, 0, ?, 1, ?)",
        (edge_id, park_id, genesis_hash, now),
    )
    edge = get_edge(conn, edge_id=edge_id)
    assert edge is not None
    return edge


def update_edge(conn: Connection, edge: EdgeRow) -> None:
    conn.execute(
        "UPDATE edges SET last_seq = ?, last_hash = ?, last_seen = ?, last_heartbeat = ?, backlog = ?"
        " WHERE edge_id = ?",
        (edge.last_seq, edge.last_hash, edge.last_seen, edge.last_heartbeat, edge.backlog, edge.edge_id),
    )


def list_edges(conn: Connection, *, park_id: str) -> list[EdgeRow]:
    rows = conn.execute("SELECT * FROM edges WHERE park_id = ? ORDER BY edge_id", (park_id,))
    return [_edge(r) for r in rows]


def stored_hashes(conn: Connection, *, edge_id: str, epoch: int, first: int, last: int) -> dict[int, str]:
    """Hashes of the edge's stored events of `epoch` with seq in [first, last]: one range read."""
    rows = conn.execute(
        "SELECT seq, hash FROM events WHERE edge_id = ? AND epoch = ? AND seq BETWEEN ? AND ?",
        (edge_id, epoch, first, last),
    )
    return {int(r[0]): str(r[1]) for r in rows}


def insert_event(conn: Connection, event: EventRow) -> None:
    """Plain INSERT: the primary key (edge_id, epoch, seq) makes a second copy fail loudly."""
    conn.execute(
        "INSERT INTO events (edge_id, epoch, seq, park_id, kind, station, occurred_at, logistics_code,"
        " logistics_no, body, prev_hash, hash, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event.edge_id,
            event.epoch,
            event.seq,
            event.park_id,
            event.kind,
            event.station,
            event.occurred_at,
            event.logistics_code,
            event.logistics_no,
            event.body,
            event.prev_hash,
            event.hash,
            event.received_at,
        ),
    )


def clearance_states(
    conn: Connection, *, park_id: str, logistics_code: str, logistics_no: str
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
            clearance_id=r["clearance_id"],
            invt_no=r["invt_no"],
            status=r["status"],
            cancelled=bool(r["cancelled"]),
        )
        for r in rows
        if r["park_id"] == park_id
    ]


def release_verdicts(conn: Connection, *, edge_id: str, epoch: int, seq: int) -> tuple[bool, bool]:
    """(released without clearance, cancelled after release) of a stored release event, as schema
    0011's triggers judged it at the release's time."""
    row = conn.execute(
        "SELECT uncleared, cancelled_late FROM events WHERE edge_id = ? AND epoch = ? AND seq = ?",
        (edge_id, epoch, seq),
    ).fetchone()
    return (bool(row[0]), bool(row[1])) if row else (True, False)


def other_releases(
    conn: Connection,
    *,
    park_id: str,
    logistics_code: str,
    logistics_no: str,
    edge_id: str,
    epoch: int,
    seq: int,
) -> list[tuple[str, int, int]]:
    """(edge_id, epoch, seq) of the park's other release events for this parcel, from any edge."""
    rows = conn.execute(
        "SELECT edge_id, epoch, seq FROM events WHERE logistics_code = ? AND logistics_no = ?"
        " AND kind = 'release' AND park_id = ? AND NOT (edge_id = ? AND epoch = ? AND seq = ?)"
        " ORDER BY received_at, edge_id, epoch, seq",
        (logistics_code, logistics_no, park_id, edge_id, epoch, seq),
    )
    return [(str(r[0]), int(r[1]), int(r[2])) for r in rows]


def insert_alert(
    conn: Connection, *, park_id: str, edge_id: str | None, kind: str, detail: str, now: str
) -> int:
    cur = conn.execute(
        "INSERT INTO alerts (park_id, edge_id, kind, detail, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
        (park_id, edge_id, kind, detail, now),
    )
    return int(cur.fetchone()[0])


def latest_alert(conn: Connection, *, park_id: str, edge_id: str) -> tuple[str, str] | None:
    """(kind, detail) of the newest alert about this edge, to avoid repeating it on every resend."""
    row = conn.execute(
        "SELECT kind, detail FROM alerts WHERE park_id = ? AND edge_id = ? ORDER BY created_at DESC, id DESC"
        " LIMIT 1",
        (park_id, edge_id),
    ).fetchone()
    return (str(row[0]), str(row[1])) if row else None


# --- for the officer pages ----------------------------------------------------------------------


def count_events(db: Database, *, park_id: str, kinds: Iterable[str]) -> int:
    """How many events of these kinds the park's edges reported, all time."""
    wanted = list(kinds)
    marks = ", ".join("?" for _ in wanted)
    row = (
        db.reader()
        .execute(f"SELECT COUNT(*) FROM events WHERE park_id = ? AND kind IN ({marks})", (park_id, *wanted))
        .fetchone()
    )
    return int(row[0])


@dataclass(frozen=True)
class DiscrepancyEvent:
    edge_id: str
    seq: int
    station: str | None
    occurred_at: str
    logistics_code: str | None
    logistics_no: str | None
    body: dict[str, Any]


def discrepancy_events(
    db: Database, *, park_id: str, code: str | None, limit: int
) -> tuple[int, list[DiscrepancyEvent]]:
    """(how many, the newest `limit`) of the park's discrepancy events, those reporting `code` only
    when one is given."""
    conn = db.reader()
    where = "WHERE park_id = ? AND kind = 'discrepancy'"
    params: list[Any] = [park_id]
    if code and db.dialect == "postgresql":  # the codes are a list in the event's body
        where += " AND (bondgate_jsonb(events.body) -> 'codes') @> jsonb_build_array(?::text)"
        params.append(code)
    elif code:
        where += " AND EXISTS (SELECT 1 FROM json_each(events.body, '$.codes') j WHERE j.value = ?)"
        params.append(code)
    total = int(conn.execute(f"SELECT COUNT(*) FROM events {where}", params).fetchone()[0])
    rows = conn.execute(
        "SELECT edge_id, seq, station, occurred_at, logistics_code, logistics_no, body FROM events"
        f" {where} ORDER BY occurred_at DESC, edge_id, seq DESC LIMIT ?",
        [*params, limit],
    )
    return total, [DiscrepancyEvent(**{**dict(r), "body": json.loads(r["body"])}) for r in rows]


# --- chains: re-provisioning ------------------------------------------------------------------


def closed_chains(conn: Connection, *, edge_id: str) -> list[ClosedChainRow]:
    rows = conn.execute("SELECT * FROM edge_chains WHERE edge_id = ? ORDER BY epoch", (edge_id,))
    return [ClosedChainRow(**dict(r)) for r in rows]


def close_chain(
    conn: Connection,
    *,
    edge: EdgeRow,
    closed_at: str,
    closed_by: str,
    reason: str,
    genesis_hash: str,
) -> EdgeRow:
    """Record the open chain of `edge` as closed and open the next epoch at seq 0 / genesis."""
    conn.execute(
        "INSERT INTO edge_chains (edge_id, epoch, park_id, last_seq, last_hash, opened_at, closed_at,"
        " closed_by, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            edge.edge_id,
            edge.epoch,
            edge.park_id,
            edge.last_seq,
            edge.last_hash,
            edge.epoch_opened_at,
            closed_at,
            closed_by,
            reason,
        ),
    )
    conn.execute(
        "UPDATE edges SET epoch = ?, epoch_opened_at = ?, last_seq = 0, last_hash = ? WHERE edge_id = ?",
        (edge.epoch + 1, closed_at, genesis_hash, edge.edge_id),
    )
    opened = get_edge(conn, edge_id=edge.edge_id)
    assert opened is not None
    return opened


def chain_events(conn: Connection, *, edge_id: str, epoch: int, after: int, limit: int) -> list[EventRow]:
    """The stored events of one chain with seq > `after`, in seq order (the primary key's range)."""
    rows = conn.execute(
        "SELECT edge_id, epoch, seq, park_id, kind, station, occurred_at, logistics_code, logistics_no,"
        " body, prev_hash, hash, received_at FROM events WHERE edge_id = ? AND epoch = ? AND seq > ?"
        " ORDER BY seq LIMIT ?",
        (edge_id, epoch, after, limit),
    )
    return [EventRow(**dict(r)) for r in rows]


# --- actuation of releases --------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseActuation:
    """A release and what its outputs did, as far as central has been told."""

    edge_id: str
    decision_id: str
    park_id: str
    epoch: int
    seq: int
    logistics_code: str | None
    logistics_no: str | None
    occurred_at: str
    received_at: str
    actuation: str | None
    output: str | None
    detail: str | None
    actuated_at: str | None
    actuation_epoch: int | None
    actuation_seq: int | None


def insert_release(conn: Connection, event: EventRow, decision_id: str) -> tuple[int, int] | None:
    """A release event that names its decision: its actuation is awaited. A decision id the edge
    used before for another release keeps the first: returns that release's (epoch, seq)."""
    cur = conn.execute(
        "INSERT INTO release_actuations (edge_id, decision_id, park_id, epoch, seq, logistics_code,"
        " logistics_no, occurred_at, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
        " RETURNING seq",
        (
            event.edge_id,
            decision_id,
            event.park_id,
            event.epoch,
            event.seq,
            event.logistics_code,
            event.logistics_no,
            event.occurred_at,
            event.received_at,
        ),
    )
    if cur.fetchone() is not None:  # inserted (rows returned, not rowcount: PostgreSQL pipelines writes)
        return None
    held = conn.execute(
        "SELECT epoch, seq FROM release_actuations WHERE edge_id = ? AND decision_id = ?",
        (event.edge_id, decision_id),
    ).fetchone()
    return int(held[0]), int(held[1])


def record_actuation(
    conn: Connection,
    event: EventRow,
    *,
    decision_id: str,
    actuation: str,
    output: str | None,
    detail: str | None,
) -> ReleaseActuation | None:
    """What the outputs of a release did (the latest report wins); None when the decision was no
    release central knows of (a hold's or an inspection's outputs, or a release without decision_id).
    A report binds to a release of its own chain (epoch) only: after a re-provisioning a decision id
    could come again, and a report of the new chain must not speak for the old one's release."""
    row = conn.execute(
        "UPDATE release_actuations SET actuation = ?, output = ?, detail = ?, actuated_at = ?,"
        " actuation_epoch = ?, actuation_seq = ? WHERE edge_id = ? AND decision_id = ? AND epoch = ?"
        " RETURNING *",
        (
            actuation,
            output,
            detail,
            event.occurred_at,
            event.epoch,
            event.seq,
            event.edge_id,
            decision_id,
            event.epoch,
        ),
    ).fetchone()
    return ReleaseActuation(**dict(row)) if row is not None else None


@dataclass(frozen=True)
class ReleaseSeen:
    """Which edge released a parcel, and when."""

    edge_id: str
    epoch: int
    seq: int
    occurred_at: str


def first_release(
    conn: Connection, *, park_id: str | None, logistics_code: str, logistics_no: str
) -> ReleaseSeen | None:
    """The first release event any edge reported for this parcel in its park: it has left."""
    row = conn.execute(
        "SELECT edge_id, epoch, seq, occurred_at FROM events WHERE park_id = ? AND kind = 'release'"
        " AND logistics_code = ? AND logistics_no = ? ORDER BY occurred_at LIMIT 1",
        (park_id or "", logistics_code, logistics_no),
    ).fetchone()
    return ReleaseSeen(**dict(row)) if row is not None else None

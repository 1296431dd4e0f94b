"""Edge event intake: every event stored exactly once, in chain order, and anomalies raised as alerts.

An edge keeps its events in an outbox and resends until central acknowledges them, so the same
event may arrive many times, in overlapping or reordered batches. `(edge_id, seq)` is the
idempotency key and the hash chain (DESIGN.md §3.4) proves the edge's history is unbroken, so the
rules are strict and simple:

* a batch is handled in seq order inside one write transaction;
* an event at or below the acknowledged seq is a duplicate when it is the very event central holds
  (same hash, content matching it) and a conflict otherwise — never overwritten;
* the next new event must be `acked_seq + 1` and link to the stored last hash; the first refusal
  stops storage for the rest of the batch (the edge resends from `acked_seq + 1`);
* the answer is the highest contiguous seq held, which is all the edge needs to trim its outbox.

A release that central cannot match to a cleared record, a second release of a parcel, and any
break in an edge's chain become alert rows, because an officer has to look at each of them.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from bondgate.wire import GENESIS_HASH, ClearanceStatus, Event, EventKind, canonical_json
from central.store import events as store
from central.store.db import Database
from central.timefmt import iso

log = logging.getLogger(__name__)

# A parcel may leave while at 800; 899 (closed) only ever follows 800, so a release seen after the
# record was closed is still a cleared release (events can reach central hours late).
CLEARED_STATUSES = frozenset({ClearanceStatus.RELEASED.value, ClearanceStatus.CLOSED.value})


class RefusalCode(StrEnum):
    SEQ_GAP = "seq_gap"
    CHAIN_BREAK = "chain_break"
    CONFLICT = "conflict"
    EDGE_MISMATCH = "edge_mismatch"


class AlertKind(StrEnum):
    RELEASE_NOT_CLEARED = "release_not_cleared"
    RELEASED_TWICE = "released_twice"
    SEQ_GAP = "seq_gap"
    CHAIN_BREAK = "chain_break"
    CONFLICT = "conflict"
    EDGE_MISMATCH = "edge_mismatch"


class Refusal(BaseModel):
    seq: int
    reason: str
    code: RefusalCode


class IngestResult(BaseModel):
    """The answer to an edge's batch; the edge may drop from its outbox every seq <= acked_seq."""

    acked_seq: int = Field(description="highest contiguous seq central holds for the edge (0: none)")
    stored: int = Field(0, description="events newly stored by this batch")
    duplicates: int = Field(0, description="events central already held, identical")
    refused: list[Refusal] = Field(default_factory=list)


class EdgeStatus(BaseModel):
    edge_id: str
    last_seq: int
    last_seen: datetime | None
    last_heartbeat: datetime | None
    backlog: int | None


class UnknownPark(LookupError):
    """An edge made first contact for a park central does not know."""


@dataclass(frozen=True)
class _Alert:
    kind: AlertKind
    detail: str


@dataclass
class _Intake:
    """Running state of one batch: the chain head moves as events are stored."""

    edge: store.EdgeRow
    held: dict[int, str]
    received_at: str
    stored: int = 0
    duplicates: int = 0
    refused: list[Refusal] = field(default_factory=list)
    alerts: list[_Alert] = field(default_factory=list)

    @property
    def halt(self) -> Refusal | None:
        return self.refused[0] if self.refused else None


def ingest_events(
    db: Database, *, park_id: str, edge_id: str, events: list[Event], now: datetime
) -> IngestResult:
    """Store a batch from one edge exactly once; see the module docstring for the rules."""
    batch = sorted(events, key=lambda e: e.seq)  # stable: same-seq copies keep arrival order
    received_at = iso(_utc(now))
    with db.write() as conn:
        edge = store.get_edge(conn, edge_id=edge_id) or _first_contact(conn, edge_id, park_id)
        if edge.park_id != park_id:
            result = _foreign_edge(conn, edge, park_id, batch, received_at)
        else:
            result = _ingest(conn, edge, batch, received_at)
    _log(park_id, edge_id, result)
    return result


def edge_status(db: Database, park_id: str) -> list[EdgeStatus]:
    """Every edge of the park with how far its chain got and when it was last heard from."""
    return [
        EdgeStatus(
            edge_id=e.edge_id, last_seq=e.last_seq, last_seen=e.last_seen,
            last_heartbeat=e.last_heartbeat, backlog=e.backlog,
        )
        for e in store.list_edges(db.reader(), park_id=park_id)
    ]


# --- the batch ---------------------------------------------------------------------------------


def _first_contact(conn: sqlite3.Connection, edge_id: str, park_id: str) -> store.EdgeRow:
    """An edge is bound to the park of the token that first brought it; it stays there."""
    if not store.park_exists(conn, park_id=park_id):
        raise UnknownPark(park_id)
    log.info("new edge", extra={"park_id": park_id, "edge_id": edge_id})
    return store.create_edge(conn, edge_id=edge_id, park_id=park_id, genesis_hash=GENESIS_HASH)


def _foreign_edge(
    conn: sqlite3.Connection, edge: store.EdgeRow, park_id: str, batch: list[Event], now: str
) -> IngestResult:
    """An edge id already bound to another park: refuse it all and tell the owning park."""
    reason = f"edge {edge.edge_id} is bound to another park"
    refused = [Refusal(seq=e.seq, reason=reason, code=RefusalCode.EDGE_MISMATCH) for e in batch]
    detail = f"edge {edge.edge_id} of this park was presented by park {park_id}; batch refused"
    _raise_alerts(conn, edge.park_id, edge.edge_id, [_Alert(AlertKind.EDGE_MISMATCH, detail)], now)
    return IngestResult(acked_seq=0, refused=refused)


def _ingest(conn: sqlite3.Connection, edge: store.EdgeRow, batch: list[Event], now: str) -> IngestResult:
    intake = _Intake(edge=edge, held=_held_hashes(conn, edge, batch), received_at=now)
    for event in batch:
        _take(conn, intake, event)
    chain_alert = _chain_alert(intake)
    if chain_alert is not None:
        intake.alerts.append(chain_alert)
    store.update_edge(conn, replace(intake.edge, last_seen=now))
    _raise_alerts(conn, edge.park_id, edge.edge_id, intake.alerts, now)
    return IngestResult(
        acked_seq=intake.edge.last_seq, stored=intake.stored, duplicates=intake.duplicates,
        refused=intake.refused,
    )


def _held_hashes(conn: sqlite3.Connection, edge: store.EdgeRow, batch: list[Event]) -> dict[int, str]:
    """Stored hashes for the batch's already-acknowledged seqs, read once, to judge resends."""
    if not batch or batch[0].seq > edge.last_seq:
        return {}
    last = min(batch[-1].seq, edge.last_seq)
    return store.stored_hashes(conn, edge_id=edge.edge_id, first=batch[0].seq, last=last)


def _take(conn: sqlite3.Connection, intake: _Intake, event: Event) -> None:
    """Judge one event of the batch and store it if it extends the chain."""
    if event.edge_id != intake.edge.edge_id:
        reason = f"event names edge {event.edge_id}, the batch is from {intake.edge.edge_id}"
        intake.refused.append(Refusal(seq=event.seq, reason=reason, code=RefusalCode.EDGE_MISMATCH))
        return
    if event.seq <= intake.edge.last_seq:
        refusal = _judge_resend(event, intake.held.get(event.seq))
        if refusal is None:
            intake.duplicates += 1
        else:
            intake.refused.append(refusal)
        return
    halt = intake.halt
    if halt is not None:
        reason = f"not stored: follows refused seq {halt.seq} ({halt.code})"
        intake.refused.append(Refusal(seq=event.seq, reason=reason, code=halt.code))
        return
    refusal = _judge_next(event, intake.edge)
    if refusal is not None:
        intake.refused.append(refusal)
        return
    _store(conn, intake, event)


def _judge_resend(event: Event, held_hash: str | None) -> Refusal | None:
    """An event at or below the acknowledged seq: harmless only if it is exactly what we hold."""
    if held_hash is None:
        return Refusal(seq=event.seq, reason="central holds no event at this seq", code=RefusalCode.CONFLICT)
    if event.hash != held_hash:
        reason = f"seq {event.seq} is stored with hash {held_hash[:12]}…, this one has {event.hash[:12]}…"
        return Refusal(seq=event.seq, reason=reason, code=RefusalCode.CONFLICT)
    if event.expected_hash() != event.hash:
        return Refusal(seq=event.seq, reason="content does not match its hash", code=RefusalCode.CHAIN_BREAK)
    return None


def _judge_next(event: Event, edge: store.EdgeRow) -> Refusal | None:
    """A new event must be the very next seq and link to the stored chain head."""
    if event.seq != edge.last_seq + 1:
        reason = f"expected seq {edge.last_seq + 1}, got {event.seq}"
        return Refusal(seq=event.seq, reason=reason, code=RefusalCode.SEQ_GAP)
    if event.prev_hash != edge.last_hash:
        reason = f"prev_hash does not match the hash of stored seq {edge.last_seq}"
        return Refusal(seq=event.seq, reason=reason, code=RefusalCode.CHAIN_BREAK)
    if event.expected_hash() != event.hash:
        return Refusal(seq=event.seq, reason="content does not match its hash", code=RefusalCode.CHAIN_BREAK)
    return None


def _store(conn: sqlite3.Connection, intake: _Intake, event: Event) -> None:
    edge = intake.edge
    store.insert_event(conn, _event_row(event, edge.park_id, intake.received_at))
    intake.edge = replace(edge, last_seq=event.seq, last_hash=event.hash)
    intake.held[event.seq] = event.hash
    intake.stored += 1
    if event.kind == EventKind.HEARTBEAT:
        backlog = event.body.backlog if event.body.backlog is not None else edge.backlog
        intake.edge = replace(intake.edge, last_heartbeat=iso(_utc(event.occurred_at)), backlog=backlog)
    elif event.kind == EventKind.RELEASE:
        intake.alerts.extend(_release_alerts(conn, edge.park_id, event))


def _event_row(event: Event, park_id: str, received_at: str) -> store.EventRow:
    body = event.body
    return store.EventRow(
        edge_id=event.edge_id, seq=event.seq, park_id=park_id, kind=event.kind.value,
        station=event.station, occurred_at=iso(_utc(event.occurred_at)),
        logistics_code=body.logisticsCode, logistics_no=body.logisticsNo,
        body=canonical_json(body.model_dump(mode="python")).decode(),
        prev_hash=event.prev_hash, hash=event.hash, received_at=received_at,
    )


# --- effects -----------------------------------------------------------------------------------


def _release_alerts(conn: sqlite3.Connection, park_id: str, event: Event) -> list[_Alert]:
    """A release must match a cleared record and be the parcel's only release; say so if not."""
    code, number = event.body.logisticsCode, event.body.logisticsNo
    where = f"release seq {event.seq} from edge {event.edge_id}"
    if not code or not number:
        return [_Alert(AlertKind.RELEASE_NOT_CLEARED, f"{where} names no parcel (logisticsCode/No)")]
    parcel = f"parcel {code}/{number}"
    alerts: list[_Alert] = []
    states = store.clearance_states(conn, park_id=park_id, logistics_code=code, logistics_no=number)
    problem = _clearance_problem(states)
    if problem is not None:
        alerts.append(_Alert(AlertKind.RELEASE_NOT_CLEARED, f"{where}: {parcel} {problem}"))
    others = store.other_releases(
        conn, park_id=park_id, logistics_code=code, logistics_no=number, edge_id=event.edge_id, seq=event.seq
    )
    if others:
        before = ", ".join(f"{e} seq {s}" for e, s in others)
        alerts.append(_Alert(AlertKind.RELEASED_TWICE, f"{where}: {parcel} was already released ({before})"))
    return alerts


def _clearance_problem(states: list[store.ClearanceState]) -> str | None:
    """Why the parcel was not releasable, or None when some clearance of it is cleared."""
    if not states:
        return "has no clearance in this park"
    if any(s.status in CLEARED_STATUSES and not s.cancelled for s in states):
        return None
    newest = states[0]
    name = newest.invt_no or newest.clearance_id
    cancelled = " and is cancelled" if newest.cancelled else ""
    return f"is not cleared: inventory {name} is at status {newest.status}{cancelled}"


def _chain_alert(intake: _Intake) -> _Alert | None:
    """One alert per batch for its refusals, named after the first: officers need one line, not N."""
    halt = intake.halt
    if halt is None:
        return None
    detail = (
        f"edge {intake.edge.edge_id}: seq {halt.seq} refused ({halt.reason});"
        f" {len(intake.refused)} event(s) of the batch refused; acked_seq {intake.edge.last_seq}"
    )
    return _Alert(AlertKind(halt.code.value), detail)


def _raise_alerts(
    conn: sqlite3.Connection, park_id: str, edge_id: str, alerts: list[_Alert], now: str
) -> None:
    """Insert the alerts, except one identical to the edge's newest alert (a resent bad batch)."""
    previous = store.latest_alert(conn, park_id=park_id, edge_id=edge_id)
    for alert in alerts:
        if previous == (alert.kind.value, alert.detail):
            continue
        store.insert_alert(
            conn, park_id=park_id, edge_id=edge_id, kind=alert.kind.value, detail=alert.detail, now=now
        )
        previous = (alert.kind.value, alert.detail)
        log.warning(alert.detail, extra={"park_id": park_id, "edge_id": edge_id, "alert": alert.kind.value})


def _log(park_id: str, edge_id: str, result: IngestResult) -> None:
    extra = {
        "park_id": park_id, "edge_id": edge_id, "acked_seq": result.acked_seq, "stored": result.stored,
        "duplicates": result.duplicates, "refused": len(result.refused),
    }
    if result.refused:
        first = result.refused[0]
        log.warning(
            "events refused", extra={**extra, "first_refused": first.seq, "code": first.code.value}
        )
    else:
        log.info("events ingested", extra=extra)


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC (never as the server's local time)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

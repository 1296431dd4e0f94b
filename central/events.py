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

An edge has one open chain at a time, its epoch: events carry it (`Event.epoch`, absent for 1) and are
keyed by (edge_id, epoch, seq). Re-provisioning (central/chains.py) closes the open chain and opens
the next epoch at seq 1; events of a closed epoch are refused (`epoch_closed`, with who closed it and
what the edge must do), and so are events of an epoch central never opened (`epoch_unknown`).

A release that central cannot match to a cleared record, a second release of a parcel, and any
break in an edge's chain become alert rows, because an officer has to look at each of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from central.store import clearances as cstore
from central.store import events as store
from central.store import parks as pstore
from central.store.connection import Connection
from central.store.db import Database
from kernel.status import CLEARED_STATUSES
from kernel.timefmt import iso
from kernel.wire import GENESIS_HASH, Event, EventBody, EventKind, canonical_json

log = logging.getLogger(__name__)

# A parcel may leave while at 800; 899 (closed) only ever follows 800, so a release seen after the
# record was closed is still a cleared release (events can reach central hours late).


class RefusalCode(StrEnum):
    SEQ_GAP = "seq_gap"
    CHAIN_BREAK = "chain_break"
    CONFLICT = "conflict"
    EDGE_MISMATCH = "edge_mismatch"
    EPOCH_CLOSED = "epoch_closed"  # the edge was re-provisioned; it must start its next epoch
    EPOCH_UNKNOWN = "epoch_unknown"  # an epoch central never opened for this edge


class AlertKind(StrEnum):
    RELEASE_NOT_CLEARED = "release_not_cleared"
    RELEASED_TWICE = "released_twice"
    SEQ_GAP = "seq_gap"
    CHAIN_BREAK = "chain_break"
    CONFLICT = "conflict"
    EDGE_MISMATCH = "edge_mismatch"
    EPOCH_CLOSED = "epoch_closed"
    EPOCH_UNKNOWN = "epoch_unknown"
    EDGE_REPROVISIONED = "edge_reprovisioned"
    ACTUATION_FAILED = "actuation_failed"  # a release's outputs did not move as commanded
    # a parcel released while cleared whose cancellation (CEB623) central approved before the release
    # event reached it: a cancelled declaration for goods that have left (central/reports.py)
    CANCELLED_AFTER_RELEASE = "cancelled_after_release"
    DECISION_REUSED = "decision_reused"
    # a vehicle gate let a vehicle through on no note, another park's, or one not approved for it
    PASSAGE_NOT_APPROVED = "passage_not_approved"


PassageEffects = Callable[[Connection, store.EventRow, Event], list[str]]
"""What central does with a stored passage event (release_notes/passages.py): the note passed, the
passage kept; returns what an officer must know (each becomes a passage_not_approved alert)."""


# what an officer should know when an edge's chain is refused: how it gets out of it
REPROVISION_HINT = (
    "if this edge's database was lost or restored, re-provision it: `bondgate central edge reprovision`"
    " here, then `bondgate edge reprovision` on the edge (README: Re-provisioning an edge)"
)


class Refusal(BaseModel):
    seq: int
    reason: str
    code: RefusalCode


class IngestResult(BaseModel):
    """The answer to an edge's batch; the edge may drop from its outbox every seq <= acked_seq."""

    acked_seq: int = Field(
        description="highest contiguous seq central holds of the edge's chain of `epoch` (0: none)"
    )
    epoch: int = Field(1, description="the chain (epoch) acked_seq counts in: the batch's")
    stored: int = Field(0, description="events newly stored by this batch")
    duplicates: int = Field(0, description="events central already held, identical")
    refused: list[Refusal] = Field(default_factory=list)


class EdgeStatus(BaseModel):
    edge_id: str
    epoch: int = Field(1, description="the edge's open chain; earlier ones were closed by re-provisioning")
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
    earlier_form: bool | None = None  # the chain head is hashed in the earlier form (None: not read yet)
    on_passage: PassageEffects | None = None

    @property
    def halt(self) -> Refusal | None:
        return self.refused[0] if self.refused else None


def ingest_events(
    db: Database,
    *,
    park_id: str,
    edge_id: str,
    events: list[Event],
    now: datetime,
    on_passage: PassageEffects | None = None,
) -> IngestResult:
    """Store a batch from one edge exactly once; see the module docstring for the rules."""
    batch = sorted(events, key=lambda e: e.seq)  # stable: same-seq copies keep arrival order
    received_at = iso(_utc(now))
    with db.write() as conn:
        edge = store.get_edge(conn, edge_id=edge_id) or _first_contact(conn, edge_id, park_id, received_at)
        epoch = (batch[0].epoch or 1) if batch else edge.epoch
        if edge.park_id != park_id:
            result = _foreign_edge(conn, edge, park_id, batch, received_at)
        elif epoch != edge.epoch:
            result = _other_epoch(conn, edge, epoch, batch, received_at)
        else:
            result = _ingest(conn, edge, batch, received_at, on_passage)
    _log(park_id, edge_id, result)
    return result


def token_refusal(
    db: Database,
    *,
    token_id: str,
    token_name: str,
    token_edge: str | None,
    park_id: str,
    edge_id: str,
    now: datetime,
) -> str | None:
    """An edge token reports for the one edge it was made for; None if this one may, else why not.

    A token made before tokens were bound (no edge id) is bound here to the edge it first reports
    for. A refusal is an alert to the park the edge belongs to (the one targeted): the park it
    reports in, or, before its first report, the park of the token bound to it; only for an edge id
    nobody holds, to the park in the request."""
    if token_edge == edge_id:
        return None  # the common case: no write transaction for it, on every batch
    with db.write() as conn:
        if token_edge is None and pstore.bind_token_edge(conn, token_id=token_id, edge_id=edge_id):
            log.warning(
                "edge token bound to the edge it first reported for",
                extra={"token_id": token_id, "park_id": park_id, "edge_id": edge_id},
            )
            return None
        if token_edge is None:
            token_edge = pstore.token_edge(conn, token_id=token_id)
        if token_edge == edge_id:
            return None
        if token_edge is None:  # made before binding, and the edge is another token's
            token_edge = "none yet"
        target = pstore.edge_park(conn, edge_id=edge_id) or park_id
        detail = (
            f"token {token_name!r} ({token_id}) of edge {token_edge} in park {park_id} reported for edge"
            f" {edge_id}; refused"
        )
        _raise_alerts(conn, target, edge_id, [_Alert(AlertKind.EDGE_MISMATCH, detail)], iso(_utc(now)))
    return f"this token reports for edge {token_edge}, not {edge_id}"


def foreign_park_alert(
    db: Database,
    *,
    token_id: str,
    token_name: str,
    token_park: str | None,
    token_edge: str | None,
    park_id: str,
    edge_id: str | None,
    what: str,
    now: datetime,
) -> None:
    """An edge token of one park addressed another park (refused 403 by the caller): an alert to the
    park targeted, if central knows it. The alert names the edge the request named (or the token's)."""
    with db.write() as conn:
        if not store.park_exists(conn, park_id=park_id):
            return
        detail = (
            f"token {token_name!r} ({token_id}) of edge {token_edge or 'none yet'} in park {token_park}"
            f" {what} in this park; refused"
        )
        alert = _Alert(AlertKind.EDGE_MISMATCH, detail)
        _raise_alerts(conn, park_id, edge_id or token_edge or "", [alert], iso(_utc(now)))


def edge_status(db: Database, park_id: str) -> list[EdgeStatus]:
    """Every edge of the park with how far its chain got and when it was last heard from."""
    return [
        EdgeStatus(
            edge_id=e.edge_id,
            epoch=e.epoch,
            last_seq=e.last_seq,
            last_seen=e.last_seen,
            last_heartbeat=e.last_heartbeat,
            backlog=e.backlog,
        )
        for e in store.list_edges(db.reader(), park_id=park_id)
    ]


# --- the batch ---------------------------------------------------------------------------------


def _first_contact(conn: Connection, edge_id: str, park_id: str, now: str) -> store.EdgeRow:
    """An edge is bound to the park of the token that first brought it; it stays there."""
    if not store.park_exists(conn, park_id=park_id):
        raise UnknownPark(park_id)
    log.info("new edge", extra={"park_id": park_id, "edge_id": edge_id})
    return store.create_edge(conn, edge_id=edge_id, park_id=park_id, genesis_hash=GENESIS_HASH, now=now)


def _foreign_edge(
    conn: Connection, edge: store.EdgeRow, park_id: str, batch: list[Event], now: str
) -> IngestResult:
    """An edge id already bound to another park: refuse it all and tell the owning park."""
    reason = f"edge {edge.edge_id} is bound to another park"
    refused = [Refusal(seq=e.seq, reason=reason, code=RefusalCode.EDGE_MISMATCH) for e in batch]
    detail = f"edge {edge.edge_id} of this park was presented by park {park_id}; batch refused"
    _raise_alerts(conn, edge.park_id, edge.edge_id, [_Alert(AlertKind.EDGE_MISMATCH, detail)], now)
    return IngestResult(acked_seq=0, refused=refused)


def _other_epoch(
    conn: Connection, edge: store.EdgeRow, epoch: int, batch: list[Event], now: str
) -> IngestResult:
    """A batch for a chain that is not the edge's open one: refuse it all, saying what to do.

    For a closed epoch the answer's acked_seq is where that chain was closed, so an edge reading
    it learns nothing beyond the truth; for an epoch central never opened it is 0."""
    closed = {c.epoch: c for c in store.closed_chains(conn, edge_id=edge.edge_id)}.get(epoch)
    if closed is not None:
        code, kind, acked = RefusalCode.EPOCH_CLOSED, AlertKind.EPOCH_CLOSED, closed.last_seq
        reason = (
            f"epoch {epoch} of edge {edge.edge_id} was closed at seq {closed.last_seq} on {closed.closed_at}"
            f" by {closed.closed_by} ({closed.reason}); epoch {edge.epoch} is open: run"
            " `bondgate edge reprovision` on the edge"
        )
    else:
        code, kind, acked = RefusalCode.EPOCH_UNKNOWN, AlertKind.EPOCH_UNKNOWN, 0
        reason = f"edge {edge.edge_id} has no epoch {epoch}; epoch {edge.epoch} is open"
    refused = [Refusal(seq=e.seq, reason=reason, code=code) for e in batch]
    detail = f"edge {edge.edge_id}: events of epoch {epoch} refused: {reason}"
    _raise_alerts(conn, edge.park_id, edge.edge_id, [_Alert(kind, detail)], now)
    store.update_edge(conn, replace(edge, last_seen=now))
    return IngestResult(acked_seq=acked, epoch=epoch, refused=refused)


def _ingest(
    conn: Connection,
    edge: store.EdgeRow,
    batch: list[Event],
    now: str,
    on_passage: PassageEffects | None = None,
) -> IngestResult:
    intake = _Intake(edge=edge, held=_held_hashes(conn, edge, batch), received_at=now, on_passage=on_passage)
    for event in batch:
        _take(conn, intake, event)
    chain_alert = _chain_alert(intake)
    if chain_alert is not None:
        intake.alerts.append(chain_alert)
    store.update_edge(conn, replace(intake.edge, last_seen=now))
    _raise_alerts(conn, edge.park_id, edge.edge_id, intake.alerts, now)
    return IngestResult(
        acked_seq=intake.edge.last_seq,
        epoch=edge.epoch,
        stored=intake.stored,
        duplicates=intake.duplicates,
        refused=intake.refused,
    )


def _held_hashes(conn: Connection, edge: store.EdgeRow, batch: list[Event]) -> dict[int, str]:
    """Stored hashes for the batch's already-acknowledged seqs, read once, to judge resends."""
    if not batch or batch[0].seq > edge.last_seq:
        return {}
    last = min(batch[-1].seq, edge.last_seq)
    return store.stored_hashes(conn, edge_id=edge.edge_id, epoch=edge.epoch, first=batch[0].seq, last=last)


def _take(conn: Connection, intake: _Intake, event: Event) -> None:
    """Judge one event of the batch and store it if it extends the chain."""
    if event.edge_id != intake.edge.edge_id:
        reason = f"event names edge {event.edge_id}, the batch is from {intake.edge.edge_id}"
        intake.refused.append(Refusal(seq=event.seq, reason=reason, code=RefusalCode.EDGE_MISMATCH))
        return
    if (epoch := event.epoch or 1) != intake.edge.epoch:
        code = RefusalCode.EPOCH_CLOSED if epoch < intake.edge.epoch else RefusalCode.EPOCH_UNKNOWN
        reason = f"event of epoch {epoch} in a batch of epoch {intake.edge.epoch}"
        intake.refused.append(Refusal(seq=event.seq, reason=reason, code=code))
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
    refusal = _judge_next(conn, event, intake)
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
    if not event.hash_matches():
        return Refusal(seq=event.seq, reason="content does not match its hash", code=RefusalCode.CHAIN_BREAK)
    return None


def _judge_next(conn: Connection, event: Event, intake: _Intake) -> Refusal | None:
    """A new event must be the very next seq, link to the stored chain head and be hashed in the
    canonical form — or in the earlier form, only to continue a chain that is in it (an edge not yet
    upgraded): a new chain, or one that has moved to the canonical form, takes no earlier-form hash."""
    edge = intake.edge
    if event.seq != edge.last_seq + 1:
        reason = f"expected seq {edge.last_seq + 1}, got {event.seq}"
        return Refusal(seq=event.seq, reason=reason, code=RefusalCode.SEQ_GAP)
    if event.prev_hash != edge.last_hash:
        reason = f"prev_hash does not match the hash of stored seq {edge.last_seq}"
        return Refusal(seq=event.seq, reason=reason, code=RefusalCode.CHAIN_BREAK)
    form = event.hash_form()
    if form is None:
        return Refusal(seq=event.seq, reason="content does not match its hash", code=RefusalCode.CHAIN_BREAK)
    if form == "earlier" and not _chain_in_earlier_form(conn, intake):
        reason = (
            "hashed in the earlier form (until 2026-12-05), which only continues a chain already in it;"
            " this chain is new or in the canonical form: hash the canonical form (docs/canonical-form.md)"
        )
        return Refusal(seq=event.seq, reason=reason, code=RefusalCode.CHAIN_BREAK)
    intake.earlier_form = form == "earlier"  # the head once it is stored (`_store` follows at once)
    return None


def _chain_in_earlier_form(conn: Connection, intake: _Intake) -> bool:
    """Is the chain's last stored event hashed in the earlier form? Read once per batch, then
    followed as events are stored."""
    if intake.earlier_form is None:
        edge = intake.edge
        if edge.last_seq == 0:
            intake.earlier_form = False
        else:
            [last] = store.chain_events(
                conn, edge_id=edge.edge_id, epoch=edge.epoch, after=edge.last_seq - 1, limit=1
            )
            intake.earlier_form = _as_event(last).hash_form() != "canonical"
    return intake.earlier_form


def _as_event(row: store.EventRow) -> Event:
    """A stored event as the edge sent it, for its hash (the stored body is its canonical form)."""
    return Event(
        edge_id=row.edge_id,
        epoch=None if row.epoch == 1 else row.epoch,
        seq=row.seq,
        kind=EventKind(row.kind),
        station=row.station,
        occurred_at=datetime.fromisoformat(row.occurred_at),
        body=EventBody.model_validate_json(row.body),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _store(conn: Connection, intake: _Intake, event: Event) -> None:
    edge = intake.edge
    row = _event_row(event, edge.park_id, intake.received_at)
    store.insert_event(conn, row)
    intake.edge = replace(edge, last_seq=event.seq, last_hash=event.hash)
    intake.held[event.seq] = event.hash
    intake.stored += 1
    if event.kind == EventKind.HEARTBEAT:
        backlog = event.body.backlog if event.body.backlog is not None else edge.backlog
        intake.edge = replace(intake.edge, last_heartbeat=iso(_utc(event.occurred_at)), backlog=backlog)
    elif event.kind == EventKind.RELEASE:
        moment = min(row.occurred_at, intake.received_at)
        intake.alerts.extend(_release_alerts(conn, edge.park_id, event, moment))
        if event.body.decision_id:  # its actuation is awaited (central/reports.py)
            held = store.insert_release(conn, row, event.body.decision_id)
            if held is not None:
                intake.alerts.append(_decision_reused(event, *held))
    elif event.kind == EventKind.ACTUATION:
        intake.alerts.extend(_actuation_alerts(conn, row, event))
        if intake.on_passage is not None:  # a vehicle gate's barrier, for its passage
            intake.on_passage(conn, row, event)
    elif event.kind == EventKind.PASSAGE and intake.on_passage is not None:
        # stored once, so applied once: a resent passage is a duplicate above and never gets here
        for detail in intake.on_passage(conn, row, event):
            intake.alerts.append(_Alert(AlertKind.PASSAGE_NOT_APPROVED, detail))


def _event_row(event: Event, park_id: str, received_at: str) -> store.EventRow:
    body = event.body
    return store.EventRow(
        edge_id=event.edge_id,
        epoch=event.epoch or 1,
        seq=event.seq,
        park_id=park_id,
        kind=event.kind.value,
        station=event.station,
        occurred_at=iso(_utc(event.occurred_at)),
        logistics_code=body.logisticsCode,
        logistics_no=body.logisticsNo,
        body=canonical_json(body.model_dump(mode="python")).decode(),
        prev_hash=event.prev_hash,
        hash=event.hash,
        received_at=received_at,
    )


# --- effects -----------------------------------------------------------------------------------


def _release_alerts(conn: Connection, park_id: str, event: Event, moment: str) -> list[_Alert]:
    """A release must match a cleared record and be the parcel's only release; say so if not.

    A cancellation approved after the release's `moment` (its time, never later than central got it)
    does not make the release uncleared: the edge released a parcel that was releasable. But central
    approved a cancellation for goods that had already left, because the release was still on its
    way: that is its own alert, `cancelled_after_release`, and a list of the report."""
    code, number = event.body.logisticsCode, event.body.logisticsNo
    epoch = event.epoch or 1
    where = f"release seq {event.seq} from edge {event.edge_id}" + (f" epoch {epoch}" if epoch > 1 else "")
    if not code or not number:
        return [_Alert(AlertKind.RELEASE_NOT_CLEARED, f"{where} names no parcel (logisticsCode/No)")]
    parcel = f"parcel {code}/{number}"
    alerts: list[_Alert] = []
    # the verdicts the report lists it by, set on the stored row by schema 0011's triggers: judged on
    # the parcel's history at the release's moment
    uncleared, late_cancellation = store.release_verdicts(
        conn, edge_id=event.edge_id, epoch=epoch, seq=event.seq
    )
    if uncleared or late_cancellation:  # the parcel's clearances, only to say what is wrong
        states = store.clearance_states(conn, park_id=park_id, logistics_code=code, logistics_no=number)
    if uncleared:
        problem = _clearance_problem(states) or f"was not cleared at {moment}, the time of the release"
        alerts.append(_Alert(AlertKind.RELEASE_NOT_CLEARED, f"{where}: {parcel} {problem}"))
    elif late_cancellation:
        for s in states:
            at = (
                cstore.cancelled_after(conn, clearance_id=s.clearance_id, moment=moment)
                if s.cancelled
                else None
            )
            if at is None:
                continue
            name = s.invt_no or s.clearance_id
            detail = (
                f"{where}: {parcel} left at {moment}, before the cancellation (CEB623) of inventory {name}"
                f" was approved at {at}; the release reached central only after it."
                " A cancelled declaration for goods that have left the park: take it up with customs"
                " (the goods must come back, or the cancellation be withdrawn)"
            )
            alerts.append(_Alert(AlertKind.CANCELLED_AFTER_RELEASE, detail))
    others = store.other_releases(
        conn,
        park_id=park_id,
        logistics_code=code,
        logistics_no=number,
        edge_id=event.edge_id,
        epoch=epoch,
        seq=event.seq,
    )
    if others:
        before = ", ".join(f"{e} seq {s}" + (f" epoch {n}" if n > 1 else "") for e, n, s in others)
        alerts.append(_Alert(AlertKind.RELEASED_TWICE, f"{where}: {parcel} was already released ({before})"))
    return alerts


def _decision_reused(event: Event, epoch: int, seq: int) -> _Alert:
    """A release naming a decision id the edge used for an earlier release: the actuation reports
    of the two could not be told apart, so this one is not judged on actuation. The edge's ids are
    UUIDs; a reuse is an edge (or a restored database) that must be looked at."""
    detail = (
        f"release seq {event.seq} epoch {event.epoch or 1} from edge {event.edge_id} names decision"
        f" {event.body.decision_id}, already used by its release epoch {epoch} seq {seq}: not judged on"
        " actuation"
    )
    return _Alert(AlertKind.DECISION_REUSED, detail)


def _actuation_alerts(conn: Connection, row: store.EventRow, event: Event) -> list[_Alert]:
    """Bind an actuation report to its release; a release whose outputs failed is an alert."""
    body = event.body
    if not body.decision_id or not body.actuation:
        log.warning(
            "actuation event names no decision or outcome; stored, bound to nothing",
            extra={"edge_id": event.edge_id, "seq": event.seq},
        )
        return []
    release = store.record_actuation(
        conn,
        row,
        decision_id=body.decision_id,
        actuation=body.actuation,
        output=body.output,
        detail=body.detail,
    )
    if body.actuation == "confirmed":
        return []
    if release is None:
        if body.actuation != "failed" or body.verdict == "RELEASE":
            return []
        # a held (or inspection) parcel whose lane was not confirmed may have gone down the release
        # lane: that is a release without clearance nobody reported
        parcel = f"{body.logisticsCode or '?'}/{body.logisticsNo or '?'}"
        detail = (
            f"{(body.verdict or 'held').lower()} parcel {parcel} (decision {body.decision_id}) at edge"
            f" {event.edge_id}: output {body.output or '?'} not confirmed ({body.detail or 'no read-back'});"
            " it may have left through the release lane: check where it went"
        )
        return [_Alert(AlertKind.ACTUATION_FAILED, detail)]
    parcel = f"{release.logistics_code}/{release.logistics_no}"
    if body.actuation == "withheld":
        detail = (
            f"release of parcel {parcel} (decision {body.decision_id}, seq {release.seq}) by edge"
            f" {event.edge_id} was not carried out: sent to the hold lane ({body.detail or 'withheld'});"
            " the parcel is still in the park"
        )
    else:
        detail = (
            f"release of parcel {parcel} (decision {body.decision_id}, seq {release.seq}) by edge"
            f" {event.edge_id}: output {body.output or '?'} not confirmed ({body.detail or 'no read-back'});"
            " where the parcel went must be checked"
        )
    return [_Alert(AlertKind.ACTUATION_FAILED, detail)]


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
    # no count of the refused events: a stuck edge's batches grow, and the alert must not repeat for it
    detail = (
        f"edge {intake.edge.edge_id}: seq {halt.seq} refused ({halt.reason}), and every event after it;"
        f" acked_seq {intake.edge.last_seq}"
    )
    if halt.code in (RefusalCode.CONFLICT, RefusalCode.CHAIN_BREAK, RefusalCode.SEQ_GAP):
        detail += f"; {REPROVISION_HINT}"
    return _Alert(AlertKind(halt.code.value), detail)


def _raise_alerts(conn: Connection, park_id: str, edge_id: str, alerts: list[_Alert], now: str) -> None:
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
        "park_id": park_id,
        "edge_id": edge_id,
        "acked_seq": result.acked_seq,
        "stored": result.stored,
        "duplicates": result.duplicates,
        "refused": len(result.refused),
    }
    if result.refused:
        first = result.refused[0]
        log.warning("events refused", extra={**extra, "first_refused": first.seq, "code": first.code.value})
    else:
        log.info("events ingested", extra=extra)


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC (never as the server's local time)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

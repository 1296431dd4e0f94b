"""What central does with a vehicle gate's passage event (kernel/wire.py `PassageBody`), once, when
the event is stored (central/events.py): the passage is kept for the officer pages and the
reconciliation, and a vehicle that passed moves its note to passed (single gate) or passed the
first / second gate, through the note lifecycle, with a SAS223 receipt in simulate mode and the
note's new version in the park's feed. A pass on no note, on another park's note or on one the
lifecycle does not let pass is kept and said (an alert), never applied.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from central.config import ClearanceMode
from central.platform import Platform
from central.release_notes.lifecycle import Action, IllegalNoteTransition, Status
from central.release_notes.receipts import ApprovalResult, NoteReceipt, PassportBasics
from central.release_notes.service import move, publish, sas_time
from central.store import release_notes as store
from central.store.connection import Connection
from central.store.events import EventRow
from kernel.wire import Event, EventKind

log = logging.getLogger(__name__)

_ACTIONS = {"single": Action.PASS, "first": Action.PASS_FIRST, "second": Action.PASS_SECOND}


def passage_effects(platform: Platform) -> PassageApplier:
    return PassageApplier(platform)


class PassageApplier:
    """`central.events.PassageEffects` bound to the running platform (its key signs the feed)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def __call__(self, conn: Connection, row: EventRow, event: Event) -> list[str]:
        if event.kind == EventKind.ACTUATION:
            if event.body.decision_id and event.body.actuation:
                store.passage_actuated(
                    conn,
                    edge_id=row.edge_id,
                    decision_id=event.body.decision_id,
                    actuation=event.body.actuation,
                    detail=(event.body.detail or "")[:2000],
                )
            return []
        passage = event.body.passage
        where = f"edge {row.edge_id} seq {row.seq}"
        if passage is None:
            return [f"{where}: a passage event without its passage"]
        alerts: list[str] = []
        outcome = "kept"
        if passage.verdict == "PASS":
            outcome, alerts = self._passed(conn, row, event, where)
        store.add_passage(
            conn,
            edge_id=row.edge_id,
            epoch=row.epoch,
            seq=row.seq,
            park_id=row.park_id,
            station=row.station,
            note_no=passage.note,
            verdict=passage.verdict,
            overridden=passage.overridden,
            gate=passage.gate,
            body={
                **passage.model_dump(mode="json"),
                "reason": event.body.detail,
                "operator": event.body.operator,
                "override_reason": event.body.reason,
            },
            outcome=outcome,
            occurred_at=row.occurred_at,
            received_at=row.received_at,
            decision_id=event.body.decision_id,
        )
        return alerts

    def _passed(self, conn: Connection, row: EventRow, event: Event, where: str) -> tuple[str, list[str]]:
        passage = event.body.passage
        assert passage is not None
        plate = passage.plate or "(no plate)"
        note = store.get(conn, note_no=passage.note) if passage.note else None
        if note is None:
            why = f"{where}: vehicle {plate} let through on no known release note ({passage.note or 'none'})"
            return "alert: no such note", [why]
        if note.park_id != row.park_id:
            why = (
                f"{where}: vehicle {plate} let through in park {row.park_id}"
                f" on park {note.park_id}'s note {note.note_no}"
            )
            return "alert: another park's note", [why]
        moment = datetime.fromisoformat(row.occurred_at)
        info = f"{passage.gate} gate, {where}" + (
            f", weighbridge {passage.gross_kg} kg" if passage.gross_kg else ""
        )
        if passage.overridden:
            info += f", released by {event.body.operator or 'a supervisor'}: {event.body.reason or ''}"
        before = note.status
        try:
            moved = move(
                conn, note, _ACTIONS[passage.gate], actor=f"edge:{row.edge_id}", info=info, now=moment
            )
        except IllegalNoteTransition as exc:
            why = f"{where}: vehicle {plate} let through on note {note.note_no}, but {exc}"
            return f"alert: {exc}", [why]
        if moved.version == note.version:
            return f"note already {Status(before).words}", []
        publish(self.platform, conn, moved)
        if self.platform.settings.mode is ClearanceMode.SIMULATE:
            receipt = passed_receipt(moved, gross_kg=passage.gross_kg, lane=row.station, moment=moment)
            store.add_receipt(
                conn,
                note_no=moved.note_no,
                message_type="SAS223",
                source="central",
                body=receipt.model_dump(),
                state="applied",
                reason=f"{before} → {moved.status}",
                now=row.received_at,
            )
        return f"{before} → {moved.status}", []


def passed_receipt(
    row: store.NoteRow, *, gross_kg: object, lane: str | None, moment: datetime
) -> NoteReceipt:
    """The SAS223 central writes as simulated customs when a vehicle passed (wtError = totalWt −
    what the weighbridge collected)."""
    head = row.body["head"]
    collected = None if gross_kg is None else str(gross_kg)
    error = None if gross_kg is None else str(Decimal(head["totalWt"]) - Decimal(str(gross_kg)))
    second = row.status == Status.PASSED_SECOND_GATE
    return NoteReceipt(
        messageType="SAS223",
        HdeApprResult=ApprovalResult(
            etpsPreentNo=row.note_no,
            businessId=row.passport_no,
            tmsCnt="0",
            manageResult="1",
            manageDate=sas_time(moment),
        ),
        SasPassportBsc=PassportBasics(
            passportNo=row.passport_no,
            sasPassportPreentNo=row.note_no,
            passportTypecd=row.note_type,
            ioTypecd=row.direction,
            vehicleNo=row.plate,
            vehicleIcNo=row.ic_no,
            totalWt=head.get("totalWt"),
            totalGrossWt=head.get("totalGrossWt"),
            passCollectWt=collected,
            wtError=error,
            passID=None if second else lane,
            secdPassId=lane if second else None,
            passTime=None if second else sas_time(moment),
            secdPassTime=sas_time(moment) if second else None,
            stucd=row.status,
        ),
    )

"""What central does with release notes: take a new one (checked whole against the park, its
inventories and the vehicle registry), approve it as simulated customs, apply customs' receipts,
delete and void. Every status change goes through release_notes/lifecycle.py and is written with its
history in the same transaction.

Refusals raise `NoteRefused` with the HTTP status a route answers and every problem found, so a
sender fixes a note in one round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from central import feed
from central.config import ClearanceMode
from central.platform import Platform
from central.release_notes import lifecycle
from central.release_notes.lifecycle import Action, IllegalNoteTransition, Status
from central.release_notes.model import INVENTORY_DOC_TYPE, NoteIn, normalise_plate, problems
from central.release_notes.receipts import ApprovalResult, NoteReceipt, PassportBasics
from central.store import parks as pstore
from central.store import release_notes as store
from central.store.connection import Connection
from kernel.status import ClearanceStatus
from kernel.timefmt import iso
from kernel.wire import NoteRecord, sign_note

__all__ = ["NoteRefused", "apply_note", "apply_receipts", "change_status", "register_vehicle"]


@dataclass
class NoteRefused(Exception):
    status: int
    code: str
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(self.problems)


def sas_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def passport_no(note: NoteIn, serial: int, moment: datetime) -> str:
    """Simulate mode's customs number, in customs' form: Z, the customs office (4), I/E, yymmdd and a
    12-digit serial (Z3111I240728000000000003)."""
    h = note.head
    return f"Z{h.masterCuscd}{h.ioTypecd}{moment:%y%m%d}{serial:012d}"


# --- the park's feed ----------------------------------------------------------------------------------


def note_record(row: store.NoteRow) -> NoteRecord:
    """The note as its park's edges get it: what the gate checks, no applicant or phone."""
    head = row.body["head"]
    seal = head.get("sealNo")
    return NoteRecord(
        seq=0,
        park_id=row.park_id,
        etpsPreentNo=row.note_no,
        passportNo=row.passport_no,
        status=row.status,
        passportTypecd=row.note_type,
        bindTypecd=head.get("bindTypecd"),
        ioTypecd=row.direction,  # I or E, checked when the note was taken
        vehicleNo=row.plate,
        vehicleIcNo=row.ic_no,
        vehicleWt=Decimal(head["vehicleWt"]),
        vehicleFrameWt=Decimal(head.get("vehicleFrameWt") or 0),
        containerNo=head.get("containerNo"),
        containerType=head.get("containerType"),
        containerWt=Decimal(head.get("containerWt") or 0),
        totalGrossWt=Decimal(head["totalGrossWt"]),
        totalWt=Decimal(head["totalWt"]),
        sealIds=tuple(seal.split("|")) if seal else (),
        inventories=tuple(
            a["rtlBillNo"] for a in row.body.get("acmp", []) if a["rtlBillTypecd"] == INVENTORY_DOC_TYPE
        ),
        version=row.version,
        updated_at=datetime.fromisoformat(row.updated_at),
    )


def publish(platform: Platform, conn: Connection, row: store.NoteRow) -> None:
    """Append the note as it now is to its park's signed feed, in the caller's transaction."""
    record = sign_note(note_record(row), platform.key)
    feed.append_many(
        conn,
        platform.key,
        park_id=row.park_id,
        records=[(f"note:{row.note_no}", record.model_dump_json(exclude={"seq"}))],
    )


# --- a new note ---------------------------------------------------------------------------------------


def _vehicle_problems(
    conn: Connection, note: NoteIn, require_registered: bool, require_confirmed: bool = True
) -> tuple[list[str], str | None]:
    """Problems of the note's vehicle against the registry, and the IC card the gate will expect."""
    h = note.head
    found: list[str] = []
    registered = store.vehicle(conn, plate=h.vehicleNo)
    card = h.vehicleIcNo
    if registered is None:
        if require_registered:
            found.append(f"vehicle {h.vehicleNo} is not registered (PUT /api/v1/vehicles/{{plate}} first)")
    else:
        if card is None:
            card = registered.ic_no  # the gate checks the registered card when the note names none
        elif registered.ic_no is not None and card != registered.ic_no:
            found.append(f"vehicleIcNo {card} is not vehicle {h.vehicleNo}'s registered card")
        if require_confirmed and registered.confirmed_by is None:
            found.append(
                f"vehicle {h.vehicleNo}'s registered tare is not confirmed by an officer yet (the gate"
                " subtracts it from the weighbridge's reading: customs weighs it, not the enterprise)"
            )
        if Decimal(registered.tare_kg) != h.vehicleWt:
            found.append(
                f"vehicleWt {h.vehicleWt} is not vehicle {h.vehicleNo}'s registered tare {registered.tare_kg}"
            )
        frame = Decimal(registered.frame_kg) if registered.frame_kg is not None else None
        if h.vehicleFrameWt and frame is None:
            found.append(
                f"vehicleFrameWt {h.vehicleFrameWt}: vehicle {h.vehicleNo} has no registered frame (trailer)"
            )
        elif h.vehicleFrameWt and h.vehicleFrameWt != frame:
            found.append(
                f"vehicleFrameWt {h.vehicleFrameWt} is not vehicle {h.vehicleNo}'s registered frame {frame}"
            )
        elif h.vehicleFrameNo and registered.frame_no and h.vehicleFrameNo != registered.frame_no:
            found.append(f"vehicleFrameNo {h.vehicleFrameNo} is not vehicle {h.vehicleNo}'s registered frame")
    if card is not None:
        owner = store.vehicle_by_card(conn, ic_no=card)
        if owner is not None and owner.plate != h.vehicleNo:
            found.append(f"IC card {card} is registered to another vehicle")
    return found, card


def _inventory_problems(
    platform: Platform, conn: Connection, note: NoteIn, park_id: str, acting_for: frozenset[str] | None
) -> list[str]:
    invt_nos = list(note.inventories)
    if not invt_nos:
        return []
    facts = store.inventory_facts(conn, invt_nos=invt_nos)
    claimed = store.claims(conn, invt_nos=invt_nos)
    found: list[str] = []
    gross = Decimal(0)
    for invt_no in invt_nos:
        f = facts.get(invt_no)
        if f is None:
            found.append(f"inventory {invt_no}: no such cleared inventory")
            continue
        gross += Decimal(f.gross_weight)
        if acting_for is not None and not (f.enterprises & acting_for):
            found.append(
                f"inventory {invt_no} is not a parcel of this token's enterprises (its platform, shop or"
                " carrier): they may not take it out"
            )
        if f.park_id != park_id:
            found.append(f"inventory {invt_no} is not in park {park_id}")
        if f.status != ClearanceStatus.RELEASED:
            found.append(f"inventory {invt_no} is at status {f.status}, not released by customs (800)")
        if f.cancelled:
            found.append(f"inventory {invt_no} is cancelled or its return was requested")
        if invt_no in claimed:
            other, status = claimed[invt_no]
            what = "left the area on" if status in lifecycle.LEFT else "is on open note"
            found.append(f"inventory {invt_no} {what} {other}")
    if not found:
        settings = platform.settings.release_notes
        allowed = max(settings.goods_tolerance_kg, gross * settings.goods_tolerance_percent / 100)
        declared = note.head.totalGrossWt
        if abs(declared - gross) > allowed:
            found.append(
                f"totalGrossWt {declared} kg is not the inventories' gross {gross} kg"
                f" (±{allowed.quantize(Decimal('0.001'))} kg allowed)"
            )
    return found


def apply_note(
    platform: Platform, note: NoteIn, *, acting_for: frozenset[str] | None, actor: str, now: datetime
) -> store.NoteRow:
    """Take a new note, or refuse it whole. In simulate mode the simulated customs approves it at once
    (a SAS221 receipt is written); in customs mode it waits at 0 for customs' SAS221."""
    if shape := problems(note):
        raise NoteRefused(400, "invalid_note", shape)
    h = note.head
    if acting_for is not None and h.dclEtpsno not in acting_for:
        raise NoteRefused(
            403, "forbidden", [f"dclEtpsno {h.dclEtpsno} is not one of this token's enterprises"]
        )
    if h.passportNo is not None:
        raise NoteRefused(
            400, "invalid_note", ["passportNo is customs' number, given on approval: leave it out"]
        )
    stamp = iso(now)
    with platform.db.write() as conn:
        if (existing := store.get(conn, note_no=h.etpsPreentNo)) is not None:
            raise NoteRefused(
                409,
                "duplicate_note",
                [
                    f"note {h.etpsPreentNo} exists ({Status(existing.status).words});"
                    " a new note needs a new number"
                ],
            )
        index = pstore.park_index(conn)
        park_id = index.get(f"ems:{h.areainOriactNo}") or index.get(f"area:{h.areainOriactNo}")
        if park_id is None:
            raise NoteRefused(
                400, "invalid_note", [f"areainOriactNo {h.areainOriactNo} is no park's account book"]
            )
        rules = platform.settings.release_notes
        found, card = _vehicle_problems(
            conn, note, rules.require_registered_vehicle, rules.require_confirmed_tare
        )
        found += _inventory_problems(platform, conn, note, park_id, acting_for)
        found += store.open_holding(conn, container_no=h.containerNo, seal_ids=h.seal_ids)
        if found:
            raise NoteRefused(400, "invalid_note", found)
        body = note.model_dump(mode="json")
        body["head"]["vehicleIcNo"] = card
        status = lifecycle.transition(None, Action.APPLY)
        store.insert(
            conn,
            note_no=h.etpsPreentNo,
            park_id=park_id,
            status=status,
            note_type=h.passportTypecd.value,
            direction=h.ioTypecd,
            plate=h.vehicleNo,
            ic_no=card,
            declarant=h.dclEtpsno,
            container_no=h.containerNo,
            seal_ids=h.seal_ids,
            body=body,
            inventories=note.inventories,
            now=stamp,
        )
        store.add_history(
            conn,
            note_no=h.etpsPreentNo,
            from_status=None,
            to_status=status,
            action=Action.APPLY,
            actor=actor,
            info=f"{len(note.inventories)} inventories",
            now=stamp,
        )
        row = store.get(conn, note_no=h.etpsPreentNo)
        assert row is not None
        if platform.settings.mode is ClearanceMode.SIMULATE:
            number = passport_no(note, store.next_passport_serial(conn), now)
            receipt = approval_receipt(row, passport=number, approved=True, moment=now, remark="")
            row = move(
                conn,
                row,
                Action.APPROVE,
                actor="simulated customs",
                info="approved",
                now=now,
                passport=number,
            )
            store.add_receipt(
                conn,
                note_no=row.note_no,
                message_type="SAS221",
                source="central",
                body=receipt.model_dump(),
                state="applied",
                reason=f"{Status.APPLIED.value} → {row.status}",
                now=stamp,
            )
        publish(platform, conn, row)
        return row


def move(
    conn: Connection,
    row: store.NoteRow,
    action: Action,
    *,
    actor: str,
    info: str,
    now: datetime,
    passport: str | None = None,
) -> store.NoteRow:
    to = lifecycle.transition(row.status, action)
    if to == row.status:
        return row
    moved = store.set_status(
        conn, row, status=to, holds=to in lifecycle.OPEN, now=iso(now), passport_no=passport
    )
    store.add_history(
        conn,
        note_no=row.note_no,
        from_status=row.status,
        to_status=to,
        action=action,
        actor=actor,
        info=info,
        now=iso(now),
    )
    return moved


def approval_receipt(
    row: store.NoteRow, *, passport: str | None, approved: bool, moment: datetime, remark: str
) -> NoteReceipt:
    """The SAS221 central writes as simulated customs."""
    head = row.body["head"]
    return NoteReceipt(
        messageType="SAS221",
        HdeApprResult=ApprovalResult(
            etpsPreentNo=row.note_no,
            businessId=passport,
            tmsCnt="0",
            typecd="1",
            manageResult="1" if approved else "2",
            manageDate=sas_time(moment),
            rmk=remark or None,
        ),
        SasPassportBsc=PassportBasics(
            **{k: head.get(k) for k in PassportBasics.model_fields if k in head and k not in ("passportNo",)},
            passportNo=passport,
            sasPassportPreentNo=row.note_no,
            dclTime=sas_time(datetime.fromisoformat(row.created_at)),
            stucd=Status.APPROVED.value if approved else Status.VOIDED.value,
        ),
    )


# --- delete, void -------------------------------------------------------------------------------------


def change_status(
    platform: Platform,
    *,
    note_no: str,
    action: Action,
    acting_for: frozenset[str] | None,
    actor: str,
    info: str,
    now: datetime,
) -> store.NoteRow:
    """The enterprise's delete or an officer's void (simulate mode only: in customs mode customs voids)."""
    with platform.db.write() as conn:
        row = store.get(conn, note_no=note_no)
        if row is None:
            raise NoteRefused(404, "not_found", [f"no release note {note_no}"])
        if acting_for is not None and row.declarant not in acting_for:
            raise NoteRefused(
                403, "forbidden", [f"note {note_no} was not declared by this token's enterprises"]
            )
        if action is Action.VOID and platform.settings.mode is ClearanceMode.CUSTOMS:
            raise NoteRefused(409, "customs_mode", ["in customs mode only customs voids a note (SAS221)"])
        try:
            moved = move(conn, row, action, actor=actor, info=info, now=now)
        except IllegalNoteTransition as exc:
            raise NoteRefused(409, "illegal_transition", [str(exc)]) from None
        if moved.version != row.version:
            publish(platform, conn, moved)
        return moved


# --- customs' receipts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptOutcome:
    etpsPreentNo: str
    messageType: str
    applied: bool
    status: str | None
    info: str


_PASSES = {
    Status.PASSED.value: Action.PASS,
    Status.PASSED_FIRST_GATE.value: Action.PASS_FIRST,
    Status.PASSED_SECOND_GATE.value: Action.PASS_SECOND,
}


def apply_receipts(
    platform: Platform, receipts: list[NoteReceipt], *, actor: str, now: datetime
) -> list[ReceiptOutcome]:
    """Customs mode: SAS221 approves (manageResult 1, with customs' passportNo) or refuses (voids) a
    note; SAS223 passes it (stucd 2, or 3/4 at a dual gate). Each receipt is kept with what became of
    it; one that names another note's passportNo, or moves a note where it cannot go, is refused."""
    if platform.settings.mode is not ClearanceMode.CUSTOMS:
        raise NoteRefused(
            409, "simulate_mode", ["receipts come from customs in customs mode; here central approves"]
        )
    outcomes = []
    with platform.db.write() as conn:
        for r in receipts:
            outcomes.append(_apply_receipt(platform, conn, r, actor=actor, now=now))
    return outcomes


def _apply_receipt(
    platform: Platform, conn: Connection, r: NoteReceipt, *, actor: str, now: datetime
) -> ReceiptOutcome:
    stamp = iso(now)

    def out(applied: bool, info: str, row: store.NoteRow | None) -> ReceiptOutcome:
        if row is not None:
            store.add_receipt(
                conn,
                note_no=row.note_no,
                message_type=r.messageType,
                source="customs",
                body=r.model_dump(),
                state="applied" if applied else "refused",
                reason=info,
                now=stamp,
            )
        return ReceiptOutcome(
            etpsPreentNo=r.note_no,
            messageType=r.messageType,
            applied=applied,
            status=None if row is None else row.status,
            info=info,
        )

    row = store.get(conn, note_no=r.note_no)
    if row is None:
        return out(False, f"no release note {r.note_no}", None)
    number = r.passport_no
    if row.passport_no is not None and number is not None and number != row.passport_no:
        return out(
            False, f"passportNo {number} is not note {row.note_no}'s ({row.passport_no}); not applied", row
        )
    bsc = r.SasPassportBsc
    if bsc is not None and bsc.vehicleNo is not None and bsc.vehicleNo != row.plate:
        return out(
            False, f"vehicleNo {bsc.vehicleNo} is not note {row.note_no}'s ({row.plate}); not applied", row
        )
    if r.messageType == "SAS221":
        if r.approved and number is None:
            return out(False, "an approval must carry customs' passportNo (businessId)", row)
        if r.approved and number is not None and row.passport_no is None:
            other = store.by_passport(conn, passport_no=number)
            if other is not None and other.note_no != row.note_no:
                return out(False, f"passportNo {number} is note {other.note_no}'s already; not applied", row)
        action = Action.APPROVE if r.approved else Action.REFUSE
        info = (
            "approved by customs"
            if r.approved
            else f"refused by customs: {r.HdeApprResult.rmk or 'no reason given'}"
        )
    else:
        if bsc is None or bsc.stucd not in _PASSES:
            stucd = None if bsc is None else bsc.stucd
            return out(False, f"SAS223 with stucd {stucd!r}: expected 2, 3 or 4", row)
        action = _PASSES[bsc.stucd]
        info = f"passed the gate {bsc.passID or ''}".strip() + (
            f", weighbridge {bsc.passCollectWt} kg" if bsc.passCollectWt else ""
        )
    before = row.status
    try:
        moved = move(
            conn, row, action, actor=actor, info=info, now=now, passport=number if r.approved else None
        )
    except IllegalNoteTransition as exc:
        return out(False, str(exc), row)
    if moved.version != row.version:
        publish(platform, conn, moved)
    return out(
        True,
        "status unchanged (repeated receipt)" if moved.status == before else f"{before} → {moved.status}",
        moved,
    )


# --- vehicles -----------------------------------------------------------------------------------------


def register_vehicle(
    platform: Platform,
    *,
    plate: str,
    ic_no: str | None,
    tare_kg: Decimal,
    frame_no: str | None,
    frame_kg: Decimal | None,
    owner_code: str,
    acting_for: frozenset[str] | None,
    now: datetime,
    actor: str | None = None,
) -> store.VehicleRow:
    """Register or update a vehicle (SAS131-like). An enterprise registers for its own codes and may
    not take over another enterprise's vehicle or a card registered to another plate."""
    if acting_for is not None and owner_code not in acting_for:
        raise NoteRefused(
            403, "forbidden", [f"owner_code {owner_code} is not one of this token's enterprises"]
        )
    plate = normalise_plate(plate)
    with platform.db.write() as conn:
        existing = store.vehicle(conn, plate=plate)
        if existing is not None and acting_for is not None and existing.owner_code not in acting_for:
            raise NoteRefused(403, "forbidden", [f"vehicle {plate} is registered by another enterprise"])
        if existing is not None and acting_for is not None:
            changed = [
                name
                for name, before, after in (
                    ("tare", Decimal(existing.tare_kg), tare_kg),
                    ("frame weight", _kg_or_none(existing.frame_kg), frame_kg),
                )
                if before != after
            ]
            if changed:
                raise NoteRefused(
                    409,
                    "weighed_change",
                    [
                        f"vehicle {plate}'s registered {' and '.join(changed)} can be changed by an officer"
                        " only (the weights the gate subtracts are customs' to move, not the enterprise's)"
                    ],
                )
        if ic_no is not None:
            other = store.vehicle_by_card(conn, ic_no=ic_no)
            if other is not None and other.plate != plate:
                raise NoteRefused(409, "card_taken", [f"IC card {ic_no} is registered to another vehicle"])
        return store.put_vehicle(
            conn,
            plate=plate,
            ic_no=ic_no,
            tare_kg=str(tare_kg),
            frame_no=frame_no,
            frame_kg=None if frame_kg is None else str(frame_kg),
            owner_code=owner_code,
            # an officer's registration confirms the weights; an enterprise's leaves them to confirm
            confirmed_by=actor if acting_for is None else None,
            now=iso(now),
        )


def _kg_or_none(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def view(conn: Connection, row: store.NoteRow) -> dict[str, Any]:
    """A note as the API shows it: the note, its status, history and receipts."""
    return {
        "etpsPreentNo": row.note_no,
        "passportNo": row.passport_no,
        "park_id": row.park_id,
        "status": row.status,
        "status_words": Status(row.status).words,
        "version": row.version,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "inventories": store.inventories(conn, note_no=row.note_no),
        "note": row.body,
        "history": store.history(conn, note_no=row.note_no),
        "receipts": store.receipts(conn, note_no=row.note_no),
        "allowed_actions": [
            a.value for a in lifecycle.allowed(row.status) if a in (Action.DELETE, Action.VOID)
        ],
    }

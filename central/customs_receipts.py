"""Customs receipts (CEB622) in customs mode: real customs sets every status, and each receipt is
applied or kept with the reason it was not."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from central import lifecycle
from central.ceb.documents import CustomsReceipt, DocKind
from central.clearing import Batch, write
from central.lifecycle import Action, IllegalTransition
from central.platform import Platform
from central.store import clearances as cstore
from central.store import documents as dstore
from central.store.connection import Connection


class ReceiptOutcome(BaseModel):
    invtNo: str | None
    copNo: str
    returnStatus: str
    applied: bool
    state: str = Field(
        description="applied; waiting (arrived before the receipt it follows: applied when that one"
        " comes); stale (older than a receipt applied: kept, not applied); refused (see info)"
    )
    info: str


def apply_customs_receipts(
    platform: Platform, receipts: list[CustomsReceipt], *, actor: str, now: datetime
) -> list[ReceiptOutcome]:
    """Production mode: statuses set by real customs (CEB622). Each receipt is applied or explained.

    Receipts apply in customs' own order (returnTime), not in the order they arrive: within a
    message they are sorted; one that arrives before the receipt it follows waits, stored and
    visible, and is applied when that one comes; one older than a receipt already applied is kept
    but not applied (stale). A receipt must name the inventory whole: every identifying field it
    carries is checked against the inventory its invtNo (or copNo) finds. Outcomes are answered in
    message order."""
    order = sorted(range(len(receipts)), key=lambda i: receipts[i].returnTime)
    outcomes: dict[int, ReceiptOutcome] = {}
    with platform.db.write() as conn:
        batch = Batch(conn=conn, platform=platform, now=now, actor=actor)
        for i in order:
            outcomes[i] = _apply_receipt(batch, receipts[i])
        batch.finish()
    return [outcomes[i] for i in range(len(receipts))]


def _identity_problem(conn: Connection, r: CustomsReceipt, row: cstore.ClearanceRow) -> str | None:
    """A receipt moves the inventory it names whole: one carrying parcel A's invtNo and parcel B's
    copNo moved A before. Every identifying field the receipt carries (the XSD makes most optional)
    must be the inventory's: copNo, preNo, ebpCode, ebcCode, and agentCode and customsCode against
    the inventory as declared."""
    checks = [
        ("copNo", r.copNo, row.cop_no),
        ("preNo", r.preNo, row.pre_no),
        ("ebpCode", r.ebpCode, row.ebp_code),
        ("ebcCode", r.ebcCode, row.ebc_code),
    ]
    if r.agentCode or r.customsCode:
        declared = dstore.get_document(conn, kind=DocKind.INVENTORY.value, doc_key=row.clearance_id)
        body = declared.body if declared is not None else {}
        checks += [
            ("agentCode", r.agentCode, body.get("agentCode")),
            ("customsCode", r.customsCode, body.get("customsCode")),
        ]
    for field_name, theirs, ours in checks:
        if theirs and ours and theirs != ours:
            return f"{field_name} {theirs!r} is not inventory {row.invt_no}'s ({ours!r}); not applied"
    return None


def _apply_receipt(batch: Batch, r: CustomsReceipt) -> ReceiptOutcome:
    def out(applied: bool, info: str, *, state: str | None = None) -> ReceiptOutcome:
        return ReceiptOutcome(
            invtNo=r.invtNo,
            copNo=r.copNo,
            returnStatus=r.returnStatus,
            applied=applied,
            state=state or ("applied" if applied else "refused"),
            info=info,
        )

    rows = (cstore.find(batch.conn, invt_no=r.invtNo) if r.invtNo else []) or cstore.find(
        batch.conn, cop_no=r.copNo, **({"ebp_code": r.ebpCode} if r.ebpCode else {})
    )
    if not rows:
        return out(False, f"no inventory with invtNo {r.invtNo!r} / copNo {r.copNo!r}")
    current = rows[0]

    def keep(state: str, reason: str) -> int:
        return cstore.add_customs_receipt(
            batch.conn,
            clearance_id=current.clearance_id,
            guid=r.guid,
            return_status=r.returnStatus,
            return_time=r.returnTime,
            return_info=r.returnInfo,
            state=state,
            reason=reason,
            now=batch.stamp,
        )

    if (problem := _identity_problem(batch.conn, r, current)) is not None:
        keep("refused", problem)
        return out(False, problem)
    if not lifecycle.is_status(r.returnStatus):
        info = f"returnStatus {r.returnStatus} is not a clearance status; kept as a receipt only"
        keep("refused", info)
        return out(False, info)
    last = cstore.last_applied_receipt_time(batch.conn, clearance_id=current.clearance_id)
    if last is not None and r.returnTime < last:
        info = f"older ({r.returnTime}) than the receipt applied at {last}; kept, not applied"
        keep("stale", info)
        return out(False, info, state="stale")
    try:
        to = lifecycle.transition(
            current.status, Action.CUSTOMS_RECEIPT, code=r.returnStatus, cancelled=current.cancelled
        )
    except lifecycle.InvalidCode as exc:
        keep("refused", str(exc))
        return out(False, str(exc))
    except IllegalTransition as exc:
        if not current.cancelled and lifecycle.reachable(current.status, r.returnStatus):
            info = f"{exc}: waits for the receipt it follows, applied when that one comes"
            keep("waiting", info)
            return out(False, info, state="waiting")
        keep("refused", str(exc))
        return out(False, str(exc))
    keep(
        "applied",
        "status unchanged (repeated receipt)" if to == current.status else f"{current.status} → {to}",
    )
    if to == current.status:
        return out(True, "status unchanged (repeated receipt)")
    changed = current.changed(
        status=to, invt_no=r.invtNo or current.invt_no, pre_no=r.preNo or current.pre_no
    )
    write(batch, changed, None, current.status, Action.CUSTOMS_RECEIPT, r.returnInfo)
    _apply_waiting(batch, current.clearance_id)
    return out(True, f"{current.status} → {to}")


def _apply_waiting(batch: Batch, clearance_id: str) -> None:
    """After a receipt applied: the ones that waited for it, in returnTime order, as far as they go."""
    progressed = True
    while progressed:
        progressed = False
        current = cstore.get(batch.conn, clearance_id=clearance_id)
        if current is None:
            return
        last = cstore.last_applied_receipt_time(batch.conn, clearance_id=clearance_id) or ""
        for waiting in cstore.waiting_receipts(batch.conn, clearance_id=clearance_id):
            if waiting.return_time < last:
                cstore.set_customs_receipt_state(
                    batch.conn, waiting.id, state="stale", reason=f"older than the receipt applied at {last}"
                )
                continue
            try:
                to = lifecycle.transition(
                    current.status,
                    Action.CUSTOMS_RECEIPT,
                    code=waiting.return_status,
                    cancelled=current.cancelled,
                )
            except IllegalTransition:
                continue
            cstore.set_customs_receipt_state(
                batch.conn, waiting.id, state="applied", reason=f"{current.status} → {to} (after waiting)"
            )
            if to != current.status:
                write(
                    batch,
                    current.changed(status=to),
                    None,
                    current.status,
                    Action.CUSTOMS_RECEIPT,
                    waiting.return_info,
                )
            progressed = True
            break

"""Document intake: store a batch of documents, re-run the comparison of every parcel they touch,
move clearances through the lifecycle, write receipts and feed records — all in one transaction.

A message is all-or-nothing at the structure level (a malformed message never gets here); inside a
well-formed message each document gets its own receipt, accepted (120) or refused (100) with the
reason, as customs does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, Field

from central import comparison, declarants, lifecycle
from central.ceb.documents import (
    AppType,
    Cancellation,
    CustomsReceipt,
    DocKind,
    Inventory,
    Order,
    Payment,
    Receipt,
    Refund,
    Waybill,
)
from central.ceb.stamps import return_time
from central.config import CentralSettings, ClearanceMode
from central.feed import append as append_feed
from central.feed import signed_json
from central.lifecycle import Action, IllegalTransition, Status
from central.risk import RiskRules, declared_value, select_for_inspection
from central.store import clearances as cstore
from central.store import documents as dstore
from central.store import events as estore
from central.store.db import Database
from central.store.parks import park_index
from kernel.timefmt import iso
from kernel.wire import canonical_json

log = logging.getLogger(__name__)

ACCEPTED = "120"  # 海关入库: the document is in the database
REFUSED = "100"  # 海关退单: refused, returnInfo says why
WAITING = "2"  # 申报中: inventory stored, waiting for the rest of its set
# statuses after which the documents of a parcel may no longer change
EDITABLE = {
    Status.ACCEPTED.value,
    Status.REJECTED.value,
    Status.MANUAL_REVIEW.value,
    Status.REVIEW_COMPLETE.value,
}

AnyDocument = Order | Payment | Waybill | Inventory | Cancellation | Refund


@dataclass
class Platform:
    """What intake needs from the running service."""

    db: Database
    key: Ed25519PrivateKey
    settings: CentralSettings

    @property
    def risk_rules(self) -> RiskRules:
        r = self.settings.risk
        return RiskRules(
            sampling_rate=r.sampling_rate,
            ebc_codes=frozenset(r.ebc_codes),
            gcode_prefixes=tuple(r.gcode_prefixes),
            max_declared_value=r.max_declared_value,
            seed=r.seed,
        )

    @property
    def tolerance(self) -> comparison.WeightTolerance:
        return comparison.WeightTolerance(
            absolute_kg=self.settings.weight_tolerance_kg, percent=self.settings.weight_tolerance_percent
        )


class StatusChange(BaseModel):
    invtNo: str | None
    logisticsNo: str
    from_status: str | None
    to_status: str
    action: str
    info: str


class IntakeResult(BaseModel):
    receipts: list[Receipt] = Field(description="one intake receipt per document, then status receipts")
    changes: list[StatusChange] = Field(default_factory=list, description="clearance status changes")

    @property
    def accepted(self) -> int:
        return sum(1 for r in self.receipts if r.returnStatus in (ACCEPTED, WAITING))


# --- keys -----------------------------------------------------------------------------------


def doc_key(doc: AnyDocument) -> str:
    return "|".join(doc.key())


def _links(doc: AnyDocument) -> dict[str, str | None]:
    return {
        "ebp_code": getattr(doc, "ebpCode", None),
        "order_no": getattr(doc, "orderNo", None),
        "logistics_code": getattr(doc, "logisticsCode", None),
        "logistics_no": getattr(doc, "logisticsNo", None),
    }


def receipt_keys(doc: AnyDocument, clearance: cstore.ClearanceRow | None = None) -> dict[str, str]:
    """The key fields the receipt XML of this kind carries."""
    if isinstance(doc, Order):
        return {"ebpCode": doc.ebpCode, "ebcCode": doc.ebcCode, "orderNo": doc.orderNo}
    if isinstance(doc, Payment):
        return {"payCode": doc.payCode, "payTransactionId": doc.payTransactionId}
    if isinstance(doc, Waybill):
        return {"logisticsCode": doc.logisticsCode, "logisticsNo": doc.logisticsNo}
    keys = {
        "customsCode": doc.customsCode,
        "ebpCode": doc.ebpCode,
        "ebcCode": doc.ebcCode,
        "agentCode": doc.agentCode,
        "orderNo": doc.orderNo,
        "logisticsNo": doc.logisticsNo,
        "copNo": doc.copNo or (clearance.cop_no if clearance else None) or doc.orderNo[-20:],
        "preNo": doc.preNo or (clearance.pre_no if clearance else None) or "",
        "invtNo": (clearance.invt_no if clearance else None) or doc.invtNo or "",
    }
    return {k: v for k, v in keys.items() if v is not None}


# --- the batch ------------------------------------------------------------------------------


@dataclass
class _Batch:
    conn: sqlite3.Connection
    platform: Platform
    now: datetime
    actor: str
    parks: dict[str, str]
    receipts: list[Receipt] = field(default_factory=list)
    changes: list[StatusChange] = field(default_factory=list)
    # documents written in this batch, so a set completed inside one batch is not re-read
    fresh: dict[tuple[str, str], AnyDocument | None] = field(default_factory=dict)
    touched: dict[str, None] = field(default_factory=dict)  # inventory doc keys to re-evaluate
    acting_for: frozenset[str] | None = None  # the token's enterprise codes (None: not bound)
    # receipts answered but not stored: a resend's original receipts, a refused reuse of a guid
    unstored: set[int] = field(default_factory=set)
    echoed: list[Receipt] = field(default_factory=list)  # a resend's later (status) receipts
    bodies: dict[int, tuple[dict[str, Any], str]] = field(default_factory=dict)  # id(doc) -> stored JSON
    # clearances changed in this transaction, in the order of their last change: each gets one feed
    # record, of the state the transaction commits. No reader can see a state in between (120 and
    # 399 of a parcel the same message releases), so signing and chaining those was work for nobody;
    # every step stays in the clearance's history and receipts.
    feed: dict[str, cstore.ClearanceRow] = field(default_factory=dict)

    def publish(self) -> None:
        """Append the feed records of this transaction's clearances; call once, before it commits."""
        for row in self.feed.values():
            if row.park_id is not None:
                append_feed(
                    self.conn,
                    self.platform.key,
                    park_id=row.park_id,
                    clearance_id=row.clearance_id,
                    record_json=signed_json(row, self.platform.key),
                )
        self.feed.clear()

    @cached_property
    def stamp(self) -> str:
        return iso(self.now)

    @cached_property
    def return_time(self) -> str:
        return return_time(self.now)

    def receipt(
        self, doc: AnyDocument, status: str, info: str, clearance: cstore.ClearanceRow | None = None
    ) -> None:
        self.receipts.append(
            Receipt(
                kind=doc.KIND,
                guid=doc.guid,
                key=receipt_keys(doc, clearance),
                returnStatus=status,
                returnTime=self.return_time,
                returnInfo=info[:1000],
            )
        )


def submit(
    platform: Platform,
    documents: list[AnyDocument],
    *,
    actor: str,
    now: datetime,
    acting_for: frozenset[str] | None = None,
) -> IntakeResult:
    """Take a batch of documents (one message or one JSON batch) in a single transaction.

    `acting_for`: the enterprise codes of the token (None: an admin's or the platform's own). A
    change, deletion, cancellation or return of a document another enterprise declared raises
    `declarants.NotTheirs` and nothing of the batch is stored; so does a document none of whose
    declarants the token acts for."""
    if acting_for is not None and (why := declarants.refusal(documents, acting_for)) is not None:
        raise declarants.NotTheirs(why)
    with platform.db.write() as conn:
        batch = _Batch(
            conn=conn, platform=platform, now=now, actor=actor, parks=park_index(conn), acting_for=acting_for
        )
        for doc in documents:
            if _guid_taken(batch, doc):
                continue
            if isinstance(doc, (Cancellation, Refund)):
                _take_request(batch, doc)
            else:
                _take_document(batch, doc)
        for inventory_key in batch.touched:
            _evaluate(batch, inventory_key)
        batch.publish()
        rows = [
            (r.kind.value, _receipt_doc_key(r), r.guid, r.key, r.returnStatus, r.returnTime, r.returnInfo)
            for i, r in enumerate(batch.receipts)
            if i not in batch.unstored
        ]
        batch.receipts.extend(batch.echoed)
        dstore.add_receipts(conn, [dstore.ReceiptRow(*row) for row in rows])
    log.info(
        "intake", extra={"documents": len(documents), "actor": actor, "status_changes": len(batch.changes)}
    )
    return IntakeResult(receipts=batch.receipts, changes=batch.changes)


def as_receipt(row: dstore.ReceiptRow) -> Receipt:
    """A stored receipt in the standard's form."""
    return Receipt(
        kind=DocKind(row.kind),
        guid=row.guid,
        key=row.key_fields,
        returnStatus=row.return_status,
        returnTime=row.return_time,
        returnInfo=row.return_info,
    )


# A guid's digest: of the document's stored JSON text (the model's fields in their order, nulls left
# out), which intake makes anyway; guids taken before were digested over the canonical form, and a
# resend of one of those is compared in that form.
BODY_DIGEST = "b:"


def _guid_taken(batch: _Batch, doc: AnyDocument) -> bool:
    """A guid names one document for good. The same document sent again (a sender retrying after a
    lost answer) gets its original receipts and changes nothing; a different document under a taken
    guid is refused, and that refusal is not stored under the guid, whose receipts stay the
    original's. True when the document was answered here."""
    body = doc.model_dump(mode="json", exclude_none=True)
    text = json.dumps(body, ensure_ascii=False)
    batch.bodies[id(doc)] = (body, text)  # the text intake stores: dumped once
    digest = BODY_DIGEST + hashlib.sha256(text.encode()).hexdigest()
    use = dstore.take_guid(
        batch.conn, guid=doc.guid, kind=doc.KIND.value, doc_key=doc_key(doc), digest=digest, now=batch.stamp
    )
    if use is not None and use.digest is not None and not use.digest.startswith(BODY_DIGEST):
        digest = hashlib.sha256(canonical_json(doc.model_dump(mode="json"))).hexdigest()  # taken before 0.12
    if use is None:
        return False
    originals = dstore.receipts_of_guid(batch.conn, guid=doc.guid) if use.digest == digest else []
    if use.kind == doc.KIND.value and originals:
        first, *rest = (as_receipt(r) for r in originals)
        batch.unstored.add(len(batch.receipts))
        batch.receipts.append(first)
        batch.echoed.extend(rest)
        return True
    if use.kind == doc.KIND.value and use.digest == digest:
        why = f"guid {doc.guid} is given twice in this message"
    else:
        why = f"guid {doc.guid} was already used for another {use.kind} document; each document needs its own"
    batch.unstored.add(len(batch.receipts))
    batch.receipt(doc, REFUSED, why)
    return True


def _receipt_doc_key(r: Receipt) -> str:
    k = r.key
    if r.kind == DocKind.PAYMENT:
        return f"{k['payCode']}|{k['payTransactionId']}"
    if r.kind == DocKind.WAYBILL:
        return f"{k['logisticsCode']}|{k['logisticsNo']}"
    return f"{k['ebpCode']}|{k['orderNo']}"


# --- order, payment, waybill, inventory ---------------------------------------------------------


def _affected_inventories(batch: _Batch, doc: AnyDocument) -> list[str]:
    """Inventory doc keys whose set this document belongs to."""
    conn = batch.conn
    if isinstance(doc, Inventory):
        return [doc_key(doc)]
    if isinstance(doc, Waybill):
        rows = dstore.find_by_logistics(
            conn, kind=DocKind.INVENTORY, logistics_code=doc.logisticsCode, logistics_no=doc.logisticsNo
        )
    else:
        rows = dstore.find_by_order(conn, kind=DocKind.INVENTORY, ebp_code=doc.ebpCode, order_no=doc.orderNo)
    keys = [r.doc_key for r in rows]
    # inventories that arrived earlier in this same batch are not in the index yet if deleted-and-new
    return keys


def _frozen_by(batch: _Batch, inventory_keys: list[str]) -> cstore.ClearanceRow | None:
    """The first clearance among these whose documents may no longer change."""
    for key in inventory_keys:
        row = cstore.get(batch.conn, clearance_id=key)
        if row is not None and (row.cancelled or row.status not in EDITABLE):
            return row
    return None


def _take_document(batch: _Batch, doc: Order | Payment | Waybill | Inventory) -> None:
    kind, key = doc.KIND.value, doc_key(doc)
    existing = dstore.get_document(batch.conn, kind=kind, doc_key=key)
    live = existing is not None and not existing.deleted
    if doc.appType == AppType.NEW and live:
        batch.receipt(
            doc, REFUSED, f"uniqueness: {kind} {key} was already declared; send appType 2 to change it"
        )
        return
    if doc.appType != AppType.NEW and not live:
        verb = "change" if doc.appType == AppType.CHANGE else "delete"
        batch.receipt(doc, REFUSED, f"no {kind} {key} to {verb}")
        return
    if existing is not None and doc.appType != AppType.NEW:
        verb = "change" if doc.appType == AppType.CHANGE else "delete"
        declarants.check_owner(kind, existing.body, batch.acting_for, what=f"{verb} of {kind} {key}")
    affected = _affected_inventories(batch, doc)
    frozen = _frozen_by(batch, affected)
    if frozen is not None:
        state = "cancelled" if frozen.cancelled else f"at status {frozen.status}"
        batch.receipt(
            doc, REFUSED, f"inventory {frozen.invt_no} is {state}: its documents can no longer change"
        )
        return
    if isinstance(doc, Inventory) and doc.appType != AppType.DELETE and _park_of(batch, doc) is None:
        batch.receipt(doc, REFUSED, f"no park handles emsNo {doc.emsNo!r} / areaCode {doc.areaCode!r}")
        return
    deleted = doc.appType == AppType.DELETE
    dumped = batch.bodies.pop(id(doc), None)
    if isinstance(doc, Inventory) and not doc.preNo and existing and existing.body.get("preNo"):
        doc = doc.model_copy(update={"preNo": existing.body["preNo"]})  # a change keeps its number
        dumped = None
    body, text = dumped or (doc.model_dump(mode="json", exclude_none=True), None)
    rowid = dstore.save_document(
        batch.conn,
        kind=kind,
        doc_key=key,
        guid=doc.guid,
        links=_links(doc),
        body=body,
        text=text,
        deleted=deleted,
        now=batch.stamp,
        new=existing is None,
    )
    if isinstance(doc, Inventory) and not doc.preNo:
        # the platform's own number for a declaration (电子口岸标识编号), 18 characters, from the
        # document's row number
        doc = doc.model_copy(update={"preNo": f"B{batch.now.strftime('%Y%m%d')}{rowid:09d}"})
        dstore.set_document_body(batch.conn, rowid=rowid, body=doc.model_dump(mode="json", exclude_none=True))
    batch.fresh[(kind, key)] = None if deleted else doc
    for inventory_key in affected:
        batch.touched[inventory_key] = None
    if deleted:
        batch.receipt(doc, ACCEPTED, "deleted")
    elif isinstance(doc, Inventory):
        batch.receipt(doc, WAITING, "declared; compared when order, payment and waybill are present")
    else:
        batch.receipt(doc, ACCEPTED, "accepted")


def _park_of(batch: _Batch, inv: Inventory) -> str | None:
    return batch.parks.get(f"ems:{inv.emsNo}") or batch.parks.get(f"area:{inv.areaCode}")


def _load(batch: _Batch, cls: type[Any], row: dstore.DocumentRow | None) -> Any:
    if row is None or row.deleted:
        return None
    cached = batch.fresh.get((row.kind, row.doc_key), row)
    if cached is None or isinstance(cached, cls):
        return cached
    return cls.model_validate(row.body)


def _document_set(batch: _Batch, inv: Inventory) -> tuple[Order | None, Payment | None, Waybill | None]:
    conn = batch.conn
    orders = dstore.find_by_order(conn, kind=DocKind.ORDER, ebp_code=inv.ebpCode, order_no=inv.orderNo)
    payments = dstore.find_by_order(conn, kind=DocKind.PAYMENT, ebp_code=inv.ebpCode, order_no=inv.orderNo)
    waybills = dstore.find_by_logistics(
        conn, kind=DocKind.WAYBILL, logistics_code=inv.logisticsCode, logistics_no=inv.logisticsNo
    )
    return (
        _load(batch, Order, orders[0] if orders else None),
        _load(batch, Payment, payments[0] if payments else None),
        _load(batch, Waybill, waybills[0] if waybills else None),
    )


def _evaluate(batch: _Batch, inventory_key: str) -> None:
    """Re-run the comparison of one parcel and move its clearance accordingly."""
    conn = batch.conn
    row = dstore.get_document(conn, kind=DocKind.INVENTORY, doc_key=inventory_key)
    current = cstore.get(conn, clearance_id=inventory_key)
    if current is not None and (current.cancelled or current.status not in EDITABLE):
        return  # past review or cancelled: intake refused changes to its documents
    inv: Inventory | None = _load(batch, Inventory, row)
    if inv is None:  # the inventory was deleted
        if current is not None and current.status in EDITABLE:
            _move(batch, current, None, Action.REJECT, "inventory deleted (appType 3)")
        return
    order, payment, waybill = _document_set(batch, inv)
    if order is None or payment is None or waybill is None:
        missing = [n for n, d in (("order", order), ("payment", payment), ("waybill", waybill)) if d is None]
        if current is not None and current.status in EDITABLE:
            _move(
                batch,
                _refresh(batch, current, inv),
                inv,
                Action.REJECT,
                f"incomplete: {', '.join(missing)} missing",
            )
        return
    result = comparison.compare(order, payment, waybill, inv, weight_tolerance=batch.platform.tolerance)
    others = dstore.count_inventories_for_logistics(
        conn, logistics_code=inv.logisticsCode, logistics_no=inv.logisticsNo, except_key=inventory_key
    )
    result = result.plus(
        comparison.rule_uniqueness(
            inv, other_inventories_with_same_logistics_no=others, other_orders_with_same_order_no=0
        )
    )
    row_now = _refresh(batch, current, inv)
    row_now = row_now.changed(comparison=[f.model_dump(mode="json") for f in result.failures])
    if not result.ok:
        _move(batch, row_now, inv, Action.REJECT, result.return_info())
        return
    if current is None:
        row_now = _move(batch, row_now, inv, Action.ACCEPT, "three documents agree")
    else:
        row_now = _move(batch, row_now, inv, Action.RESUBMIT, "documents changed; the three documents agree")
    if batch.platform.settings.mode == ClearanceMode.SIMULATE:
        _simulate_review(batch, row_now, inv)


def _simulate_review(batch: _Batch, row: cstore.ClearanceRow, inv: Inventory) -> None:
    """Central plays customs: review completes, then release — or inspection if risk selects it."""
    row = _move(batch, row, inv, Action.REVIEW_COMPLETE, "review complete")
    decision = select_for_inspection(inv, batch.platform.risk_rules)
    if decision.selected:
        row = row.changed(risk=decision.reasons)
        info = "selected for inspection: " + "; ".join(decision.reasons)
        _move(batch, row, inv, Action.SELECT_INSPECTION, info)
    else:
        _move(batch, row, inv, Action.RELEASE, "released")


def _goods(inv: Inventory) -> str:
    text = "; ".join(f"{r.gname} ×{format(r.qty.normalize(), 'f')}" for r in inv.inventoryList)
    return text if len(text) <= 200 else text[:199] + "…"


def _refresh(batch: _Batch, current: cstore.ClearanceRow | None, inv: Inventory) -> cstore.ClearanceRow:
    """The clearance's document-derived fields as the inventory now says."""
    base = dict(
        clearance_id=doc_key(inv),
        park_id=_park_of(batch, inv),
        order_no=inv.orderNo,
        ebp_code=inv.ebpCode,
        ebc_code=inv.ebcCode,
        logistics_code=inv.logisticsCode,
        logistics_no=inv.logisticsNo,
        gross_weight=format(inv.grossWeight, "f"),
        net_weight=format(inv.netWeight, "f"),
        declared_value=format(declared_value(inv), "f"),
        goods=_goods(inv),
    )
    if current is not None:
        return current.changed(**base)
    return cstore.ClearanceRow(
        **base,
        invt_no=inv.invtNo,
        cop_no=inv.copNo or inv.orderNo[-20:],
        pre_no=inv.preNo,
        status="",
        cancelled=False,
        comparison=None,
        risk=None,
        version=0,
        updated_at=batch.stamp,
    )


def _move(
    batch: _Batch,
    row: cstore.ClearanceRow,
    inv: Inventory | None,
    action: str,
    info: str,
    *,
    code: str | None = None,
) -> cstore.ClearanceRow:
    """One lifecycle step: status, history, receipt and a signed feed record, in this transaction."""
    before = row.status or None
    to = lifecycle.transition(before, action, code=code, cancelled=row.cancelled)
    return _write(batch, row.changed(status=to), inv, before, action, info)


def _write(
    batch: _Batch, row: cstore.ClearanceRow, inv: Inventory | None, before: str | None, action: str, info: str
) -> cstore.ClearanceRow:
    conn = batch.conn
    row = row.changed(version=row.version + 1, updated_at=batch.stamp)
    rowid = cstore.save(conn, row, new=row.version == 1)  # a new clearance's version is 0 until now
    if row.invt_no is None or row.pre_no is None:  # customs numbers, assigned on first acceptance
        year = batch.now.strftime("%Y")
        cc = inv.customsCode if inv else "0000"
        row = row.changed(
            invt_no=row.invt_no or f"{cc}{year}I{rowid:09d}",
            pre_no=row.pre_no or f"B{batch.now.strftime('%Y%m%d')}{rowid:09d}",
        )
        cstore.set_numbers(conn, rowid=rowid, invt_no=row.invt_no, pre_no=row.pre_no)
    cstore.add_history(
        conn,
        clearance_id=row.clearance_id,
        from_status=before,
        to_status=row.status,
        action=str(action),
        actor=batch.actor,
        info=info,
        now=batch.stamp,
    )
    # the feed gets the clearance as the transaction leaves it (see `_Batch.feed`)
    batch.feed.pop(row.clearance_id, None)
    batch.feed[row.clearance_id] = row
    batch.changes.append(
        StatusChange(
            invtNo=row.invt_no,
            logisticsNo=row.logistics_no,
            from_status=before,
            to_status=row.status,
            action=str(action),
            info=info,
        )
    )
    batch.receipts.append(
        Receipt(
            kind=DocKind.INVENTORY,
            guid=inv.guid if inv else _inventory_guid(conn, row.clearance_id),
            key=_clearance_keys(row, inv),
            returnStatus=row.status,
            returnTime=batch.return_time,
            returnInfo=info[:1000],
        )
    )
    return row


def _inventory_guid(conn: sqlite3.Connection, clearance_id: str) -> str:
    row = dstore.get_document(conn, kind=DocKind.INVENTORY, doc_key=clearance_id)
    return row.guid if row else ""


def _clearance_keys(row: cstore.ClearanceRow, inv: Inventory | None) -> dict[str, str]:
    keys = {
        "ebpCode": row.ebp_code,
        "ebcCode": row.ebc_code,
        "orderNo": row.order_no,
        "logisticsNo": row.logistics_no,
        "copNo": row.cop_no or "",
        "preNo": row.pre_no or "",
        "invtNo": row.invt_no or "",
    }
    if inv is not None:
        keys |= {"customsCode": inv.customsCode, "agentCode": inv.agentCode}
    return keys


# --- cancellation and return --------------------------------------------------------------------


def _take_request(batch: _Batch, doc: Cancellation | Refund) -> None:
    kind = "cancellation" if isinstance(doc, Cancellation) else "return"
    rows = cstore.find(batch.conn, invt_no=doc.invtNo)
    current = rows[0] if rows else None
    if current is None or (current.ebp_code, current.order_no) != (doc.ebpCode, doc.orderNo):
        batch.receipt(doc, REFUSED, f"no inventory {doc.invtNo} for order {doc.orderNo}")
        return
    inventory = dstore.get_document(batch.conn, kind=DocKind.INVENTORY.value, doc_key=current.clearance_id)
    if inventory is not None:
        declarants.check_owner(
            DocKind.INVENTORY.value,
            inventory.body,
            batch.acting_for,
            what=f"{kind} of inventory {doc.invtNo}",
        )
    allowed = lifecycle.cancellable if isinstance(doc, Cancellation) else lifecycle.returnable
    if not allowed(current.status):
        batch.receipt(doc, REFUSED, f"{kind} is not accepted at status {current.status}", current)
        return
    if current.cancelled:
        batch.receipt(doc, REFUSED, f"inventory {doc.invtNo} is already cancelled or returned", current)
        return
    if isinstance(doc, Cancellation) and (
        left := estore.first_release(
            batch.conn,
            park_id=current.park_id,
            logistics_code=current.logistics_code,
            logistics_no=current.logistics_no,
        )
    ):
        # the goods have left the park: a cancellation would leave a parcel outside with no clearance
        # behind it; what brings goods back is a return request (CEB625)
        batch.receipt(
            doc,
            REFUSED,
            f"parcel {current.logistics_no} left the park at {left.occurred_at} (edge {left.edge_id}):"
            " a cancellation is no longer possible; a return request (CEB625) brings goods back",
            current,
        )
        return
    dstore.save_document(
        batch.conn,
        kind=doc.KIND.value,
        doc_key=doc_key(doc),
        guid=doc.guid,
        links=_links(doc),
        body=doc.model_dump(mode="json", exclude_none=True),
        deleted=False,
        now=batch.stamp,
    )
    info = f"{kind} approved: {doc.reason}"
    row = _write(batch, current.changed(cancelled=True), None, current.status, kind, info)
    batch.receipt(doc, "399", f"{kind} approved; inventory {row.invt_no} is no longer releasable", row)


# --- officers and customs -------------------------------------------------------------------------


def officer_action(
    platform: Platform, *, invt_no: str, action: str, code: str | None, info: str, actor: str, now: datetime
) -> StatusChange:
    """Record an officer's decision (inspection outcome, review, close). Illegal ones raise."""
    if action == Action.CUSTOMS_RECEIPT:
        raise IllegalTransition(None, action, "customs receipts come as CEB622 messages")
    with platform.db.write() as conn:
        rows = cstore.find(conn, invt_no=invt_no)
        if not rows:
            raise LookupError(f"no inventory {invt_no}")
        mode = platform.settings.mode.value
        if action not in lifecycle.OFFICER_ACTIONS[mode]:
            if mode == ClearanceMode.CUSTOMS:
                why = (
                    "in customs mode every status comes from customs receipts (CEB622), none from an officer"
                )
            else:
                allowed = ", ".join(sorted(lifecycle.OFFICER_ACTIONS[mode]))
                why = f"not an officer's action in {mode} mode (an officer may: {allowed})"
            raise IllegalTransition(rows[0].status, action, why)
        batch = _Batch(conn=conn, platform=platform, now=now, actor=actor, parks={})
        _move(batch, rows[0], None, action, info or action, code=code)
        batch.publish()
        dstore.add_receipts(
            conn,
            [
                dstore.ReceiptRow(
                    "CEB621", rows[0].clearance_id, r.guid, r.key, r.returnStatus, r.returnTime, r.returnInfo
                )
                for r in batch.receipts
            ],
        )
    return batch.changes[-1]


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
    but not applied (stale). A receipt must name the inventory whole: its copNo, ebpCode and ebcCode
    are checked against the inventory its invtNo finds. Outcomes are answered in message order."""
    order = sorted(range(len(receipts)), key=lambda i: receipts[i].returnTime)
    outcomes: dict[int, ReceiptOutcome] = {}
    with platform.db.write() as conn:
        batch = _Batch(conn=conn, platform=platform, now=now, actor=actor, parks={})
        for i in order:
            outcomes[i] = _apply_receipt(batch, receipts[i])
        batch.publish()
        dstore.add_receipts(
            conn,
            [
                dstore.ReceiptRow(
                    "CEB621",
                    f"{r.key['ebpCode']}|{r.key['orderNo']}",
                    r.guid,
                    r.key,
                    r.returnStatus,
                    r.returnTime,
                    r.returnInfo,
                )
                for r in batch.receipts
            ],
        )
    return [outcomes[i] for i in range(len(receipts))]


def _identity_problem(conn: sqlite3.Connection, r: CustomsReceipt, row: cstore.ClearanceRow) -> str | None:
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


def _apply_receipt(batch: _Batch, r: CustomsReceipt) -> ReceiptOutcome:
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
    _write(batch, changed, None, current.status, Action.CUSTOMS_RECEIPT, r.returnInfo)
    _apply_waiting(batch, current.clearance_id)
    return out(True, f"{current.status} → {to}")


def _apply_waiting(batch: _Batch, clearance_id: str) -> None:
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
                _write(
                    batch,
                    current.changed(status=to),
                    None,
                    current.status,
                    Action.CUSTOMS_RECEIPT,
                    waiting.return_info,
                )
            progressed = True
            break

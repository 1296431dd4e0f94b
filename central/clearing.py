"""A clearance's steps through the lifecycle inside one write transaction, and the re-run of a
parcel's comparison that decides them.

Intake, officer actions and customs receipts each keep a `Batch` for their transaction. Every step
(`move`, or `write` for a status decided elsewhere) saves the clearance and adds a history row, a
status receipt and a status change; `Batch.finish`, called once before the transaction commits,
appends one signed feed record per clearance changed and stores the receipts.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from pydantic import BaseModel

from central import comparison, lifecycle, numbering
from central.ceb.documents import DocKind, Inventory, Order, Payment, Receipt, Waybill
from central.ceb.stamps import return_time
from central.config import ClearanceMode
from central.declarants import AnyDocument
from central.doc_keys import doc_key
from central.feed import append_many as append_feed
from central.feed import signed_json
from central.lifecycle import Action
from central.platform import Platform
from central.receipts import as_row, clearance_keys
from central.risk import declared_value, select_for_inspection
from central.store import clearances as cstore
from central.store import documents as dstore
from central.store.connection import Connection
from central.store.prefetch import Prefetched
from kernel.status import ClearanceStatus
from kernel.timefmt import iso

# statuses at which a parcel's documents may still change (and its comparison re-run); from
# inspection on, or once cancelled, intake refuses changes to them
EDITABLE = {
    ClearanceStatus.ACCEPTED.value,
    ClearanceStatus.REJECTED.value,
    ClearanceStatus.MANUAL_REVIEW.value,
    ClearanceStatus.REVIEW_COMPLETE.value,
}


class StatusChange(BaseModel):
    invtNo: str | None
    logisticsNo: str
    from_status: str | None
    to_status: str
    action: str
    info: str


@dataclass
class Batch:
    """What one write transaction has done to clearances so far."""

    conn: Connection
    platform: Platform
    now: datetime
    actor: str
    parks: dict[str, str] = field(default_factory=dict)  # "ems:…"/"area:…" → park id (intake)
    receipts: list[Receipt] = field(default_factory=list)
    changes: list[StatusChange] = field(default_factory=list)
    # documents written in this batch, so a set completed inside one batch is not re-read
    fresh: dict[tuple[str, str], AnyDocument | None] = field(default_factory=dict)
    # clearances changed in this transaction, in the order of their last change: each gets one feed
    # record, of the state the transaction commits. No reader can see a state in between (120 and
    # 399 of a parcel the same message releases), so signing and chaining those was work for nobody;
    # every step stays in the clearance's history and receipts.
    feed: dict[str, cstore.ClearanceRow] = field(default_factory=dict)
    # the rows this transaction knows are there or not, and its reads through them (intake loads it)
    known: Prefetched = field(default_factory=Prefetched)

    @cached_property
    def stamp(self) -> str:
        return iso(self.now)

    @cached_property
    def return_time(self) -> str:
        return return_time(self.now)

    def park_of(self, inv: Inventory) -> str | None:
        return self.parks.get(f"ems:{inv.emsNo}") or self.parks.get(f"area:{inv.areaCode}")

    def finish(self, *, unstored: Container[int] = ()) -> None:
        """Append the feed records of this transaction's clearances and store its receipts (but the
        ones at the indexes in `unstored`); call once, before the transaction commits."""
        by_park: dict[str, list[tuple[str, str]]] = {}
        for row in self.feed.values():
            if row.park_id is not None:
                by_park.setdefault(row.park_id, []).append(
                    (row.clearance_id, signed_json(row, self.platform.key))
                )
        for park_id, records in by_park.items():
            append_feed(self.conn, self.platform.key, park_id=park_id, records=records)
        self.feed.clear()
        rows = [as_row(r) for i, r in enumerate(self.receipts) if i not in unstored]
        dstore.add_receipts(self.conn, rows)


# --- one step ---------------------------------------------------------------------------------------


def move(
    batch: Batch,
    row: cstore.ClearanceRow,
    inv: Inventory | None,
    action: str,
    info: str,
    *,
    code: str | None = None,
) -> cstore.ClearanceRow:
    """One lifecycle step: status, history, receipt and a signed feed record, in this transaction.
    An illegal one raises `lifecycle.IllegalTransition`."""
    before = row.status or None
    to = lifecycle.transition(before, action, code=code, cancelled=row.cancelled)
    return write(batch, row.changed(status=to), inv, before, action, info)


def write(
    batch: Batch, row: cstore.ClearanceRow, inv: Inventory | None, before: str | None, action: str, info: str
) -> cstore.ClearanceRow:
    """Save `row` (its status already decided, `before` the one it had) with its history row,
    status receipt and status change; a clearance without customs numbers gets them here, from its
    row number in the store. Returns the row as saved."""
    conn, known = batch.conn, batch.known
    row = row.changed(version=row.version + 1, updated_at=batch.stamp)
    new = row.version == 1  # a new clearance's version is 0 until now
    number = None
    if row.invt_no is None or row.pre_no is None:  # customs numbers, assigned on first acceptance
        number = (
            None if new else cstore.number_of(conn, clearance_id=row.clearance_id)
        ) or known.next_clearance_number(conn)
        row = row.changed(
            invt_no=row.invt_no or numbering.invt_no(inv.customsCode if inv else "0000", batch.now, number),
            pre_no=row.pre_no or numbering.pre_no(batch.now, number),
        )
    cstore.save(conn, row, new=new, number=number, present=known.was_saved(row.clearance_id))
    known.saved_clearance(row.clearance_id, new=new, number=number)
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
    # the feed gets the clearance as the transaction leaves it (see `Batch.feed`)
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
            guid=inv.guid if inv else _inventory_guid(batch, row.clearance_id),
            key=clearance_keys(row, inv),
            returnStatus=row.status,
            returnTime=batch.return_time,
            returnInfo=info[:1000],
        )
    )
    return row


def _inventory_guid(batch: Batch, clearance_id: str) -> str:
    row = batch.known.get_document(batch.conn, kind=DocKind.INVENTORY, doc_key=clearance_id)
    return row.guid if row else ""


# --- the comparison of a parcel -----------------------------------------------------------------------


def frozen(row: cstore.ClearanceRow | None) -> bool:
    """Whether the documents of this clearance's parcel may no longer change."""
    return row is not None and (row.cancelled or row.status not in EDITABLE)


def evaluate(batch: Batch, inventory_key: str) -> None:
    """Re-run the comparison of one parcel and move its clearance accordingly."""
    conn, known = batch.conn, batch.known
    row = known.get_document(conn, kind=DocKind.INVENTORY, doc_key=inventory_key)
    current = known.get_clearance(conn, clearance_id=inventory_key)
    if frozen(current):
        return  # at inspection or later, or cancelled: intake refused changes to its documents
    inv: Inventory | None = _load(batch, Inventory, row)
    if inv is None:  # the inventory was deleted
        if current is not None:
            move(batch, current, None, Action.REJECT, "inventory deleted (appType 3)")
        return
    order, payment, waybill = _document_set(batch, inv)
    if order is None or payment is None or waybill is None:
        missing = [n for n, d in (("order", order), ("payment", payment), ("waybill", waybill)) if d is None]
        if current is not None:
            move(
                batch,
                _refresh(batch, current, inv),
                inv,
                Action.REJECT,
                f"incomplete: {', '.join(missing)} missing",
            )
        return
    result = comparison.compare(order, payment, waybill, inv, weight_tolerance=batch.platform.tolerance)
    others = known.count_inventories_for_logistics(
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
        move(batch, row_now, inv, Action.REJECT, result.return_info())
        return
    if current is None:
        row_now = move(batch, row_now, inv, Action.ACCEPT, "three documents agree")
    else:
        row_now = move(batch, row_now, inv, Action.RESUBMIT, "documents changed; the three documents agree")
    if batch.platform.settings.mode == ClearanceMode.SIMULATE:
        _simulate_review(batch, row_now, inv)


def _load(batch: Batch, cls: type[Any], row: dstore.DocumentRow | None) -> Any:
    if row is None or row.deleted:
        return None
    cached = batch.fresh.get((row.kind, row.doc_key), row)
    if cached is None or isinstance(cached, cls):
        return cached
    return cls.model_validate(row.body)


def _document_set(batch: Batch, inv: Inventory) -> tuple[Order | None, Payment | None, Waybill | None]:
    conn, known = batch.conn, batch.known
    orders = known.find_by_order(conn, kind=DocKind.ORDER, ebp_code=inv.ebpCode, order_no=inv.orderNo)
    payments = known.find_by_order(conn, kind=DocKind.PAYMENT, ebp_code=inv.ebpCode, order_no=inv.orderNo)
    waybills = known.find_by_logistics(
        conn, kind=DocKind.WAYBILL, logistics_code=inv.logisticsCode, logistics_no=inv.logisticsNo
    )
    return (
        _load(batch, Order, orders[0] if orders else None),
        _load(batch, Payment, payments[0] if payments else None),
        _load(batch, Waybill, waybills[0] if waybills else None),
    )


def _simulate_review(batch: Batch, row: cstore.ClearanceRow, inv: Inventory) -> None:
    """Central plays customs: review completes, then release — or inspection if risk selects it."""
    row = move(batch, row, inv, Action.REVIEW_COMPLETE, "review complete")
    decision = select_for_inspection(inv, batch.platform.risk_rules)
    if decision.selected:
        row = row.changed(risk=decision.reasons)
        info = "selected for inspection: " + "; ".join(decision.reasons)
        move(batch, row, inv, Action.SELECT_INSPECTION, info)
    else:
        move(batch, row, inv, Action.RELEASE, "released")


def _goods(inv: Inventory) -> str:
    text = "; ".join(f"{r.gname} ×{format(r.qty.normalize(), 'f')}" for r in inv.inventoryList)
    return text if len(text) <= 200 else text[:199] + "…"


def _refresh(batch: Batch, current: cstore.ClearanceRow | None, inv: Inventory) -> cstore.ClearanceRow:
    """The clearance's document-derived fields as the inventory now says."""
    base: dict[str, Any] = dict(
        clearance_id=doc_key(inv),
        park_id=batch.park_of(inv),
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

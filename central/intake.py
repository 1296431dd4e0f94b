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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from central import declarants, lifecycle, numbering
from central.ceb.documents import (
    AppType,
    Cancellation,
    DocKind,
    Inventory,
    Order,
    Payment,
    Receipt,
    Refund,
    Waybill,
)
from central.clearing import Batch, StatusChange, evaluate, frozen, write
from central.declarants import AnyDocument
from central.doc_keys import doc_key
from central.platform import Platform
from central.receipts import ACCEPTED, REFUSED, WAITING, as_receipt, document_keys
from central.store import clearances as cstore
from central.store import documents as dstore
from central.store import events as estore
from central.store.connection import Connection
from central.store.parks import park_index
from central.store.prefetch import Prefetched, pairs_of
from kernel.wire import canonical_json

log = logging.getLogger(__name__)


class IntakeResult(BaseModel):
    receipts: list[Receipt] = Field(description="one intake receipt per document, then status receipts")
    changes: list[StatusChange] = Field(default_factory=list, description="clearance status changes")

    @property
    def accepted(self) -> int:
        return sum(1 for r in self.receipts if r.returnStatus in (ACCEPTED, WAITING))


def _links(doc: AnyDocument) -> dict[str, str | None]:
    return {
        "ebp_code": getattr(doc, "ebpCode", None),
        "order_no": getattr(doc, "orderNo", None),
        "logistics_code": getattr(doc, "logisticsCode", None),
        "logistics_no": getattr(doc, "logisticsNo", None),
    }


@dataclass
class _Intake(Batch):
    """A batch of documents being taken: the clearance steps of `Batch`, and what intake keeps."""

    touched: dict[str, None] = field(default_factory=dict)  # inventory doc keys to re-evaluate
    acting_for: frozenset[str] | None = None  # the token's enterprise codes (None: not bound)
    # receipts answered but not stored: a resend's original receipts, a refused reuse of a guid
    unstored: set[int] = field(default_factory=set)
    echoed: list[Receipt] = field(default_factory=list)  # a resend's later (status) receipts
    bodies: dict[int, tuple[dict[str, Any], str]] = field(default_factory=dict)  # id(doc) -> stored JSON

    def receipt(
        self, doc: AnyDocument, status: str, info: str, clearance: cstore.ClearanceRow | None = None
    ) -> None:
        self.receipts.append(
            Receipt(
                kind=doc.KIND,
                guid=doc.guid,
                key=document_keys(doc, clearance),
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
        batch = _Intake(
            conn=conn, platform=platform, now=now, actor=actor, parks=park_index(conn), acting_for=acting_for
        )
        batch.known = _prefetch(conn, documents)
        for doc in documents:
            if _guid_taken(batch, doc):
                continue
            if isinstance(doc, (Cancellation, Refund)):
                _take_request(batch, doc)
            else:
                _take_document(batch, doc)
        for inventory_key in batch.touched:
            evaluate(batch, inventory_key)
        batch.finish(unstored=batch.unstored)
        batch.receipts.extend(batch.echoed)
    log.info(
        "intake", extra={"documents": len(documents), "actor": actor, "status_changes": len(batch.changes)}
    )
    return IntakeResult(receipts=batch.receipts, changes=batch.changes)


def _prefetch(conn: Connection, documents: list[AnyDocument]) -> Prefetched:
    """Which of the rows this batch's reads could find are there (see central/store/prefetch.py)."""
    pairs = [pairs_of(_links(doc)) for doc in documents]
    return Prefetched.load(
        conn,
        guids=(doc.guid for doc in documents),
        documents=((doc.KIND.value, doc_key(doc)) for doc in documents),
        orders=(order for order, _ in pairs if order is not None),
        logistics=(logistics for _, logistics in pairs if logistics is not None),
        clearances=(doc_key(doc) for doc in documents if isinstance(doc, Inventory)),
    )


# A guid's digest: of the document's stored JSON text (the model's fields in their order, nulls left
# out), which intake makes anyway; guids taken before were digested over the canonical form, and a
# resend of one of those is compared in that form.
BODY_DIGEST = "b:"


def _guid_taken(batch: _Intake, doc: AnyDocument) -> bool:
    """A guid names one document for good. The same document sent again (a sender retrying after a
    lost answer) gets its original receipts and changes nothing; a different document under a taken
    guid is refused, and that refusal is not stored under the guid, whose receipts stay the
    original's. True when the document was answered here."""
    body = doc.model_dump(mode="json", exclude_none=True)
    text = json.dumps(body, ensure_ascii=False)
    batch.bodies[id(doc)] = (body, text)  # the text intake stores: dumped once
    digest = BODY_DIGEST + hashlib.sha256(text.encode()).hexdigest()
    use = batch.known.take_guid(
        batch.conn, guid=doc.guid, kind=doc.KIND.value, doc_key=doc_key(doc), digest=digest, now=batch.stamp
    )
    if use is not None and use.digest is not None and not use.digest.startswith(BODY_DIGEST):
        # digested in the earlier, canonical form: compared in that form
        digest = hashlib.sha256(canonical_json(doc.model_dump(mode="json"))).hexdigest()
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


# --- order, payment, waybill, inventory ---------------------------------------------------------


def _affected_inventories(
    batch: _Intake, doc: AnyDocument, existing: dstore.DocumentRow | None = None
) -> list[str]:
    """Inventory doc keys whose set this document belongs to, and, for a change or deletion, the
    sets the stored version belonged to: a payment is keyed by its transaction, not its order, so
    a change naming another order takes it out of its old parcel's set, which it may not do to a
    parcel at inspection or later (and which is compared again without it)."""
    if isinstance(doc, Inventory):
        return [doc_key(doc)]
    by_waybill = isinstance(doc, Waybill)
    keys = dict.fromkeys(_inventories_linked(batch, _links(doc), by_waybill))
    if existing is not None:
        stored = {field: existing.body.get(name) for field, name in _BODY_LINKS.items()}
        keys.update(dict.fromkeys(_inventories_linked(batch, stored, by_waybill)))
    return list(keys)


_BODY_LINKS = {
    "ebp_code": "ebpCode",
    "order_no": "orderNo",
    "logistics_code": "logisticsCode",
    "logistics_no": "logisticsNo",
}


def _inventories_linked(batch: _Intake, links: dict[str, str | None], by_waybill: bool) -> list[str]:
    """The inventories of the waybill (`by_waybill`) or else of the order these links name;
    inventories stored earlier in this batch are found too."""
    order, logistics = pairs_of(links)
    if by_waybill and logistics is not None:
        rows = batch.known.find_by_logistics(
            batch.conn, kind=DocKind.INVENTORY, logistics_code=logistics[0], logistics_no=logistics[1]
        )
    elif not by_waybill and order is not None:
        rows = batch.known.find_by_order(
            batch.conn, kind=DocKind.INVENTORY, ebp_code=order[0], order_no=order[1]
        )
    else:
        rows = []
    return [r.doc_key for r in rows]


def _frozen_by(batch: _Intake, inventory_keys: list[str]) -> cstore.ClearanceRow | None:
    """The first clearance among these whose documents may no longer change."""
    for key in inventory_keys:
        row = batch.known.get_clearance(batch.conn, clearance_id=key)
        if frozen(row):
            return row
    return None


def _take_document(batch: _Intake, doc: Order | Payment | Waybill | Inventory) -> None:
    kind, key = doc.KIND.value, doc_key(doc)
    existing = batch.known.get_document(batch.conn, kind=kind, doc_key=key)
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
    affected = _affected_inventories(batch, doc, existing if doc.appType != AppType.NEW else None)
    blocker = _frozen_by(batch, affected)
    if blocker is not None:
        state = "cancelled" if blocker.cancelled else f"at status {blocker.status}"
        batch.receipt(
            doc, REFUSED, f"inventory {blocker.invt_no} is {state}: its documents can no longer change"
        )
        return
    if isinstance(doc, Inventory) and doc.appType != AppType.DELETE and batch.park_of(doc) is None:
        batch.receipt(doc, REFUSED, f"no park handles emsNo {doc.emsNo!r} / areaCode {doc.areaCode!r}")
        return
    deleted = doc.appType == AppType.DELETE
    dumped = batch.bodies.pop(id(doc), None)
    number = None
    if isinstance(doc, Inventory) and not doc.preNo:
        if existing is not None and existing.body.get("preNo"):
            # declared again (changed, or new after a deletion): it keeps its number
            pre_no = existing.body["preNo"]
        else:
            # the platform's own number for a declaration (电子口岸标识编号), from the number of the
            # document's row, known before the row is written so the row is written once
            known = dstore.number_of(batch.conn, kind=kind, doc_key=key) if existing is not None else None
            number = known or batch.known.next_document_number(batch.conn)
            pre_no = numbering.pre_no(batch.now, number)
        doc = doc.model_copy(update={"preNo": pre_no})
        dumped = None
    body, text = dumped or (doc.model_dump(mode="json", exclude_none=True), None)
    if existing is None and number is None:  # numbered here, as the store would: no lookup of the largest
        number = batch.known.next_document_number(batch.conn)
    batch.known.save_document(
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
        number=number,
    )
    batch.fresh[(kind, key)] = None if deleted else doc
    for inventory_key in affected:
        batch.touched[inventory_key] = None
    if deleted:
        batch.receipt(doc, ACCEPTED, "deleted")
    elif isinstance(doc, Inventory):
        batch.receipt(doc, WAITING, "declared; compared when order, payment and waybill are present")
    else:
        batch.receipt(doc, ACCEPTED, "accepted")


# --- cancellation and return --------------------------------------------------------------------


def _take_request(batch: _Intake, doc: Cancellation | Refund) -> None:
    kind = "cancellation" if isinstance(doc, Cancellation) else "return"
    rows = cstore.find(batch.conn, invt_no=doc.invtNo)
    current = rows[0] if rows else None
    if current is None or (current.ebp_code, current.order_no) != (doc.ebpCode, doc.orderNo):
        batch.receipt(doc, REFUSED, f"no inventory {doc.invtNo} for order {doc.orderNo}")
        return
    inventory = batch.known.get_document(
        batch.conn, kind=DocKind.INVENTORY.value, doc_key=current.clearance_id
    )
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
    batch.known.save_document(
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
    row = write(batch, current.changed(cancelled=True), None, current.status, kind, info)
    batch.receipt(doc, "399", f"{kind} approved; inventory {row.invt_no} is no longer releasable", row)

"""Receipts in the standard's form: the codes intake answers with, the key fields each receipt
carries, and the stored form (kept under the key of the document it answers, `central.doc_keys`)."""

from __future__ import annotations

from central.ceb.documents import DocKind, Inventory, Order, Payment, Receipt, Waybill
from central.declarants import AnyDocument
from central.doc_keys import receipt_doc_key
from central.store import clearances as cstore
from central.store import documents as dstore

ACCEPTED = "120"  # 海关入库: the document is in the database
REFUSED = "100"  # 海关退单: refused, returnInfo says why
WAITING = "2"  # 申报中: inventory stored, waiting for the rest of its set


def document_keys(doc: AnyDocument, clearance: cstore.ClearanceRow | None = None) -> dict[str, str]:
    """The key fields the receipt XML of this document's kind carries; an inventory's, its
    cancellation's and its return's take the customs numbers from its clearance when it has one."""
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


def clearance_keys(row: cstore.ClearanceRow, inv: Inventory | None) -> dict[str, str]:
    """The key fields of a status receipt (CEB622's form) of this clearance; customsCode and
    agentCode when its inventory is at hand."""
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


def as_row(r: Receipt) -> dstore.ReceiptRow:
    """A receipt in its stored form, under the key of the document it answers."""
    return dstore.ReceiptRow(
        kind=r.kind.value,
        doc_key=receipt_doc_key(r.kind, r.key),
        guid=r.guid,
        key_fields=r.key,
        return_status=r.returnStatus,
        return_time=r.returnTime,
        return_info=r.returnInfo,
    )

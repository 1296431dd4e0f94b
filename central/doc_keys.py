"""The key that names a document across its versions (`documents.doc_key`), one function per kind.

A cancellation or return is keyed as the inventory it names, and a clearance's id is its inventory's
key. A receipt is stored under the key of the document it answers, made by the same functions from
the key fields the receipt carries (`receipt_doc_key`).
"""

from __future__ import annotations

from collections.abc import Mapping

from central.ceb.documents import DocKind, Order, Payment, Waybill
from central.declarants import AnyDocument


def order_key(ebp_code: str, order_no: str) -> str:
    return f"{ebp_code}|{order_no}"


def payment_key(pay_code: str, pay_transaction_id: str) -> str:
    return f"{pay_code}|{pay_transaction_id}"


def waybill_key(logistics_code: str, logistics_no: str) -> str:
    return f"{logistics_code}|{logistics_no}"


def inventory_key(ebp_code: str, order_no: str) -> str:
    """An inventory's key: also its clearance's id, and the key of its cancellation or return."""
    return f"{ebp_code}|{order_no}"


def doc_key(doc: AnyDocument) -> str:
    if isinstance(doc, Order):
        return order_key(doc.ebpCode, doc.orderNo)
    if isinstance(doc, Payment):
        return payment_key(doc.payCode, doc.payTransactionId)
    if isinstance(doc, Waybill):
        return waybill_key(doc.logisticsCode, doc.logisticsNo)
    return inventory_key(doc.ebpCode, doc.orderNo)  # an inventory, its cancellation or its return


def receipt_doc_key(kind: DocKind, key: Mapping[str, str]) -> str:
    """The key of the document of `kind` a receipt answers, from the receipt's key fields."""
    if kind == DocKind.ORDER:
        return order_key(key["ebpCode"], key["orderNo"])
    if kind == DocKind.PAYMENT:
        return payment_key(key["payCode"], key["payTransactionId"])
    if kind == DocKind.WAYBILL:
        return waybill_key(key["logisticsCode"], key["logisticsNo"])
    return inventory_key(key["ebpCode"], key["orderNo"])

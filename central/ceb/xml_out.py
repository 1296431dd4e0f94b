"""Emit CEB XML: receipts answering documents, and document messages built from the models.

Receipts are what central sends back to senders (CEB312/412/512/622/624/626); document messages
(CEB311/411/511/621/623/625) let tests, the demo and simulators submit real XML. Elements come out
in the XSD's sequence, which fields.FIELDS keeps as its key order, so the output validates against
the official schema (for 621/623/625 once signed, see `message_xml`).

Emitting refuses (ValueError) rather than repairs: a receipt missing a key field or a document
carrying a field the standard does not know is a bug in the caller, and guessing would hide it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from enum import Enum
from typing import Any

from lxml import etree
from pydantic import BaseModel

from central.ceb.documents import DocKind, Receipt
from central.ceb.field_check import check_fields
from central.ceb.fields import FIELDS
from central.ceb.messages import (
    DOCUMENT_LAYOUTS,
    MAX_DOCUMENTS,
    MAX_ROWS,
    NS,
    RECEIPT_BODY,
    RECEIPT_LAYOUTS,
    Layout,
    receipt_keys,
)

__all__ = ["message_guid", "message_xml", "receipts_xml"]

VERSION = "1.0"
_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def message_guid() -> str:
    """A message guid as the standard wants it: 36 characters, letters upper case."""
    return str(uuid.uuid4()).upper()


def receipts_xml(kind: DocKind, receipts: Sequence[Receipt], *, guid: str | None = None) -> bytes:
    """The receipt message answering documents of `kind`, one return element per receipt.

    `Receipt.key` must hold the key fields of that return element (and may hold its optional ones):

    ========= ======= ==================== ==========================================================
    kind      message element              key: required (optional)
    ========= ======= ==================== ==========================================================
    CEB311    CEB312  OrderReturn          ebpCode, ebcCode, orderNo
    CEB411    CEB412  PaymentReturn        payCode, payTransactionId
    CEB511    CEB512  LogisticsReturn      logisticsCode, logisticsNo
    CEB621    CEB622  InventoryReturn      copNo, preNo (customsCode, ebpCode, ebcCode, agentCode,
                                           invtNo)
    CEB623    CEB624  InvtCancelReturn     copNo, preNo (customsCode, agentCode, ebpCode, ebcCode,
                                           invtNo)
    CEB625    CEB626  InvtRefundReturn     copNo, preNo (customsCode, agentCode, ebpCode, ebcCode,
                                           invtNo)
    ========= ======= ==================== ==========================================================

    guid, returnStatus, returnTime and returnInfo come from the Receipt itself. Keys the element does
    not carry are left out (a JSON receipt may say more, e.g. orderNo on an inventory receipt), as
    are empty optional ones. Raises ValueError when a receipt answers another kind, misses (or has
    empty) a required key, or breaks a field rule (preNo is exactly 18 characters, returnTime 17
    digits, returnInfo 1 to 1000 characters, …): sending customs-shaped XML that customs' own
    schema refuses would only move the failure to the receiver.
    """
    layout = RECEIPT_LAYOUTS[kind]
    _check_count(len(receipts), f"{layout.root} receipts")
    root = _root(layout, guid, nsmap={None: NS})
    for i, receipt in enumerate(receipts, start=1):
        _append_fields(root, layout.head, _receipt_fields(kind, receipt, f"receipt[{i}]"))
    return _serialise(root)


def message_xml(
    kind: DocKind,
    documents: Sequence[BaseModel],
    base_transfer: Mapping[str, str],
    *,
    guid: str | None = None,
) -> bytes:
    """A CEB311/411/511/621/623/625 message carrying `documents` (models of `kind`, 1 to 100).

    Every field the model holds, declared or extra, is written in the XSD's order; Decimals as plain
    notation (no exponent). `base_transfer` is the sender block (copCode, copName, dxpMode, dxpId,
    note). The root gets `guid` (a fresh upper-case uuid4 by default) and version 1.0.

    The XSD requires a ds:Signature on 621, 623 and 625: an SM2 signature over the message, made
    with the sender's own certificate, so it is not ours to make. The message comes out unsigned
    (Bondgate's intake accepts that); a sender signs it and appends ds:Signature as the root's last
    child before it goes to customs.
    """
    layout = DOCUMENT_LAYOUTS[kind]
    _check_count(len(documents), f"{layout.root} documents")
    problems = check_fields("BaseTransfer", base_transfer)
    unknown = set(base_transfer) - set(FIELDS["BaseTransfer"])
    if problems or unknown:
        raise ValueError("; ".join(problems + [f"BaseTransfer: unknown field {n}" for n in sorted(unknown)]))
    root = _root(layout, guid, nsmap={"ceb": NS})
    for i, document in enumerate(documents, start=1):
        _append_document(root, layout, document, f"{layout.wrapper}[{i}]")
    _append_fields(root, "BaseTransfer", dict(base_transfer))
    return _serialise(root)


# --- receipts ----------------------------------------------------------------------------------


def _receipt_fields(kind: DocKind, receipt: Receipt, where: str) -> dict[str, Any]:
    if receipt.kind != kind:
        raise ValueError(f"{where}: answers a {receipt.kind.value} document, not {kind.value}")
    required, optional = receipt_keys(kind)
    missing = [name for name in required if not (receipt.key.get(name) or "").strip()]
    if missing:
        element = RECEIPT_LAYOUTS[kind].head
        raise ValueError(f"{where}: {element} needs key {', '.join(missing)}")
    values: dict[str, Any] = {name: receipt.key.get(name) for name in (*required, *optional)}
    values.update({name: getattr(receipt, name) for name in RECEIPT_BODY})
    problems = check_fields(RECEIPT_LAYOUTS[kind].head, values)
    if problems:
        raise ValueError(f"{where}: {'; '.join(problems)}")
    return values


# --- documents ---------------------------------------------------------------------------------


def _append_document(root: etree._Element, layout: Layout, document: BaseModel, where: str) -> None:
    if layout.model is None or not isinstance(document, layout.model):
        raise ValueError(f"{where}: a {type(document).__name__} cannot go in a {layout.root}")
    values = _model_values(document)
    rows = values.pop(layout.rows_field, []) if layout.rows_field else []
    values.pop("docType", None)
    parent = root if layout.flat else etree.SubElement(root, f"{{{NS}}}{layout.wrapper}")
    _append_fields(parent, layout.head, values, where)
    if layout.rows is not None:
        if not 1 <= len(rows) <= MAX_ROWS:
            raise ValueError(f"{where}: {len(rows)} {layout.rows} rows, the standard allows 1 to {MAX_ROWS}")
        for j, row in enumerate(rows, start=1):
            _append_fields(parent, layout.rows, _model_values(row), f"{where} {layout.rows}[{j}]")


def _model_values(model: BaseModel) -> dict[str, Any]:
    """Declared and extra fields of a model, as Python values (nested rows stay models)."""
    values = {name: getattr(model, name) for name in type(model).model_fields}
    values.update(model.model_extra or {})
    return values


def _append_fields(
    parent: etree._Element, entity: str, values: Mapping[str, Any], where: str | None = None
) -> None:
    """Append an `entity` element under `parent`, its fields in XSD order, absent ones left out."""
    rules = FIELDS[entity]
    unknown = sorted(name for name, value in values.items() if name not in rules and value is not None)
    if unknown:
        raise ValueError(f"{where or entity}: {entity} has no field {', '.join(unknown)}")
    el = etree.SubElement(parent, f"{{{NS}}}{entity}")
    for name in rules:
        text = _text(values.get(name))
        if text is not None:
            etree.SubElement(el, f"{{{NS}}}{name}").text = text


def _text(value: Any) -> str | None:
    """The element text for a field value; None (and "") mean the element is left out."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Enum):
        return str(value.value)
    text = str(value)
    return text if text.strip() else None


# --- message frame -----------------------------------------------------------------------------


def _check_count(count: int, what: str) -> None:
    if not 1 <= count <= MAX_DOCUMENTS:
        raise ValueError(f"{count} {what}: a message carries 1 to {MAX_DOCUMENTS}")


def _root(layout: Layout, guid: str | None, nsmap: dict[str | None, str]) -> etree._Element:
    guid = guid or message_guid()
    if len(guid) != 36:
        raise ValueError(f"message guid {guid!r} is not 36 characters")
    root = etree.Element(f"{{{NS}}}{layout.root}", nsmap=nsmap)
    root.set("guid", guid)
    root.set("version", VERSION)
    return root


def _serialise(root: etree._Element) -> bytes:
    # the declaration written by hand: lxml's uses single quotes, the official samples double ones
    return _DECLARATION + bytes(etree.tostring(root, encoding="UTF-8", pretty_print=True))

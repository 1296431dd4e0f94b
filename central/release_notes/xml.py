"""SAS121 release notes and SAS221/SAS223 receipts as XML: parsed with the hardened CEB parser (size
bound, no DOCTYPE or entities, no network), read by element local names (customs' messages carry
no namespace, a signing client may add one), and written in customs' envelope.

SAS121: `Signature/Object/Package/DataInfo/BussinessData` holds `DelcareFlag` and `PassPortMessage`
with `OperCusRegCode`, `PassportHead`, `PassportList`* and `PassportAcmp`* ("Bussiness" and
"Delcare" are customs' own spellings; a `Package` root without the signature wrapper is taken too).
Receipts: `Package/EnvelopInfo/message_type` and `Package/DataInfo/BussinessData/SAS22x` with
`HdeApprResult` and `SasPassportBsc` (and, in SAS221, goods lines and related documents, not read).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from lxml import etree
from pydantic import ValidationError

from central.ceb.errors import CebError, ErrorCode
from central.ceb.xml_in import parse_xml_safely
from central.release_notes.model import NoteIn
from central.release_notes.receipts import NoteReceipt

__all__ = ["MAX_NOTE_BYTES", "parse_note", "parse_receipt", "receipt_xml"]

MAX_NOTE_BYTES = 4 * 1024 * 1024
_MAX_CHILDREN = 6000


def _local(el: etree._Element) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def _elements(el: etree._Element) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str)]


def _child(el: etree._Element, name: str, where: str) -> etree._Element:
    found = [c for c in _elements(el) if _local(c) == name]
    if len(found) != 1:
        what = "missing" if not found else f"repeated {len(found)} times"
        raise CebError(ErrorCode.STRUCTURE, f"{where}/{name} is {what}")
    return found[0]


def _fields(el: etree._Element, where: str) -> dict[str, str]:
    """An element whose children are simple fields, as {local name: text}."""
    values: dict[str, str] = {}
    for c in _elements(el):
        name = _local(c)
        if _elements(c):
            raise CebError(ErrorCode.STRUCTURE, f"{where}/{name} must be a simple field, not hold elements")
        if name in values:
            raise CebError(ErrorCode.STRUCTURE, f"{where}/{name} is repeated")
        values[name] = (c.text or "").strip()
    return values


def _package(root: etree._Element) -> etree._Element:
    if _local(root) == "Package":
        return root
    if _local(root) == "Signature":
        return _child(_child(root, "Object", "Signature"), "Package", "Signature/Object")
    raise CebError(
        ErrorCode.UNSUPPORTED_MESSAGE, f"root element {_local(root)!r}: expected Signature or Package"
    )


def _problems(exc: ValidationError, where: str) -> list[str]:
    out = []
    for e in exc.errors(include_url=False):
        loc = "/".join(str(p) for p in e["loc"])
        out.append(f"{where}/{loc}: {e['msg']}")
    return out


def parse_note(data: bytes) -> NoteIn:
    """A SAS121 message → NoteIn, or CebError (structure, field_rules …) saying what is wrong."""
    root = parse_xml_safely(data, MAX_NOTE_BYTES)
    package = _package(root)
    business = _child(_child(package, "DataInfo", "Package"), "BussinessData", "Package/DataInfo")
    where = "BussinessData/PassPortMessage"
    message = _child(business, "PassPortMessage", "BussinessData")
    children = _elements(message)
    if len(children) > _MAX_CHILDREN:
        raise CebError(ErrorCode.TOO_MANY_DOCUMENTS, f"{where} has {len(children)} elements")
    head: dict[str, str] | None = None
    lines: list[dict[str, str]] = []
    acmp: list[dict[str, str]] = []
    for c in children:
        name = _local(c)
        if name == "OperCusRegCode":
            continue
        if name == "PassportHead":
            if head is not None:
                raise CebError(ErrorCode.STRUCTURE, f"{where}/PassportHead is repeated")
            head = _fields(c, f"{where}/PassportHead")
        elif name == "PassportList":
            lines.append(_fields(c, f"{where}/PassportList[{len(lines) + 1}]"))
        elif name == "PassportAcmp":
            acmp.append(_fields(c, f"{where}/PassportAcmp[{len(acmp) + 1}]"))
        else:
            raise CebError(ErrorCode.STRUCTURE, f"{where}/{name} is not part of a SAS121 message")
    if head is None:
        raise CebError(ErrorCode.STRUCTURE, f"{where}/PassportHead is missing")
    try:
        return NoteIn.model_validate({"head": head, "list": lines, "acmp": acmp})
    except ValidationError as exc:
        raise CebError(ErrorCode.FIELD_RULES, _problems(exc, where)) from None


def parse_receipt(data: bytes) -> NoteReceipt:
    """A SAS221 or SAS223 receipt → NoteReceipt, or CebError."""
    root = parse_xml_safely(data, MAX_NOTE_BYTES)
    package = _package(root)
    envelope = _fields(_child(package, "EnvelopInfo", "Package"), "Package/EnvelopInfo")
    kind = envelope.get("message_type", "")
    if kind not in ("SAS221", "SAS223"):
        raise CebError(ErrorCode.UNSUPPORTED_MESSAGE, f"message_type {kind!r}: receipts are SAS221 or SAS223")
    business = _child(_child(package, "DataInfo", "Package"), "BussinessData", "Package/DataInfo")
    body = _child(business, kind, "BussinessData")
    where = f"BussinessData/{kind}"
    result = _fields(_child(body, "HdeApprResult", where), f"{where}/HdeApprResult")
    basics = [c for c in _elements(body) if _local(c) == "SasPassportBsc"]
    if len(basics) > 1:
        raise CebError(ErrorCode.STRUCTURE, f"{where}/SasPassportBsc is repeated")
    values: dict[str, Any] = {"messageType": kind, "HdeApprResult": result}
    if basics:
        values["SasPassportBsc"] = _fields(basics[0], f"{where}/SasPassportBsc")
    try:
        return NoteReceipt.model_validate(values)
    except ValidationError as exc:
        raise CebError(ErrorCode.FIELD_RULES, _problems(exc, where)) from None


def _append(parent: etree._Element, name: str, values: dict[str, Any]) -> None:
    el = etree.SubElement(parent, name)
    for key, value in values.items():
        etree.SubElement(el, key).text = "" if value is None else str(value)


def receipt_xml(receipt: NoteReceipt, *, sender: str = "CUS0000", receiver: str = "BONDGATE") -> bytes:
    """A receipt in customs' envelope (the form customs sends, so a client reads central's as customs')."""
    now = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    message_id = f"{sender}{uuid.uuid4().hex[:24].upper()}"
    package = etree.Element("Package")
    _append(
        package,
        "EnvelopInfo",
        {
            "version": "1.0",
            "message_id": message_id,
            "file_name": f"{message_id}.SAS",
            "message_type": receipt.messageType,
            "sender_id": sender,
            "receiver_id": receiver,
            "send_time": now,
        },
    )
    data = etree.SubElement(package, "DataInfo")
    business = etree.SubElement(data, "BussinessData")
    body = etree.SubElement(business, receipt.messageType)
    _append(body, "HdeApprResult", receipt.HdeApprResult.model_dump())
    if receipt.SasPassportBsc is not None:
        _append(body, "SasPassportBsc", receipt.SasPassportBsc.model_dump())
    return etree.tostring(package, xml_declaration=True, encoding="UTF-8", pretty_print=True)

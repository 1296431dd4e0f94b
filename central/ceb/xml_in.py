"""Hardened intake of CEB XML messages: bytes in, validated document models out, or one CebError.

Messages come from outside (platforms, carriers, payment companies, customs), so the parser takes
nothing on trust: the size is bounded before parsing, DOCTYPE and entity declarations are refused
outright (XXE, billion laughs), lxml runs with entity resolution, DTD loading and network access off,
and every element must sit where the 2022-05 XSD puts it. A message is all-or-nothing: either every
document in it becomes a model, or a CebError says what is wrong; field-rule problems of all
documents are reported together so a sender fixes a batch in one round trip.

ds:Signature is accepted and ignored (never verified), even where the XSD requires it: whether a
message was signed is reported in `ParsedMessage.signed`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from lxml import etree
from pydantic import BaseModel, ValidationError

from central.ceb.documents import (
    FIELDS_CHECKED,
    Cancellation,
    CustomsReceipt,
    Inventory,
    Order,
    Payment,
    Refund,
    Waybill,
)
from central.ceb.errors import CebError, ErrorCode
from central.ceb.field_check import check_fields
from central.ceb.fields import FIELDS
from central.ceb.messages import DS_NS, INBOUND_LAYOUTS, MAX_DOCUMENTS, MAX_ROWS, NS, Layout

__all__ = ["MAX_MESSAGE_BYTES", "CebError", "ErrorCode", "ParsedMessage", "parse_message", "parse_xml_safely"]

MAX_MESSAGE_BYTES = 10 * 1024 * 1024
_ROOT_NAME = re.compile(r"^(CEB\d{3})Message$")
# refused before lxml sees them; the post-parse docinfo check catches encodings this scan misses
_DECLARATIONS = (b"<!DOCTYPE", b"<!ENTITY")
_ENTITY_REASON = (
    "DOCTYPE and entity declarations are not allowed in CEB messages "
    "(refused to rule out external entities and entity expansion)"
)

# each entity's fields by their position in the XSD sequence
_FIELD_ORDER = {entity: {name: i for i, name in enumerate(rules)} for entity, rules in FIELDS.items()}

ParsedDocument = Order | Payment | Waybill | Inventory | Cancellation | Refund


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """One accepted message: its documents (CEB311/411/511/621/623/625) or receipts (CEB622)."""

    kind: str  # message type, "CEB311"
    guid: str
    version: str
    documents: list[ParsedDocument] = field(default_factory=list)
    receipts: list[CustomsReceipt] = field(default_factory=list)
    base_transfer: dict[str, str] | None = None  # sender's copCode, copName, dxpMode, dxpId, note
    signed: bool = False  # a ds:Signature was present (not verified)


def parse_message(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> ParsedMessage:
    """Parse one CEB message; raise CebError (and nothing else) when it cannot be taken whole."""
    root = parse_xml_safely(data, max_bytes)
    layout = _layout_of(root)
    guid, version = _root_attributes(root)
    children = _children(root, layout.root)
    wrappers = [el for el in children if _local(el) == layout.wrapper and _ns(el) == NS]
    if len(wrappers) > MAX_DOCUMENTS:
        raise CebError(
            ErrorCode.TOO_MANY_DOCUMENTS,
            f"{layout.root} carries {len(wrappers)} {layout.wrapper} documents, "
            f"the standard allows at most {MAX_DOCUMENTS}",
        )
    parts = _match_sequence(children, _root_sequence(layout), layout.root)
    problems: list[str] = []
    raw = [_read_document(layout, i, el, problems) for i, el in enumerate(parts[layout.wrapper], start=1)]
    base_transfer = None
    if layout.base_transfer:
        base_transfer = _read_entity(parts["BaseTransfer"][0], "BaseTransfer", "BaseTransfer")
        problems += check_fields("BaseTransfer", base_transfer)
        base_transfer = {k: v for k, v in base_transfer.items() if v.strip()}
    if problems:
        raise CebError(ErrorCode.FIELD_RULES, problems)
    models = _build_models(layout, raw)
    is_receipts = isinstance(models[0], CustomsReceipt)
    return ParsedMessage(
        kind=layout.kind,
        guid=guid,
        version=version,
        documents=[] if is_receipts else models,
        receipts=models if is_receipts else [],
        base_transfer=base_transfer,
        signed=bool(parts.get("Signature")),
    )


# --- bytes to tree -----------------------------------------------------------------------------


def _parser() -> etree.XMLParser:
    """A fresh parser per message: lxml parsers must not be shared between threads."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_xml_safely(data: bytes, max_bytes: int) -> etree._Element:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"parse_message takes bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise CebError(ErrorCode.TOO_LARGE, f"message is {len(data)} bytes, the limit is {max_bytes}")
    if not data.strip():
        raise CebError(ErrorCode.XML_SYNTAX, "message is empty")
    if any(marker in data for marker in _DECLARATIONS):
        raise CebError(ErrorCode.ENTITY_FORBIDDEN, _ENTITY_REASON)
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise CebError(ErrorCode.XML_SYNTAX, f"not well-formed XML: {exc}") from None
    except (etree.LxmlError, ValueError) as exc:
        raise CebError(ErrorCode.XML_SYNTAX, f"not readable as XML: {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise CebError(ErrorCode.ENTITY_FORBIDDEN, _ENTITY_REASON)
    return root


# --- message level -----------------------------------------------------------------------------


@lru_cache(maxsize=512)
def _split(tag: str) -> tuple[str | None, str]:
    """Split a Clark tag into (namespace, local name); cached (bounded: tags come from outside)."""
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return None, tag


def _local(el: etree._Element) -> str:
    return _split(el.tag)[1]


def _ns(el: etree._Element) -> str | None:
    return _split(el.tag)[0]


def _layout_of(root: etree._Element) -> Layout:
    name = _local(root)
    if _ns(root) != NS:
        raise CebError(
            ErrorCode.NAMESPACE, f"root element <{_clip(name)}> {_ns_state(root)}; CEB messages use {NS}"
        )
    match = _ROOT_NAME.match(name)
    if match is None:
        raise CebError(ErrorCode.UNSUPPORTED_MESSAGE, f"root element <{_clip(name)}> is not a CEB message")
    layout = INBOUND_LAYOUTS.get(match.group(1))
    if layout is None:
        taken = ", ".join(sorted(INBOUND_LAYOUTS))
        raise CebError(
            ErrorCode.UNSUPPORTED_MESSAGE, f"{match.group(1)} messages are not taken here (only {taken})"
        )
    return layout


def _root_attributes(root: etree._Element) -> tuple[str, str]:
    where = _local(root)
    guid, version = root.get("guid"), root.get("version")
    if guid is None or version is None:
        missing = "guid" if guid is None else "version"
        raise CebError(ErrorCode.STRUCTURE, f"{where}: required attribute {missing} is missing")
    if len(guid) != 36:
        raise CebError(
            ErrorCode.FIELD_RULES, f"{where}@guid: length {len(guid)}, the standard requires exactly 36"
        )
    if not 1 <= len(version) <= 10:
        raise CebError(
            ErrorCode.FIELD_RULES, f"{where}@version: length {len(version)}, the standard allows 1 to 10"
        )
    return guid, version


class _Slot(NamedTuple):
    """One place in an XSD sequence: element name, namespace and how often it may occur."""

    name: str
    ns: str
    least: int
    most: int

    def holds(self, el: etree._Element) -> bool:
        return _local(el) == self.name and _ns(el) == self.ns


def _root_sequence(layout: Layout) -> list[_Slot]:
    """The root's children as the XSD orders them."""
    sequence = [_Slot(layout.wrapper, NS, 1, MAX_DOCUMENTS)]
    if layout.base_transfer:
        sequence += [
            _Slot("BaseTransfer", NS, 1, 1),
            _Slot("BaseSubscribe", NS, 0, 5),
            _Slot("ExtendMessage", NS, 0, 1),
            _Slot("Signature", DS_NS, 0, 1),
        ]
    return sequence


def _children(el: etree._Element, where: str) -> list[etree._Element]:
    """Element children of a container; text between them is refused, as the XSD refuses it."""
    _no_text(el.text, where)
    children = []
    for child in el:
        _no_text(child.tail, where)
        children.append(child)
    return children


def _no_text(text: str | None, where: str) -> None:
    if text and text.strip():
        raise CebError(ErrorCode.STRUCTURE, f"{where}: unexpected text {_clip(text.strip())!r}")


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _describe(el: etree._Element) -> str:
    """How a reason names a CEB or xmldsig element: <BaseTransfer>, <ds:Signature>."""
    prefix = "ds:" if _ns(el) == DS_NS else ""
    return f"<{prefix}{_clip(_local(el))}>"


def _match_sequence(
    children: list[etree._Element], sequence: list[_Slot], where: str
) -> dict[str, list[etree._Element]]:
    """Group `children` by the XSD sequence they must follow; refuse anything out of place."""
    found: dict[str, list[etree._Element]] = {slot.name: [] for slot in sequence}
    position = 0
    for child in children:
        while position < len(sequence) and not sequence[position].holds(child):
            slot = sequence[position]
            if len(found[slot.name]) < slot.least:
                raise _misplaced(child, where, slot.name)
            position += 1
        if position == len(sequence):
            raise _unexpected(child, where)
        slot = sequence[position]
        if len(found[slot.name]) == slot.most:
            raise CebError(ErrorCode.STRUCTURE, f"{where}: more than {slot.most} <{slot.name}>")
        found[slot.name].append(child)
    for slot in sequence[position:]:
        if len(found[slot.name]) < slot.least:
            raise CebError(ErrorCode.STRUCTURE, f"{where}: required element <{slot.name}> is missing")
    return found


def _misplaced(child: etree._Element, where: str, expected: str) -> CebError:
    if _ns(child) not in (NS, DS_NS):
        return _foreign(child, where)
    return CebError(ErrorCode.STRUCTURE, f"{where}: expected <{expected}>, found {_describe(child)}")


def _unexpected(child: etree._Element, where: str) -> CebError:
    if _ns(child) not in (NS, DS_NS):
        return _foreign(child, where)
    return CebError(ErrorCode.STRUCTURE, f"{where}: unexpected element {_describe(child)}")


def _foreign(child: etree._Element, where: str) -> CebError:
    name = _clip(_local(child))
    return CebError(ErrorCode.NAMESPACE, f"{where}: element <{name}> {_ns_state(child)}, not {NS}")


def _ns_state(el: etree._Element) -> str:
    ns = _ns(el)
    return "has no namespace" if ns is None else f"is in namespace {_clip(ns, 100)}"


# --- documents ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _RawDocument:
    label: str  # "Order[2]", for reasons
    head: dict[str, str]
    rows: list[dict[str, str]]


def _read_document(layout: Layout, index: int, el: etree._Element, problems: list[str]) -> _RawDocument:
    """Read one document's fields and append its field-rule problems to `problems`."""
    label = f"{layout.wrapper}[{index}]"
    if layout.flat:
        head_el, row_els = el, []
    else:
        sequence = [_Slot(layout.head, NS, 1, 1)]
        if layout.rows:
            sequence.append(_Slot(layout.rows, NS, 1, MAX_ROWS))
        parts = _match_sequence(_children(el, label), sequence, label)
        head_el, row_els = parts[layout.head][0], parts.get(layout.rows or "", [])
    head = _read_entity(head_el, layout.head, f"{label} {layout.head}")
    problems += [f"{label} {p}" for p in check_fields(layout.head, head)]
    rows = []
    for j, row_el in enumerate(row_els, start=1):
        entity = layout.rows or ""  # there are rows only where the layout names their entity
        row_label = f"{entity}[{j}]"
        row = _read_entity(row_el, entity, f"{label} {row_label}")
        problems += [f"{label} {_relabel(p, entity, row_label)}" for p in check_fields(entity, row)]
        rows.append(row)
    return _RawDocument(label, head, rows)


def _relabel(problem: str, entity: str, row_label: str) -> str:
    """Name the row in a row problem: "OrderList.qty: …" becomes "OrderList[3].qty: …"."""
    prefix = f"{entity}."
    return row_label + "." + problem[len(prefix) :] if problem.startswith(prefix) else problem


def _read_entity(el: etree._Element, entity: str, where: str) -> dict[str, str]:
    """Field name -> text of one entity's leaf elements, in the XSD's order, none unknown or repeated."""
    rules = FIELDS[entity]
    order = _FIELD_ORDER[entity]
    values: dict[str, str] = {}
    last = -1
    for child in _children(el, where):
        name = _local(child)
        if _ns(child) != NS:
            raise _foreign(child, where)
        if name not in rules:
            raise CebError(ErrorCode.STRUCTURE, f"{where}: unknown element <{_clip(name)}>")
        if name in values:
            raise CebError(ErrorCode.STRUCTURE, f"{where}: element <{name}> is repeated")
        if order[name] < last:
            after = next(n for n in values if order[n] > order[name])
            raise CebError(
                ErrorCode.STRUCTURE,
                f"{where}: element <{name}> is out of order, the standard puts it before <{after}>",
            )
        if len(child):
            raise CebError(ErrorCode.STRUCTURE, f"{where}: element <{name}> must hold text, not elements")
        values[name] = child.text or ""
        last = order[name]
    return values


def _build_models(layout: Layout, raw: list[_RawDocument]) -> list[Any]:
    """Turn checked documents into models; whatever the models still refuse is reported together."""
    assert layout.model is not None
    models: list[BaseModel] = []
    problems: list[str] = []
    for doc in raw:
        data: dict[str, Any] = _present(doc.head)
        if layout.rows_field:
            data[layout.rows_field] = [_present(row) for row in doc.rows]
        try:
            models.append(layout.model.model_validate(data, context={FIELDS_CHECKED: True}))
        except ValidationError as exc:
            problems += list(_model_problems(doc.label, layout, exc))
    if problems:
        raise CebError(ErrorCode.FIELD_RULES, problems)
    return models


def _present(values: dict[str, str]) -> dict[str, str]:
    """Drop empty elements: `<note></note>` means absent, so it must not become an extra field."""
    return {name: text for name, text in values.items() if text.strip()}


def _model_problems(label: str, layout: Layout, exc: ValidationError) -> Iterator[str]:
    """Pydantic's findings in the reader's words: ("orderList", 1, "qty") -> "OrderList[2].qty"."""
    for error in exc.errors(include_url=False, include_input=False):
        loc = list(error["loc"])
        where = layout.head
        if layout.rows and loc[:1] == [layout.rows_field] and len(loc) > 1 and isinstance(loc[1], int):
            where, loc = f"{layout.rows}[{loc[1] + 1}]", loc[2:]
        path = "".join(f".{part}" for part in loc)
        yield f"{label} {where}{path}: {error['msg']}"

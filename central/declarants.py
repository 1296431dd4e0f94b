"""Who may declare a document: an enterprise token acts for the enterprise codes it was made for.

The standard names, for each document, the enterprise that declares it: the e-commerce platform or
enterprise for an order (ebpCode, ebcCode), the payment enterprise for a payment (payCode), the
logistics enterprise for a waybill (logisticsCode), the declaring agent or the e-commerce enterprise
for an inventory and its cancellation or return (agentCode, ebcCode). A token may submit a document
only when one of those codes is its own, and read only the receipts of such documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from central.ceb.documents import Cancellation, Inventory, Order, Payment, Refund, Waybill

AnyDocument = Order | Payment | Waybill | Inventory | Cancellation | Refund

DECLARANT_FIELDS: dict[type[AnyDocument], tuple[str, ...]] = {
    Order: ("ebpCode", "ebcCode"),
    Payment: ("payCode",),
    Waybill: ("logisticsCode",),
    Inventory: ("agentCode", "ebcCode"),
    Cancellation: ("agentCode", "ebcCode"),
    Refund: ("agentCode", "ebcCode"),
}
RECEIPT_FIELDS = ("ebpCode", "ebcCode", "payCode", "logisticsCode", "agentCode")
FIELDS_BY_KIND = {cls.KIND.value: names for cls, names in DECLARANT_FIELDS.items()}


class NotTheirs(Exception):
    """A change, deletion, cancellation or return of a document another enterprise declared."""


def check_owner(kind: str, body: Mapping[str, object], codes: frozenset[str] | None, *, what: str) -> None:
    """Raise NotTheirs unless a token acting for `codes` (None: not an enterprise's, unbound) is one
    of the declarants of the document already stored (`kind`, `body`): a new document naming the
    token's own code cannot take over one somebody else declared."""
    if codes is None:
        return
    names = FIELDS_BY_KIND[kind]
    theirs = [str(body[n]) for n in names if body.get(n)]
    if not codes.intersection(theirs):
        raise NotTheirs(
            f"{what}: {kind} declared by {'/'.join(names)} {', '.join(theirs)},"
            " not an enterprise this token acts for"
        )


def declarants(doc: AnyDocument) -> list[str]:
    """The codes of the enterprises that may declare `doc`, in the standard's order."""
    return [code for name in DECLARANT_FIELDS[type(doc)] if (code := getattr(doc, name, None))]


def refusal(documents: Iterable[AnyDocument], codes: frozenset[str] | None) -> str | None:
    """Why a token acting for `codes` may not submit these documents (None: it may)."""
    if not codes:
        return "this enterprise token acts for no enterprise code; make one with its codes (enterprise_codes)"
    for i, doc in enumerate(documents, start=1):
        theirs = declarants(doc)
        if not codes.intersection(theirs):
            fields, named = "/".join(DECLARANT_FIELDS[type(doc)]), ", ".join(theirs)
            return (
                f"document {i} ({doc.KIND.value} guid {doc.guid}) is declared by {fields} {named},"
                " not an enterprise this token acts for"
            )
    return None


def may_read(key_fields: Mapping[str, str], codes: frozenset[str] | None) -> bool:
    """May a token acting for `codes` read a receipt with these key fields?"""
    return codes is not None and any(key_fields.get(name) in codes for name in RECEIPT_FIELDS)

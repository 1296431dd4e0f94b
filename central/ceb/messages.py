"""How each CEB message lays out its documents, shared by the reader (xml_in) and writer (xml_out).

One table instead of per-message code: a message is
``<CEBnnnMessage guid version><Wrapper><Head/><Row/>…</Wrapper>… <BaseTransfer/> …</CEBnnnMessage>``,
where the wrapper is the head itself for the flat messages (CEB623, and the receipts).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from central.ceb.documents import (
    Cancellation,
    CustomsReceipt,
    DocKind,
    Inventory,
    Order,
    Payment,
    Refund,
    Waybill,
)
from central.ceb.fields import FIELDS

NS = "http://www.chinaport.gov.cn/ceb"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
MAX_DOCUMENTS = 100  # per message (XSD maxOccurs)
MAX_ROWS = 99  # list rows per document (XSD maxOccurs)
# the fields every receipt carries besides its key (they are Receipt's own attributes)
RECEIPT_BODY = ("guid", "returnStatus", "returnTime", "returnInfo")


@dataclass(frozen=True, slots=True)
class Layout:
    """Where one message type keeps its documents, and the model each document becomes."""

    kind: str  # message type, "CEB311"
    wrapper: str  # element holding one document under the root ("Order"); == head when flat
    head: str  # entity (fields.FIELDS key) with the document's own fields
    model: type[BaseModel] | None = None
    rows: str | None = None  # entity of the document's list rows, if it has any
    base_transfer: bool = True  # BaseTransfer block (and the optional trailer) follows the documents
    signed: bool = False  # the XSD requires ds:Signature (we accept it missing: we do not verify)

    @property
    def root(self) -> str:
        return f"{self.kind}Message"

    @property
    def flat(self) -> bool:
        return self.wrapper == self.head

    @property
    def rows_field(self) -> str | None:
        """The model field holding the rows ("orderList"), from the model's own LISTS table."""
        if self.rows is None or self.model is None:
            return None
        lists: dict[str, str] = getattr(self.model, "LISTS", {})
        return next(name for name, entity in lists.items() if entity == self.rows)


DOCUMENT_LAYOUTS: dict[DocKind, Layout] = {
    DocKind.ORDER: Layout("CEB311", "Order", "OrderHead", Order, rows="OrderList"),
    DocKind.PAYMENT: Layout("CEB411", "Payment", "PaymentHead", Payment),
    DocKind.WAYBILL: Layout("CEB511", "Logistics", "LogisticsHead", Waybill),
    DocKind.INVENTORY: Layout(
        "CEB621", "Inventory", "InventoryHead", Inventory, rows="InventoryList", signed=True
    ),
    DocKind.CANCEL: Layout("CEB623", "InvtCancel", "InvtCancel", Cancellation, signed=True),
    DocKind.REFUND: Layout(
        "CEB625", "InvtRefund", "InvtRefundHead", Refund, rows="InvtRefundList", signed=True
    ),
}

# customs' inventory receipts, which central takes in production mode
CUSTOMS_RECEIPT_LAYOUT = Layout(
    "CEB622", "InventoryReturn", "InventoryReturn", CustomsReceipt, base_transfer=False
)

# the receipt message answering each document kind
RECEIPT_LAYOUTS: dict[DocKind, Layout] = {
    DocKind.ORDER: Layout("CEB312", "OrderReturn", "OrderReturn", base_transfer=False),
    DocKind.PAYMENT: Layout("CEB412", "PaymentReturn", "PaymentReturn", base_transfer=False),
    DocKind.WAYBILL: Layout("CEB512", "LogisticsReturn", "LogisticsReturn", base_transfer=False),
    DocKind.INVENTORY: CUSTOMS_RECEIPT_LAYOUT,
    DocKind.CANCEL: Layout("CEB624", "InvtCancelReturn", "InvtCancelReturn", base_transfer=False),
    DocKind.REFUND: Layout("CEB626", "InvtRefundReturn", "InvtRefundReturn", base_transfer=False),
}

# every message type parse_message takes, by its number
INBOUND_LAYOUTS: dict[str, Layout] = {
    **{layout.kind: layout for layout in DOCUMENT_LAYOUTS.values()},
    CUSTOMS_RECEIPT_LAYOUT.kind: CUSTOMS_RECEIPT_LAYOUT,
}


def receipt_keys(kind: DocKind) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(required, optional) key fields a receipt for `kind` carries, in the XSD's order."""
    rules = FIELDS[RECEIPT_LAYOUTS[kind].head]
    keys = [name for name in rules if name not in RECEIPT_BODY]
    return (
        tuple(name for name in keys if rules[name]["required"]),
        tuple(name for name in keys if not rules[name]["required"]),
    )

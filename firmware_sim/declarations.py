"""Simulated enterprises: valid, mutually consistent CEB documents for one parcel's order, payment,
waybill and inventory — what the demo declares and what the tests build on (testkit/factories.py).

Documents are built in their HTTP form, as an enterprise sends them to `POST /api/v1/documents`: a
JSON object per document with its `docType` (CEB311 order, CEB411 payment, CEB511 waybill, CEB621
inventory, CEB623 cancellation, CEB625 return request) and decimals as strings. This module knows
nothing of central's models: a sender reads the standard, not the receiver's code.

Every factory takes `seq`, the parcel number: documents built with the same `seq` pass the
three-document comparison (DESIGN.md §3.2) as they stand, documents with different `seq` share no
business key. Keyword overrides replace fields (so they may set extras such as `note`, or break a
rule on purpose); nothing is validated here — that is central's job.

    s = document_set(1)[0]                  # order, payment, waybill, inventory of parcel 1
    bad = order(1, acturalPaid="1.00")      # same parcel, amount no longer adds up
    other_park = inventory(2, ems_no=OTHER_EMS_NO, area_code=OTHER_AREA_CODE)

Other suites lean on these names and defaults: extend, but do not rename or change values.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

Document = dict[str, Any]
"""One document in its HTTP (JSON) form."""


class DocType(StrEnum):
    """The CEB message numbers of what enterprises declare (and receipts answer)."""

    ORDER = "CEB311"
    PAYMENT = "CEB411"
    WAYBILL = "CEB511"
    INVENTORY = "CEB621"
    CANCEL = "CEB623"
    REFUND = "CEB625"


# parties (codes are up to 18 characters, as the standard allows)
EBP_CODE, EBP_NAME = "4601660001", "海南跨境优选平台有限公司"
EBC_CODE, EBC_NAME = "4601660002", "海南优选电子商务有限公司"
PAY_CODE, PAY_NAME = "4403169D3W", "财付通支付科技有限公司"
LOGISTICS_CODE, LOGISTICS_NAME = "4601980001", "海南速达物流有限公司"
AGENT_CODE, AGENT_NAME = "4601960001", "海口报关服务有限公司"
CUSTOMS_CODE = "6409"  # 海口综保区
# the enterprises these declarations name: a token declaring them all acts for each (as a transfer
# enterprise on a single window does)
ENTERPRISE_CODES = [EBP_CODE, EBC_CODE, PAY_CODE, LOGISTICS_CODE, AGENT_CODE]
# the park: its bonded account book (emsNo) and area code; a second park for multi-park tests
DEFAULT_EMS_NO, DEFAULT_AREA_CODE = "T6409W000001", "4601W60001"
OTHER_EMS_NO, OTHER_AREA_CODE = "T6409W000002", "4601W60002"

BUYER_NAME, BUYER_ID_NUMBER, BUYER_TELEPHONE = "张三", "110101199001011234", "13800000000"
CONSIGNEE, CONSIGNEE_TELEPHONE = "李四", "13900000000"
CONSIGNEE_ADDRESS = "海南省海口市美兰区综保路 1 号"
APP_TIME, PAY_TIME, DECL_TIME = "20240601120000", "20240601115900", "20240601"
FREIGHT, TAX_RATE = Decimal("10.00"), Decimal("0.091")
PACKAGING_KG = Decimal("0.20")
BASE_TRANSFER = {"copCode": EBC_CODE, "copName": EBC_NAME, "dxpMode": "DXP", "dxpId": "DXPENT0000000001"}


@dataclass(frozen=True)
class Item:
    """One goods line, the same on the order row and the inventory row."""

    name: str
    gcode: str  # HS code, 10 digits
    qty: Decimal
    price: Decimal
    net_kg: Decimal  # per unit
    record_no: str  # itemRecordNo in the park's account book
    item_no: str
    unit: str = "011"  # 件
    gmodel: str = "1 件装"
    country: str = "116"  # Japan

    @property
    def total(self) -> Decimal:
        return self.qty * self.price


DEFAULT_ITEMS: tuple[Item, ...] = (
    Item("洗面奶", "3304990099", Decimal("2"), Decimal("59.90"), Decimal("0.150"), "R0001", "SKU-0001"),
    Item("维生素片", "2106909090", Decimal("1"), Decimal("128.00"), Decimal("0.300"), "R0002", "SKU-0002"),
)


# --- keys derived from the parcel number --------------------------------------------------------


def order_no(seq: int) -> str:
    return f"BGORDER{seq:010d}"


def logistics_no(seq: int) -> str:
    return f"BGL{seq:012d}"


def pay_transaction_id(seq: int) -> str:
    return f"PAY{seq:014d}"


def cop_no(seq: int) -> str:
    return f"BGCOP{seq:010d}"


def pre_no(seq: int) -> str:
    """Customs' 18-character pre-entry number for the parcel's inventory."""
    return f"B2024{seq:013d}"


def invt_no(seq: int) -> str:
    """Customs' 18-character inventory number for the parcel."""
    return f"{CUSTOMS_CODE}2024I{seq:09d}"


def guid(kind: str, seq: int) -> str:
    """Parcel `seq`'s document guid: stable (reruns give the same XML), 36 characters, upper case."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"bondgate-test/{kind}/{seq}")).upper()


def amounts(items: Sequence[Item] = DEFAULT_ITEMS) -> dict[str, Decimal]:
    """The order's money fields; acturalPaid = goodsValue + freight + taxTotal - discount."""
    goods = sum((item.total for item in items), Decimal("0"))
    tax = (goods * TAX_RATE).quantize(Decimal("0.01"))
    discount = Decimal("0.00")
    return {
        "goodsValue": goods,
        "freight": FREIGHT,
        "discount": discount,
        "taxTotal": tax,
        "acturalPaid": goods + FREIGHT + tax - discount,
    }


def weights(items: Sequence[Item] = DEFAULT_ITEMS) -> tuple[Decimal, Decimal]:
    """(grossWeight, netWeight) in kg: goods plus packaging, so net <= gross."""
    net = sum((item.qty * item.net_kg for item in items), Decimal("0"))
    return net + PACKAGING_KG, net


# --- documents ----------------------------------------------------------------------------------


def order(seq: int = 1, *, items: Sequence[Item] = DEFAULT_ITEMS, **overrides: Any) -> Document:
    rows = [
        {
            "gnum": gnum,
            "itemNo": item.item_no,
            "itemName": item.name,
            "gmodel": item.gmodel,
            "unit": item.unit,
            "qty": item.qty,
            "price": item.price,
            "totalPrice": item.total,
            "currency": "142",
            "country": item.country,
        }
        for gnum, item in enumerate(items, start=1)
    ]
    data: dict[str, Any] = {
        "guid": guid(DocType.ORDER, seq),
        "appTime": APP_TIME,
        "orderType": "I",
        "orderNo": order_no(seq),
        "ebpCode": EBP_CODE,
        "ebpName": EBP_NAME,
        "ebcCode": EBC_CODE,
        "ebcName": EBC_NAME,
        **amounts(items),
        "currency": "142",
        "buyerRegNo": f"BUYER{seq:08d}",
        "buyerName": BUYER_NAME,
        "buyerTelephone": BUYER_TELEPHONE,
        "buyerIdType": "1",
        "buyerIdNumber": BUYER_ID_NUMBER,
        "payCode": PAY_CODE,
        "payName": PAY_NAME,
        "payTransactionId": pay_transaction_id(seq),
        "consignee": CONSIGNEE,
        "consigneeTelephone": CONSIGNEE_TELEPHONE,
        "consigneeAddress": CONSIGNEE_ADDRESS,
        "orderList": rows,
    }
    return _document(DocType.ORDER, data, overrides)


def payment(seq: int = 1, *, items: Sequence[Item] = DEFAULT_ITEMS, **overrides: Any) -> Document:
    data: dict[str, Any] = {
        "guid": guid(DocType.PAYMENT, seq),
        "appTime": APP_TIME,
        "payCode": PAY_CODE,
        "payName": PAY_NAME,
        "payTransactionId": pay_transaction_id(seq),
        "orderNo": order_no(seq),
        "ebpCode": EBP_CODE,
        "ebpName": EBP_NAME,
        "payerIdType": "1",
        "payerIdNumber": BUYER_ID_NUMBER,
        "payerName": BUYER_NAME,
        "amountPaid": amounts(items)["acturalPaid"],
        "currency": "142",
        "payTime": PAY_TIME,
    }
    return _document(DocType.PAYMENT, data, overrides)


def waybill(seq: int = 1, *, items: Sequence[Item] = DEFAULT_ITEMS, **overrides: Any) -> Document:
    gross, _net = weights(items)
    data: dict[str, Any] = {
        "guid": guid(DocType.WAYBILL, seq),
        "appTime": APP_TIME,
        "logisticsCode": LOGISTICS_CODE,
        "logisticsName": LOGISTICS_NAME,
        "logisticsNo": logistics_no(seq),
        "orderNo": order_no(seq),
        "freight": FREIGHT,
        "insuredFee": Decimal("0"),
        "currency": "142",
        "weight": gross,
        "packNo": 1,
        "goodsInfo": "、".join(item.name for item in items)[:200],
        "consignee": CONSIGNEE,
        "consigneeAddress": CONSIGNEE_ADDRESS,
        "consigneeTelephone": CONSIGNEE_TELEPHONE,
    }
    return _document(DocType.WAYBILL, data, overrides)


def inventory(
    seq: int = 1,
    *,
    ems_no: str = DEFAULT_EMS_NO,
    area_code: str = DEFAULT_AREA_CODE,
    items: Sequence[Item] = DEFAULT_ITEMS,
    **overrides: Any,
) -> Document:
    """The parcel's 1210 (bonded import) inventory, in the park whose account book is `ems_no`."""
    gross, net = weights(items)
    rows = [
        {
            "gnum": gnum,
            "itemRecordNo": item.record_no,
            "itemNo": item.item_no,
            "itemName": item.name,
            "gcode": item.gcode,
            "gname": item.name,
            "gmodel": item.gmodel,
            "country": item.country,
            "currency": "142",
            "qty": item.qty,
            "unit": item.unit,
            "qty1": item.qty,
            "unit1": item.unit,
            "price": item.price,
            "totalPrice": item.total,
        }
        for gnum, item in enumerate(items, start=1)
    ]
    data: dict[str, Any] = {
        "guid": guid(DocType.INVENTORY, seq),
        "appTime": APP_TIME,
        **_parcel_keys(seq),
        "copNo": cop_no(seq),
        "assureCode": EBC_CODE,
        "emsNo": ems_no,
        "ieFlag": "I",
        "declTime": DECL_TIME,
        "customsCode": CUSTOMS_CODE,
        "portCode": CUSTOMS_CODE,
        "buyerIdType": "1",
        "buyerIdNumber": BUYER_ID_NUMBER,
        "buyerName": BUYER_NAME,
        "buyerTelephone": BUYER_TELEPHONE,
        "consigneeAddress": CONSIGNEE_ADDRESS,
        "agentCode": AGENT_CODE,
        "agentName": AGENT_NAME,
        "areaCode": area_code,
        "tradeMode": "1210",
        "trafMode": "4",  # road
        "country": "116",
        "freight": FREIGHT,
        "insuredFee": Decimal("0"),
        "currency": "142",
        "packNo": 1,
        "grossWeight": gross,
        "netWeight": net,
        "inventoryList": rows,
    }
    return _document(DocType.INVENTORY, data, overrides)


def cancellation(seq: int = 1, **overrides: Any) -> Document:
    """A CEB623 asking customs to cancel parcel `seq`'s inventory (after it got its invtNo)."""
    data = {"guid": guid(DocType.CANCEL, seq), **_request_fields(seq), "reason": "买家取消订单"}
    return _document(DocType.CANCEL, data, overrides)


def refund(seq: int = 1, *, items: Sequence[Item] = DEFAULT_ITEMS, **overrides: Any) -> Document:
    """A CEB625 return request for every line of parcel `seq`."""
    rows = [
        {"gnum": gnum, "gcode": item.gcode, "gname": item.name, "qty": item.qty, "unit": item.unit}
        for gnum, item in enumerate(items, start=1)
    ]
    data = {
        "guid": guid(DocType.REFUND, seq),
        **_request_fields(seq),
        "reason": "七天无理由退货",
        "invtRefundList": rows,
    }
    return _document(DocType.REFUND, data, overrides)


@dataclass(frozen=True)
class DocumentSet:
    """One parcel's four documents, consistent with each other."""

    order: Document
    payment: Document
    waybill: Document
    inventory: Document

    @property
    def documents(self) -> tuple[Document, Document, Document, Document]:
        return (self.order, self.payment, self.waybill, self.inventory)


def document_set(
    n: int = 1,
    *,
    start: int = 1,
    ems_no: str = DEFAULT_EMS_NO,
    area_code: str = DEFAULT_AREA_CODE,
    items: Sequence[Item] = DEFAULT_ITEMS,
) -> list[DocumentSet]:
    """`n` parcels (numbers start, start+1, …), each a consistent set, no keys shared between them."""
    return [
        DocumentSet(
            order=order(seq, items=items),
            payment=payment(seq, items=items),
            waybill=waybill(seq, items=items),
            inventory=inventory(seq, ems_no=ems_no, area_code=area_code, items=items),
        )
        for seq in range(start, start + n)
    ]


def receipt(kind: str, seq: int = 1, **overrides: Any) -> Document:
    """A receipt answering parcel `seq`'s document of `kind` (status 120, accepted, by default)."""
    keys: dict[str, dict[str, str]] = {
        DocType.ORDER.value: {"ebpCode": EBP_CODE, "ebcCode": EBC_CODE, "orderNo": order_no(seq)},
        DocType.PAYMENT.value: {"payCode": PAY_CODE, "payTransactionId": pay_transaction_id(seq)},
        DocType.WAYBILL.value: {"logisticsCode": LOGISTICS_CODE, "logisticsNo": logistics_no(seq)},
    }
    customs_keys = {
        "customsCode": CUSTOMS_CODE,
        "ebpCode": EBP_CODE,
        "ebcCode": EBC_CODE,
        "agentCode": AGENT_CODE,
        "copNo": cop_no(seq),
        "preNo": pre_no(seq),
        "invtNo": invt_no(seq),
    }
    data: dict[str, Any] = {
        "kind": str(kind),
        "guid": guid(kind, seq),  # the answered document's guid
        "key": keys.get(str(kind), customs_keys),
        "returnStatus": "120",
        "returnTime": APP_TIME + "000",
        "returnInfo": "新增申报成功",
    }
    return _json_form({**data, **overrides})


def _parcel_keys(seq: int) -> dict[str, str]:
    return {
        "orderNo": order_no(seq),
        "ebpCode": EBP_CODE,
        "ebpName": EBP_NAME,
        "ebcCode": EBC_CODE,
        "ebcName": EBC_NAME,
        "logisticsNo": logistics_no(seq),
        "logisticsCode": LOGISTICS_CODE,
        "logisticsName": LOGISTICS_NAME,
    }


def _request_fields(seq: int) -> dict[str, Any]:
    """Fields a cancellation and a return request share: the inventory they refer to."""
    return {
        "appTime": APP_TIME,
        "customsCode": CUSTOMS_CODE,
        **_parcel_keys(seq),
        "copNo": cop_no(seq),
        "invtNo": invt_no(seq),
        "buyerIdType": "1",
        "buyerIdNumber": BUYER_ID_NUMBER,
        "buyerName": BUYER_NAME,
        "buyerTelephone": BUYER_TELEPHONE,
        "agentCode": AGENT_CODE,
        "agentName": AGENT_NAME,
    }


def _document(doc_type: DocType, data: Document, overrides: dict[str, Any]) -> Document:
    return _json_form({"docType": doc_type.value, **data, **overrides})


def _json_form(value: Any) -> Any:
    """`value` as JSON carries it: decimals as strings in plain notation (exact), lists and objects
    copied."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {str(k): _json_form(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_form(v) for v in value]
    return value

"""xml_out: receipts and document messages that the official XSD accepts and intake reads back."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from pydantic import BaseModel

from central.ceb.documents import DocKind
from central.ceb.fields import FIELDS
from central.ceb.messages import DOCUMENT_LAYOUTS, NS, RECEIPT_LAYOUTS
from central.ceb.xml_in import parse_message
from central.ceb.xml_out import message_xml, receipts_xml
from testkit import factories

BUILDERS: dict[DocKind, Callable[..., BaseModel]] = {
    DocKind.ORDER: factories.order,
    DocKind.PAYMENT: factories.payment,
    DocKind.WAYBILL: factories.waybill,
    DocKind.INVENTORY: factories.inventory,
    DocKind.CANCEL: factories.cancellation,
    DocKind.REFUND: factories.refund,
}
# official optional fields a model keeps as extras, one per kind, to prove they travel
EXTRAS: dict[DocKind, dict[str, Any]] = {
    DocKind.ORDER: {"batchNumbers": "B1", "consigneeDistrict": "460108", "note": "备注"},
    DocKind.PAYMENT: {"telephone": "13800000000"},
    DocKind.WAYBILL: {"note": "易碎"},
    DocKind.INVENTORY: {"ieDate": "20240602", "areaName": "海口综保区", "wrapType": "2"},
    DocKind.CANCEL: {"preNo": "B20240000000000001", "note": "n"},
    DocKind.REFUND: {"note": "n"},
}


def documents(kind: DocKind, n: int = 2, **extras: Any) -> list[BaseModel]:
    return [BUILDERS[kind](seq, **extras) for seq in range(1, n + 1)]


def local_names(el: etree._Element) -> list[str]:
    return [etree.QName(child).localname for child in el]


# --- receipts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(DocKind))
def test_receipts_validate_against_the_xsd(xsd: etree.XMLSchema, kind: DocKind) -> None:
    xml = receipts_xml(kind, [factories.receipt(kind, 1), factories.receipt(kind, 2, returnStatus="100")])
    root = etree.fromstring(xml)
    assert xsd.validate(root), xsd.error_log
    assert etree.QName(root).localname == f"{RECEIPT_LAYOUTS[kind].kind}Message"
    assert len(root) == 2


@pytest.mark.parametrize("kind", list(DocKind))
def test_receipts_carry_key_and_body_in_xsd_order(kind: DocKind) -> None:
    receipt = factories.receipt(kind, 3)
    root = etree.fromstring(receipts_xml(kind, [receipt]))
    element = root[0]
    entity = RECEIPT_LAYOUTS[kind].head
    assert etree.QName(element).localname == entity
    assert local_names(element) == [
        name for name in FIELDS[entity] if name in {*receipt.key, "guid"} or name.startswith("return")
    ]
    assert element.findtext(f"{{{NS}}}guid") == receipt.guid
    assert element.findtext(f"{{{NS}}}returnTime") == receipt.returnTime


def test_receipt_root_attributes() -> None:
    root = etree.fromstring(receipts_xml(DocKind.ORDER, [factories.receipt(DocKind.ORDER)]))
    assert re.fullmatch(
        r"[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}", root.get("guid", "")
    )
    assert root.get("version") == "1.0"
    assert root.nsmap == {None: NS}


def test_inventory_receipt_with_only_required_keys(xsd: etree.XMLSchema) -> None:
    receipt = factories.receipt(DocKind.INVENTORY, key={"copNo": "C1", "preNo": factories.pre_no(1)})
    assert xsd.validate(etree.fromstring(receipts_xml(DocKind.INVENTORY, [receipt])))


def test_keys_the_element_lacks_are_left_out() -> None:
    key = {"copNo": "C1", "preNo": factories.pre_no(1), "orderNo": "O1", "logisticsNo": "L1", "invtNo": ""}
    receipt = factories.receipt(DocKind.INVENTORY, key=key)
    names = local_names(etree.fromstring(receipts_xml(DocKind.INVENTORY, [receipt]))[0])
    assert "orderNo" not in names and "logisticsNo" not in names and "invtNo" not in names


@pytest.mark.parametrize(
    ("kind", "key", "message"),
    [
        (DocKind.ORDER, {"ebpCode": "E", "orderNo": "O"}, "receipt[1]: OrderReturn needs key ebcCode"),
        (DocKind.PAYMENT, {}, "receipt[1]: PaymentReturn needs key payCode, payTransactionId"),
        (DocKind.INVENTORY, {"copNo": "C", "preNo": ""}, "receipt[1]: InventoryReturn needs key preNo"),
        (
            DocKind.INVENTORY,
            {"copNo": "C", "preNo": "SHORT"},
            "receipt[1]: InventoryReturn.preNo: length 5, the standard requires exactly 18",
        ),
    ],
)
def test_receipt_key_problems_raise(kind: DocKind, key: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        receipts_xml(kind, [factories.receipt(kind, key=key)])


def test_receipt_of_another_kind_raises() -> None:
    with pytest.raises(ValueError, match="receipt\\[2\\]: answers a CEB411 document, not CEB311"):
        receipts_xml(DocKind.ORDER, [factories.receipt(DocKind.ORDER), factories.receipt(DocKind.PAYMENT)])


@pytest.mark.parametrize("count", [0, 101])
def test_receipt_count_bounds(count: int) -> None:
    with pytest.raises(ValueError, match=f"{count} CEB312Message receipts: a message carries 1 to 100"):
        receipts_xml(DocKind.ORDER, [factories.receipt(DocKind.ORDER)] * count)


def test_receipt_body_rules_are_checked() -> None:
    with pytest.raises(ValueError, match=re.escape("OrderReturn.returnInfo: required field is missing")):
        receipts_xml(DocKind.ORDER, [factories.receipt(DocKind.ORDER, returnInfo="")])


# --- documents ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(DocKind))
def test_documents_validate_against_the_xsd(xsd: etree.XMLSchema, signature: bytes, kind: DocKind) -> None:
    root = etree.fromstring(message_xml(kind, documents(kind, **EXTRAS[kind]), factories.BASE_TRANSFER))
    if DOCUMENT_LAYOUTS[kind].signed:
        assert not xsd.validate(root), "the XSD requires ds:Signature here"
        root.append(etree.fromstring(signature))
    assert xsd.validate(root), xsd.error_log


@pytest.mark.parametrize("kind", list(DocKind))
def test_round_trip(kind: DocKind) -> None:
    docs = documents(kind, 3, **EXTRAS[kind])
    message = parse_message(message_xml(kind, docs, factories.BASE_TRANSFER))
    assert message.kind == kind.value
    assert message.documents == docs
    assert message.base_transfer == factories.BASE_TRANSFER
    assert not message.signed


def test_a_full_parcel_set_round_trips() -> None:
    for parcel in factories.document_set(3):
        for doc in parcel.documents:
            assert parse_message(message_xml(doc.KIND, [doc], factories.BASE_TRANSFER)).documents == [doc]


def test_fields_come_out_in_xsd_order_with_extras_in_place() -> None:
    doc = factories.order(1, note="n", batchNumbers="b", consigneeDistrict="460108")
    root = etree.fromstring(message_xml(DocKind.ORDER, [doc], factories.BASE_TRANSFER))
    head = root.find(f"{{{NS}}}Order/{{{NS}}}OrderHead")
    assert head is not None
    names = local_names(head)
    assert names == [name for name in FIELDS["OrderHead"] if name in names]
    assert names[names.index("payTransactionId") + 1] == "batchNumbers"
    assert names[-2:] == ["consigneeDistrict", "note"]
    assert root.nsmap == {"ceb": NS}


def test_decimals_are_plain_notation() -> None:
    doc = factories.waybill(1, weight=Decimal("1E+1"), freight=Decimal("0.10"), insuredFee=Decimal("0E-5"))
    head = etree.fromstring(message_xml(DocKind.WAYBILL, [doc], factories.BASE_TRANSFER)).find(
        f"{{{NS}}}Logistics/{{{NS}}}LogisticsHead"
    )
    assert head is not None
    assert head.findtext(f"{{{NS}}}weight") == "10"
    assert head.findtext(f"{{{NS}}}freight") == "0.10"
    assert head.findtext(f"{{{NS}}}insuredFee") == "0.00000"


def test_given_guid_is_used() -> None:
    guid = "0" * 8 + "-0000-4000-8000-" + "0" * 12
    root = etree.fromstring(
        message_xml(DocKind.PAYMENT, [factories.payment()], factories.BASE_TRANSFER, guid=guid)
    )
    assert root.get("guid") == guid
    with pytest.raises(ValueError, match="is not 36 characters"):
        message_xml(DocKind.PAYMENT, [factories.payment()], factories.BASE_TRANSFER, guid="short")


def test_document_of_another_kind_raises() -> None:
    with pytest.raises(ValueError, match=re.escape("Order[2]: a Payment cannot go in a CEB311Message")):
        message_xml(DocKind.ORDER, [factories.order(), factories.payment()], factories.BASE_TRANSFER)


def test_unknown_extra_field_raises() -> None:
    with pytest.raises(ValueError, match=re.escape("Payment[1]: PaymentHead has no field nickname")):
        message_xml(DocKind.PAYMENT, [factories.payment(nickname="x")], factories.BASE_TRANSFER)


@pytest.mark.parametrize("count", [0, 101])
def test_document_count_bounds(count: int) -> None:
    with pytest.raises(ValueError, match="a message carries 1 to 100"):
        message_xml(DocKind.PAYMENT, [factories.payment()] * count, factories.BASE_TRANSFER)


def test_base_transfer_is_checked() -> None:
    with pytest.raises(ValueError, match=re.escape("BaseTransfer.copCode: required field is missing")):
        message_xml(DocKind.PAYMENT, [factories.payment()], {**factories.BASE_TRANSFER, "copCode": ""})
    with pytest.raises(ValueError, match="BaseTransfer: unknown field extra"):
        message_xml(DocKind.PAYMENT, [factories.payment()], {**factories.BASE_TRANSFER, "extra": "x"})


# text the XML can carry and the model keeps as is (XML 1.0 has no control characters; \r becomes \n)
SAFE_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp", "Co", "Cn")),
    min_size=1,
    max_size=60,
).filter(lambda s: s.strip() == s and s != "")
MONEY = st.decimals(min_value=0, max_value=Decimal("99999999999999.99999"), places=5, allow_nan=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(buyer=SAFE_TEXT, address=SAFE_TEXT, goods=MONEY, price=MONEY, item=SAFE_TEXT)
def test_round_trip_any_text_and_money(
    buyer: str, address: str, goods: Decimal, price: Decimal, item: str
) -> None:
    doc = factories.order(
        1,
        buyerName=buyer,
        consigneeAddress=address,
        goodsValue=goods,
        orderList=[{**factories.order(1).orderList[0].model_dump(), "price": price, "itemName": item}],
    )
    assert parse_message(message_xml(DocKind.ORDER, [doc], factories.BASE_TRANSFER)).documents == [doc]

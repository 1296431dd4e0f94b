"""parse_message: structure, namespaces and field rules, each refusal with its code and exact reason."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from lxml import etree

from central.ceb.documents import CustomsReceipt, DocKind, Order
from central.ceb.errors import MAX_LISTED
from central.ceb.messages import DS_NS
from central.ceb.xml_in import CebError, ErrorCode, parse_message
from central.ceb.xml_out import message_xml, receipts_xml
from testkit import factories
from tests.central.ceb.xmledit import ceb, edit, find, remove, set_text


def orders_xml(n: int = 3) -> bytes:
    return message_xml(
        DocKind.ORDER, [factories.order(seq) for seq in range(1, n + 1)], factories.BASE_TRANSFER
    )


def refused(data: bytes) -> CebError:
    with pytest.raises(CebError) as caught:
        parse_message(data)
    return caught.value


def test_accepts_prefixed_and_default_namespace_forms() -> None:
    prefixed = orders_xml(2)
    default = re.sub(rb"(</?)ceb:", rb"\1", prefixed).replace(b"xmlns:ceb=", b"xmlns=")
    assert b"ceb:" not in default
    assert parse_message(prefixed).documents == parse_message(default).documents


def test_accepts_comments_bom_and_other_prefixes() -> None:
    xml = orders_xml(1).replace(b"ceb:", b"x:").replace(b"xmlns:ceb=", b"xmlns:x=")
    xml = xml.replace(b"<x:OrderHead>", b"<!-- head --><x:OrderHead><?pi data?>")
    assert parse_message(b"\xef\xbb\xbf" + xml).documents == [factories.order(1)]


def test_declared_fields_and_official_extras() -> None:
    doc = factories.order(1, batchNumbers="B7")
    parsed = parse_message(message_xml(DocKind.ORDER, [doc], factories.BASE_TRANSFER)).documents[0]
    assert isinstance(parsed, Order)
    assert parsed.model_extra == {"batchNumbers": "B7"}
    assert parsed.goodsValue == Decimal("247.80")


def test_customs_receipts_become_customs_receipt_models() -> None:
    receipts = [factories.receipt(DocKind.INVENTORY, seq, returnStatus="800") for seq in (1, 2)]
    message = parse_message(receipts_xml(DocKind.INVENTORY, receipts))
    assert message.kind == "CEB622" and message.documents == []
    assert all(isinstance(r, CustomsReceipt) for r in message.receipts)
    assert [(r.preNo, r.returnStatus) for r in message.receipts] == [
        (factories.pre_no(1), "800"),
        (factories.pre_no(2), "800"),
    ]


def test_signature_and_optional_trailer_are_accepted(signature: bytes) -> None:
    def add_trailer(root: etree._Element) -> None:
        subscribe = ceb("BaseSubscribe")
        subscribe.extend([ceb("status", "all"), ceb("dxpMode", "DXP"), ceb("dxpAddress", "DXPENT0001")])
        root.append(subscribe)
        root.append(etree.fromstring(signature))

    message = parse_message(edit(orders_xml(1), add_trailer))
    assert message.signed


# --- root ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "value", "code", "reason"),
    [
        ("guid", None, "structure", "CEB311Message: required attribute guid is missing"),
        ("version", None, "structure", "CEB311Message: required attribute version is missing"),
        ("guid", "A" * 35, "field_rules", "CEB311Message@guid: length 35, the standard requires exactly 36"),
        ("version", "", "field_rules", "CEB311Message@version: length 0, the standard allows 1 to 10"),
    ],
)
def test_root_attributes(attribute: str, value: str | None, code: str, reason: str) -> None:
    def change(root: etree._Element) -> None:
        if value is None:
            del root.attrib[attribute]
        else:
            root.set(attribute, value)

    error = refused(edit(orders_xml(1), change))
    assert (error.code, error.reason) == (code, reason)


def test_unsupported_and_foreign_roots() -> None:
    error = refused(b'<ceb:Foo xmlns:ceb="http://www.chinaport.gov.cn/ceb" guid="x" version="1"/>')
    assert (error.code, error.reason) == ("unsupported_message", "root element <Foo> is not a CEB message")
    error = refused(b'<CEB311Message xmlns="urn:other"/>')
    assert error.code == "namespace"
    assert error.reason == (
        "root element <CEB311Message> is in namespace urn:other; CEB messages use http://www.chinaport.gov.cn/ceb"
    )


# --- structure ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (remove("//ceb:BaseTransfer"), "CEB311Message: required element <BaseTransfer> is missing"),
        (
            lambda root: [
                root.remove(el) for el in root.xpath("//ceb:Order", namespaces={"ceb": root.nsmap["ceb"]})
            ],
            "CEB311Message: expected <Order>, found <BaseTransfer>",
        ),
        (remove("//ceb:Order[2]/ceb:OrderHead"), "Order[2]: expected <OrderHead>, found <OrderList>"),
        (remove("//ceb:Order[1]/ceb:OrderList[2]/preceding-sibling::ceb:OrderList"), None),
        (
            lambda root: find(root, "//ceb:Order[3]/ceb:OrderHead").append(ceb("foo", "x")),
            "Order[3] OrderHead: unknown element <foo>",
        ),
        (
            lambda root: find(root, "//ceb:Order[1]/ceb:OrderHead").insert(6, ceb("orderNo", "again")),
            "Order[1] OrderHead: element <orderNo> is repeated",
        ),
        (
            lambda root: find(root, "//ceb:Order[1]/ceb:OrderHead").append(ceb("guid", "late")),
            "Order[1] OrderHead: element <guid> is repeated",
        ),
        (
            lambda root: find(root, "//ceb:Order[1]/ceb:OrderHead/ceb:orderNo").addnext(
                find(root, "//ceb:Order[1]/ceb:OrderHead/ceb:orderType")
            ),
            "Order[1] OrderHead: element <orderType> is out of order, the standard puts it before <orderNo>",
        ),
        (
            lambda root: find(root, "//ceb:Order[1]/ceb:OrderList[2]/ceb:qty").append(ceb("x")),
            "Order[1] OrderList[2]: element <qty> must hold text, not elements",
        ),
        (
            lambda root: setattr(find(root, "//ceb:Order[2]/ceb:OrderHead"), "tail", "stray"),
            "Order[2]: unexpected text 'stray'",
        ),
        (
            lambda root: find(root, "//ceb:BaseTransfer").addnext(ceb("Order")),
            "CEB311Message: unexpected element <Order>",
        ),
        (
            lambda root: find(root, "//ceb:BaseTransfer").addnext(ceb("BaseTransfer")),
            "CEB311Message: more than 1 <BaseTransfer>",
        ),
        (
            lambda root: find(root, "//ceb:Order[1]").append(ceb("InventoryList")),
            "Order[1]: unexpected element <InventoryList>",
        ),
    ],
)
def test_structure_refusals(change: object, reason: str | None) -> None:
    data = edit(orders_xml(3), change)  # type: ignore[arg-type]
    if reason is None:  # removing one of two rows is still a valid message
        assert len(parse_message(data).documents) == 3
        return
    error = refused(data)
    assert (error.code, error.reason) == ("structure", reason)


def test_signature_before_base_transfer_is_out_of_place(signature: bytes) -> None:
    data = edit(
        orders_xml(1), lambda root: find(root, "//ceb:BaseTransfer").addprevious(etree.fromstring(signature))
    )
    error = refused(data)
    assert (error.code, error.reason) == (
        "structure",
        "CEB311Message: expected <BaseTransfer>, found <ds:Signature>",
    )
    assert DS_NS in data.decode()


def test_rows_are_bounded_at_99() -> None:
    row = factories.order(1).orderList[0].model_dump()
    doc = factories.order(1, orderList=[{**row, "gnum": i} for i in range(1, 101)])
    with pytest.raises(ValueError, match="100 OrderList rows, the standard allows 1 to 99"):
        message_xml(DocKind.ORDER, [doc], factories.BASE_TRANSFER)

    def add_row(root: etree._Element) -> None:
        order = find(root, "//ceb:Order")
        template = find(root, "//ceb:OrderList")
        for _ in range(98):
            order.append(etree.fromstring(etree.tostring(template)))

    error = refused(edit(orders_xml(1), add_row))
    assert (error.code, error.reason) == ("structure", "Order[1]: more than 99 <OrderList>")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda root: find(root, "//ceb:OrderHead").append(etree.Element("{urn:x}orderNo")),
            "Order[1] OrderHead: element <orderNo> is in namespace urn:x, not http://www.chinaport.gov.cn/ceb",
        ),
        (
            lambda root: find(root, "//ceb:Order").insert(0, etree.Element("OrderHead")),
            "Order[1]: element <OrderHead> has no namespace, not http://www.chinaport.gov.cn/ceb",
        ),
        (
            lambda root: find(root, "//ceb:BaseTransfer").addnext(
                etree.Element("{http://www.w3.org/2001/XInclude}include", href="file:///etc/passwd")
            ),
            "CEB311Message: element <include> is in namespace http://www.w3.org/2001/XInclude, "
            "not http://www.chinaport.gov.cn/ceb",
        ),
    ],
)
def test_foreign_elements_are_namespace_errors(change: object, reason: str) -> None:
    error = refused(edit(orders_xml(1), change))  # type: ignore[arg-type]
    assert (error.code, error.reason) == ("namespace", reason)


# --- field rules --------------------------------------------------------------------------------


def test_field_problems_of_all_documents_come_together() -> None:
    data = edit(
        orders_xml(3),
        lambda root: [
            set_text("//ceb:Order[2]/ceb:OrderHead/ceb:orderNo", "")(root),
            set_text("//ceb:Order[3]/ceb:OrderList[2]/ceb:qty", "1.123456")(root),
            set_text("//ceb:Order[3]/ceb:OrderHead/ceb:appType", "9")(root),
            set_text("//ceb:BaseTransfer/ceb:dxpMode", "DX")(root),
        ],
    )
    error = refused(data)
    assert error.code == ErrorCode.FIELD_RULES
    assert error.problems == (
        "Order[2] OrderHead.orderNo: required field is missing",
        "Order[3] OrderHead.appType: '9' is not 1 (new), 2 (change) or 3 (delete)",
        "Order[3] OrderList[2].qty: 1.123456 has more than 5 decimal places",
        "BaseTransfer.dxpMode: length 2, the standard requires exactly 3",
    )
    assert error.reason == "; ".join(error.problems)
    assert str(error) == error.reason


def test_missing_required_element_is_a_field_rule() -> None:
    error = refused(edit(orders_xml(2), remove("//ceb:Order[2]/ceb:OrderHead/ceb:orderNo")))
    assert (error.code, error.reason) == (
        "field_rules",
        "Order[2] OrderHead.orderNo: required field is missing",
    )


def test_flat_documents_are_named_by_their_element() -> None:
    data = message_xml(
        DocKind.CANCEL, [factories.cancellation(1), factories.cancellation(2)], factories.BASE_TRANSFER
    )
    error = refused(edit(data, set_text("//ceb:InvtCancel[2]/ceb:reason", " ")))
    assert error.reason == "InvtCancel[2] InvtCancel.reason: required field is missing"


def test_what_the_models_still_refuse_is_a_field_rule_too() -> None:
    """N19,5 leaves 14 digits before the point; the XSD's totalDigits alone would allow 19."""
    error = refused(edit(orders_xml(2), set_text("//ceb:Order[2]/ceb:OrderHead/ceb:goodsValue", "1" * 15)))
    assert error.code == "field_rules"
    assert error.reason == (
        "Order[2] OrderHead.goodsValue: "
        "Decimal input should have no more than 14 digits before the decimal point"
    )


def test_long_problem_lists_are_cut_in_the_reason_but_kept_whole() -> None:
    def break_all(root: etree._Element) -> None:
        for el in root.xpath("//ceb:OrderList/ceb:qty", namespaces={"ceb": root.nsmap["ceb"]}):
            el.text = "x"

    error = refused(edit(orders_xml(40), break_all))
    assert len(error.problems) == 80
    assert error.reason.endswith(f"; and {80 - MAX_LISTED} more")


def test_all_or_nothing() -> None:
    """One bad document refuses the whole message: there is no partial result to act on."""
    data = edit(orders_xml(100), set_text("//ceb:Order[100]/ceb:OrderHead/ceb:currency", "CNY1"))
    error = refused(data)
    assert error.reason == "Order[100] OrderHead.currency: length 4, the standard requires exactly 3"


def test_str_input_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="parse_message takes bytes, not str"):
        parse_message(orders_xml(1).decode())  # type: ignore[arg-type]


def test_model_findings_name_the_row() -> None:
    error = refused(edit(orders_xml(1), set_text("//ceb:Order[1]/ceb:OrderList[2]/ceb:qty", "9" * 15)))
    assert error.reason == (
        "Order[1] OrderList[2].qty: Decimal input should have no more than 14 digits before the decimal point"
    )


def test_hostile_names_are_clipped_in_reasons() -> None:
    name = "x" * 5000
    error = refused(edit(orders_xml(1), lambda root: find(root, "//ceb:OrderHead").append(ceb(name))))
    assert error.reason == f"Order[1] OrderHead: unknown element <{'x' * 40}…>"


def test_layouts_agree_with_the_models() -> None:
    """The reader checks fields itself and tells the models not to: both must mean the same entities."""
    from central.ceb.messages import INBOUND_LAYOUTS

    for layout in INBOUND_LAYOUTS.values():
        assert layout.model is not None
        assert layout.head == getattr(layout.model, "ENTITY", None)
        lists = getattr(layout.model, "LISTS", {})
        assert lists == ({layout.rows_field: layout.rows} if layout.rows else {})

"""field_check: the standard's field rules, identical for XML and JSON intake."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central.ceb.field_check import check_fields, check_value
from central.ceb.fields import FIELDS
from testkit import factories


def order_head(**changes: object) -> dict[str, object]:
    head = factories.order().model_dump(exclude={"orderList", "docType"})
    head.update(changes)
    return head


def test_a_valid_head_has_no_problems() -> None:
    assert check_fields("OrderHead", order_head()) == []


@pytest.mark.parametrize("empty", [None, "", "   "])
def test_required_field_missing_or_empty(empty: object) -> None:
    assert check_fields("OrderHead", order_head(orderNo=empty)) == [
        "OrderHead.orderNo: required field is missing"
    ]


def test_optional_field_may_be_absent() -> None:
    assert check_fields("OrderHead", order_head(payCode=None, note="")) == []


def test_every_problem_is_listed() -> None:
    problems = check_fields("OrderHead", order_head(orderNo=None, currency="RMB1", buyerIdType="12"))
    assert problems == [
        "OrderHead.orderNo: required field is missing",
        "OrderHead.currency: length 4, the standard requires exactly 3",
        "OrderHead.buyerIdType: length 2, the standard requires exactly 1",
    ]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("orderNo", "x" * 61, "OrderHead.orderNo: length 61 exceeds the maximum 60"),
        ("guid", "A" * 35, "OrderHead.guid: length 35, the standard requires exactly 36"),
        (
            "consigneeDistrict",
            "12345",
            "OrderHead.consigneeDistrict: length 5, the standard requires exactly 6",
        ),
    ],
)
def test_lengths(field: str, value: str, reason: str) -> None:
    assert check_value("OrderHead", field, value) == reason


def test_length_counts_characters_not_bytes() -> None:
    assert check_value("OrderHead", "buyerName", "张" * 60) is None
    assert (
        check_value("OrderHead", "buyerName", "张" * 61)
        == "OrderHead.buyerName: length 61 exceeds the maximum 60"
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1.123456", "OrderHead.goodsValue: 1.123456 has more than 5 decimal places"),
        (Decimal("0.000001"), "OrderHead.goodsValue: 0.000001 has more than 5 decimal places"),
        ("12345678901234567890", "OrderHead.goodsValue: 12345678901234567890 has more than 19 digits"),
        ("abc", "OrderHead.goodsValue: 'abc' is not a decimal number"),
        # Python's Decimal() takes these; the XSD does not
        ("1e5", "OrderHead.goodsValue: '1e5' is not a decimal number"),
        ("1_000", "OrderHead.goodsValue: '1_000' is not a decimal number"),
        ("NaN", "OrderHead.goodsValue: 'NaN' is not a decimal number"),
        ("Infinity", "OrderHead.goodsValue: 'Infinity' is not a decimal number"),
        ("١٢", "OrderHead.goodsValue: '١٢' is not a decimal number"),
        # the XSD takes a sign; the standard's meaning does not (issue 11 A)
        ("-3.5", "OrderHead.goodsValue: -3.5 must not be negative"),
    ],
)
def test_decimal_refusals(value: object, reason: str) -> None:
    assert check_value("OrderHead", "goodsValue", value) == reason


@pytest.mark.parametrize(
    "value",
    ["0", "-0", "1.12345", "+.5", "5.", " 19050 ", "1.500000", "0001.5", Decimal("1E+3"), 12, "0.000000"],
)
def test_decimal_forms_the_xsd_takes(value: object) -> None:
    """Digits are counted on the value, as lxml does: 1.500000 has one fraction digit."""
    assert check_value("OrderHead", "goodsValue", value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1.0", "OrderList.gnum: '1.0' is not an integer"),
        ("²", "OrderList.gnum: '²' is not an integer"),
        ("2147483648", "OrderList.gnum: 2147483648 is out of the 32-bit integer range"),
        ("0", "OrderList.gnum: 0 must be greater than 0"),
        ("-1", "OrderList.gnum: -1 must be greater than 0"),
    ],
)
def test_int_refusals(value: str, reason: str) -> None:
    assert check_value("OrderList", "gnum", value) == reason


def test_int_total_digits() -> None:
    assert check_value("LogisticsHead", "packNo", "1234567890") == (
        "LogisticsHead.packNo: 1234567890 has more than 9 digits"
    )
    assert check_value("LogisticsHead", "packNo", "000000001") is None
    assert check_value("OrderList", "gnum", "+7") is None


@pytest.mark.parametrize("value", ["1", "2", "3"])
def test_app_type_values(value: str) -> None:
    assert check_value("OrderHead", "appType", value) is None


@pytest.mark.parametrize("value", ["0", "4", "N"])
def test_app_type_refused(value: str) -> None:
    assert check_value("OrderHead", "appType", value) == (
        f"OrderHead.appType: {value!r} is not 1 (new), 2 (change) or 3 (delete)"
    )


def test_app_status_and_dates() -> None:
    assert (
        check_value("OrderHead", "appStatus", "3")
        == "OrderHead.appStatus: '3' is not 1 (staged) or 2 (declared)"
    )
    assert check_value("OrderHead", "appTime", "2024060112000A") == (
        "OrderHead.appTime: '2024060112000A' is not yyyyMMddHHmmss"
    )
    assert (
        check_value("InventoryHead", "declTime", "2024060A")
        == "InventoryHead.declTime: '2024060A' is not yyyyMMdd"
    )


def test_nested_values_are_refused() -> None:
    assert check_fields("OrderHead", order_head(orderNo=["a"])) == [
        "OrderHead.orderNo: must be a single value"
    ]


def test_unknown_fields_are_not_field_checks_business() -> None:
    """Unknown names are refused by the XML reader (structure); field checks only judge known ones."""
    assert check_fields("OrderHead", order_head(somethingElse="x")) == []


@settings(max_examples=200, deadline=None)
@given(st.decimals(allow_nan=False, allow_infinity=False, places=5, min_value=0, max_value=10**13))
def test_any_decimal_within_n19_5_passes(value: Decimal) -> None:
    """Any non-negative N19,5 (a negative price is refused: test_signs_at_intake.py)."""
    assert check_value("OrderList", "price", value) is None
    assert check_value("OrderList", "price", format(value, "f")) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_check_value_never_raises(text: str) -> None:
    for entity, rules in FIELDS.items():
        for name in rules:
            result = check_value(entity, name, text)
            assert result is None or result.startswith(f"{entity}.{name}: ")


def test_huge_numbers_are_refused_not_crashed_on() -> None:
    """int() refuses strings over 4300 digits with its own ValueError; the check must answer first."""
    assert check_value("OrderList", "gnum", "9" * 5000) == (
        f"OrderList.gnum: {'9' * 40}… is out of the 32-bit integer range"
    )
    assert check_value("OrderList", "qty", "1." + "0" * 2_000_000) is None  # value 1: one pass, no blow-up
    assert check_value("OrderList", "qty", "1" * 100) == f"OrderList.qty: {'1' * 40}… has more than 19 digits"


def test_reasons_quote_only_the_start_of_a_long_value() -> None:
    assert (
        check_value("OrderHead", "goodsValue", "x" * 10_000)
        == f"OrderHead.goodsValue: {'x' * 40 + '…'!r} is not a decimal number"
    )


def test_numbers_allow_xml_whitespace_only() -> None:
    assert check_value("OrderList", "qty", "\t\r\n 1 \n") is None
    assert check_value("OrderList", "qty", "\u30001") == "OrderList.qty: '\\u30001' is not a decimal number"
    assert check_value("OrderList", "gnum", "1\u00a0") == "OrderList.gnum: '1\\xa0' is not an integer"

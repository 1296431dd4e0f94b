"""Three-document comparison: each rule's precise failure, a clean set, returnInfo, properties."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central.ceb.documents import Inventory, Order, Payment, Waybill
from central.comparison import (
    RETURN_INFO_MAX,
    RULES,
    ComparisonResult,
    DocumentSet,
    Failure,
    WeightTolerance,
    compare,
    rule_amount,
    rule_bonded_fields,
    rule_buyer_payer,
    rule_consignee,
    rule_keys,
    rule_lines,
    rule_uniqueness,
    rule_weights,
)

# --- private builders (testkit/factories.py was not there when this was written) ---------------------

COMMON = {"appTime": "20240501120000", "currency": "142"}
ITEMS = [("Face cream 50ml", "1", "100.00"), ("Vitamin C 60 tablets", "2", "125.25")]


def _order_row(gnum: int, name: str, qty: str, price: str) -> dict[str, Any]:
    total = str(Decimal(qty) * Decimal(price))
    return {
        "gnum": gnum,
        "itemName": name,
        "gmodel": "spec",
        "unit": "011",
        "qty": qty,
        "price": price,
        "totalPrice": total,
        "currency": "142",
        "country": "116",
    }


def _inventory_row(gnum: int, name: str, qty: str, price: str) -> dict[str, Any]:
    total = str(Decimal(qty) * Decimal(price))
    return {
        "gnum": gnum,
        "itemRecordNo": f"REC{gnum:04d}",
        "gcode": "3304990099",
        "gname": name,
        "gmodel": "spec",
        "country": "116",
        "currency": "142",
        "qty": qty,
        "unit": "011",
        "qty1": qty,
        "unit1": "011",
        "price": price,
        "totalPrice": total,
    }


def _order(**overrides: Any) -> Order:
    data = COMMON | {
        "guid": "11111111-1111-1111-1111-111111111111",
        "orderType": "I",
        "orderNo": "ORD1",
        "ebpCode": "EBP1",
        "ebpName": "platform",
        "ebcCode": "EBC1",
        "ebcName": "shop",
        "goodsValue": "350.50",
        "freight": "10.00",
        "discount": "2.50",
        "taxTotal": "32.00",
        "acturalPaid": "390.00",
        "buyerRegNo": "REG1",
        "buyerName": "Zhang San",
        "buyerTelephone": "13800000000",
        "buyerIdType": "1",
        "buyerIdNumber": "110101199001011234",
        "payCode": "PAY1",
        "payName": "payer co",
        "payTransactionId": "TX1",
        "consignee": "Zhang San",
        "consigneeTelephone": "13800000000",
        "consigneeAddress": "1 Example Road, Chaoyang, Beijing",
        "orderList": [_order_row(g, *item) for g, item in enumerate(ITEMS, start=1)],
    }
    return Order.model_validate(data | overrides)


def _payment(**overrides: Any) -> Payment:
    data = COMMON | {
        "guid": "22222222-2222-2222-2222-222222222222",
        "payCode": "PAY1",
        "payName": "payer co",
        "payTransactionId": "TX1",
        "orderNo": "ORD1",
        "ebpCode": "EBP1",
        "ebpName": "platform",
        "payerIdType": "1",
        "payerIdNumber": "110101199001011234",
        "payerName": "Zhang San",
        "amountPaid": "390.00",
        "payTime": "20240501115900",
    }
    return Payment.model_validate(data | overrides)


def _waybill(**overrides: Any) -> Waybill:
    data = COMMON | {
        "guid": "33333333-3333-3333-3333-333333333333",
        "logisticsCode": "LC1",
        "logisticsName": "carrier",
        "logisticsNo": "LN1",
        "orderNo": "ORD1",
        "weight": "1.25",
        "packNo": 1,
        "consignee": "Zhang San",
        "consigneeAddress": "1 Example Road, Chaoyang, Beijing",
        "consigneeTelephone": "13800000000",
    }
    return Waybill.model_validate(data | overrides)


def _inventory(**overrides: Any) -> Inventory:
    data = COMMON | {
        "guid": "44444444-4444-4444-4444-444444444444",
        "orderNo": "ORD1",
        "ebpCode": "EBP1",
        "ebpName": "platform",
        "ebcCode": "EBC1",
        "ebcName": "shop",
        "logisticsNo": "LN1",
        "logisticsCode": "LC1",
        "logisticsName": "carrier",
        "assureCode": "EBC1",
        "emsNo": "T5100W000001",
        "ieFlag": "I",
        "declTime": "20240501",
        "customsCode": "5100",
        "portCode": "5100",
        "buyerIdType": "1",
        "buyerIdNumber": "110101199001011234",
        "buyerName": "Zhang San",
        "buyerTelephone": "13800000000",
        "consigneeAddress": "1 Example Road, Chaoyang, Beijing",
        "agentCode": "AGENT1",
        "agentName": "agent",
        "areaCode": "AREA1",
        "tradeMode": "1210",
        "trafMode": "4",
        "country": "142",
        "freight": "10.00",
        "insuredFee": "0",
        "packNo": 1,
        "grossWeight": "1.2",
        "netWeight": "1.0",
        "inventoryList": [_inventory_row(g, *item) for g, item in enumerate(ITEMS, start=1)],
    }
    return Inventory.model_validate(data | overrides)


def _docs(
    order: dict[str, Any] | None = None,
    payment: dict[str, Any] | None = None,
    waybill: dict[str, Any] | None = None,
    inventory: dict[str, Any] | None = None,
) -> DocumentSet:
    return DocumentSet(
        _order(**(order or {})),
        _payment(**(payment or {})),
        _waybill(**(waybill or {})),
        _inventory(**(inventory or {})),
    )


@pytest.fixture(scope="module")
def clean() -> DocumentSet:
    return _docs()


def _found(failures: list[Failure]) -> list[tuple[str, str, dict[str, str]]]:
    return [(f.rule, f.field, f.values) for f in failures]


# --- a clean set ------------------------------------------------------------------------------------


def test_clean_set_passes_every_rule(clean: DocumentSet) -> None:
    for rule in RULES:
        assert rule(clean) == [], rule.__name__
    result = compare(clean.order, clean.payment, clean.waybill, clean.inventory)
    assert result.ok and result.failures == () and result.failed_rules == []
    assert result.return_info() == "comparison passed"


def test_rules_are_listed_in_order() -> None:
    assert [r.__name__ for r in RULES] == [
        "rule_keys",
        "rule_amount",
        "rule_buyer_payer",
        "rule_consignee",
        "rule_lines",
        "rule_weights",
        "rule_bonded_fields",
    ]


# --- one table per rule: (case, document overrides, expected failures) --------------------------------

Case = tuple[str, dict[str, dict[str, Any]], list[tuple[str, str, dict[str, str]]]]

KEYS_CASES: list[Case] = [
    (
        "payment orderNo",
        {"payment": {"orderNo": "ORD2"}},
        [
            (
                "keys",
                "orderNo",
                {
                    "order.orderNo": "ORD1",
                    "payment.orderNo": "ORD2",
                    "inventory.orderNo": "ORD1",
                    "waybill.orderNo": "ORD1",
                },
            )
        ],
    ),
    (
        "waybill orderNo",
        {"waybill": {"orderNo": "ORD9"}},
        [
            (
                "keys",
                "orderNo",
                {
                    "order.orderNo": "ORD1",
                    "payment.orderNo": "ORD1",
                    "inventory.orderNo": "ORD1",
                    "waybill.orderNo": "ORD9",
                },
            )
        ],
    ),
    (
        "inventory ebpCode",
        {"inventory": {"ebpCode": "EBP2"}},
        [
            (
                "keys",
                "ebpCode",
                {"order.ebpCode": "EBP1", "payment.ebpCode": "EBP1", "inventory.ebpCode": "EBP2"},
            )
        ],
    ),
    (
        "inventory ebcCode",
        {"inventory": {"ebcCode": "EBC2"}},
        [("keys", "ebcCode", {"order.ebcCode": "EBC1", "inventory.ebcCode": "EBC2"})],
    ),
    (
        "waybill logisticsCode",
        {"waybill": {"logisticsCode": "LC2"}},
        [("keys", "logisticsCode", {"waybill.logisticsCode": "LC2", "inventory.logisticsCode": "LC1"})],
    ),
    (
        "inventory logisticsNo",
        {"inventory": {"logisticsNo": "LN2"}},
        [("keys", "logisticsNo", {"waybill.logisticsNo": "LN1", "inventory.logisticsNo": "LN2"})],
    ),
    (
        "payTransactionId",
        {"payment": {"payTransactionId": "TX2"}},
        [("keys", "payTransactionId", {"order.payTransactionId": "TX1", "payment.payTransactionId": "TX2"})],
    ),
    (
        "order without payTransactionId",
        {"order": {"payTransactionId": ""}},
        [
            (
                "keys",
                "payTransactionId",
                {"order.payTransactionId": "(absent)", "payment.payTransactionId": "TX1"},
            )
        ],
    ),
]

AMOUNT_CASES: list[Case] = [
    (
        "acturalPaid does not add up",
        {"order": {"acturalPaid": "100.00"}, "payment": {"amountPaid": "100.00"}},
        [
            (
                "amount",
                "acturalPaid",
                {"order.acturalPaid": "100.00", "goodsValue+freight+taxTotal-discount": "390.00"},
            )
        ],
    ),
    (
        "payment differs by a cent",
        {"payment": {"amountPaid": "389.99"}},
        [("amount", "amountPaid", {"order.acturalPaid": "390.00", "payment.amountPaid": "389.99"})],
    ),
    (
        "both",
        {"order": {"discount": "0"}, "payment": {"amountPaid": "392.50"}},
        [
            (
                "amount",
                "acturalPaid",
                {"order.acturalPaid": "390.00", "goodsValue+freight+taxTotal-discount": "392.50"},
            ),
            ("amount", "amountPaid", {"order.acturalPaid": "390.00", "payment.amountPaid": "392.50"}),
        ],
    ),
    ("scale does not matter", {"order": {"acturalPaid": "390"}, "payment": {"amountPaid": "390.00000"}}, []),
]

BUYER_CASES: list[Case] = [
    (
        "payer name",
        {"payment": {"payerName": "Li Si"}},
        [
            (
                "buyer_payer",
                "buyerName",
                {
                    "order.buyerName": "Zhang San",
                    "payment.payerName": "Li Si",
                    "inventory.buyerName": "Zhang San",
                },
            )
        ],
    ),
    (
        "inventory buyer id",
        {"inventory": {"buyerIdNumber": "110101199001019999"}},
        [
            (
                "buyer_payer",
                "buyerIdNumber",
                {
                    "order.buyerIdNumber": "110101199001011234",
                    "payment.payerIdNumber": "110101199001011234",
                    "inventory.buyerIdNumber": "110101199001019999",
                },
            )
        ],
    ),
]

CONSIGNEE_CASES: list[Case] = [
    (
        "telephone",
        {"waybill": {"consigneeTelephone": "13900000000"}},
        [
            (
                "consignee",
                "consigneeTelephone",
                {"order.consigneeTelephone": "13800000000", "waybill.consigneeTelephone": "13900000000"},
            )
        ],
    ),
    (
        "address",
        {"waybill": {"consigneeAddress": "2 Example Road, Chaoyang, Beijing"}},
        [
            (
                "consignee",
                "consigneeAddress",
                {
                    "order.consigneeAddress": "1 Example Road, Chaoyang, Beijing",
                    "waybill.consigneeAddress": "2 Example Road, Chaoyang, Beijing",
                },
            )
        ],
    ),
    (
        "name",
        {"order": {"consignee": "Wang Wu"}},
        [("consignee", "consignee", {"order.consignee": "Wang Wu", "waybill.consignee": "Zhang San"})],
    ),
    (
        "whitespace is ignored",
        {
            "waybill": {
                "consignee": " ZhangSan ",
                "consigneeTelephone": "138 0000 0000",
                "consigneeAddress": "1 Example Road,\u3000Chaoyang,  Beijing",
            }
        },
        [],
    ),
]


def _rows(*items: tuple[int, str, str, str]) -> list[dict[str, Any]]:
    return [_inventory_row(*item) for item in items]


LINES_CASES: list[Case] = [
    (
        "gname",
        {"inventory": {"inventoryList": _rows((1, *ITEMS[0]), (2, "Vitamin D", "2", "125.25"))}},
        [
            (
                "lines",
                "gname",
                {"gnum": "2", "order.itemName": "Vitamin C 60 tablets", "inventory.gname": "Vitamin D"},
            )
        ],
    ),
    (
        "qty",
        {"inventory": {"inventoryList": _rows((1, ITEMS[0][0], "3", "100.00"), (2, *ITEMS[1]))}},
        [("lines", "qty", {"gnum": "1", "order.qty": "1", "inventory.qty": "3"})],
    ),
    (
        "price",
        {"inventory": {"inventoryList": _rows((1, *ITEMS[0]), (2, ITEMS[1][0], "2", "99.99"))}},
        [("lines", "price", {"gnum": "2", "order.price": "125.25", "inventory.price": "99.99"})],
    ),
    (
        "gnum without order row",
        {"inventory": {"inventoryList": _rows((1, *ITEMS[0]), (3, *ITEMS[1]))}},
        [("lines", "gnum", {"order.gnum": "1,2", "inventory.gnum": "1,3"})],
    ),
    (
        "missing row",
        {"inventory": {"inventoryList": _rows((1, *ITEMS[0]))}},
        [("lines", "gnum", {"order.gnum": "1,2", "inventory.gnum": "1"})],
    ),
    (
        "duplicate gnum",
        {"inventory": {"inventoryList": _rows((1, *ITEMS[0]), (1, *ITEMS[0]), (2, *ITEMS[1]))}},
        [("lines", "gnum", {"order.gnum": "1,2", "inventory.gnum": "1,1,2"})],
    ),
    (
        "rows in another order, spacing in names",
        {
            "inventory": {
                "inventoryList": _rows((2, "Vitamin C  60 tablets ", "2.000", "125.250"), (1, *ITEMS[0]))
            }
        },
        [],
    ),
]

WEIGHT_CASES: list[Case] = [
    (
        "zero gross",
        {"inventory": {"grossWeight": "0", "netWeight": "0"}, "waybill": {"weight": "0.05"}},
        [
            ("weights", "grossWeight", {"inventory.grossWeight": "0"}),
            ("weights", "netWeight", {"inventory.netWeight": "0"}),
        ],
    ),
    (
        "net above gross",
        {"inventory": {"netWeight": "1.3"}},
        [("weights", "netWeight", {"inventory.netWeight": "1.3", "inventory.grossWeight": "1.2"})],
    ),
    (
        "waybill far off",
        {"waybill": {"weight": "1.4"}},
        [
            (
                "weights",
                "weight",
                {"waybill.weight": "1.4", "inventory.grossWeight": "1.2", "allowed difference": "0.1"},
            )
        ],
    ),
    ("waybill at the absolute allowance", {"waybill": {"weight": "1.1"}}, []),
    (
        "heavy parcel within 5%",
        {"inventory": {"grossWeight": "20", "netWeight": "19"}, "waybill": {"weight": "21"}},
        [],
    ),
    (
        "heavy parcel beyond 5%",
        {"inventory": {"grossWeight": "20", "netWeight": "19"}, "waybill": {"weight": "21.01"}},
        [
            (
                "weights",
                "weight",
                {"waybill.weight": "21.01", "inventory.grossWeight": "20", "allowed difference": "1"},
            )
        ],
    ),
]

BONDED_CASES: list[Case] = [
    (
        "emsNo",
        {"inventory": {"emsNo": ""}},
        [("bonded_fields", "emsNo", {"inventory.tradeMode": "1210", "inventory.emsNo": "(absent)"})],
    ),
    (
        "areaCode",
        {"inventory": {"areaCode": None}},
        [("bonded_fields", "areaCode", {"inventory.tradeMode": "1210", "inventory.areaCode": "(absent)"})],
    ),
    (
        "itemRecordNo",
        {
            "inventory": {
                "inventoryList": [
                    _inventory_row(1, *ITEMS[0]),
                    _inventory_row(2, *ITEMS[1]) | {"itemRecordNo": None},
                ]
            }
        },
        [("bonded_fields", "itemRecordNo", {"inventory.tradeMode": "1210", "gnum": "2"})],
    ),
    (
        "direct purchase needs none",
        {
            "inventory": {
                "tradeMode": "9610",
                "emsNo": None,
                "areaCode": None,
                "inventoryList": [
                    _inventory_row(g, *it) | {"itemRecordNo": None} for g, it in enumerate(ITEMS, 1)
                ],
            }
        },
        [],
    ),
]

ALL_CASES = [
    pytest.param(rule, overrides, expected, id=f"{rule.__name__}: {name}")
    for rule, cases in [
        (rule_keys, KEYS_CASES),
        (rule_amount, AMOUNT_CASES),
        (rule_buyer_payer, BUYER_CASES),
        (rule_consignee, CONSIGNEE_CASES),
        (rule_lines, LINES_CASES),
        (rule_weights, WEIGHT_CASES),
        (rule_bonded_fields, BONDED_CASES),
    ]
    for name, overrides, expected in cases
]


@pytest.mark.parametrize(("rule", "overrides", "expected"), ALL_CASES)
def test_rule_reports_precise_failure(
    rule: Callable[[DocumentSet], list[Failure]],
    overrides: dict[str, dict[str, Any]],
    expected: list[tuple[str, str, dict[str, str]]],
) -> None:
    docs = _docs(**overrides)
    failures = rule(docs)
    assert _found(failures) == expected
    assert all(f.message for f in failures)
    # no other rule is disturbed: compare() reports exactly these
    assert _found(list(compare(docs.order, docs.payment, docs.waybill, docs.inventory).failures)) == expected


def test_weight_tolerance_is_a_parameter() -> None:
    docs = _docs(waybill={"weight": "1.4"})
    strict = WeightTolerance(absolute_kg=Decimal("0.01"), percent=Decimal("0"))
    loose = WeightTolerance(absolute_kg=Decimal("0.5"))
    args = (docs.order, docs.payment, docs.waybill, docs.inventory)
    assert compare(*args, weight_tolerance=loose).ok
    assert compare(*args, weight_tolerance=strict).failed_rules == ["weights"]
    assert WeightTolerance().allowed(Decimal("1.2")) == Decimal("0.1")
    assert WeightTolerance().allowed(Decimal("10")) == Decimal("0.5")
    with pytest.raises(ValueError):
        WeightTolerance(percent=Decimal("-1"))


def test_failures_are_frozen() -> None:
    failure = Failure(rule="r", field="f", values={}, message="m")
    with pytest.raises(ValueError):
        failure.rule = "other"  # type: ignore[misc]


# --- uniqueness ------------------------------------------------------------------------------------


def test_uniqueness_from_counts(clean: DocumentSet) -> None:
    inv = clean.inventory
    assert (
        rule_uniqueness(inv, other_inventories_with_same_logistics_no=0, other_orders_with_same_order_no=0)
        == []
    )
    failures = rule_uniqueness(
        inv, other_inventories_with_same_logistics_no=1, other_orders_with_same_order_no=2
    )
    assert _found(failures) == [
        (
            "uniqueness",
            "logisticsNo",
            {"inventory.logisticsCode": "LC1", "inventory.logisticsNo": "LN1", "other inventories": "1"},
        ),
        (
            "uniqueness",
            "orderNo",
            {"inventory.ebpCode": "EBP1", "inventory.orderNo": "ORD1", "other orders": "2"},
        ),
    ]
    result = ComparisonResult().plus(failures)
    assert not result.ok and result.failed_rules == ["uniqueness"]
    with pytest.raises(ValueError):
        rule_uniqueness(inv, other_inventories_with_same_logistics_no=-1, other_orders_with_same_order_no=0)


# --- returnInfo ------------------------------------------------------------------------------------


def test_return_info_lists_every_failed_rule() -> None:
    docs = _docs(payment={"amountPaid": "389.99", "payerName": "Li Si"}, inventory={"ebcCode": "EBC2"})
    result = compare(docs.order, docs.payment, docs.waybill, docs.inventory)
    assert result.failed_rules == ["keys", "amount", "buyer_payer"]
    assert result.return_info() == (
        "keys.ebcCode(order.ebcCode=EBC1, inventory.ebcCode=EBC2); "
        "amount.amountPaid(order.acturalPaid=390.00, payment.amountPaid=389.99); "
        "buyer_payer.buyerName(order.buyerName=Zhang San, payment.payerName=Li Si, "
        "inventory.buyerName=Zhang San)"
    )


def _failure(i: int, width: int) -> Failure:
    return Failure(rule=f"rule{i}", field="f", values={"a": "x" * width, "b": "y"}, message="m")


def test_return_info_truncates_gracefully() -> None:
    result = ComparisonResult(failures=tuple(_failure(i, 70) for i in range(40)))
    info = result.return_info()
    assert len(info) <= RETURN_INFO_MAX
    shown = info.count("rule")
    assert info.endswith(f" …(+{40 - shown} more)")
    assert "rule0.f(" in info and shown < 40


def test_return_info_clips_long_values_and_cuts_a_lone_giant() -> None:
    long = Failure(rule="r", field="f", values={f"k{i}": "v" * 200 for i in range(30)}, message="m")
    info = ComparisonResult(failures=(long,)).return_info()
    assert len(info) <= RETURN_INFO_MAX and info.startswith("r.f(k0=") and info.endswith("…")
    assert "v" * 80 not in info  # values are clipped


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 5)), min_size=1, max_size=60))
def test_return_info_always_fits(specs: list[tuple[int, int]]) -> None:
    failures = tuple(
        Failure(rule=f"r{i}", field="f", values={f"k{j}": "z" * width for j in range(n)}, message="m")
        for i, (width, n) in enumerate(specs)
    )
    info = ComparisonResult(failures=failures).return_info()
    assert 0 < len(info) <= RETURN_INFO_MAX
    if "more)" not in info and len(failures) > 1:
        assert all(f"r{i}.f(" in info for i in range(len(failures)))


# --- properties ------------------------------------------------------------------------------------

money = st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(goods=money, freight=money, tax=money, discount=money, paid=money, exact=st.booleans())
def test_amount_rule_passes_iff_the_equation_holds(
    clean: DocumentSet,
    goods: Decimal,
    freight: Decimal,
    tax: Decimal,
    discount: Decimal,
    paid: Decimal,
    exact: bool,
) -> None:
    if exact:
        paid = goods + freight + tax - discount
    fields = {
        "goodsValue": goods,
        "freight": freight,
        "taxTotal": tax,
        "discount": discount,
        "acturalPaid": paid,
    }
    order = clean.order.model_copy(update=fields)
    payment = clean.payment.model_copy(update={"amountPaid": paid})
    docs = DocumentSet(order, payment, clean.waybill, clean.inventory)
    assert (rule_amount(docs) == []) == (paid == goods + freight + tax - discount)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_lines_pass_for_any_row_order(clean: DocumentSet, data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 8))
    gnums = data.draw(st.permutations(list(range(1, n + 1))))
    template_o, template_i = clean.order.orderList[0], clean.inventory.inventoryList[0]
    order = clean.order.model_copy(
        update={"orderList": [template_o.model_copy(update={"gnum": g}) for g in range(1, n + 1)]}
    )
    inv = clean.inventory.model_copy(
        update={"inventoryList": [template_i.model_copy(update={"gnum": g}) for g in gnums]}
    )
    assert rule_lines(DocumentSet(order, clean.payment, clean.waybill, inv)) == []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(1, 6), min_size=1, max_size=6),
    st.lists(st.integers(1, 6), min_size=1, max_size=6),
)
def test_lines_gnum_failure_iff_not_one_to_one(
    clean: DocumentSet, order_gnums: list[int], inv_gnums: list[int]
) -> None:
    template_o, template_i = clean.order.orderList[0], clean.inventory.inventoryList[0]
    order = clean.order.model_copy(
        update={"orderList": [template_o.model_copy(update={"gnum": g}) for g in order_gnums]}
    )
    inv = clean.inventory.model_copy(
        update={"inventoryList": [template_i.model_copy(update={"gnum": g}) for g in inv_gnums]}
    )
    failures = rule_lines(DocumentSet(order, clean.payment, clean.waybill, inv))
    one_to_one = Counter(order_gnums) == Counter(inv_gnums) and len(set(order_gnums)) == len(order_gnums)
    assert [f.field for f in failures] == ([] if one_to_one else ["gnum"])


# --- contract with the shared factories ------------------------------------------------------------


def test_shared_factory_sets_pass_and_break_as_documented() -> None:
    """testkit/factories.py promises consistent sets per parcel number; the comparison must agree."""
    from testkit import factories

    sets = factories.document_set(3)
    for docs in sets:
        assert compare(*docs.documents).ok
    first = sets[0]
    broken = compare(factories.order(1, acturalPaid="1.00"), first.payment, first.waybill, first.inventory)
    assert broken.failed_rules == ["amount"]
    mixed = compare(first.order, first.payment, first.waybill, sets[1].inventory)
    assert "keys" in mixed.failed_rules

"""Values the standard forbids are refused at intake (issue 11 A): a negative amount, price,
freight, tax, insurance or weight, and a quantity, package count or line number that is not at least
one. A fully negative but self-consistent set used to pass the comparison and reach 800 with
"面膜 ×-1" in the park's feed. Real central (uvicorn, SQLite file); the rule itself property-tested."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from central.ceb.documents import DocKind
from central.ceb.field_check import check_value
from central.ceb.fields import FIELDS
from central.ceb.xml_out import message_xml
from testkit import factories

BASE = {"copCode": factories.EBC_CODE, "copName": "shop", "dxpMode": "DXP", "dxpId": "DXPENT0000000001"}
XML = {"content-type": "application/xml"}
NUMBERS = sorted((e, n) for e, fs in FIELDS.items() for n, r in fs.items() if r["kind"] in ("decimal", "int"))
COUNTS = {"qty", "qty1", "qty2", "packNo", "gnum"}


@given(field=st.sampled_from(NUMBERS), value=st.integers(min_value=-(10**6), max_value=10**6))
def test_every_number_of_the_standard_has_its_sign_rule(field: tuple[str, str], value: int) -> None:
    entity, name = field
    problem = check_value(entity, name, str(value))
    floor = 1 if name in COUNTS else 0
    assert (problem is None) == (value >= floor), (entity, name, value, problem)
    if problem:
        assert problem.startswith(f"{entity}.{name}: ")


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("freight", "-1", "OrderHead.freight: -1 must not be negative"),
        ("taxTotal", "-0.01", "OrderHead.taxTotal: -0.01 must not be negative"),
        ("acturalPaid", "-89.50", "OrderHead.acturalPaid: -89.50 must not be negative"),
    ],
)
def test_a_negative_amount_in_xml_is_400_naming_the_field_and_nothing_is_stored(
    central, field: str, value: str, said: str
) -> None:
    sets = factories.document_set(2, start=930)
    text = message_xml(DocKind.ORDER, [s.order for s in sets], BASE).decode()
    bad = sets[1].order
    tag = f"<ceb:{field}>"
    head_end = text.index("</ceb:OrderHead>", text.index(bad.orderNo))
    start = text.rindex(tag, 0, head_end) + len(tag)
    text = text[:start] + value + text[text.index("<", start) :]
    shop = central.client("enterprise")
    answer = shop.post("/api/v1/ceb/messages", content=text.encode(), headers=XML)
    assert answer.status_code == 400, answer.text
    assert said in answer.json()["detail"]
    for s in sets:
        assert shop.get(f"/api/v1/documents/{s.order.guid}/receipts").status_code == 404


def test_a_fully_negative_self_consistent_set_never_reaches_the_comparison(central) -> None:
    s = factories.document_set(1, start=940)[0]
    minus = Decimal("-89.50")
    order = s.order.model_dump(mode="json")
    order |= {"goodsValue": str(minus), "acturalPaid": str(minus)}
    for item in order["orderList"]:
        item |= {"qty": "-1", "totalPrice": str(minus)}
    payment = s.payment.model_dump(mode="json") | {"amountPaid": str(minus)}
    inventory = s.inventory.model_dump(mode="json")
    for item in inventory["inventoryList"]:
        item |= {"qty": "-1", "qty1": "-1", "totalPrice": str(minus)}
    waybill = s.waybill.model_dump(mode="json")
    shop = central.client("enterprise")
    answer = shop.post("/api/v1/documents", json={"documents": [order, payment, waybill, inventory]})
    assert answer.status_code in (400, 422), answer.text
    for said in (
        "OrderList.qty: -1 must be greater than 0",
        "OrderHead.acturalPaid: -89.50 must not be negative",
        "PaymentHead.amountPaid: -89.50 must not be negative",
        "InventoryList.qty1: -1 must be greater than 0",
    ):
        assert said in answer.text
    for doc in (s.order, s.payment, s.waybill, s.inventory):
        assert shop.get(f"/api/v1/documents/{doc.guid}/receipts").status_code == 404

"""The document schema says what intake refuses, and a refusal leads with the sender's problem
(outside findings G and LOW). Schemathesis found schema-valid documents refused — empty strings and
`gnum` 0 — so the OpenAPI now carries the standard's lengths and signs; a single document refused
was answered with "documents: Field required" first; an empty string for an optional amount was
taken as absent. Real central (uvicorn, SQLite file) over HTTP."""

from __future__ import annotations

from typing import Any

import httpx

from testkit import factories
from testkit.central_server import RunningCentral


def openapi(central: RunningCentral) -> dict[str, Any]:
    with httpx.Client(base_url=central.url, timeout=30) as client:
        return client.get("/openapi.json").json()


def test_the_schema_carries_the_standards_lengths_and_signs(central: RunningCentral) -> None:
    defs = openapi(central)["components"]["schemas"]
    refund, order_item = defs["Refund"]["properties"], defs["OrderItem"]["properties"]
    assert refund["orderNo"]["minLength"] == 1 and refund["orderNo"]["maxLength"] == 60
    assert refund["guid"]["minLength"] == refund["guid"]["maxLength"] == 36
    assert refund["copNo"]["anyOf"][0].get("minLength") is None  # optional: empty means absent
    assert order_item["gnum"]["minimum"] == 1
    assert defs["Order"]["properties"]["orderList"]["minItems"] == 1
    number, text = order_item["qty"]["anyOf"]
    assert number["exclusiveMinimum"] == 0 and "pattern" in text
    goods_value = defs["Order"]["properties"]["goodsValue"]["anyOf"][0]
    assert goods_value["minimum"] == 0


def test_a_single_document_refused_leads_with_its_own_problem(central: RunningCentral) -> None:
    doc = factories.order(901).model_dump(mode="json")
    doc["orderList"][0]["qty"] = "-1"
    with central.client("enterprise") as shop:
        answer = shop.post("/api/v1/documents", json=doc)
    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["detail"]
    assert "documents" not in problem["loc"] and "Field required" not in problem["msg"]
    assert "qty" in problem["msg"] and "greater than 0" in problem["msg"], problem
    with central.client("enterprise") as shop:  # a batch still answers as a batch
        answer = shop.post("/api/v1/documents", json={"documents": []})
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"][-1] == "documents"


def test_an_empty_optional_amount_is_refused_naming_it(central: RunningCentral) -> None:
    waybill = factories.waybill(902).model_dump(mode="json")
    waybill["insuredFee"] = ""
    with central.client("enterprise") as shop:
        answer = shop.post("/api/v1/documents", json=waybill)
        assert answer.status_code == 422, answer.text
        assert "LogisticsHead.insuredFee: empty" in answer.json()["detail"][0]["msg"]
        del waybill["insuredFee"]  # left out: absent, as the standard allows
        assert shop.post("/api/v1/documents", json=waybill).status_code == 200

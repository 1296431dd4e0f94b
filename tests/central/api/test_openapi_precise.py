"""The OpenAPI says what central does (issue 11 G): `docType` is required, inspection_detain needs
its code, a boolean is not taken for a number, and a 405 names every method of the path. Real
central (uvicorn, SQLite file)."""

from __future__ import annotations

from typing import Any

from testkit import factories


def spec(central: Any) -> dict[str, Any]:
    return central.client().get("/openapi.json").json()


def test_every_document_requires_its_doc_type(central: Any) -> None:
    schemas = spec(central)["components"]["schemas"]
    for name in ("Order", "Payment", "Waybill", "Inventory", "Cancellation", "Refund"):
        assert "docType" in schemas[name]["required"], name
    body = factories.order(960).model_dump(mode="json")
    del body["docType"]
    assert central.client("enterprise").post("/api/v1/documents", json=body).status_code == 422


def test_inspection_detain_requires_its_code(central: Any) -> None:
    assert spec(central)["components"]["schemas"]["DetainIn"]["required"] == ["action", "code"]
    answer = central.client("officer").post(
        "/api/v1/clearances/X/actions", json={"action": "inspection_detain"}
    )
    assert answer.status_code == 422 and "code" in answer.text


def test_a_boolean_is_not_a_number(central: Any) -> None:
    event = {
        "edge_id": "edge-p1",
        "seq": True,
        "kind": "heartbeat",
        "occurred_at": "2026-12-05T09:00:00Z",
        "prev_hash": "0" * 64,
        "hash": "0" * 64,
    }
    with central.client("edge") as edge:
        for change in ({}, {"seq": 1, "epoch": True}, {"seq": 1, "body": {"backlog": False}}):
            answer = edge.post(
                "/api/v1/parks/P1/events", json={"edge_id": "edge-p1", "events": [event | change]}
            )
            assert answer.status_code == 422, (change, answer.text)
    with central.client("officer") as officer:
        answer = officer.post(
            "/api/v1/parks/P1/edges/edge-p1/reprovision",
            json={"reason": "disk replaced", "expect_epoch": True},
        )
        assert answer.status_code == 422


def test_a_405_names_every_method_of_the_path(central: Any) -> None:
    with central.client("admin") as admin:
        answer = admin.request("OPTIONS", "/api/v1/tokens")
        assert answer.status_code == 405
        assert {m.strip() for m in answer.headers["allow"].split(",")} >= {"GET", "POST"}
        answer = admin.delete("/api/v1/parks/P1/feed")
        assert answer.status_code == 405 and "GET" in answer.headers["allow"]


def test_reprovision_documents_a_body_it_cannot_parse_and_bounds_expect_epoch_exactly(central: Any) -> None:
    """A non-JSON body answered 400, undocumented; expect_epoch 2^63 + 190 passed the schema's
    bound as a double (outside finding G)."""
    operation = spec(central)["paths"]["/api/v1/parks/{park_id}/edges/{edge_id}/reprovision"]["post"]
    assert "400" in operation["responses"]
    epoch = spec(central)["components"]["schemas"]["ReprovisionIn"]["properties"]["expect_epoch"]["anyOf"][0]
    assert epoch["maximum"] == 2**53 and float(epoch["maximum"]) == 2**53
    with central.client("officer") as officer:
        answer = officer.post(
            "/api/v1/parks/P1/edges/edge-p1/reprovision",
            content=b"\xff",
            headers={"content-type": "application/json"},
        )
    assert answer.status_code == 400, answer.text


def test_an_event_occurred_at_and_weight_have_their_wire_form_in_the_schema(central: Any) -> None:
    schemas = spec(central)["components"]["schemas"]
    assert "pattern" in schemas["Event"]["properties"]["occurred_at"]
    weight = schemas["EventBody"]["properties"]["weight_kg"]["anyOf"][0]
    assert weight["type"] == "string" and "pattern" in weight

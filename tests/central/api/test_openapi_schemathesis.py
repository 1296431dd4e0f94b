"""Schemathesis against the live OpenAPI of a real central (uvicorn on loopback over a SQLite file).

Every operation of /openapi.json gets generated requests (examples, coverage and fuzzing phases, both
valid and invalid data); each answer must not be a 5xx and must match what the schema documents:
its status code, its content type and its body. Bounded and seeded so a CI run is repeatable.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from central.ceb.documents import DocKind, Receipt
from central.ceb.xml_out import message_xml, receipts_xml
from kernel.wire import GENESIS_HASH, EventBody, EventKind, chain_event
from testkit import factories
from testkit.central_server import RunningCentral, run_central

MAX_EXAMPLES = 25  # per operation and fuzzing phase; coverage/examples phases add their own few
SEED = 20240601
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
LONG_POLL_CAP = 0.05  # seconds: a generated `wait` up to 60 s would only make the run slow


@pytest.fixture(autouse=True)
def _pytest9_nodeid(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's lazy schema renames `node._nodeid`, which pytest 9.2 no longer has."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@pytest.fixture(scope="module")
def live_central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCentral]:
    # every factory parcel is selected for inspection, so an officer's decision has something to decide
    risk = {"sampling_rate": 0, "ebc_codes": [factories.EBC_CODE]}
    with run_central(Path(tmp_path_factory.mktemp("schemathesis")), risk=risk) as running:
        yield running


@pytest.fixture(scope="module")
def seeded_token_ids(live_central: RunningCentral) -> frozenset[str]:
    with live_central.client("admin") as admin:
        answer = admin.get("/api/v1/tokens")
    assert answer.status_code == 200, answer.text
    return frozenset(t["token_id"] for t in answer.json())


@pytest.fixture(scope="module")
def live_schema(live_central: RunningCentral) -> BaseSchema:
    return schemathesis.openapi.from_url(
        f"{live_central.url}/openapi.json", config=SchemathesisConfig(seed=SEED), timeout=30
    )


schema = schemathesis.pytest.from_fixture("live_schema")


def tame(case: Case, central: RunningCentral, seeded: frozenset[str]) -> None:
    """Keep generated requests from stalling the run or disabling the tokens the run itself uses."""
    if case.operation.path.endswith("/feed") and isinstance(case.query, dict) and "wait" in case.query:
        try:
            wait = float(case.query["wait"])
        except (TypeError, ValueError):
            wait = -1.0
        if 0 < wait <= 60:
            case.query["wait"] = LONG_POLL_CAP
    params = case.path_parameters if isinstance(case.path_parameters, dict) else {}
    if case.method.upper() == "DELETE" and params.get("token_id") in seeded:
        # a token id learnt from GET /tokens: revoke a spare rather than a token this run relies on
        with central.client("admin") as admin:
            spare = admin.post("/api/v1/tokens", json={"role": "officer", "name": "spare"})
        assert spare.status_code == 201, spare.text
        params["token_id"] = spare.json()["token_id"]


def call_and_check(case: Case, central: RunningCentral, seeded: frozenset[str], token: str) -> None:
    tame(case, central, seeded)
    case.call_and_validate(
        headers={"Authorization": f"Bearer {central.tokens[token]}"}, checks=CHECKS, timeout=30
    )


@schema.parametrize()
@HYPOTHESIS
def test_every_operation_as_admin(
    case: Case, live_central: RunningCentral, seeded_token_ids: frozenset[str]
) -> None:
    call_and_check(case, live_central, seeded_token_ids, "admin")


@schema.include(tag="documents").parametrize()
@HYPOTHESIS
def test_document_operations_as_enterprise(
    case: Case, live_central: RunningCentral, seeded_token_ids: frozenset[str]
) -> None:
    call_and_check(case, live_central, seeded_token_ids, "enterprise")


XML = {"content-type": "application/xml"}
BASE = {"copCode": factories.EBC_CODE, "copName": "shop", "dxpMode": "DXP", "dxpId": "DXPENT0000000001"}


def conforms(live_schema: BaseSchema, method: str, path: str, answer: httpx.Response, ok: int = 200) -> None:
    """A real request's answer, checked against the operation's schema like a generated one."""
    assert answer.status_code == ok, answer.text
    live_schema[path][method].Case().validate_response(answer, checks=CHECKS)


def test_success_answers_match_the_schema(live_central: RunningCentral, live_schema: BaseSchema) -> None:
    """Generated bodies rarely pass the CEB field rules, so the 200 answers are driven with real documents."""
    shop, officer, edge = (live_central.client(n) for n in ("enterprise", "officer", "edge"))
    json_set, xml_set = factories.document_set(2, start=7001)
    batch = {"documents": [d.model_dump(mode="json") for d in json_set.documents]}
    conforms(live_schema, "POST", "/api/v1/documents", shop.post("/api/v1/documents", json=batch))
    for kind, doc in zip(
        (DocKind.ORDER, DocKind.PAYMENT, DocKind.WAYBILL, DocKind.INVENTORY), xml_set.documents, strict=True
    ):
        sent = shop.post("/api/v1/ceb/messages", content=message_xml(kind, [doc], BASE), headers=XML)
        conforms(live_schema, "POST", "/api/v1/ceb/messages", sent)
    receipts = "/api/v1/documents/{guid}/receipts"
    for fmt in ("json", "xml"):
        got = shop.get(f"/api/v1/documents/{json_set.inventory.guid}/receipts", params={"format": fmt})
        conforms(live_schema, "GET", receipts, got)
    found = officer.get("/api/v1/clearances", params={"logisticsNo": json_set.waybill.logisticsNo})
    conforms(live_schema, "GET", "/api/v1/clearances", found)
    [detail] = found.json()
    assert detail["clearance"]["status"] == "500", detail["clearance"]
    invt_no = detail["clearance"]["invtNo"]
    decided = officer.post(f"/api/v1/clearances/{invt_no}/actions", json={"action": "inspection_release"})
    conforms(live_schema, "POST", "/api/v1/clearances/{invtNo}/actions", decided)
    feed = edge.get("/api/v1/parks/P1/feed")
    conforms(live_schema, "GET", "/api/v1/parks/{park_id}/feed", feed)
    assert feed.json()["records"], feed.json()

    heartbeat = chain_event(
        GENESIS_HASH,
        edge_id="edge-p1",
        seq=1,
        kind=EventKind.HEARTBEAT,
        occurred_at="2024-06-01T12:00:00Z",
        body=EventBody(backlog=0),
    )
    events = {"edge_id": "edge-p1", "events": [heartbeat.model_dump(mode="json")]}
    stored = edge.post("/api/v1/parks/P1/events", json=events)
    conforms(live_schema, "POST", "/api/v1/parks/{park_id}/events", stored)
    assert stored.json()["stored"] == 1, stored.json()
    conforms(live_schema, "GET", "/api/v1/parks/{park_id}/edges", officer.get("/api/v1/parks/P1/edges"))
    conforms(live_schema, "GET", "/api/v1/parks/{park_id}/report", officer.get("/api/v1/parks/P1/report"))

    # simulate mode plays customs: a CEB622 is refused (409); customs mode takes it (below)
    body = customs_receipt(
        xml_set.inventory.guid,
        xml_set.inventory.copNo,
        factories.pre_no(7002),
        factories.invt_no(7002),
        "800",
    )
    refused = officer.post("/api/v1/customs/receipts", content=body, headers=XML)
    conforms(live_schema, "POST", "/api/v1/customs/receipts", refused, ok=409)
    with live_central.client("admin") as admin:
        made = admin.post(
            "/api/v1/tokens", json={"role": "edge", "name": "st-edge", "park_id": "P2", "edge_id": "st-edge"}
        )
        conforms(live_schema, "POST", "/api/v1/tokens", made, ok=201)
        gone = admin.delete(f"/api/v1/tokens/{made.json()['token_id']}")
        conforms(live_schema, "DELETE", "/api/v1/tokens/{token_id}", gone, ok=204)
        conforms(live_schema, "GET", "/metrics", admin.get("/metrics"))
    for client in (shop, officer, edge):
        client.close()


def test_framework_refusals_use_the_error_shape(live_central: RunningCentral) -> None:
    """FastAPI's own 400/404/405 answer {error, detail} like ours (schemathesis found the 400 as {detail})."""
    with live_central.client("enterprise") as shop:
        garbled = shop.post(
            "/api/v1/documents", content=b"\xc3\x28", headers={"content-type": "application/json"}
        )
        unknown = shop.get("/api/v1/nothing-here")
        wrong_method = shop.patch("/api/v1/documents")
    for answer, status, error in (
        (garbled, 400, "bad_request"),
        (unknown, 404, "not_found"),
        (wrong_method, 405, "method_not_allowed"),
    ):
        assert answer.status_code == status, answer.text
        assert answer.json()["error"] == error and answer.json()["detail"], answer.json()
    assert "POST" in wrong_method.headers["allow"]


def test_the_run_left_the_central_healthy(live_central: RunningCentral) -> None:
    with httpx.Client(base_url=live_central.url, timeout=30) as anonymous:
        assert anonymous.get("/healthz").json()["status"] == "ok"
    with live_central.client("admin") as admin:
        assert admin.get("/api/v1/tokens").status_code == 200  # the admin token survived the run


def customs_receipt(guid: str, cop_no: str, pre_no: str, invt_no: str, status: str) -> bytes:
    receipt = Receipt(
        kind=DocKind.INVENTORY,
        guid=guid,
        returnStatus=status,
        returnTime="20240601120000000",
        returnInfo=f"customs {status}",
        key={
            "customsCode": factories.CUSTOMS_CODE,
            "ebpCode": factories.EBP_CODE,
            "ebcCode": factories.EBC_CODE,
            "agentCode": factories.AGENT_CODE,
            "copNo": cop_no,
            "preNo": pre_no,
            "invtNo": invt_no,
        },
    )
    return receipts_xml(DocKind.INVENTORY, [receipt])


def test_a_customs_receipt_answer_in_customs_mode_matches_the_schema(tmp_path: Path) -> None:
    with run_central(tmp_path, mode="customs") as central:
        schema_of = schemathesis.openapi.from_url(
            f"{central.url}/openapi.json", config=SchemathesisConfig(seed=SEED), timeout=30
        )
        [sent] = factories.document_set(1, start=7101)
        with central.client("enterprise") as shop:
            for doc in sent.documents:
                shop.post("/api/v1/documents", json=doc.model_dump(mode="json")).raise_for_status()
        with central.client("officer") as officer:
            [found] = officer.get(
                "/api/v1/clearances", params={"logisticsNo": sent.waybill.logisticsNo}
            ).json()
            pre_no, invt_no = found["documents"]["inventory"]["preNo"], found["clearance"]["invtNo"]
            body = customs_receipt(sent.inventory.guid, sent.inventory.copNo, pre_no, invt_no, "399")
            applied = officer.post("/api/v1/customs/receipts", content=body, headers=XML)
        conforms(schema_of, "POST", "/api/v1/customs/receipts", applied)
        assert applied.json()[0]["applied"] is True, applied.json()

"""Hostile or broken input over HTTP: always a 4xx naming the problem, never a 5xx, nothing stored."""

from __future__ import annotations

import pytest

from central.ceb.documents import DocKind
from central.ceb.xml_out import message_xml
from testkit import factories

pytestmark = pytest.mark.both_backends  # each test starts its own central: over both databases

BASE = {"copCode": factories.EBC_CODE, "copName": "shop", "dxpMode": "DXP", "dxpId": "DXPENT0000000001"}
XML = {"content-type": "application/xml"}

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<ceb:CEB311Message xmlns:ceb="http://www.chinaport.gov.cn/ceb" guid="%s" version="1.0">&x;</ceb:CEB311Message>
""" % (b"A" * 36)
LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><r>&lol3;</r>"""


def good_message() -> bytes:
    return message_xml(DocKind.ORDER, [factories.order(900)], BASE)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (XXE, "entity_forbidden"),
        (LAUGHS, "entity_forbidden"),
        (good_message().replace(b"http://www.chinaport.gov.cn/ceb", b"http://example.com/ceb"), "namespace"),
        (good_message()[:-40], "xml_syntax"),
        (b"", "xml_syntax"),
        (b"\xff\xfe\x00garbage", "xml_syntax"),
    ],
    ids=["xxe", "billion-laughs", "namespace", "truncated", "empty", "garbage"],
)
@pytest.mark.one_backend  # refused before anything reaches the store
def test_bad_xml_is_refused_with_its_reason(central, body: bytes, error: str) -> None:
    answer = central.client("enterprise").post("/api/v1/ceb/messages", content=body, headers=XML)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == error, answer.json()
    assert answer.json()["detail"]


def test_oversize_body_is_413_before_parsing(tmp_path) -> None:
    from testkit.central_server import run_central

    with run_central(tmp_path, max_body_bytes=4096) as central:
        big = good_message() + b" " * 5000
        answer = central.client("enterprise").post("/api/v1/ceb/messages", content=big, headers=XML)
        assert answer.status_code == 413 and answer.json()["error"] == "too_large"


def test_wrong_media_type_is_415(central) -> None:
    answer = central.client("enterprise").post(
        "/api/v1/ceb/messages", content=good_message(), headers={"content-type": "text/plain"}
    )
    assert answer.status_code == 415


def test_a_message_with_one_bad_document_stores_nothing(central) -> None:
    sets = factories.document_set(3, start=910)
    text = message_xml(DocKind.ORDER, [s.order for s in sets], BASE)
    broken = text.replace(sets[2].order.orderNo.encode(), b"x" * 61)  # orderNo over 60 characters
    answer = central.client("enterprise").post("/api/v1/ceb/messages", content=broken, headers=XML)
    assert answer.status_code == 400
    assert "orderNo" in answer.json()["detail"]
    for s in sets:
        assert (
            central.client("enterprise").get(f"/api/v1/documents/{s.order.guid}/receipts").status_code == 404
        )


def test_json_with_bad_fields_is_422_naming_the_field(central) -> None:
    body = factories.order(920).model_dump(mode="json") | {"acturalPaid": "1.1234567"}
    answer = central.client("enterprise").post("/api/v1/documents", json=body)
    assert answer.status_code == 422
    assert "acturalPaid" in answer.text
    assert central.client("enterprise").post("/api/v1/documents", json={"documents": []}).status_code == 422
    assert (
        central.client("enterprise")
        .post("/api/v1/documents", content=b"{not json", headers={"content-type": "application/json"})
        .status_code
        == 422
    )

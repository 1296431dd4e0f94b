"""The official sample messages through the real intake: taken, and their inconsistencies reported.

The samples are independent examples, not one parcel's documents: their order numbers, logistics
numbers and amounts do not line up across messages. Central must take them and say so precisely.
"""

from __future__ import annotations

import itertools
import re

import pytest

from central.ceb.xml_in import parse_message
from central.comparison import compare
from tests.conftest import shared_dir

SHARED = shared_dir()
pytestmark = pytest.mark.skipif(SHARED is None, reason="../shared (official samples) not present")
XML = {"content-type": "application/xml"}


def sample(kind: str) -> bytes:
    assert SHARED is not None
    return (SHARED / "ceb" / "samples" / f"{kind}Message.xml").read_bytes()


_numbers = itertools.count(1)


def own_guids(message: bytes) -> bytes:
    """The samples give every document of every message one guid, which the standard means to be
    each document's own: each gets a guid of its own here, so the documents themselves are tried."""
    return re.sub(
        rb"<ceb:guid>[^<]*</ceb:guid>",
        lambda _: b"<ceb:guid>00000000-0000-4000-8000-%012d</ceb:guid>" % next(_numbers),
        message,
    )


def test_the_samples_one_guid_for_every_document_is_taken_once(central) -> None:
    shop = central.client("enterprise")
    [first, *rest] = shop.post("/api/v1/ceb/messages", content=sample("CEB311"), headers=XML).json()[
        "receipts"
    ]
    assert first["returnStatus"] == "120"
    assert rest and all(r["returnStatus"] == "100" and "guid" in r["returnInfo"] for r in rest)


def test_samples_are_taken_and_incomplete_sets_reported(central) -> None:
    admin, shop, officer = (central.client(n) for n in ("admin", "enterprise", "officer"))
    admin.put(
        "/api/v1/parks/SAMPLE", json={"park_id": "SAMPLE", "name": "sample park", "ems_nos": ["S1501I000164"]}
    ).raise_for_status()
    receipts = []
    for kind in ("CEB311", "CEB411", "CEB511", "CEB621"):
        answer = shop.post("/api/v1/ceb/messages", content=own_guids(sample(kind)), headers=XML)
        assert answer.status_code == 200, answer.text
        receipts += answer.json()["receipts"]
    # the samples repeat document keys within a message: each repeat is refused by the uniqueness rule
    refused = [r for r in receipts if r["returnStatus"] == "100"]
    assert refused and all("uniqueness" in r["returnInfo"] for r in refused)
    # the sample inventory for order2016030811340001 names an order and payment no sample carries
    [detail] = officer.get("/api/v1/clearances", params={"orderNo": "order2016030811340001"}).json()
    assert detail["clearance"] is None
    assert detail["missing"] == ["order", "payment"]
    # its waybill (by logisticsNo) is there, but names another order: the keys inconsistency
    assert detail["documents"]["waybill"]["orderNo"] != detail["documents"]["inventory"]["orderNo"]


def test_sample_documents_paired_by_logistics_number_fail_the_comparison_precisely() -> None:
    orders = parse_message(sample("CEB311")).documents
    payments = parse_message(sample("CEB411")).documents
    waybills = {w.logisticsNo: w for w in parse_message(sample("CEB511")).documents}
    inventory = next(i for i in parse_message(sample("CEB621")).documents if i.logisticsNo in waybills)
    result = compare(orders[0], payments[0], waybills[inventory.logisticsNo], inventory)
    assert not result.ok
    keys = [f for f in result.failures if f.rule == "keys"]
    assert any(f.field == "orderNo" for f in keys), result.failures
    assert "keys.orderNo" in result.return_info()
    assert len(result.return_info()) <= 1000

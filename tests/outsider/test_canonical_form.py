"""docs/canonical-form.md and its vectors are one thing with the code (issue 11 B). A verifier written
from the README verified 0 of 608 feed records: the code signed `+00:00` where the wire and the README
said `Z`, and a chain hashed over the events as sent broke on `Z` or a left-out `codes`. Here a
verifier written from the document alone (tests/outsider/verifier.py, importing nothing from
Bondgate) checks the published vectors, then a live central's feed and an edge's events as sent."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.outsider import verifier as v

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "test-vectors" / "canonical-v2.json"


def vectors() -> dict[str, Any]:
    return json.loads(VECTORS.read_text(encoding="utf-8"))


def test_the_vectors_verify_from_the_document_alone() -> None:
    data = vectors()
    key = v.public_key(data["public_key_pem"])
    for item in data["records"]:
        assert v.record_signed_bytes(item["record"]).decode() == item["signed_bytes"]
        assert v.record_ok(key, item["record"])
    served = [item["record"] for item in data["records"]]
    assert v.chain(data["chain"]["genesis"], served) == data["chain"]["hash"]
    checkpoint = data["checkpoint"]["checkpoint"]
    assert v.checkpoint_signed_bytes(checkpoint).decode() == data["checkpoint"]["signed_bytes"]
    assert v.checkpoint_ok(key, checkpoint) and checkpoint["hash"] == data["chain"]["hash"]
    prev = "0" * 64
    for item in data["events"]:
        event = item["event"]
        assert event["prev_hash"] == prev
        assert v.event_hashed_bytes(event).decode() == item["hashed_bytes"]
        assert v.event_ok(event)
        prev = event["hash"]
    release = data["events"][1]["event"]["body"]
    entry = {k: release[k] for k in ("logisticsNo", "logisticsCode", "decision_id", "record_version")}
    assert v.ledger_hash("0" * 64, {"n": release["ledger_n"], **entry}) == release["ledger_hash"]


def test_an_event_hashes_the_same_sent_with_or_without_its_empty_members() -> None:
    event = dict(vectors()["events"][0]["event"])  # a heartbeat: no codes, no epoch
    assert "codes" not in json.dumps(event)
    with_empty = {**event, "epoch": None, "body": {**event["body"], "codes": []}}
    with_offset = {**event, "occurred_at": event["occurred_at"].replace("Z", "+00:00")}
    assert v.event_ok(with_empty) and v.event_ok(with_offset)


def test_a_tampered_record_or_event_does_not_verify() -> None:
    data = vectors()
    key = v.public_key(data["public_key_pem"])
    record = {**data["records"][0]["record"], "status": "100"}
    assert not v.record_ok(key, record)
    event = {**data["events"][2]["event"], "kind": "release"}
    assert not v.event_ok(event)


def test_a_live_central_feed_verifies_from_the_document_alone(central: Any) -> None:
    """Records central signs now, fetched over HTTP, verify with the outsider's code."""
    from testkit import factories

    with central.client("enterprise") as shop:
        for s in factories.document_set(3, start=950):
            shop.post(
                "/api/v1/documents", json={"documents": [d.model_dump(mode="json") for d in s.documents]}
            )
    key = v.public_key(central.client().get("/.well-known/bondgate/feed-key.pem").text)
    with central.client("edge") as edge:
        page = edge.get("/api/v1/parks/P1/feed", params={"after": 0}).json()
    assert len(page["records"]) >= 3
    assert all(v.record_ok(key, r) for r in page["records"])
    assert v.chain("0" * 64, page["records"]) == page["checkpoint"]["hash"]
    assert v.checkpoint_ok(key, page["checkpoint"])


def test_central_takes_a_chain_hashed_by_the_document_over_the_events_as_sent(central: Any) -> None:
    """An edge written from the document: occurred_at with Z, empty members left out."""
    prev, events = "0" * 64, []
    for seq in (1, 2):
        event = {
            "edge_id": "edge-p1",
            "seq": seq,
            "kind": "heartbeat",
            "occurred_at": datetime(2026, 12, 5, 9, 0, seq, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "body": {"backlog": 0},
            "prev_hash": prev,
        }
        event["hash"] = hashlib.sha256(v.event_hashed_bytes(event)).hexdigest()
        events.append(event)
        prev = event["hash"]
    with central.client("edge") as edge:
        answer = edge.post("/api/v1/parks/P1/events", json={"edge_id": "edge-p1", "events": events}).json()
    assert answer["stored"] == 2 and answer["refused"] == [] and answer["acked_seq"] == 2

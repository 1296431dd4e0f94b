"""The park feed: cursor paging in commit order, signatures, no personal data, park isolation."""

from __future__ import annotations

import subprocess

from kernel.wire import FeedRecord, load_public_key, verify_record
from testkit import factories

PERSONAL = {
    "buyerName",
    "buyerIdNumber",
    "buyerTelephone",
    "consignee",
    "consigneeAddress",
    "consigneeTelephone",
    "payerName",
    "payerIdNumber",
}


def declare(central, n: int, start: int, **kw) -> list[factories.DocumentSet]:
    sets = factories.document_set(n, start=start, **kw)
    batch = {"documents": [d.model_dump(mode="json") for s in sets for d in s.documents]}
    central.client("enterprise").post("/api/v1/documents", json=batch).raise_for_status()
    return sets


def test_feed_pages_every_change_in_order_and_verifies(central) -> None:
    declare(central, 30, 1)
    pem = central.client().get("/.well-known/bondgate/feed-key.pem")
    assert pem.status_code == 200
    key = load_public_key(pem.text)
    edge = central.client("edge")
    records, after = [], 0
    while True:
        page = edge.get("/api/v1/parks/P1/feed", params={"after": after, "limit": 7}).json()
        records += page["records"]
        after = page["next_after"]
        if not page["has_more"]:
            break
    # each parcel went 120, 399, 800 in the one message: the feed holds the state that message
    # committed (no reader could see the two before), its version counting all three steps
    assert len(records) == 30
    assert {(r["status"], r["version"]) for r in records} == {("800", 3)}
    seqs = [r["seq"] for r in records]
    assert seqs == sorted(seqs) and len(set(seqs)) == 30
    for raw in records:
        assert not PERSONAL & raw.keys()
        record = FeedRecord.model_validate(raw)
        assert verify_record(record, key)
    last = {r["logisticsNo"]: r for r in records}
    assert {r["status"] for r in last.values()} == {"800"}
    # a record altered after signing no longer verifies
    forged = FeedRecord.model_validate({**records[0], "status": "800", "grossWeight": "99"})
    assert not verify_record(forged, key)
    # nothing new after the end
    tail = edge.get("/api/v1/parks/P1/feed", params={"after": after}).json()
    checkpoint = tail.pop("checkpoint")
    assert tail == {"records": [], "next_after": after, "has_more": False, "head": after}
    assert (checkpoint["cursor"], checkpoint["count"]) == (after, 30)


def test_each_park_sees_only_its_own_records(central) -> None:
    declare(central, 2, 1)
    declare(central, 3, 50, ems_no="T6409W000002", area_code="4601W60002")
    p1 = central.client("edge").get("/api/v1/parks/P1/feed").json()["records"]
    p2 = central.client("edge_p2").get("/api/v1/parks/P2/feed").json()["records"]
    assert {r["park_id"] for r in p1} == {"P1"} and len({r["logisticsNo"] for r in p1}) == 2
    assert {r["park_id"] for r in p2} == {"P2"} and len({r["logisticsNo"] for r in p2}) == 3
    assert central.client("edge").get("/api/v1/parks/P2/feed").status_code == 403


def test_long_poll_returns_when_nothing_arrives(central) -> None:
    page = central.client("edge").get("/api/v1/parks/P1/feed", params={"after": 0, "wait": 0.3}).json()
    assert page["records"] == []


def test_cli_prints_the_same_public_key(central, tmp_path) -> None:
    config = tmp_path / "central.toml"
    config.write_text(
        f'database = "{central.settings.database}"\nsigning_key = "{central.settings.signing_key}"\n'
    )
    out = subprocess.run(
        [".venv/bin/bondgate", "central", "keys", "--config", str(config)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == central.client().get("/.well-known/bondgate/feed-key.pem").text

"""The park feed as a hash chain: every page carries central's signed checkpoint at its `next_after`,
and the page's records, hashed in order onto the previous checkpoint, give exactly it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central import feed
from central.store import db as central_db
from central.store import schema
from central.store.db import open_database
from kernel.wire import (
    GENESIS_HASH,
    FeedCheckpoint,
    feed_chain,
    load_public_key,
    verify_checkpoint,
)
from testkit import factories


def declare(central, n: int, start: int, **kw) -> None:  # type: ignore[no-untyped-def]
    sets = factories.document_set(n, start=start, **kw)
    batch = {"documents": [d.model_dump(mode="json") for s in sets for d in s.documents]}
    central.client("enterprise").post("/api/v1/documents", json=batch).raise_for_status()


def test_every_page_extends_the_last_checkpoint_to_its_own(central) -> None:  # type: ignore[no-untyped-def]
    declare(central, 10, 1)
    declare(central, 4, 60, ems_no="T6409W000002", area_code="4601W60002")  # park P2, interleaved seqs
    declare(central, 5, 20)
    key = load_public_key(central.client().get("/.well-known/bondgate/feed-key.pem").text)
    edge = central.client("edge")
    after, count, running, pages = 0, 0, GENESIS_HASH, 0
    while True:
        page = edge.get("/api/v1/parks/P1/feed", params={"after": after, "limit": 7}).json()
        checkpoint = FeedCheckpoint.model_validate(page["checkpoint"])
        assert verify_checkpoint(checkpoint, key)
        running = feed_chain(running, page["records"])
        count += len(page["records"])
        assert (checkpoint.park_id, checkpoint.cursor, checkpoint.count, checkpoint.hash) == (
            "P1",
            page["next_after"],
            count,
            running,
        )
        after, pages = page["next_after"], pages + 1
        if not page["has_more"]:
            break
    assert count == 15 and pages == 3  # one record per parcel: the state its message committed
    # the park's other feed is its own chain
    p2 = central.client("edge_p2").get("/api/v1/parks/P2/feed").json()
    assert p2["checkpoint"]["count"] == 4 and p2["checkpoint"]["hash"] == feed_chain(
        GENESIS_HASH, p2["records"]
    )


def test_an_empty_page_carries_the_checkpoint_at_the_park_s_last_record(central) -> None:  # type: ignore[no-untyped-def]
    declare(central, 2, 1)
    edge = central.client("edge")
    first = edge.get("/api/v1/parks/P1/feed").json()
    declare(central, 1, 60, ems_no="T6409W000002", area_code="4601W60002")  # seqs of P2 only
    empty = edge.get("/api/v1/parks/P1/feed", params={"after": first["next_after"]}).json()
    assert empty["records"] == [] and empty["checkpoint"] == first["checkpoint"]
    # an `after` past the park's last record never gets a checkpoint at a seq P1 has not reached
    beyond = edge.get("/api/v1/parks/P1/feed", params={"after": first["next_after"] + 2}).json()
    assert beyond["next_after"] == first["next_after"] and beyond["checkpoint"] == first["checkpoint"]
    nothing = central.client("edge_p2").get("/api/v1/parks/P2/feed", params={"after": 0}).json()
    assert nothing["checkpoint"]["count"] == 1


def test_a_database_from_before_checkpoints_is_chained_by_its_migration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "central.db"
    with monkeypatch.context() as old:
        old.setattr(central_db, "MIGRATIONS", schema.MIGRATIONS[:1])
        db = open_database(path)
        with db.write() as conn:
            conn.execute("INSERT INTO parks VALUES ('P1', 'one', '[]', '[]', 'now')")
            conn.execute("INSERT INTO parks VALUES ('P2', 'two', '[]', '[]', 'now')")
            for i in range(1, 13):
                park = "P1" if i % 3 else "P2"
                record = factories.feed_record(key, park_id=park, logisticsNo=f"SF{i:010d}", version=i)
                conn.execute(
                    "INSERT INTO feed (park_id, clearance_id, record) VALUES (?, ?, ?)",
                    (park, f"c{i}", record.model_dump_json(exclude={"seq"})),
                )
        db.close()
    db = open_database(path)  # runs 0004_feed_chain over the 12 rows
    try:
        body, count = feed.page_json(db, key, park_id="P1", after=0, limit=5)
        page = json.loads(body)
        checkpoint = FeedCheckpoint.model_validate(page["checkpoint"])
        assert count == 5 and checkpoint.count == 5 and checkpoint.cursor == page["next_after"] == 7
        assert checkpoint.hash == feed_chain(GENESIS_HASH, page["records"])
        assert verify_checkpoint(checkpoint, key.public_key())  # signed when served: migrations have no key
        # a record appended now continues the chain the migration built
        record = factories.feed_record(key, logisticsNo="SF0000000099", version=1)
        with db.write() as conn:
            feed.append(
                conn,
                key,
                park_id="P1",
                clearance_id="c99",
                record_json=record.model_dump_json(exclude={"seq"}),
            )
        rest = json.loads(feed.page_json(db, key, park_id="P1", after=7, limit=100)[0])
        last = FeedCheckpoint.model_validate(rest["checkpoint"])
        assert last.count == 9 and last.hash == feed_chain(checkpoint.hash, rest["records"])
        assert verify_checkpoint(last, key.public_key())
        stored = (
            db.reader().execute("SELECT checkpoint FROM feed WHERE seq = ?", (last.cursor,)).fetchone()[0]
        )
        assert stored == last.signature  # signed with the record, at write time
        p2 = FeedCheckpoint.model_validate(
            json.loads(feed.page_json(db, key, park_id="P2", after=0, limit=9)[0])["checkpoint"]
        )
        assert (p2.cursor, p2.count) == (12, 4)
    finally:
        db.close()

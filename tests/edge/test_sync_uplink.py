"""The edge's feed sync and store-and-forward uplink against a real central."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bondgate.wire import EventBody, EventKind, load_public_key, verify_record
from edge.store import Store
from edge.sync import FeedSync
from edge.uplink import Uplink, new_event
from tests import factories
from tests.support.central_server import run_central


def declare(central, n: int, start: int = 1) -> list[factories.DocumentSet]:  # type: ignore[no-untyped-def]
    sets = factories.document_set(n, start=start)
    batch = {"documents": [d.model_dump(mode="json") for s in sets for d in s.documents]}
    central.client("enterprise").post("/api/v1/documents", json=batch).raise_for_status()
    return sets


def edge_client(central) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return httpx.AsyncClient(
        base_url=central.url, headers={"Authorization": f"Bearer {central.tokens['edge']}"}
    )


def test_sync_fills_the_cache_and_resumes_from_the_cursor(tmp_path: Path) -> None:
    with run_central(tmp_path / "c") as central:
        sets = declare(central, 20)
        key = load_public_key(central.client().get("/.well-known/bondgate/feed-key.pem").text)
        store = Store(tmp_path / "edge.db")

        async def first() -> FeedSync:
            async with edge_client(central) as client:
                sync = FeedSync(store=store, client=client, park_id="P1", public_key=key, page_size=7)
                await sync.catch_up()
                return sync

        sync = asyncio.run(first())
        assert store.count_clearances() == 20
        assert sync.status.rejected_signatures == 0
        [cached] = store.lookup(sets[0].waybill.logisticsNo)
        assert cached.record.status == "800" and verify_record(cached.record, key)
        cursor = store.sync_state()["cursor"]
        declare(central, 3, start=100)

        async def again() -> None:
            async with edge_client(central) as client:
                sync = FeedSync(store=store, client=client, park_id="P1", public_key=key)
                assert sync.status.cursor == cursor  # resumed, not restarted
                await sync.catch_up()

        asyncio.run(again())
        assert store.count_clearances() == 23
        store.close()


def test_a_record_altered_in_the_local_database_fails_its_signature(tmp_path: Path) -> None:
    with run_central(tmp_path / "c") as central:
        sets = declare(central, 1)
        key = load_public_key(central.client().get("/.well-known/bondgate/feed-key.pem").text)
        store = Store(tmp_path / "edge.db")

        async def sync() -> None:
            async with edge_client(central) as client:
                await FeedSync(store=store, client=client, park_id="P1", public_key=key).catch_up()

        asyncio.run(sync())
        code = sets[0].waybill.logisticsNo
        store.write_sync(
            lambda conn: conn.execute(
                "UPDATE clearances SET record = replace(record, ?, ?) WHERE logistics_no = ?",
                ('"grossWeight":"0.8', '"grossWeight":"9.8', code),
            )
        )
        [cached] = store.lookup(code)
        assert str(cached.record.grossWeight).startswith("9.8")
        assert not verify_record(cached.record, key)
        store.close()


def _events(store: Store, n: int) -> None:
    def work(conn):  # type: ignore[no-untyped-def]
        for i in range(n):
            new_event(
                conn,
                edge_id="edge-1",
                kind=EventKind.HEARTBEAT,
                station=None,
                body=EventBody(backlog=i),
                occurred_at=datetime.now(UTC),
            )

    store.write_sync(work)


def test_uplink_keeps_events_while_central_is_down_and_drains_in_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "edge.db")
    _events(store, 30)
    central_dir = tmp_path / "c"
    with run_central(central_dir) as central:
        tokens = central.tokens

        async def send(url: str) -> Uplink:
            async with httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {tokens['edge']}"}
            ) as c:
                uplink = Uplink(store=store, client=c, park_id="P1", edge_id="edge-1", batch_size=8)
                await uplink.send_once()
                return uplink

        asyncio.run(send(central.url))
        assert store.backlog()["size"] == 22 and store.backlog()["acked_seq"] == 8
        url = central.url

    # central is gone: sending fails, nothing leaves the outbox
    async def fail() -> None:
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {tokens['edge']}"}
        ) as c:
            uplink = Uplink(store=store, client=c, park_id="P1", edge_id="edge-1")
            try:
                await uplink.send_once()
            except httpx.TransportError:
                return
            raise AssertionError("central should be unreachable")

    asyncio.run(fail())
    assert store.backlog()["size"] == 22
    _events(store, 5)
    # central back (same database), the backlog drains in order, each event once
    with run_central(central_dir, reseed=False) as central:

        async def drain() -> None:
            async with httpx.AsyncClient(
                base_url=central.url, headers={"Authorization": f"Bearer {tokens['edge']}"}
            ) as c:
                await Uplink(store=store, client=c, park_id="P1", edge_id="edge-1", batch_size=8).drain()

        asyncio.run(drain())
        assert store.backlog()["size"] == 0
        [edge_row] = central.client("officer").get("/api/v1/parks/P1/edges").json()
        assert edge_row["last_seq"] == 35
    store.close()

"""The edge's feed sync and store-and-forward uplink against a real central."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central.keys import load_or_create_key
from edge.store import Store, new_event
from edge.sync import FeedRefused, FeedSync, SyncStatus
from edge.uplink import Uplink
from edge.verified import VerifiedTexts
from kernel.wire import (
    GENESIS_HASH,
    EventBody,
    EventKind,
    FeedCheckpoint,
    FeedRecord,
    feed_chain,
    load_public_key,
    sign_checkpoint,
    verify_record,
)
from testkit import factories
from testkit.central_server import run_central
from testkit.customs import declare_and_clear


def declare(central, n: int, start: int = 1) -> list[factories.DocumentSet]:  # type: ignore[no-untyped-def]
    """Three versions of each parcel in the feed: 120, then customs' 399 and 800, one message each."""
    return declare_and_clear(central, n, start)


def edge_client(central) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return httpx.AsyncClient(
        base_url=central.url, headers={"Authorization": f"Bearer {central.tokens['edge']}"}
    )


def test_sync_fills_the_cache_and_resumes_from_the_cursor(tmp_path: Path) -> None:
    with run_central(tmp_path / "c", mode="customs") as central:
        sets = declare(central, 20)
        key = load_public_key(central.client().get("/.well-known/bondgate/feed-key.pem").text)
        store = Store(tmp_path / "edge.db")
        verified = VerifiedTexts()

        async def first() -> FeedSync:
            async with edge_client(central) as client:
                sync = FeedSync(
                    store=store, client=client, park_id="P1", public_key=key, page_size=7, verified=verified
                )
                await sync.catch_up()
                return sync

        sync = asyncio.run(first())
        assert store.count_clearances() == 20
        assert sync.status.rejected_signatures == 0
        stored = [row[0] for row in store.reader().execute("SELECT record FROM clearances")]
        assert all(text in verified for text in stored)  # a decision need not verify them again
        [cached] = Store.find(store.reader(), sets[0].waybill.logisticsNo)
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
    with run_central(tmp_path / "c", mode="customs") as central:
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
        [cached] = Store.find(store.reader(), code)
        assert str(cached.record.grossWeight).startswith("9.8")
        assert not verify_record(cached.record, key)
        store.close()


def tamper(central, logistics_no: str, version: int, old: str, new: str, *, rechain: bool = True) -> None:  # type: ignore[no-untyped-def]
    """Alter one signed record where central keeps it, as an attacker with its database would.

    `rechain` then rebuilds the park feeds' hash chains and re-signs their checkpoints with central's
    key, as if central itself had chained the altered record: what is left to catch it is the
    record's own signature. Without it the chain no longer matches and whole pages are refused."""
    conn = sqlite3.connect(central.settings.database)
    with conn:
        changed = conn.execute(
            """UPDATE feed SET record = replace(record, ?, ?)
               WHERE json_extract(record, '$.logisticsNo') = ? AND json_extract(record, '$.version') = ?""",
            (old, new, logistics_no, version),
        ).rowcount
        if rechain:
            key = load_or_create_key(central.settings.signing_key)
            heads: dict[str, tuple[int, str]] = {}
            rows = conn.execute("SELECT seq, park_id, record FROM feed ORDER BY seq").fetchall()
            for seq, park, record in rows:
                n, running = heads.get(park, (0, GENESIS_HASH))
                running = feed_chain(running, [{"seq": seq, **json.loads(record)}])
                heads[park] = (n + 1, running)
                signed = sign_checkpoint(
                    FeedCheckpoint(park_id=park, cursor=seq, count=n + 1, hash=running), key
                )
                conn.execute(
                    "UPDATE feed SET n = ?, chain = ?, checkpoint = ? WHERE seq = ?",
                    (n + 1, running, signed.signature, seq),
                )
    conn.close()
    assert changed == 1


FORGED_WEIGHT = ('"grossWeight":"0.8', '"grossWeight":"9.8')  # still a valid shape; signature fails
BAD_SHAPE = ('"cancelled":false', '"cancelled":"perhaps"')


def first_sync(central, store: Store, page_size: int) -> SyncStatus:  # type: ignore[no-untyped-def]
    key = load_public_key(central.client().get("/.well-known/bondgate/feed-key.pem").text)

    async def run() -> SyncStatus:
        async with edge_client(central) as client:
            sync = FeedSync(store=store, client=client, park_id="P1", public_key=key, page_size=page_size)
            try:
                await sync.catch_up()
            finally:
                sync.close()
            return sync.status

    return asyncio.run(run())


def newest_valid_per_page(central, page_size: int) -> dict[tuple[str, str], FeedRecord]:  # type: ignore[no-untyped-def]
    """What the cache must hold: what the sync stored when it checked every record of a page and
    upserted all that passed, newer versions winning."""
    key = load_public_key(central.client().get("/.well-known/bondgate/feed-key.pem").text)
    edge, after, cache = central.client("edge"), 0, {}
    while True:
        page = edge.get("/api/v1/parks/P1/feed", params={"after": after, "limit": page_size}).json()
        for raw in page["records"]:
            try:
                record = FeedRecord.model_validate(raw)
            except ValueError:
                continue
            k = (record.logisticsNo, record.logisticsCode)
            if verify_record(record, key) and (k not in cache or record.version >= cache[k].version):
                cache[k] = record
        after = page["next_after"]
        if not page["has_more"]:
            return cache


def cached(store: Store) -> dict[tuple[str, str], FeedRecord]:
    rows = store.reader().execute("SELECT record FROM clearances")
    return {(r.logisticsNo, r.logisticsCode): r for r in (FeedRecord.model_validate_json(x[0]) for x in rows)}


# 0 more parcels: a page under 200 records, checked on the loop; 70 more: over the worker pool
MORE_PARCELS = pytest.mark.parametrize("more", [0, 70])


@MORE_PARCELS
def test_newest_version_with_a_bad_signature_leaves_the_previous_valid_one(
    tmp_path: Path, more: int, caplog: pytest.LogCaptureFixture
) -> None:
    with run_central(tmp_path / "c", mode="customs") as central:
        [target, *_] = declare(central, 1 + more)
        code = target.waybill.logisticsNo
        tamper(central, code, 3, *FORGED_WEIGHT)  # the 800 release, weight changed after signing
        store = Store(tmp_path / "edge.db")
        status = first_sync(central, store, page_size=5000)
        [stored] = Store.find(store.reader(), code)
        assert stored.record.version == 2 and stored.record.status == "399"
        assert str(stored.record.grossWeight) == "0.800"
        assert status.rejected_signatures == 1  # the forged 800, checked and refused
        [logged] = [r for r in caplog.records if r.name == "edge.sync" and r.levelname == "ERROR"]
        assert logged.getMessage() == "feed records refused: bad signature or shape" and logged.count == 1
        assert status.superseded_unchecked == 1 + 2 * more  # v1 of the target, v1 and v2 of the others
        assert status.records_applied == 1 + more
        assert store.sync_state()["records"] == 1 + more
        assert store.count_clearances() == 1 + more
        assert cached(store) == newest_valid_per_page(central, 5000)
        store.close()


@MORE_PARCELS
def test_older_version_with_a_bad_signature_is_superseded_unchecked(tmp_path: Path, more: int) -> None:
    with run_central(tmp_path / "c", mode="customs") as central:
        [target, *_] = declare(central, 1 + more)
        code = target.waybill.logisticsNo
        tamper(central, code, 2, *FORGED_WEIGHT)
        tamper(central, code, 1, *BAD_SHAPE)
        store = Store(tmp_path / "edge.db")
        status = first_sync(central, store, page_size=5000)
        [stored] = Store.find(store.reader(), code)
        assert stored.record.version == 3 and stored.record.status == "800"
        assert status.rejected_signatures == 0  # the bad ones were never looked at
        assert status.superseded_unchecked == 2 + 2 * more
        assert status.records_applied == 1 + more
        assert store.sync_state()["records"] == 1 + more
        assert cached(store) == newest_valid_per_page(central, 5000)
        store.close()


@pytest.mark.parametrize("page_size", [2, 7, 5000])
def test_the_newest_valid_version_is_stored_whatever_the_paging(tmp_path: Path, page_size: int) -> None:
    with run_central(tmp_path / "c", mode="customs") as central:
        sets = declare(central, 80)
        no = [s.waybill.logisticsNo for s in sets]
        tamper(central, no[0], 3, *FORGED_WEIGHT)
        tamper(central, no[1], 3, *BAD_SHAPE)
        tamper(central, no[1], 2, *FORGED_WEIGHT)  # falls back to v1
        for version in (1, 2, 3):
            tamper(central, no[2], version, *FORGED_WEIGHT)  # nothing valid: not stored at all
        tamper(central, no[3], 1, *FORGED_WEIGHT)
        store = Store(tmp_path / "edge.db")
        status = first_sync(central, store, page_size=page_size)
        expected = newest_valid_per_page(central, page_size)
        assert cached(store) == expected
        assert {k[0]: r.version for k, r in expected.items() if k[0] in no[:4]} == {
            no[0]: 2,
            no[1]: 1,
            no[3]: 3,
        }
        every = 3 * len(sets)
        assert status.records_applied + status.rejected_signatures + status.superseded_unchecked == every
        assert status.rejected_signatures >= 1 + 2 + 3  # checked and refused, whatever the paging
        store.close()


@pytest.mark.parametrize("page_size", [7, 5000])
def test_a_record_altered_where_central_keeps_it_refuses_its_whole_page(
    tmp_path: Path, page_size: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Someone who can write central's database but not read its key alters a record: the feed no
    longer hashes to the checkpoints central signed when it wrote it, so no page from there on is
    applied — not only the altered record — and the sync says why and keeps trying."""
    with run_central(tmp_path / "c", mode="customs") as central:
        sets = declare(central, 10)
        tamper(central, sets[4].waybill.logisticsNo, 3, *FORGED_WEIGHT, rechain=False)
        key = load_public_key(central.client().get("/.well-known/bondgate/feed-key.pem").text)
        store = Store(tmp_path / "edge.db")

        async def run() -> FeedSync:
            async with edge_client(central) as client:
                sync = FeedSync(store=store, client=client, park_id="P1", public_key=key, page_size=page_size)
                try:
                    with pytest.raises(FeedRefused, match="do not hash to central's checkpoint"):
                        while True:
                            await sync.pull_once()
                finally:
                    sync.close()
                return sync

        sync = asyncio.run(run())
        altered_seq = (
            2 * 10 + 5
        )  # the 5th parcel's third version (all 10 parcels are at 120, then 399, then 800)
        applied_up_to = store.sync_state()["cursor"]
        assert applied_up_to < altered_seq and applied_up_to % page_size == 0
        assert sync.status.refusals == {"fork": 1} and sync.status.refused_pages == 1
        assert "fork" in (sync.status.last_refusal or "")
        assert all(
            r.version < 3 or r.logisticsNo != sets[4].waybill.logisticsNo for r in cached(store).values()
        )
        [alarm] = [r for r in caplog.records if r.getMessage().startswith("feed alarm")]
        assert alarm.reason == "feed_fork"  # type: ignore[attr-defined]
        store.close()


@pytest.mark.parametrize("stored", ["none (a database from before checkpoints)", "not central's"])
def test_without_a_usable_stored_checkpoint_the_feed_is_verified_again_from_its_start(
    tmp_path: Path, stored: str
) -> None:
    """Every record is checked and applied again from the start (the cursor stored beside the
    checkpoint is not signed: a record it says was applied could be a revocation never applied); the
    older versions met on the way are no rollback alarm; the sync then goes on as before."""
    with run_central(tmp_path / "c", mode="customs") as central:
        declare(central, 12)
        store = Store(tmp_path / "edge.db")
        first_sync(central, store, page_size=7)
        verified = store.sync_state()
        value = (
            None if stored.startswith("none") else verified["checkpoint"].replace('"count":36', '"count":35')
        )
        store.write_sync(lambda c: c.execute("UPDATE sync_state SET checkpoint = ?", (value,)))
        declare(central, 2, start=100)
        status = first_sync(central, store, page_size=7)
        assert status.rejected_rollback == 0 and status.refused_pages == 0
        assert status.records_applied == 14  # every clearance's newest version, the two new ones too
        assert status.checkpoint_count == 42 and store.sync_state()["cursor"] == 42
        assert store.count_clearances() == 14
        store.close()


def test_the_records_counter_counts_records_stored(tmp_path: Path) -> None:
    with run_central(tmp_path / "c", mode="customs") as central:
        sets = declare(central, 5)
        store = Store(tmp_path / "edge.db")
        status = first_sync(central, store, page_size=5000)
        # 15 feed changes, one page: the newest of each clearance is checked and stored
        assert store.sync_state()["records"] == status.records_applied == 5
        assert status.superseded_unchecked == 10
        raw = central.client("edge").get("/api/v1/parks/P1/feed").json()["records"]
        [older, newest] = [
            FeedRecord.model_validate(r)
            for r in raw
            if r["logisticsNo"] == sets[0].waybill.logisticsNo and r["version"] in (2, 3)
        ]
        cursor = store.sync_state()["cursor"]

        def apply(record: FeedRecord) -> tuple[int, list[FeedRecord]]:
            return store.write_sync(
                lambda conn: Store.apply_feed(conn, [(record, record.model_dump_json())], cursor, "now")
            )

        assert apply(older) == (0, [older])  # older than the version stored: refused, not counted
        assert apply(newest) == (1, [])  # the same version again is written again
        assert store.sync_state()["records"] == 6
        [cached_record] = Store.find(store.reader(), sets[0].waybill.logisticsNo)
        assert cached_record.record == newest
        store.close()


def _events(store: Store, n: int) -> None:
    def work(conn):  # type: ignore[no-untyped-def]
        for i in range(n):
            new_event(
                conn,
                edge_id="edge-p1",
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
                uplink = Uplink(store=store, client=c, park_id="P1", edge_id="edge-p1", batch_size=8)
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
            uplink = Uplink(store=store, client=c, park_id="P1", edge_id="edge-p1")
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
                await Uplink(store=store, client=c, park_id="P1", edge_id="edge-p1", batch_size=8).drain()

        asyncio.run(drain())
        assert store.backlog()["size"] == 0
        [edge_row] = central.client("officer").get("/api/v1/parks/P1/edges").json()
        assert edge_row["last_seq"] == 35
    store.close()


def test_an_outbox_row_that_is_no_longer_json_is_refused_by_central_and_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The uplink sends the outbox rows as stored; a damaged one gets central's reason, not a crash,
    and nothing leaves the outbox (`bondgate edge db check` then names the row)."""
    store = Store(tmp_path / "edge.db")
    _events(store, 3)
    store.write_sync(lambda c: c.execute("UPDATE outbox SET event = '{\"seq\": 2, trunc' WHERE seq = 2"))
    with run_central(tmp_path / "c", mode="customs") as central:

        async def send() -> httpx.Response:
            async with httpx.AsyncClient(
                base_url=central.url, headers={"Authorization": f"Bearer {central.tokens['edge']}"}
            ) as c:
                uplink = Uplink(store=store, client=c, park_id="P1", edge_id="edge-p1")
                with pytest.raises(httpx.HTTPStatusError) as refused:
                    await uplink.send_once()
                return refused.value.response

        with caplog.at_level("ERROR", logger="edge.uplink"):
            response = asyncio.run(send())
    assert response.status_code == 422
    [named] = [r for r in caplog.records if "refused the batch as malformed" in r.getMessage()]
    assert named.seq == 2  # type: ignore[attr-defined]
    assert "JSON" in response.text or "json" in response.text
    assert store.backlog()["size"] == 3 and store.backlog()["acked_seq"] == 0
    store.close()


def test_a_backlog_drains_without_the_pause_between_uploads(tmp_path: Path) -> None:
    """The pause between uploads is for a busy line's trickle; full batches (a backlog after an
    outage) go one after another. With an hour's pause, 20 events in batches of 8 still all leave."""
    store = Store(tmp_path / "edge.db")
    _events(store, 20)
    with run_central(tmp_path / "c", mode="customs") as central:

        async def run_uplink() -> None:
            async with edge_client(central) as client:
                uplink = Uplink(
                    store=store, client=client, park_id="P1", edge_id="edge-p1", batch_size=8, linger_s=3600
                )
                task = asyncio.create_task(uplink.run())
                try:
                    async with asyncio.timeout(60):
                        while store.backlog()["size"] > 4:  # the last, partial batch may wait
                            await asyncio.sleep(0.02)
                finally:
                    task.cancel()

        asyncio.run(run_uplink())
    assert store.backlog()["acked_seq"] >= 16
    store.close()


HOSTILE_PAGES = [
    ({"records": [], "next_after": 2**70, "has_more": False}, "next_after is not a cursor"),
    ({"records": None, "next_after": 1, "has_more": False}, "records is not a list"),
    ({"records": [], "next_after": "7", "has_more": False}, "next_after is not a cursor"),
    ({"records": [], "next_after": 1, "has_more": "no"}, "has_more is not true or false"),
    ({"records": [], "next_after": 1, "has_more": False, "head": -1}, "head is not a cursor"),
    ([1, 2, 3], "not a JSON object"),
]


@pytest.mark.parametrize(("page", "why"), HOSTILE_PAGES)
def test_a_hostile_feed_page_is_refused_and_the_sync_keeps_going(
    tmp_path: Path, page: object, why: str
) -> None:
    """Only the records are signed; a page whose frame is wrong (from a broken proxy or an attacker
    on the path) is refused with a reason, nothing is applied, and the sync goes on trying."""

    def hostile(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=page)

    async def scenario() -> None:
        store = Store(tmp_path / "edge.db")
        transport = httpx.MockTransport(hostile)  # the peer is the attacker here, not our central
        async with httpx.AsyncClient(transport=transport, base_url="http://central") as client:
            key = Ed25519PrivateKey.generate().public_key()
            sync = FeedSync(store=store, client=client, park_id="P1", public_key=key, backoff_initial=0.01)
            with pytest.raises(ValueError, match=why):
                await sync.pull_once()
            running = asyncio.create_task(sync.run())
            async with asyncio.timeout(10):
                while sync.status.consecutive_failures < 2:
                    await asyncio.sleep(0.01)
            assert not running.done()
            assert why in (sync.status.last_error or "")
            running.cancel()
            sync.close()
        assert store.sync_state()["cursor"] == 0 and store.count_clearances() == 0
        store.close()

    asyncio.run(scenario())


def test_a_cursor_moved_on_by_hand_drops_no_revocation(tmp_path: Path) -> None:
    """Found by an outside tester: sync_state.cursor set to 4e18 (it is not signed) made every new
    record look applied already, so a cancellation never reached the cache. The sync goes on from
    the verified checkpoint and applies what comes."""
    with run_central(tmp_path / "c", mode="customs") as central:
        [cancelled] = declare(central, 1)
        store = Store(tmp_path / "edge.db")
        first_sync(central, store, page_size=50)
        store.write_sync(lambda c: c.execute("UPDATE sync_state SET cursor = 4000000000000000000"))
        with central.client("officer") as officer:
            [detail] = officer.get(
                "/api/v1/clearances", params={"logisticsNo": cancelled.waybill.logisticsNo}
            ).json()
        cancel = factories.cancellation(1, invtNo=detail["clearance"]["invtNo"]).model_dump(mode="json")
        with central.client("enterprise") as shop:
            shop.post("/api/v1/documents", json=cancel).raise_for_status()
        first_sync(central, store, page_size=50)
        [cached] = Store.find(store.reader(), cancelled.waybill.logisticsNo)
        assert cached.record.cancelled
        store.close()

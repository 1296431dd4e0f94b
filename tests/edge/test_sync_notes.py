"""Release notes reach the park's edge in its signed feed: stored with the clearances and the cursor,
newest version per note, no personal data; a note of another park, with a bad signature or older
than one stored is refused."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.store import Store
from edge.sync import FeedSync, check_page
from firmware_sim import release_notes as notes
from kernel.wire import NoteRecord, load_public_key, sign_note, verify_note
from testkit import factories
from testkit.central_server import run_central


def test_a_note_and_its_changes_reach_the_edge_in_the_feed(tmp_path: Path) -> None:
    with run_central(tmp_path / "c") as central:
        shop, officer = central.client("enterprise"), central.client("officer")
        sets = factories.document_set(2, start=61)
        for s in sets:
            for doc in s.documents:
                shop.post("/api/v1/documents", json=doc.model_dump(mode="json")).raise_for_status()
        invts = [
            officer.get("/api/v1/clearances", params={"logisticsNo": s.waybill.logisticsNo}).json()[0][
                "clearance"
            ]["invtNo"]
            for s in sets
        ]
        notes.register_vehicle(shop, officer, "琼A12345", card="IC0001", tare_kg="8000")
        body = notes.note(
            "E-1", invts, goods_kg="1.6", container_no="CSQU3054383", container_kg="2200", seal="ES001|ES002"
        )
        shop.post("/api/v1/release-notes", json=body).raise_for_status()
        key = load_public_key(central.client().get("/.well-known/bondgate/feed-key.pem").text)
        store = Store(tmp_path / "edge.db")

        async def pull() -> FeedSync:
            headers = {"Authorization": f"Bearer {central.tokens['edge']}"}
            async with httpx.AsyncClient(base_url=central.url, headers=headers) as client:
                sync = FeedSync(store=store, client=client, park_id="P1", public_key=key)
                await sync.catch_up()
                return sync

        sync = asyncio.run(pull())
        assert store.count_clearances() == 2 and store.count_notes() == 1
        assert sync.status.notes_applied == 1 and sync.status.rejected_signatures == 0
        [cached] = Store.notes_for_vehicle(store.reader(), plate="琼A12345", card=None)
        record = cached.record
        assert record is not None and verify_note(record, key)
        assert (record.status, record.passportNo is not None, record.vehicleIcNo) == ("1", True, "IC0001")
        assert record.inventories == tuple(invts) and record.sealIds == ("ES001", "ES002")
        assert record.totalWt == Decimal("10201.6") and record.containerNo == "CSQU3054383"
        assert (
            "王师傅" not in cached.raw and "13800000000" not in cached.raw
        )  # the applicant stays at central
        assert Store.notes_for_vehicle(store.reader(), plate=None, card="IC0001")[0].note_no == "E-1"

        shop.post("/api/v1/release-notes/E-1/delete").raise_for_status()
        asyncio.run(pull())
        cached = Store.note(store.reader(), "E-1")
        assert cached is not None and cached.status == "5" and cached.record is not None
        assert cached.record.version == 3
        store.close()


KEY = Ed25519PrivateKey.from_private_bytes(b"\x09" * 32)


def _note(**kw: object) -> dict[str, object]:
    values: dict[str, object] = {
        "seq": 1,
        "park_id": "P1",
        "etpsPreentNo": "U-1",
        "status": "1",
        "passportTypecd": "3",
        "ioTypecd": "E",
        "vehicleNo": "琼A12345",
        "vehicleWt": Decimal(8000),
        "totalGrossWt": Decimal(1),
        "totalWt": Decimal(8001),
        "version": 1,
        "updated_at": datetime(2026, 12, 6, tzinfo=UTC),
    }
    values.update(kw)
    signed = sign_note(NoteRecord.model_validate(values), KEY)
    return json.loads(signed.model_dump_json())  # type: ignore[no-any-return]


def test_notes_of_another_park_forged_or_superseded_in_a_page_are_not_stored() -> None:
    forged = _note(etpsPreentNo="U-2") | {"status": "1", "inventories": ["64092026I000000009"]}
    forged["vehicleNo"] = "琼B00000"  # changed after signing
    page = [_note(), _note(version=2, status="2", seq=2), _note(etpsPreentNo="U-3", park_id="P2"), forged]
    checked = check_page(page, KEY.public_key(), "P1")
    assert [(n.etpsPreentNo, n.version) for n, _ in checked.notes] == [("U-1", 2)]
    assert (checked.superseded, checked.foreign, checked.rejected) == (1, 1, 1)
    # a clearance record cannot pass for a note, nor a note's signature for a clearance's
    assert check_page([_note() | {"kind": None}], KEY.public_key(), "P1").good == []

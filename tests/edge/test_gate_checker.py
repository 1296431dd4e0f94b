"""A vehicle checked at the gate against a real central's feed, and its passage reported upstream
exactly once: the note passes at central (with a SAS223), a second vehicle on it is stopped, and a
supervisor can release a weight stop but not a customs one."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge import rules
from edge import vehicle_rules as vr
from edge.checker import Checker
from edge.gate_checker import GateChecker, OverrideRefused
from edge.store import Store
from edge.sync import FeedSync
from edge.uplink import Uplink
from firmware_sim import release_notes as notes
from kernel.wire import load_public_key
from testkit import factories
from testkit.central_server import RunningCentral, run_central

PLATE, CARD = "琼A12345", "IC0001"
TOL = vr.GateTolerance(
    absolute_kg=Decimal("20"),
    percent=Decimal("0.5"),
    override_limit=vr.WeightLimit(absolute_kg=Decimal("200"), percent=Decimal("2")),
)


def _setup(central: RunningCentral, start: int, n: int = 2) -> tuple[list[dict[str, Any]], list[str]]:
    shop, officer = central.client("enterprise"), central.client("officer")
    sets = factories.document_set(n, start=start)
    for s in sets:
        for doc in s.documents:
            shop.post("/api/v1/documents", json=doc.model_dump(mode="json")).raise_for_status()
    details = [
        officer.get("/api/v1/clearances", params={"logisticsNo": s.waybill.logisticsNo}).json()[0]
        for s in sets
    ]
    return details, [d["clearance"]["invtNo"] for d in details]


def _edge(tmp_path: Path, central: RunningCentral) -> tuple[Store, Checker, Any]:
    """This edge's store and parcel checker, and central's feed key."""
    key = load_public_key(central.client().get("/.well-known/bondgate/feed-key.pem").text)
    store = Store(tmp_path / "edge.db")
    checker = Checker(
        store=store,
        public_key=key,
        tolerance=rules.Tolerance(absolute_kg=Decimal("0.05"), percent=Decimal("5")),
        edge_id="edge-p1",
        staleness_limit_s=3600,
        park_id="P1",
    )
    return store, checker, key


def _register(central: RunningCentral) -> None:
    notes.register_vehicle(
        central.client("enterprise"), central.client("officer"), PLATE, card=CARD, tare_kg="8000"
    )


def _passage(**over: Any) -> vr.Passage:
    values: dict[str, Any] = {
        "direction": "E",
        "gate": "single",
        "plate": PLATE,
        "plate_confidence": 0.97,
        "card": CARD,
        "card_reader_configured": True,
        "gross_kg": Decimal("8001.6"),
        "containers": (),
        "seals": (),
        "device_faults": (),
        "tailgating": False,
    }
    values.update(over)
    return vr.Passage(**values)


def test_a_vehicle_passes_once_on_its_note_and_central_marks_it_passed(tmp_path: Path) -> None:
    with run_central(tmp_path / "c") as central:
        shop, officer = central.client("enterprise"), central.client("officer")
        details, invts = _setup(central, 71)
        _register(central)
        shop.post("/api/v1/release-notes", json=notes.note("G-1", invts, goods_kg="1.6")).raise_for_status()
        store, checker, key = _edge(tmp_path, central)
        gate = GateChecker(checker, TOL)
        headers = {"Authorization": f"Bearer {central.tokens['edge']}"}

        async def run() -> list[Any]:
            await checker.verify_release_history()
            async with httpx.AsyncClient(base_url=central.url, headers=headers) as client:
                await FeedSync(store=store, client=client, park_id="P1", public_key=key).catch_up()
                # the truck arrives before the line released its parcels: stopped, customs' reason
                early = await gate.decide("gate-1", _passage())
                for d in details:  # the line releases both parcels
                    c = d["clearance"]
                    obs = rules.Observation(
                        scanned_code=c["logisticsNo"], weight_kg=Decimal(c["grossWeight"])
                    )
                    assert (await checker.decide("line-1", obs)).verdict == rules.Verdict.RELEASE
                with pytest.raises(OverrideRefused):  # not released by the line is no operational stop
                    await gate.decide(
                        "gate-1", _passage(), operator="sup", override=(early.decision, "urgent")
                    )
                heavy = await gate.decide("gate-1", _passage(gross_kg=Decimal("8101.6")))
                released = await gate.decide(
                    "gate-1",
                    _passage(gross_kg=Decimal("8101.6")),
                    operator="sup",
                    override=(heavy.decision, "bridge drifts: re-weighed by hand"),
                )
                again = await gate.decide("gate-1", _passage())  # a second vehicle on the same note
                await Uplink(store=store, client=client, park_id="P1", edge_id="edge-p1").drain()
                await Uplink(store=store, client=client, park_id="P1", edge_id="edge-p1").drain()  # no repeat
                return [early, heavy, released, again]

        early, heavy, released, again = asyncio.run(run())
        assert early.decision.verdict == vr.Verdict.STOP and "NOT_RELEASED_BY_LINE" in early.decision.codes
        assert heavy.decision.codes == ("WEIGHT_OUT_OF_TOLERANCE",)
        assert released.decision.verdict == vr.Verdict.PASS and released.overridden
        assert again.decision.verdict == vr.Verdict.STOP and "NOTE_ALREADY_PASSED" in again.decision.codes
        # central: the note passed once, with a SAS223 carrying the weighbridge's reading
        note = officer.get("/api/v1/release-notes/G-1").json()
        assert note["status"] == "2"
        assert [h["to_status"] for h in note["history"]] == ["0", "1", "2"]
        sas223 = [r for r in note["receipts"] if r["message_type"] == "SAS223"]
        assert len(sas223) == 1 and sas223[0]["body"]["SasPassportBsc"]["passCollectWt"] == "8101.6"
        # the four passages were each stored once; only the override passed
        with httpx.Client(
            base_url=central.url, headers={"Authorization": f"Bearer {central.tokens['officer']}"}
        ) as c:
            events = c.get("/api/v1/parks/P1/edges/edge-p1/events", params={"limit": 100}).json()
        kinds = (
            [e["kind"] for e in events["events"]] if isinstance(events, dict) else [e["kind"] for e in events]
        )
        assert kinds.count("passage") == 4
        store.close()
        # the gate's reconciliation: both parcels out through the gate; one weight check, 100 kg over
        report = officer.get("/api/v1/parks/P1/gate-report").json()
        assert report["released_not_through_gate"]["total"] == 0
        assert report["through_gate_without_line_release"]["total"] == 0
        [weight] = report["weights"]
        assert (weight["note"], weight["goods_kg"], weight["difference_kg"]) == ("G-1", "101.6", "100.0")
        assert [p["verdict"] for p in report["passages"]] == ["STOP", "PASS", "STOP", "STOP"]
        assert "NOT_RELEASED_BY_LINE" in report["passages"][-1]["codes"]
        assert report["passages"][-1]["reason"]


def test_the_gate_reconciliation_lists_what_the_line_and_the_gate_disagree_on(tmp_path: Path) -> None:
    with run_central(tmp_path / "c") as central:
        shop, officer = central.client("enterprise"), central.client("officer")
        details, invts = _setup(central, 131, n=3)
        _register(central)
        # a note for the first two parcels; the line releases the second and the third only
        shop.post(
            "/api/v1/release-notes", json=notes.note("R-1", invts[:2], goods_kg="1.6")
        ).raise_for_status()
        store, checker, key = _edge(tmp_path, central)
        headers = {"Authorization": f"Bearer {central.tokens['edge']}"}

        async def run() -> None:
            await checker.verify_release_history()
            async with httpx.AsyncClient(base_url=central.url, headers=headers) as client:
                await FeedSync(store=store, client=client, park_id="P1", public_key=key).catch_up()
                for d in details[1:]:
                    c = d["clearance"]
                    obs = rules.Observation(
                        scanned_code=c["logisticsNo"], weight_kg=Decimal(c["grossWeight"])
                    )
                    await checker.decide("line-1", obs)
                await Uplink(store=store, client=client, park_id="P1", edge_id="edge-p1").drain()

        asyncio.run(run())
        store.close()
        report = officer.get("/api/v1/parks/P1/gate-report").json()
        # released by the line, not out: the second (on the open note) and the third (on none)
        waiting = {r["invtNo"]: r for r in report["released_not_through_gate"]["items"]}
        assert set(waiting) == set(invts[1:]) and waiting[invts[1]]["open_note"] == "R-1"
        assert all(r["age_s"] is not None and r["age_s"] >= 0 for r in waiting.values())
        # on the note, never loaded: the first
        assert [r["invtNo"] for r in report["on_note_not_loaded"]["items"]] == [invts[0]]
        # the officer's page shows the lists
        with httpx.Client(base_url=central.url) as browser:
            browser.post("/ui/login", data={"token": central.tokens["officer"]})
            page = browser.get("/ui/gate/P1")
        assert page.status_code == 200 and invts[0] in page.text and "never loaded" in page.text


def test_a_parcel_whose_line_release_was_withheld_is_not_released_by_the_line(tmp_path: Path) -> None:
    """The line decided RELEASE but its outputs sent the parcel to the hold lane (actuation
    withheld): it is in the park, not on the truck, and the gate must not pass a note listing it."""
    with run_central(tmp_path / "c") as central:
        shop = central.client("enterprise")
        details, invts = _setup(central, 141)
        _register(central)
        shop.post("/api/v1/release-notes", json=notes.note("W-1", invts, goods_kg="1.6")).raise_for_status()
        store, checker, key = _edge(tmp_path, central)
        gate = GateChecker(checker, TOL)
        headers = {"Authorization": f"Bearer {central.tokens['edge']}"}

        async def run() -> Any:
            await checker.verify_release_history()
            async with httpx.AsyncClient(base_url=central.url, headers=headers) as client:
                await FeedSync(store=store, client=client, park_id="P1", public_key=key).catch_up()
            for i, d in enumerate(details):
                c = d["clearance"]
                obs = rules.Observation(scanned_code=c["logisticsNo"], weight_kg=Decimal(c["grossWeight"]))
                record = await checker.decide("line-1", obs)
                outcome = "withheld" if i == 0 else "confirmed"
                await checker.record_actuation(
                    "line-1", record, outcome=outcome, output="lane", detail=outcome
                )
            return await gate.decide("gate-1", _passage())

        stopped = asyncio.run(run())
        store.close()
        assert stopped.decision.verdict == vr.Verdict.STOP
        assert "NOT_RELEASED_BY_LINE" in stopped.decision.codes
        assert stopped.rules is not None
        [finding] = [f for f in stopped.rules.findings if f.code == "NOT_RELEASED_BY_LINE"]
        assert invts[0] in finding.detail and invts[1] not in finding.detail


def test_dual_gate_first_then_second_and_never_the_other_way_round(tmp_path: Path) -> None:
    with run_central(tmp_path / "c") as central:
        shop, officer = central.client("enterprise"), central.client("officer")
        details, invts = _setup(central, 151)
        _register(central)
        shop.post("/api/v1/release-notes", json=notes.note("D-1", invts, goods_kg="1.6")).raise_for_status()
        store, checker, key = _edge(tmp_path, central)
        gate = GateChecker(checker, TOL)
        headers = {"Authorization": f"Bearer {central.tokens['edge']}"}

        async def run() -> list[Any]:
            await checker.verify_release_history()
            async with httpx.AsyncClient(base_url=central.url, headers=headers) as client:
                sync = FeedSync(store=store, client=client, park_id="P1", public_key=key)
                await sync.catch_up()
                for d in details:
                    c = d["clearance"]
                    obs = rules.Observation(
                        scanned_code=c["logisticsNo"], weight_kg=Decimal(c["grossWeight"])
                    )
                    await checker.decide("line-1", obs)
                second_first = await gate.decide("gate-2", _passage(gate="second"))
                first = await gate.decide("gate-1", _passage(gate="first"))
                first_again = await gate.decide("gate-1", _passage(gate="first"))
                await Uplink(store=store, client=client, park_id="P1", edge_id="edge-p1").drain()
                await sync.catch_up()  # the note at 3, passed the first gate
                second = await gate.decide("gate-2", _passage(gate="second"))
                await Uplink(store=store, client=client, park_id="P1", edge_id="edge-p1").drain()
                return [second_first, first, first_again, second]

        second_first, first, first_again, second = asyncio.run(run())
        store.close()
        assert (
            second_first.decision.verdict == vr.Verdict.STOP
            and "WRONG_GATE_ORDER" in second_first.decision.codes
        )
        assert first.decision.verdict == vr.Verdict.PASS
        assert first_again.decision.verdict == vr.Verdict.STOP
        assert second.decision.verdict == vr.Verdict.PASS, second.decision.reason
        note = officer.get("/api/v1/release-notes/D-1").json()
        assert [h["to_status"] for h in note["history"]] == ["0", "1", "3", "4"]

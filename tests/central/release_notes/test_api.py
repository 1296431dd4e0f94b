"""Release notes over HTTP on a real central, over both databases: taken, refused with every reason,
approved by simulated customs or by customs' receipts, deleted and voided, and the vehicles they name."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from central.ceb.documents import DocKind
from central.ceb.xml_out import receipts_xml
from central.release_notes.xml import parse_receipt
from firmware_sim import release_notes as notes
from testkit import factories
from testkit.central_server import RunningCentral, run_central
from testkit.customs import inventory_receipt

pytestmark = pytest.mark.both_backends

XML = {"content-type": "application/xml"}
PLATE, CARD, TARE = "琼A12345", "IC0001", "8000"


def _declare(central: RunningCentral, n: int, start: int, **kw: Any) -> list[dict[str, Any]]:
    """`n` parcels declared; their clearance details (GET /api/v1/clearances)."""
    shop, officer = central.client("enterprise"), central.client("officer")
    sets = factories.document_set(n, start=start, **kw)
    for s in sets:
        for doc in s.documents:
            shop.post("/api/v1/documents", json=doc.model_dump(mode="json")).raise_for_status()
    return [
        officer.get("/api/v1/clearances", params={"logisticsNo": s.waybill.logisticsNo}).json()[0]
        for s in sets
    ]


def _register(central: RunningCentral, plate: str = PLATE, card: str | None = CARD, tare: str = TARE) -> None:
    """Registered by the enterprise, its weights confirmed by an officer."""
    notes.register_vehicle(
        central.client("enterprise"), central.client("officer"), plate, card=card, tare_kg=tare
    )


def _gross(details: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(d["clearance"]["grossWeight"]) for d in details), Decimal(0))


def test_a_note_for_released_parcels_is_approved_holds_them_and_frees_them_when_deleted(
    tmp_path: Path,
) -> None:
    with run_central(tmp_path) as central:
        shop, officer = central.client("enterprise"), central.client("officer")
        details = _declare(central, 3, start=11)
        invts = [d["clearance"]["invtNo"] for d in details]
        _register(central)
        body = notes.note("N-1", invts[:2], goods_kg=_gross(details[:2]))
        answer = shop.post("/api/v1/release-notes", json=body)
        assert answer.status_code == 201, answer.text
        taken = answer.json()
        assert taken["status"] == "1" and taken["status_words"] == "approved"
        assert taken["passportNo"].startswith(f"Z{notes.CUSTOMS_OFFICE}E") and len(taken["passportNo"]) == 24
        assert taken["inventories"] == sorted(invts[:2])
        assert [h["to_status"] for h in taken["history"]] == ["0", "1"]
        # simulated customs' approval as a SAS221, in JSON and in customs' XML
        [receipt] = shop.get("/api/v1/release-notes/N-1/receipts").json()
        assert receipt["messageType"] == "SAS221" and receipt["HdeApprResult"]["manageResult"] == "1"
        xml = shop.get("/api/v1/release-notes/N-1/receipts", params={"format": "xml"})
        parsed = parse_receipt(xml.content)
        assert parsed.passport_no == taken["passportNo"] and parsed.SasPassportBsc.stucd == "1"  # type: ignore[union-attr]
        assert "dclErConc" not in xml.text  # the applicant's name and phone stay in the note

        # a second note may not take a parcel the first one holds; a repeated number is refused
        second = notes.note("N-2", invts[1:], goods_kg=_gross(details[1:]))
        refused = shop.post("/api/v1/release-notes", json=second)
        assert refused.status_code == 400 and f"{invts[1]} is on open note N-1" in refused.json()["detail"]
        again = shop.post("/api/v1/release-notes", json=body)
        assert again.status_code == 409 and again.json()["error"] == "duplicate_note"

        # deleting the first frees its parcels: the second, as SAS121 XML, is then taken
        deleted = shop.post("/api/v1/release-notes/N-1/delete")
        assert deleted.status_code == 200 and deleted.json()["status"] == "5"
        assert shop.post("/api/v1/release-notes/N-1/delete").status_code == 409
        taken2 = shop.post("/api/v1/sas/messages", content=notes.sas121_xml(second), headers=XML)
        assert taken2.status_code == 201, taken2.text
        assert taken2.json()["note"]["head"]["vehicleIcNo"] == CARD

        # an officer voids it (simulate mode); listing by status finds it
        voided = officer.post("/api/v1/release-notes/N-2/void", json={"info": "wrong truck"})
        assert voided.status_code == 200 and voided.json()["status"] == "6"
        assert [
            n["etpsPreentNo"] for n in officer.get("/api/v1/release-notes", params={"status": "6"}).json()
        ] == ["N-2"]
        # receipts from customs are not taken while central plays customs
        late = officer.post(
            "/api/v1/customs/release-note-receipts",
            content=notes.receipt_xml("SAS221", "N-2", passport_no="Z6409E261206000000000001"),
            headers=XML,
        )
        assert late.status_code == 409


def test_a_bad_note_is_refused_with_every_reason(tmp_path: Path) -> None:
    with run_central(tmp_path) as central:
        shop = central.client("enterprise")
        mine = _declare(central, 2, start=21)
        other_park = _declare(central, 1, start=31, ems_no="T6409W000002", area_code="4601W60002")
        _register(central)
        invts = [d["clearance"]["invtNo"] for d in mine + other_park] + ["64092026I999999999"]
        body = notes.note(
            "BAD-1", invts, goods_kg="500", container_no="CSQU3054384", container_kg="2200", tare_kg="7999"
        )
        body["head"]["totalWt"] = "1"
        answer = shop.post("/api/v1/release-notes", json=body)
        assert answer.status_code == 400
        detail = answer.json()["detail"]
        assert "fails the ISO 6346 check digit" in detail and "totalWt 1 is not" in detail
        # the database's checks come once the note is well formed
        body["head"]["containerNo"] = "CSQU3054383"
        body["head"]["totalWt"] = str(Decimal("7999") + 2200 + 500)
        detail = shop.post("/api/v1/release-notes", json=body).json()["detail"]
        for reason in (
            f"vehicleWt 7999 is not vehicle {PLATE}'s registered tare {TARE}",
            f"inventory {other_park[0]['clearance']['invtNo']} is not in park P1",
            "inventory 64092026I999999999: no such cleared inventory",
        ):
            assert reason in detail, detail
        # weights: all parcels good, the note's goods weight far off
        body = notes.note("BAD-2", invts[:2], goods_kg="50")
        detail = shop.post("/api/v1/release-notes", json=body).json()["detail"]
        assert "totalGrossWt 50 kg is not the inventories' gross" in detail
        # an empty vehicle carries no goods, binding or related documents
        body = notes.note("BAD-3", invts[:1], goods_kg="0.8", note_type="6")
        detail = shop.post("/api/v1/release-notes", json=body).json()["detail"]
        assert "passportTypecd 6 carries no bindTypecd" in detail and "carries no related documents" in detail
        # an unregistered vehicle, and an enterprise declaring for a code it does not hold
        body = notes.note("BAD-4", invts[:2], goods_kg=_gross(mine), plate="琼B99999")
        assert "is not registered" in shop.post("/api/v1/release-notes", json=body).json()["detail"]
        body = notes.note("BAD-5", invts[:2], goods_kg=_gross(mine), dclEtpsno="9999999999")
        assert shop.post("/api/v1/release-notes", json=body).status_code == 403
        # nothing of it was kept
        assert central.client("officer").get("/api/v1/release-notes").json() == []


def test_customs_approves_refuses_and_passes_notes_by_receipt(tmp_path: Path) -> None:
    with run_central(tmp_path, mode="customs") as central:
        shop, officer = central.client("enterprise"), central.client("officer")
        sets = factories.document_set(2, start=41)
        for s in sets:
            for doc in s.documents:
                shop.post("/api/v1/documents", json=doc.model_dump(mode="json")).raise_for_status()
        invts, gross = [], Decimal(0)
        for s in sets:
            [detail] = officer.get("/api/v1/clearances", params={"logisticsNo": s.waybill.logisticsNo}).json()
            for status, at in (("399", "20261206100000000"), ("800", "20261206100001000")):
                xml = receipts_xml(DocKind.INVENTORY, [inventory_receipt(s, detail, status, at)])
                officer.post("/api/v1/customs/receipts", content=xml, headers=XML).raise_for_status()
            invts.append(detail["clearance"]["invtNo"])
            gross += Decimal(detail["clearance"]["grossWeight"])
        _register(central)
        first = shop.post("/api/v1/release-notes", json=notes.note("C-1", invts[:1], goods_kg="0.8"))
        assert first.status_code == 201 and first.json()["status"] == "0"  # waits for customs

        def receipt(kind: str, note_no: str, **kw: Any) -> list[dict[str, Any]]:
            answer = officer.post(
                "/api/v1/customs/release-note-receipts",
                content=notes.receipt_xml(kind, note_no, **kw),
                headers=XML,
            )
            assert answer.status_code == 200, answer.text
            return answer.json()  # type: ignore[no-any-return]

        number = "Z6409E261206000000000007"
        [early] = receipt("SAS223", "C-1", passport_no=number)
        assert not early["applied"] and "cannot pass" in early["info"]
        [ok] = receipt("SAS221", "C-1", passport_no=number, plate=PLATE)
        assert ok["applied"] and ok["status"] == "1"
        [again] = receipt("SAS221", "C-1", passport_no=number)
        assert again["applied"] and "unchanged" in again["info"]
        [foreign] = receipt("SAS223", "C-1", passport_no="Z6409E261206000000000099")
        assert not foreign["applied"] and "is not note C-1's" in foreign["info"]
        [swapped] = receipt("SAS223", "C-1", passport_no=number, plate="琼B00000")
        assert not swapped["applied"]
        # an officer may not void in customs mode: customs does, by receipt
        assert officer.post("/api/v1/release-notes/C-1/void", json={}).status_code == 409
        [passed] = receipt("SAS223", "C-1", passport_no=number, plate=PLATE, collected_kg="8000.8")
        assert passed["applied"] and passed["status"] == "2"
        # the parcel left on C-1: no later note may list it
        refused = shop.post("/api/v1/release-notes", json=notes.note("C-2", invts[:1], goods_kg="0.8"))
        assert refused.status_code == 400 and "left the area on C-1" in refused.json()["detail"]
        # a refusal voids a note and frees its parcel
        shop.post(
            "/api/v1/release-notes", json=notes.note("C-3", invts[1:], goods_kg="0.8")
        ).raise_for_status()
        [no] = receipt("SAS221", "C-3", passport_no=None, manage_result="2", remark="seal missing")
        assert no["applied"] and no["status"] == "6"
        shop.post(
            "/api/v1/release-notes", json=notes.note("C-4", invts[1:], goods_kg="0.8")
        ).raise_for_status()
        # receipts as JSON too; a malformed one is 400
        bad = officer.post("/api/v1/customs/release-note-receipts", json=[{"messageType": "SAS999"}])
        assert bad.status_code == 400
        history = officer.get("/api/v1/release-notes/C-1").json()
        assert [h["to_status"] for h in history["history"]] == ["0", "1", "2"]
        assert [r["state"] for r in history["receipts"]] == [
            "refused",
            "applied",
            "applied",
            "refused",
            "refused",
            "applied",
        ]


def test_vehicles_are_registered_per_enterprise_and_a_card_belongs_to_one(tmp_path: Path) -> None:
    with run_central(tmp_path) as central:
        shop, officer, admin = (
            central.client("enterprise"),
            central.client("officer"),
            central.client("admin"),
        )
        _register(central)
        assert shop.get(f"/api/v1/vehicles/{PLATE}").json()["vehicleWt"] == TARE
        # the same card on another plate is refused; a foreign owner code is 403
        taken = shop.put(
            "/api/v1/vehicles/琼A99999",
            json={"vehicleIcNo": CARD, "vehicleWt": "9000", "ownerCode": notes.DECLARANT},
        )
        assert taken.status_code == 409
        foreign = shop.put("/api/v1/vehicles/琼A99999", json={"vehicleWt": "9000", "ownerCode": "1234567890"})
        assert foreign.status_code == 403
        # an admin may register for anyone; the enterprise then cannot take that vehicle over
        admin.put(
            "/api/v1/vehicles/琼C11111", json={"vehicleWt": "9000", "ownerCode": "1234567890"}
        ).raise_for_status()
        over = shop.put("/api/v1/vehicles/琼C11111", json={"vehicleWt": "1", "ownerCode": notes.DECLARANT})
        assert over.status_code == 403
        assert [v["vehicleNo"] for v in shop.get("/api/v1/vehicles").json()] == [PLATE]
        assert {v["vehicleNo"] for v in officer.get("/api/v1/vehicles").json()} == {PLATE, "琼C11111"}
        assert shop.get("/api/v1/vehicles/琼C11111").status_code == 404


def test_what_the_outside_attack_found_is_refused(tmp_path: Path) -> None:
    """Each case got a vehicle with goods no clearance covers past central before (issue 14's
    outside attack): related documents central cannot check, weights only the enterprise vouches
    for, a plate alias, another enterprise's parcels, a container or seal on two open notes."""
    with run_central(tmp_path) as central:
        shop, officer, admin = (
            central.client("enterprise"),
            central.client("officer"),
            central.client("admin"),
        )
        details = _declare(central, 3, start=161)
        invts = [d["clearance"]["invtNo"] for d in details]
        _register(central)

        def refused(body: dict[str, Any], why: str, client: httpx.Client = shop) -> None:
            answer = client.post("/api/v1/release-notes", json=body)
            assert answer.status_code in (400, 403), answer.text
            assert why in answer.json()["detail"], answer.json()["detail"]

        # goods on related documents central cannot check, or on none
        body = notes.note("X-1", invts[:1], goods_kg="5000")
        body["acmp"][0]["rtlBillTypecd"] = "ceb621"
        refused(body, "is not CEB621")
        body = notes.note("X-2", [], goods_kg="5000", rltTbTypecd="SAS101")
        body["acmp"] = [{"rtlBillTypecd": "SAS101", "rtlBillNo": "ANYTHING-AT-ALL"}]
        refused(body, "central checks only cross-border inventories")
        refused(notes.note("X-3", [], goods_kg="5000", note_type="5", bind_type=None), "passportTypecd 5")
        # weight hidden in a tare: the box's, the truck's, a frame it does not have
        gross = _gross(details[:1])
        refused(
            notes.note("X-4", invts[:1], goods_kg=gross, container_no="CSQU3054383", container_kg="5200"),
            "not a plausible tare for a 22G1 container",
        )
        bumped = shop.put(
            f"/api/v1/vehicles/{PLATE}",
            json={"vehicleIcNo": CARD, "vehicleWt": "11000", "ownerCode": notes.DECLARANT},
        )
        assert bumped.status_code == 409 and "by an officer" in bumped.json()["detail"]
        refused(notes.note("X-5", invts[:1], goods_kg=gross, frame_kg="3000"), "has no registered frame")
        # a new vehicle's tare is the enterprise's word until an officer confirms it (round two)
        shop.put("/api/v1/vehicles/琼B70001", json={"vehicleWt": "18000", "ownerCode": notes.DECLARANT})
        unconfirmed = notes.note(
            "X-9", invts[:1], goods_kg=gross, plate="琼B70001", card=None, tare_kg="18000"
        )
        refused(unconfirmed, "registered tare is not confirmed by an officer")
        # a plate alias is the same vehicle: another enterprise cannot register it
        stranger_token = admin.post(
            "/api/v1/tokens",
            json={"role": "enterprise", "name": "stranger", "enterprise_codes": ["9999999999"]},
        ).json()["token"]
        stranger = httpx.Client(base_url=central.url, headers={"Authorization": f"Bearer {stranger_token}"})
        alias = stranger.put(
            "/api/v1/vehicles/琼A·12345", json={"vehicleWt": "11000", "ownerCode": "9999999999"}
        )
        assert alias.status_code == 403
        # nor take out parcels that are not its enterprises'
        stranger.put("/api/v1/vehicles/琼C55555", json={"vehicleWt": "8000", "ownerCode": "9999999999"})
        foreign = notes.note(
            "X-6", invts[:1], goods_kg=gross, plate="琼C55555", card=None, dclEtpsno="9999999999"
        )
        refused(foreign, "not a parcel of this token's enterprises", stranger)
        # an officer may correct a registered tare (customs weighed it)
        fixed = officer.put(
            f"/api/v1/vehicles/{PLATE}",
            json={"vehicleIcNo": CARD, "vehicleWt": "8000", "ownerCode": notes.DECLARANT},
        )
        assert fixed.status_code == 200
        # one container and one seal on one open note only
        first = notes.note(
            "X-7",
            invts[:1],
            goods_kg=gross,
            container_no="CSQU3054383",
            container_kg="2200",
            seal="ES001|ES002",
        )
        shop.post("/api/v1/release-notes", json=first).raise_for_status()
        shop.put("/api/v1/vehicles/琼A54321", json={"vehicleWt": "8000", "ownerCode": notes.DECLARANT})
        second = notes.note(
            "X-8",
            invts[1:2],
            goods_kg=_gross(details[1:2]),
            plate="琼A54321",
            card=None,
            container_no="CSQU3054383",
            container_kg="2200",
            seal="ES009|ES002",
        )
        refused(second, "container CSQU3054383 is on open note X-7")
        refused(second, "seal ES002 is on open note X-7")
        assert [n["etpsPreentNo"] for n in officer.get("/api/v1/release-notes").json()] == ["X-7"]


def test_a_receipt_reusing_another_notes_number_is_refused_not_a_500(tmp_path: Path) -> None:
    with run_central(tmp_path, mode="customs") as central:
        shop, officer = central.client("enterprise"), central.client("officer")
        _register(central)
        for no in ("C-1", "C-2"):
            shop.post(
                "/api/v1/release-notes", json=notes.note(no, [], goods_kg="0", note_type="6", bind_type=None)
            ).raise_for_status()
        number = "Z6409E261206000000000001"
        ok = officer.post(
            "/api/v1/customs/release-note-receipts",
            content=notes.receipt_xml("SAS221", "C-1", passport_no=number),
            headers=XML,
        )
        assert ok.status_code == 200 and ok.json()[0]["applied"]
        reused = officer.post(
            "/api/v1/customs/release-note-receipts",
            content=notes.receipt_xml("SAS221", "C-2", passport_no=number),
            headers=XML,
        )
        assert reused.status_code == 200, reused.text
        assert not reused.json()[0]["applied"] and "is note C-1's already" in reused.json()[0]["info"]

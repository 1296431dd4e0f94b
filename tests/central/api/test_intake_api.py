"""Document intake end to end against a real central (uvicorn on loopback, SQLite file)."""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path

import pytest
from lxml import etree

from central.ceb.documents import AppType, DocKind
from central.ceb.xml_out import message_xml
from testkit import factories
from testkit.central_server import run_central
from tests.conftest import shared_dir

pytestmark = pytest.mark.both_backends  # each test starts its own central: over both databases

ORDERS = list(itertools.permutations(["order", "payment", "waybill", "inventory"]))
BASE = {"copCode": factories.EBC_CODE, "copName": "test shop", "dxpMode": "DXP", "dxpId": "DXPENT0000000001"}


def history(client, logistics_no: str) -> list[tuple[str | None, str]]:
    found = client.get("/api/v1/clearances", params={"logisticsNo": logistics_no})
    assert found.status_code == 200, found.text
    [detail] = found.json()
    return [(h["from_status"], h["to_status"]) for h in detail["history"]]


@pytest.mark.parametrize("inspect", [False, True], ids=["released", "inspected"])
def test_every_arrival_order_reaches_release_or_inspection(tmp_path: Path, inspect: bool) -> None:
    risk = {"sampling_rate": 0, "ebc_codes": [factories.EBC_CODE] if inspect else []}
    with run_central(tmp_path, risk=risk) as central:
        shop, officer = central.client("enterprise"), central.client("officer")
        for n, arrival in enumerate(ORDERS, start=1):
            docs = dict(
                zip(
                    ["order", "payment", "waybill", "inventory"],
                    factories.document_set(1, start=n)[0].documents,
                    strict=True,
                )
            )
            for i, name in enumerate(arrival):
                answer = shop.post("/api/v1/documents", json=docs[name].model_dump(mode="json"))
                assert answer.status_code == 200, answer.text
                receipts = answer.json()["receipts"]
                assert receipts[0]["returnStatus"] in ("120", "2"), receipts
                if i < 3:  # set incomplete: no status change yet
                    assert len(receipts) == 1
            final = "500" if inspect else "800"
            assert history(officer, docs["waybill"].logisticsNo) == [
                (None, "120"),
                ("120", "399"),
                ("399", final),
            ], arrival
            # the inventory's receipts, by its guid: intake (2), then 120, 399 and the outcome
            got = shop.get(f"/api/v1/documents/{docs['inventory'].guid}/receipts").json()
            assert [r["returnStatus"] for r in got] == ["2", "120", "399", final]
            assert all(len(r["returnTime"]) == 17 for r in got)


def test_receipts_as_ceb_xml_validate_against_the_standard(central) -> None:
    shop = central.client("enterprise")
    docs = factories.document_set(1)[0].documents
    for doc in docs:
        assert shop.post("/api/v1/documents", json=doc.model_dump(mode="json")).status_code == 200
    for doc, root in zip(
        docs, ["CEB312Message", "CEB412Message", "CEB512Message", "CEB622Message"], strict=True
    ):
        answer = shop.get(f"/api/v1/documents/{doc.guid}/receipts", params={"format": "xml"})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/xml")
        tree = etree.fromstring(answer.content)
        assert etree.QName(tree).localname == root
        shared = shared_dir()
        if shared is not None:
            schema = etree.XMLSchema(etree.parse(str(shared / "ceb" / "ceb-import-202205.xsd")))
            assert schema.validate(tree), schema.error_log


def test_xml_messages_of_every_document_kind(central) -> None:
    shop, officer = central.client("enterprise"), central.client("officer")
    sets = factories.document_set(3, start=100)
    by_kind = {
        DocKind.ORDER: [s.order for s in sets],
        DocKind.PAYMENT: [s.payment for s in sets],
        DocKind.WAYBILL: [s.waybill for s in sets],
        DocKind.INVENTORY: [s.inventory for s in sets],
    }
    for kind, docs in by_kind.items():
        answer = shop.post(
            "/api/v1/ceb/messages",
            content=message_xml(kind, docs, BASE),
            headers={"content-type": "application/xml"},
        )
        assert answer.status_code == 200, answer.text
        assert len([r for r in answer.json()["receipts"] if r["kind"] == kind.value]) >= 3
    for s in sets:
        [detail] = officer.get("/api/v1/clearances", params={"logisticsNo": s.waybill.logisticsNo}).json()
        assert detail["clearance"]["status"] == "800"
        assert detail["documents"]["order"]["orderNo"] == s.order.orderNo


def test_a_mismatch_rejects_with_every_failed_rule(central) -> None:
    shop, officer = central.client("enterprise"), central.client("officer")
    s = factories.document_set(1, start=7)[0]
    bad_payment = s.payment.model_copy(
        update={"amountPaid": s.payment.amountPaid + 1, "payerName": "Somebody Else"}
    )
    for doc in (s.order, bad_payment, s.waybill, s.inventory):
        shop.post("/api/v1/documents", json=doc.model_dump(mode="json")).raise_for_status()
    [detail] = officer.get("/api/v1/clearances", params={"logisticsNo": s.waybill.logisticsNo}).json()
    assert detail["clearance"]["status"] == "100"
    rules = {f["rule"] for f in detail["comparison"]}
    assert {"amount", "buyer_payer"} <= rules
    receipts = shop.get(f"/api/v1/documents/{s.inventory.guid}/receipts").json()
    assert receipts[-1]["returnStatus"] == "100"
    assert "amount" in receipts[-1]["returnInfo"] and "payerName" in receipts[-1]["returnInfo"]
    # a corrected payment (appType 2) re-runs the comparison: 100 → 120 → 399 → 800
    # a change is a document of its own, with a guid of its own (the original's is taken for good)
    fixed = s.payment.model_copy(update={"appType": AppType.CHANGE, "guid": str(uuid.uuid4()).upper()})
    shop.post("/api/v1/documents", json=fixed.model_dump(mode="json")).raise_for_status()
    [detail] = officer.get("/api/v1/clearances", params={"logisticsNo": s.waybill.logisticsNo}).json()
    assert detail["clearance"]["status"] == "800"
    assert [h["to_status"] for h in detail["history"]] == ["100", "120", "399", "800"]


def test_json_batch_and_duplicates(central) -> None:
    shop = central.client("enterprise")
    sets = factories.document_set(5, start=200)
    batch = {"documents": [d.model_dump(mode="json") for s in sets for d in s.documents]}
    answer = shop.post("/api/v1/documents", json=batch)
    assert answer.status_code == 200, answer.text
    statuses = [c["to_status"] for c in answer.json()["changes"]]
    assert statuses.count("800") == 5
    # an exact resend (a sender retrying after a lost answer) gets the original receipts, changes nothing
    again = shop.post("/api/v1/documents", json=batch).json()
    assert sorted(again["receipts"], key=str) == sorted(answer.json()["receipts"], key=str)
    assert again["changes"] == []
    for s in sets:
        assert shop.get(f"/api/v1/documents/{s.order.guid}/receipts").json() == [
            r for r in answer.json()["receipts"] if r["guid"] == s.order.guid
        ]


def test_a_guid_names_one_document_for_good(central) -> None:
    """A second, different document under a taken guid is refused (100, naming the guid), and the
    refusal is not stored under it: the guid's receipts stay the original's. Issue 11 H."""
    shop = central.client("enterprise")
    first, second = factories.document_set(2, start=260)
    taken = shop.post("/api/v1/documents", json=first.order.model_dump(mode="json")).json()["receipts"]
    reuse = second.order.model_copy(update={"guid": first.order.guid})
    [refusal] = shop.post("/api/v1/documents", json=reuse.model_dump(mode="json")).json()["receipts"]
    assert refusal["returnStatus"] == "100"
    assert f"guid {first.order.guid} was already used for another CEB311" in refusal["returnInfo"]
    assert shop.get(f"/api/v1/documents/{first.order.guid}/receipts").json() == taken
    # the same guid on a document of another kind is a reuse too
    other = second.payment.model_copy(update={"guid": first.order.guid})
    [refusal] = shop.post("/api/v1/documents", json=other.model_dump(mode="json")).json()["receipts"]
    assert refusal["returnStatus"] == "100" and "already used for another CEB311" in refusal["returnInfo"]
    # the refused order, under a guid of its own, is taken
    [ok] = shop.post("/api/v1/documents", json=second.order.model_dump(mode="json")).json()["receipts"]
    assert ok["returnStatus"] == "120"
    # twice in one batch: the second is refused, the first taken
    third = factories.document_set(1, start=270)[0]
    body = {"documents": [third.order.model_dump(mode="json")] * 2}
    one, two = shop.post("/api/v1/documents", json=body).json()["receipts"]
    assert one["returnStatus"] == "120" and two["returnStatus"] == "100"
    assert "given twice in this message" in two["returnInfo"]
    assert shop.get(f"/api/v1/documents/{third.order.guid}/receipts").json() == [one]


def test_cancellation_makes_a_released_record_unreleasable(central) -> None:
    shop, officer = central.client("enterprise"), central.client("officer")
    s = factories.document_set(1, start=300)[0]
    for doc in s.documents:
        shop.post("/api/v1/documents", json=doc.model_dump(mode="json")).raise_for_status()
    [detail] = officer.get("/api/v1/clearances", params={"logisticsNo": s.waybill.logisticsNo}).json()
    invt_no = detail["clearance"]["invtNo"]
    cancel = factories.cancellation(300, invtNo=invt_no)
    answer = shop.post("/api/v1/documents", json=cancel.model_dump(mode="json")).json()
    assert answer["receipts"][-1]["returnStatus"] == "399", answer
    [detail] = officer.get("/api/v1/clearances", params={"invtNo": invt_no}).json()
    assert detail["clearance"]["cancelled"] is True
    # the edge feed carries the change, signed
    feed = central.client("edge").get("/api/v1/parks/P1/feed", params={"after": 0}).json()
    last = [r for r in feed["records"] if r["invtNo"] == invt_no][-1]
    assert last["cancelled"] is True and last["status"] == "800" and last["signature"]


def test_officer_inspection_outcomes_and_illegal_steps(tmp_path: Path) -> None:
    with run_central(tmp_path, risk={"sampling_rate": 1}) as central:
        shop, officer = central.client("enterprise"), central.client("officer")
        sets = factories.document_set(2, start=400)
        for s in sets:
            for doc in s.documents:
                shop.post("/api/v1/documents", json=doc.model_dump(mode="json")).raise_for_status()
        invts = [
            officer.get("/api/v1/clearances", params={"logisticsNo": s.waybill.logisticsNo}).json()[0][
                "clearance"
            ]["invtNo"]
            for s in sets
        ]
        release = officer.post(
            f"/api/v1/clearances/{invts[0]}/actions", json={"action": "inspection_release"}
        )
        assert release.status_code == 200 and release.json()["to_status"] == "800"
        detain = officer.post(
            f"/api/v1/clearances/{invts[1]}/actions",
            json={"action": "inspection_detain", "code": "502", "info": "undeclared goods"},
        )
        assert detain.json()["to_status"] == "502"
        illegal = officer.post(f"/api/v1/clearances/{invts[0]}/actions", json={"action": "review_complete"})
        assert illegal.status_code == 409 and illegal.json()["error"] == "illegal_transition"
        bad_code = officer.post(
            f"/api/v1/clearances/{invts[1]}/actions", json={"action": "inspection_detain", "code": "800"}
        )
        assert bad_code.status_code == 400
        missing = officer.post("/api/v1/clearances/NOPE/actions", json={"action": "inspection_release"})
        assert missing.status_code == 404


def test_a_guid_in_other_letters_is_the_same_guid(central) -> None:
    """A UUID's hex digits have no case: a different order under the lower-case form of a taken
    guid was taken (120), and a lower-case resend was stored as a new 100 (outside finding)."""
    shop = central.client("enterprise")
    first, second = factories.document_set(2, start=280)
    taken = shop.post("/api/v1/documents", json=first.order.model_dump(mode="json")).json()["receipts"]
    for doc in (second.order, first.order):
        folded = doc.model_copy(update={"guid": first.order.guid.lower()})
        [refusal] = shop.post("/api/v1/documents", json=folded.model_dump(mode="json")).json()["receipts"]
        assert refusal["returnStatus"] == "100" and "already used" in refusal["returnInfo"]
    assert shop.get(f"/api/v1/documents/{first.order.guid.lower()}/receipts").status_code == 404
    assert shop.get(f"/api/v1/documents/{first.order.guid}/receipts").json() == taken


def test_a_resend_of_a_document_taken_before_body_digests_gets_its_receipts(central) -> None:  # type: ignore[no-untyped-def]
    """Guids taken by an earlier version carry a digest of the canonical form, not of the stored
    text: an exact resend of such a document still gets its original receipts, a different one is
    still refused."""
    import hashlib

    from kernel.wire import canonical_json

    shop = central.client("enterprise")
    first, second = factories.document_set(2, start=280)
    taken = shop.post("/api/v1/documents", json=first.order.model_dump(mode="json")).json()["receipts"]
    legacy = hashlib.sha256(canonical_json(first.order.model_dump(mode="json"))).hexdigest()
    central.write("UPDATE guids SET digest = ? WHERE guid = ?", (legacy, first.order.guid))
    again = shop.post("/api/v1/documents", json=first.order.model_dump(mode="json")).json()["receipts"]
    assert again == taken
    reuse = second.order.model_copy(update={"guid": first.order.guid})
    [refusal] = shop.post("/api/v1/documents", json=reuse.model_dump(mode="json")).json()["receipts"]
    assert refusal["returnStatus"] == "100"

"""An enterprise acts only for itself (issue 11 I). Any enterprise token could declare for any
ebpCode and read any guid's receipts. Now an enterprise token is made for the enterprise codes it
acts for; a document none of whose declarants (order: ebpCode/ebcCode, payment: payCode, waybill:
logisticsCode, inventory and its cancellation or return: agentCode/ebcCode) is one of them is 403,
nothing stored, and so is reading the receipts of another enterprise's document. Real central."""

from __future__ import annotations

from typing import Any

from central.ceb.documents import DocKind
from central.ceb.xml_out import message_xml
from testkit import factories
from testkit.central_server import RunningCentral

XML = {"content-type": "application/xml"}
BASE = {"copCode": factories.EBC_CODE, "copName": "shop", "dxpMode": "DXP", "dxpId": "DXPENT0000000001"}


def token_for(central: RunningCentral, *codes: str) -> Any:
    with central.client("admin") as admin:
        made = admin.post(
            "/api/v1/tokens", json={"role": "enterprise", "name": "one", "enterprise_codes": list(codes)}
        )
    assert made.status_code == 201, made.text
    return central.client(made.json()["token"])


def test_an_enterprise_token_names_its_codes_when_it_is_made(central: RunningCentral) -> None:
    with central.client("admin") as admin:
        answer = admin.post("/api/v1/tokens", json={"role": "enterprise", "name": "nobody"})
    assert answer.status_code == 400 and "enterprise codes it acts for" in answer.json()["detail"]


def test_each_document_is_declared_by_its_own_enterprise(central: RunningCentral) -> None:
    s = factories.document_set(1, start=800)[0]
    carrier = token_for(central, factories.LOGISTICS_CODE)
    payer = token_for(central, factories.PAY_CODE)
    platform = token_for(central, factories.EBP_CODE)
    agent = token_for(central, factories.AGENT_CODE)
    for client, mine, others in (
        (carrier, s.waybill, [s.order, s.payment, s.inventory]),
        (payer, s.payment, [s.order, s.waybill, s.inventory]),
        (platform, s.order, [s.payment, s.waybill, s.inventory]),
        (agent, s.inventory, [s.order, s.payment, s.waybill]),
    ):
        for doc in others:
            answer = client.post("/api/v1/documents", json=doc.model_dump(mode="json"))
            assert answer.status_code == 403, (doc.KIND, answer.text)
            assert "not an enterprise this token acts for" in answer.json()["detail"]
        assert client.post("/api/v1/documents", json=mine.model_dump(mode="json")).status_code == 200
    with central.client("officer") as officer:
        [detail] = officer.get("/api/v1/clearances", params={"logisticsNo": s.waybill.logisticsNo}).json()
    assert detail["clearance"]["status"] == "800"


def test_a_message_with_one_foreign_document_is_refused_whole(central: RunningCentral) -> None:
    sets = factories.document_set(2, start=810)
    foreign = sets[1].order.model_copy(update={"ebpCode": "9999999999", "ebcCode": "9999999998"})
    text = message_xml(DocKind.ORDER, [sets[0].order, foreign], BASE)
    with central.client("enterprise") as shop:
        answer = shop.post("/api/v1/ceb/messages", content=text, headers=XML)
        assert answer.status_code == 403 and "document 2 (CEB311" in answer.json()["detail"]
        assert shop.get(f"/api/v1/documents/{sets[0].order.guid}/receipts").status_code == 404


def test_an_enterprise_reads_only_its_own_receipts(central: RunningCentral) -> None:
    s = factories.document_set(1, start=820)[0]
    with central.client("enterprise") as shop:
        shop.post("/api/v1/documents", json=s.payment.model_dump(mode="json")).raise_for_status()
    assert (
        token_for(central, factories.PAY_CODE).get(f"/api/v1/documents/{s.payment.guid}/receipts").status_code
        == 200
    )
    other = token_for(central, factories.LOGISTICS_CODE)
    assert other.get(f"/api/v1/documents/{s.payment.guid}/receipts").status_code == 403
    with central.client("officer") as officer:  # customs reads every enterprise's
        assert officer.get(f"/api/v1/documents/{s.payment.guid}/receipts").status_code == 200


def test_a_change_delete_or_cancellation_acts_on_the_declarants_of_what_is_stored(
    central: RunningCentral,
) -> None:
    """A new document naming the token's own code cannot take over one another enterprise declared:
    an appType 2 or 3 of another's order (with ebcCode set to the intruder's code), or a CEB623 of
    another's inventory naming the intruder as agentCode, is 403 and changes nothing (outside finding)."""
    s = factories.document_set(1, start=830)[0]
    with central.client("enterprise") as shop:
        for doc in s.documents:
            shop.post("/api/v1/documents", json=doc.model_dump(mode="json")).raise_for_status()
    with central.client("officer") as officer:
        [detail] = officer.get("/api/v1/clearances", params={"logisticsNo": s.waybill.logisticsNo}).json()
    invt_no = detail["clearance"]["invtNo"]
    intruder = token_for(central, "4601550001")
    for app_type in ("2", "3"):
        hijack = s.order.model_dump(mode="json") | {
            "appType": app_type,
            "ebcCode": "4601550001",
            "guid": f"00000000-0000-4000-8000-0000000008{app_type}0",
        }
        answer = intruder.post("/api/v1/documents", json=hijack)
        assert (
            answer.status_code == 403 and "not an enterprise this token acts for" in answer.json()["detail"]
        )
    cancel = factories.cancellation(830, invtNo=invt_no).model_dump(mode="json") | {"agentCode": "4601550001"}
    answer = intruder.post("/api/v1/documents", json=cancel)
    assert answer.status_code == 403
    with central.client("officer") as officer:
        [after] = officer.get("/api/v1/clearances", params={"invtNo": invt_no}).json()
    assert after["clearance"]["status"] == "800" and after["clearance"]["cancelled"] is False

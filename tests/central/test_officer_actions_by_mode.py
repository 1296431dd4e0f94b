"""Which status changes each role can cause, per clearance mode (issue 11 E). In customs mode an
officer moved a record 120 → 399 → 800 with `review_complete` and `release`, no CEB622 anywhere:
there, every status comes from customs receipts. In simulate mode the review and the release are the
simulated customs' own steps; an officer records inspection outcomes, selects, refuses, closes.
Real central (uvicorn, SQLite file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from central.ceb.documents import DocKind, Receipt
from central.ceb.xml_out import receipts_xml
from central.lifecycle import OFFICER_ACTIONS, Action
from testkit import factories
from testkit.central_server import run_central

pytestmark = pytest.mark.both_backends  # each test starts its own central: over both databases

OFFICER_SIMULATE = {
    "manual_review",
    "select_inspection",
    "inspection_release",
    "inspection_detain",
    "inspection_return",
    "reject",
    "close",
}


def test_the_table_of_officer_actions_per_mode() -> None:
    assert OFFICER_ACTIONS["simulate"] == OFFICER_SIMULATE
    assert OFFICER_ACTIONS["customs"] == set()
    assert not {Action.ACCEPT, Action.RESUBMIT, Action.REVIEW_COMPLETE, Action.RELEASE} & OFFICER_SIMULATE


def _declared(central: Any, start: int) -> str:
    shop, officer = central.client("enterprise"), central.client("officer")
    s = factories.document_set(1, start=start)[0]
    for doc in s.documents:
        shop.post("/api/v1/documents", json=doc.model_dump(mode="json")).raise_for_status()
    [detail] = officer.get("/api/v1/clearances", params={"logisticsNo": s.waybill.logisticsNo}).json()
    return detail["clearance"]["invtNo"]


def _status(central: Any, invt_no: str) -> str:
    [detail] = central.client("officer").get("/api/v1/clearances", params={"invtNo": invt_no}).json()
    return detail["clearance"]["status"]


def _body(action: Action) -> dict[str, str]:
    return {"action": action.value, **({"code": "501"} if action == Action.INSPECTION_DETAIN else {})}


def test_in_customs_mode_no_officer_action_moves_a_record(tmp_path: Path) -> None:
    with run_central(tmp_path, mode="customs") as central:
        invt_no = _declared(central, 500)
        assert _status(central, invt_no) == "120"
        officer = central.client("officer")
        for action in Action:
            answer = officer.post(f"/api/v1/clearances/{invt_no}/actions", json=_body(action))
            assert answer.status_code == 409, (action, answer.text)
            if action != Action.CUSTOMS_RECEIPT:
                assert "every status comes from customs receipts (CEB622)" in answer.json()["detail"]
        assert _status(central, invt_no) == "120"
        # nor can an enterprise or an edge
        for who in ("enterprise", "edge"):
            answer = central.client(who).post(
                f"/api/v1/clearances/{invt_no}/actions", json={"action": "release"}
            )
            assert answer.status_code == 403


@pytest.mark.parametrize("action", [Action.REVIEW_COMPLETE, Action.RELEASE, Action.ACCEPT, Action.RESUBMIT])
def test_in_simulate_mode_the_review_and_release_are_not_an_officers(tmp_path: Path, action: Action) -> None:
    with run_central(tmp_path, risk={"sampling_rate": 1}) as central:
        invt_no = _declared(central, 510)
        assert _status(central, invt_no) == "500"  # selected for inspection by the simulated customs
        answer = central.client("officer").post(f"/api/v1/clearances/{invt_no}/actions", json=_body(action))
        assert answer.status_code == 409
        assert "not an officer's action in simulate mode" in answer.json()["detail"]
        assert _status(central, invt_no) == "500"


def test_in_simulate_mode_an_officer_records_the_inspection_outcome(tmp_path: Path) -> None:
    with run_central(tmp_path, risk={"sampling_rate": 1}) as central:
        invt_no = _declared(central, 520)
        officer = central.client("officer")
        answer = officer.post(f"/api/v1/clearances/{invt_no}/actions", json={"action": "inspection_release"})
        assert answer.status_code == 200 and answer.json()["to_status"] == "800"
        answer = officer.post(f"/api/v1/clearances/{invt_no}/actions", json={"action": "close"})
        assert answer.status_code == 200 and answer.json()["to_status"] == "899"


def _allowed(central: Any, invt_no: str) -> list[str]:
    [detail] = central.client("officer").get("/api/v1/clearances", params={"invtNo": invt_no}).json()
    return detail["clearance"]["allowed_actions"]


def test_allowed_actions_lists_only_what_the_actions_route_takes_in_customs_mode(tmp_path: Path) -> None:
    """The detail listed review_complete and release at 120 in customs mode, both refused there
    (outside finding E)."""
    with run_central(tmp_path, mode="customs") as central:
        invt_no = _declared(central, 530)
        assert _status(central, invt_no) == "120"
        assert _allowed(central, invt_no) == []


def test_allowed_actions_in_simulate_mode_are_each_taken(tmp_path: Path) -> None:
    with run_central(tmp_path, risk={"sampling_rate": 1}) as central:
        invt_no = _declared(central, 540)
        allowed = _allowed(central, invt_no)
        assert allowed == ["inspection_release", "inspection_detain", "inspection_return"]
        assert set(allowed) <= OFFICER_SIMULATE
        answer = central.client("officer").post(
            f"/api/v1/clearances/{invt_no}/actions", json=_body(Action(allowed[0]))
        )
        assert answer.status_code == 200
        assert _allowed(central, invt_no) == ["close"]  # at 800: release/review are never offered


def test_a_customs_receipt_is_refused_in_simulate_mode(tmp_path: Path) -> None:
    """In simulate mode central plays customs: a CEB622 moved a record 501 → 800 (outside finding E)."""
    with run_central(tmp_path, risk={"sampling_rate": 1}) as central:
        s = factories.document_set(1, start=550)[0]
        invt_no = _declared(central, 550)
        receipt = Receipt(
            kind=DocKind.INVENTORY,
            guid=s.inventory.guid,
            returnStatus="800",
            returnTime="20261205120000000",
            returnInfo="released",
            key={
                "ebpCode": factories.EBP_CODE,
                "ebcCode": factories.EBC_CODE,
                "copNo": s.inventory.copNo,
                "preNo": factories.pre_no(550),
                "invtNo": invt_no,
            },
        )
        answer = central.client("officer").post(
            "/api/v1/customs/receipts",
            content=receipts_xml(DocKind.INVENTORY, [receipt]),
            headers={"content-type": "application/xml"},
        )
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"] == "not_customs_mode"
        assert "simulate mode" in answer.json()["detail"] and "CEB622" in answer.json()["detail"]
        assert _status(central, invt_no) == "500"

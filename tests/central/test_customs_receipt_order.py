"""CEB622 receipts: customs' order and the inventory's identity (issue 11 F). A message carrying
[800 at t2, 399 at t1] refused the 800 ("does not follow 120"), applied the 399 and left the record at
399 for good; a receipt with parcel A's invtNo and parcel B's copNo moved A. Now receipts apply in
returnTime order, one that arrives before its predecessor waits (stored, visible) and applies when
that one comes, one older than a receipt applied is kept but not applied, and a receipt whose
copNo/ebpCode/ebcCode are not the inventory's is refused with the reason. Real central in customs
mode (uvicorn, SQLite file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from central.ceb.documents import DocKind, Receipt
from central.ceb.xml_out import receipts_xml
from testkit import factories
from testkit.central_server import run_central
from testkit.customs import inventory_receipt

pytestmark = pytest.mark.both_backends  # each test starts its own central: over both databases

XML = {"content-type": "application/xml"}


def _declare(central: Any, start: int) -> tuple[Any, dict[str, Any]]:
    shop, officer = central.client("enterprise"), central.client("officer")
    s = factories.document_set(1, start=start)[0]
    for doc in s.documents:
        shop.post("/api/v1/documents", json=doc.model_dump(mode="json")).raise_for_status()
    [detail] = officer.get("/api/v1/clearances", params={"logisticsNo": s.waybill.logisticsNo}).json()
    assert detail["clearance"]["status"] == "120"
    return s, detail


def _send(central: Any, *receipts: Receipt) -> list[dict[str, Any]]:
    answer = central.client("officer").post(
        "/api/v1/customs/receipts", content=receipts_xml(DocKind.INVENTORY, list(receipts)), headers=XML
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def _history(central: Any, invt_no: str) -> list[str]:
    [detail] = central.client("officer").get("/api/v1/clearances", params={"invtNo": invt_no}).json()
    return [h["to_status"] for h in detail["history"]]


T1, T2, T3 = "20260601120000000", "20260601120500000", "20260601121000000"


@pytest.fixture
def customs(tmp_path: Path) -> Any:
    with run_central(tmp_path, mode="customs") as central:
        yield central


def test_one_message_out_of_order_applies_in_return_time_order(customs: Any) -> None:
    s, detail = _declare(customs, 600)
    out = _send(customs, inventory_receipt(s, detail, "800", T2), inventory_receipt(s, detail, "399", T1))
    assert [(o["returnStatus"], o["applied"], o["state"]) for o in out] == [
        ("800", True, "applied"),
        ("399", True, "applied"),
    ]
    assert _history(customs, detail["clearance"]["invtNo"]) == ["120", "399", "800"]


def test_a_receipt_ahead_of_its_predecessor_waits_for_it(customs: Any) -> None:
    s, detail = _declare(customs, 610)
    invt_no = detail["clearance"]["invtNo"]
    [early] = _send(customs, inventory_receipt(s, detail, "800", T2))
    assert (early["applied"], early["state"]) == (False, "waiting")
    assert "waits for the receipt it follows" in early["info"]
    assert _history(customs, invt_no) == ["120"]
    [shown] = customs.client("officer").get("/api/v1/clearances", params={"invtNo": invt_no}).json()
    assert [(r["returnStatus"], r["state"]) for r in shown["customs_receipts"]] == [("800", "waiting")]
    [late] = _send(customs, inventory_receipt(s, detail, "399", T1))
    assert late["applied"] is True
    assert _history(customs, invt_no) == ["120", "399", "800"]  # the waiting 800 applied after it
    [shown] = customs.client("officer").get("/api/v1/clearances", params={"invtNo": invt_no}).json()
    assert [(r["returnStatus"], r["state"]) for r in shown["customs_receipts"]] == [
        ("399", "applied"),
        ("800", "applied"),
    ]


def test_a_receipt_older_than_one_applied_is_kept_not_applied(customs: Any) -> None:
    s, detail = _declare(customs, 620)
    invt_no = detail["clearance"]["invtNo"]
    _send(customs, inventory_receipt(s, detail, "399", T1), inventory_receipt(s, detail, "500", T3))
    [stale] = _send(customs, inventory_receipt(s, detail, "399", T2))
    assert (stale["applied"], stale["state"]) == (False, "stale")
    assert _history(customs, invt_no) == ["120", "399", "500"]


def test_a_receipt_that_can_never_apply_is_refused(customs: Any) -> None:
    s, detail = _declare(customs, 630)
    _send(customs, inventory_receipt(s, detail, "399", T1), inventory_receipt(s, detail, "800", T2))
    [after] = _send(customs, inventory_receipt(s, detail, "100", T3))  # rejected after release: no way there
    assert (after["applied"], after["state"]) == (False, "refused")


@pytest.mark.parametrize("field", ["copNo", "preNo", "ebpCode", "ebcCode", "agentCode", "customsCode"])
def test_a_receipt_naming_another_parcel_is_refused(customs: Any, field: str) -> None:
    """agentCode and preNo mismatches were applied (outside finding, LOW)."""
    s, detail = _declare(customs, 640)
    other, _ = _declare(customs, 641)
    theirs = {
        "copNo": other.inventory.copNo,
        "preNo": "B20991231999999999",
        "ebpCode": "1234567890",
        "ebcCode": "1234567891",
        "agentCode": "1234567892",
        "customsCode": "2249",
    }[field]
    [out] = _send(customs, inventory_receipt(s, detail, "399", T1, **{field: theirs}))
    assert (out["applied"], out["state"]) == (False, "refused")
    assert f"{field} {theirs!r} is not inventory" in out["info"]
    assert _history(customs, detail["clearance"]["invtNo"]) == ["120"]


@pytest.mark.parametrize(
    "at", ["20261332100000000", "２０２６１２０５１０００００００", "99999999999999999", "2026120510000000a"]
)
def test_a_return_time_that_is_no_real_moment_is_refused(customs: Any, at: str) -> None:
    """A month 13 or full-width digits were applied, and the genuine receipt after them was stale
    for good (outside finding)."""
    s, detail = _declare(customs, 650)
    body = receipts_xml(DocKind.INVENTORY, [inventory_receipt(s, detail, "399", T1)]).decode().replace(T1, at)
    answer = customs.client("officer").post("/api/v1/customs/receipts", content=body.encode(), headers=XML)
    assert answer.status_code == 400, answer.text
    assert _send(customs, inventory_receipt(s, detail, "399", T1))[0]["applied"] is True


def test_a_receipt_carrying_only_some_identifying_fields_is_checked_on_those(customs: Any) -> None:
    """The XSD makes ebpCode, ebcCode and agentCode optional: a receipt without them is judged on
    what it carries (copNo, preNo, invtNo), and applied when those are the inventory's."""
    s, detail = _declare(customs, 660)
    bare = inventory_receipt(s, detail, "399", T1)
    bare = bare.model_copy(
        update={"key": {k: v for k, v in bare.key.items() if k not in ("ebpCode", "ebcCode", "agentCode")}}
    )
    wrong = bare.model_copy(update={"key": bare.key | {"preNo": "B20991231999999999"}})
    [out] = _send(customs, wrong)
    assert (out["applied"], out["state"]) == (False, "refused") and "preNo" in out["info"]
    [out] = _send(customs, bare)
    assert out["applied"] is True, out

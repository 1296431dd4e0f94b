"""Batches of documents through `POST /api/v1/documents`, as an outside review attacked them after
intake began to answer reads from what it asks once per batch (central/store/prefetch.py) and to
number new documents itself. Each test failed then; all run on SQLite and PostgreSQL.

- A NUL in a key: PostgreSQL stores it as U+FFFD, and the batch's own keys must be compared in
  that form, or a stored document, guid or waybill looks absent.
- A cancellation or return between new documents: the row it inserts takes a number the next new
  document must not be given again (SQLite refused the whole message; PostgreSQL gave two
  documents one number).
- A released parcel's payment moved to another order, or deleted naming another order: the parcel
  the stored payment belongs to is at 800, so its documents can no longer change (this one was
  older than the prefetch).
"""

from __future__ import annotations

from typing import Any

import httpx

from central.store.db import open_database
from firmware_sim import declarations as d
from testkit.central_server import RunningCentral

NUL = "\x00"


def _post(central: RunningCentral, docs: list[dict[str, Any]]) -> httpx.Response:
    with central.client("enterprise") as client:
        return client.post("/api/v1/documents", json={"documents": docs}, timeout=60)


def _statuses(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["returnStatus"] for r in response.json()["receipts"]]


def _parcel(seq: int, **over: Any) -> list[dict[str, Any]]:
    return [make(seq, **over) for make in (d.order, d.payment, d.waybill, d.inventory)]


def _lookup(central: RunningCentral, **query: str) -> list[dict[str, Any]]:
    with central.client("officer") as client:
        answer = client.get("/api/v1/clearances", params=query)
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def test_a_released_parcel_with_a_nul_in_its_order_number_cannot_be_declared_again(
    central: RunningCentral,
) -> None:
    docs = _parcel(2, orderNo=f"BGONUL{NUL}2")
    assert _statuses(_post(central, docs))[-1] == "800"
    again = [{**doc, "guid": f"CCCCCCCC-0000-0000-0000-{i:012d}"} for i, doc in enumerate(docs)]
    assert _statuses(_post(central, again)) == ["100", "100", "100", "100"]  # was 120, 100, 100, 2
    [shown] = _lookup(central, orderNo=f"BGONUL{NUL}2")
    assert shown["documents"]["inventory"]["guid"] == docs[3]["guid"]


def test_a_resent_document_whose_guid_has_a_nul_gets_its_receipts(central: RunningCentral) -> None:
    payment = d.payment(3, guid="DDDDDDDD-0000-0000-0000-00000000000" + NUL)
    assert _statuses(_post(central, [payment])) == ["120"]
    resend = _post(central, [*_parcel(60), payment])  # a retry after a lost answer, beside new parcels
    statuses = _statuses(resend)
    assert statuses[4] == "120" and "800" in statuses  # was 500: the guid inserted twice


def test_a_parcel_whose_logistics_number_has_a_nul_is_compared(central: RunningCentral) -> None:
    number = f"BGLNUL{NUL}1"
    assert _statuses(_post(central, [d.waybill(1, logisticsNo=number)])) == ["120"]
    assert (
        _statuses(_post(central, [d.order(1), d.payment(1), d.inventory(1, logisticsNo=number)]))[-1] == "800"
    )


def test_a_cancellation_between_new_documents_takes_no_number_twice(central: RunningCentral) -> None:
    released = [doc for seq in (1, 2) for doc in (*_parcel(seq)[:3], d.inventory(seq, invtNo=d.invt_no(seq)))]
    assert _statuses(_post(central, released)).count("800") == 2
    first = _statuses(_post(central, [d.order(4), d.cancellation(1), d.payment(4)]))
    assert first.count("120") == 2 and "399" in first, first  # SQLite answered 500
    second = _statuses(_post(central, [d.order(6), d.refund(2), d.order(7)]))
    assert second.count("120") == 2, second
    db = open_database(central.settings.database)
    try:  # documents.rowid is no key on PostgreSQL (partitioned): two rows could share a number there
        shared = (
            db.reader().execute("SELECT rowid FROM documents GROUP BY rowid HAVING COUNT(*) > 1").fetchall()
        )
    finally:
        db.close()
    assert shared == []


def test_a_released_parcels_payment_cannot_be_moved_or_deleted_naming_another_order(
    central: RunningCentral,
) -> None:
    assert _statuses(_post(central, _parcel(1)))[-1] == "800"
    moved = {
        **d.payment(1),
        "appType": "2",
        "orderNo": d.order_no(2),
        "guid": "12345678-0000-0000-0000-000000000001",
    }
    gone = {
        **d.payment(1),
        "appType": "3",
        "orderNo": d.order_no(4),
        "guid": "12345678-0000-0000-0000-000000000002",
    }
    for change in (moved, gone):
        [receipt] = _post(central, [change]).json()["receipts"]
        assert receipt["returnStatus"] == "100", receipt["returnInfo"]  # was 120: accepted
    [parcel] = _lookup(central, orderNo=d.order_no(1))
    assert parcel["clearance"]["status"] == "800" and parcel["documents"]["payment"] is not None

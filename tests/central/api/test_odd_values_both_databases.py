"""Values SQLite stores and PostgreSQL's types would refuse, taken alike on both (an outside test
found each answered 500 on PostgreSQL): a NUL character, which PostgreSQL text and jsonb cannot
hold (stored as U+FFFD there), and 64-bit integers the API allows. An edge's event chain must not
stop at such an event: edges resend in seq order, so one event refused for good would hold back
every event after it."""

from __future__ import annotations

from typing import Any

from kernel.wire import EventBody, EventKind
from testkit import factories
from tests.central.api.test_events_api import chain, post

NUL = "\x00"


def test_an_event_with_a_nul_in_its_text_is_stored_and_the_chain_goes_on(central: Any) -> None:
    shop, edge = central.client("enterprise"), central.client("edge")
    [cleared] = factories.document_set(1, start=710)
    for doc in cleared.documents:
        shop.post("/api/v1/documents", json=doc.model_dump(mode="json")).raise_for_status()
    noisy = (
        EventKind.DISCREPANCY,
        EventBody(
            logisticsCode="SF",
            logisticsNo=f"SF7{NUL}10",
            verdict="HOLD",
            codes=[f"NOT{NUL}FOUND", "NOT_FOUND"],
        ),
    )
    release = (
        EventKind.RELEASE,
        EventBody(
            logisticsCode=cleared.waybill.logisticsCode,
            logisticsNo=cleared.waybill.logisticsNo,
            verdict="RELEASE",
        ),
    )
    answer = post(edge, chain(3, {1: noisy, 2: release}))
    assert answer.status_code == 200, answer.text
    assert answer.json()["acked_seq"] == 3
    report = central.client("officer").get("/api/v1/parks/P1/report").json()
    assert cleared.waybill.logisticsNo not in {p["logisticsNo"] for p in report["cleared_not_out"]["items"]}
    # the NUL is kept (SQLite) or stored as U+FFFD (PostgreSQL): counted apart from NOT_FOUND either way
    assert report["discrepancies"]["NOT_FOUND"] == 1 and sum(report["discrepancies"].values()) == 2


def test_a_document_with_a_nul_in_a_field_is_taken_and_found(central: Any) -> None:
    shop, officer = central.client("enterprise"), central.client("officer")
    [odd] = factories.document_set(1, start=720)
    order = odd.order.model_copy(update={"buyerName": f"Li{NUL}Lei"})
    taken = shop.post("/api/v1/documents", json=order.model_dump(mode="json"))
    assert taken.status_code == 200, taken.text
    assert officer.get("/api/v1/clearances", params={"orderNo": f"O{NUL}X"}).status_code in (200, 404)
    assert officer.get("/api/v1/parks/P%001/report").status_code in (403, 404)


def test_a_heartbeat_backlog_beyond_32_bits_is_stored(central: Any) -> None:
    beat = (EventKind.HEARTBEAT, EventBody(backlog=2**31 + 5))
    answer = post(central.client("edge"), chain(2, {1: beat}))
    assert answer.status_code == 200, answer.text
    assert answer.json()["acked_seq"] == 2

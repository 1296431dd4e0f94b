"""Edge events over HTTP: exactly once, chain checks, alerts, and what the park report shows."""

from __future__ import annotations

from datetime import UTC, datetime

from kernel.wire import GENESIS_HASH, Event, EventBody, EventKind, chain_event
from testkit import factories


def chain(n: int, bodies: dict[int, tuple[EventKind, EventBody]], edge_id: str = "edge-p1") -> list[Event]:
    events, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        kind, body = bodies.get(seq, (EventKind.HEARTBEAT, EventBody(backlog=0)))
        event = chain_event(
            prev,
            edge_id=edge_id,
            seq=seq,
            kind=kind,
            station="line-1",
            occurred_at=datetime.now(UTC),
            body=body,
        )
        events.append(event)
        prev = event.hash
    return events


def post(client, events: list[Event], edge_id: str = "edge-p1"):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/v1/parks/P1/events",
        json={"edge_id": edge_id, "events": [e.model_dump(mode="json") for e in events]},
    )


def release(s: factories.DocumentSet) -> tuple[EventKind, EventBody]:
    return EventKind.RELEASE, EventBody(
        logisticsCode=s.waybill.logisticsCode, logisticsNo=s.waybill.logisticsNo, verdict="RELEASE"
    )


def test_events_are_applied_once_and_the_report_reconciles(central) -> None:
    shop, edge, officer = central.client("enterprise"), central.client("edge"), central.client("officer")
    cleared, uncleared = factories.document_set(2, start=1)
    for doc in cleared.documents:
        shop.post("/api/v1/documents", json=doc.model_dump(mode="json")).raise_for_status()
    shop.post("/api/v1/documents", json=uncleared.inventory.model_dump(mode="json")).raise_for_status()
    discrepancy = (
        EventKind.DISCREPANCY,
        EventBody(
            logisticsCode=uncleared.waybill.logisticsCode,
            logisticsNo=uncleared.waybill.logisticsNo,
            verdict="HOLD",
            codes=["NOT_FOUND"],
        ),
    )
    events = chain(6, {2: release(cleared), 3: discrepancy, 4: release(uncleared), 5: release(cleared)})
    first = post(edge, events[:4]).json()
    assert first["acked_seq"] == 4 and first["stored"] == 4
    # resent, overlapping: no double effect
    again = post(edge, events[2:]).json()
    assert again["acked_seq"] == 6 and again["stored"] == 2 and again["duplicates"] == 2
    assert post(edge, events).json()["stored"] == 0
    report = officer.get("/api/v1/parks/P1/report").json()
    assert report["discrepancies"] == {"NOT_FOUND": 1}
    assert report["released_without_clearance"]["total"] == 1
    assert report["released_twice"]["total"] == 1
    assert {a["kind"] for a in report["alerts"]["items"]} >= {"release_not_cleared", "released_twice"}
    [edge_row] = officer.get("/api/v1/parks/P1/edges").json()
    assert edge_row["edge_id"] == "edge-p1" and edge_row["last_seq"] == 6


def test_gaps_and_tampering_are_refused(central) -> None:
    edge = central.client("edge")
    events = chain(5, {})
    gap = post(edge, events[2:]).json()
    assert gap["acked_seq"] == 0 and gap["stored"] == 0 and gap["refused"][0]["code"] == "seq_gap"
    tampered = events[0].model_copy(update={"station": "line-9"})  # hash no longer matches
    broken = post(edge, [tampered]).json()
    assert broken["stored"] == 0 and broken["refused"][0]["code"] == "chain_break"
    assert post(edge, events).json()["acked_seq"] == 5


def test_an_edge_reports_only_to_its_own_park(central) -> None:
    answer = central.client("edge_p2").post("/api/v1/parks/P1/events", json={"edge_id": "x", "events": []})
    assert answer.status_code == 403

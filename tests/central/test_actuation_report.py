"""Actuation is part of the record, central's side (issue 9 D): over real HTTP, an edge reports its
releases and what their outputs did; the park's reconciliation (API and page) lists the releases
whose actuation failed or was never confirmed, each linking its parcel, and a failed one is an alert.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from kernel.wire import GENESIS_HASH, Event, EventBody, EventKind, chain_event
from testkit.central_server import RunningCentral

T0 = datetime.now(UTC) - timedelta(minutes=1)


def release(no: str, decision: str | None) -> tuple[EventKind, EventBody]:
    body = EventBody(logisticsCode="SF", logisticsNo=no, verdict="RELEASE", decision_id=decision)
    return EventKind.RELEASE, body


def actuation(decision: str, outcome: str, output: str, detail: str) -> tuple[EventKind, EventBody]:
    body = EventBody(decision_id=decision, actuation=outcome, output=output, detail=detail)  # type: ignore[arg-type]
    return EventKind.ACTUATION, body


SPECS = [
    release("N-OK", "d-ok"),
    actuation("d-ok", "confirmed", "diverter_left", "coil 1 read back on"),
    release("N-FAILED", "d-failed"),
    actuation("d-failed", "failed", "diverter_left", "coil 1 read back off after 3 tries"),
    release("N-SILENT", "d-silent"),  # its outputs were never reported on
    release("N-OLD", None),  # from an edge older than actuation reports: not judged
    (
        EventKind.INSPECTION_DIVERTED,
        EventBody(logisticsCode="SF", logisticsNo="N-INSP", decision_id="d-insp"),
    ),
    # not a release: in no list, but an alert (its lane unconfirmed, it may have left the park)
    actuation("d-insp", "failed", "diverter_right", "coil 2 read back off"),
    release("N-LATE", "d-late"),
    actuation("d-late", "failed", "barrier", "no open switch"),
    actuation("d-late", "confirmed", "barrier", "open switch seen on retry"),  # the latest report wins
]


def chain(edge: str = "edge-p1") -> list[Event]:
    events, prev = [], GENESIS_HASH
    for seq, (kind, body) in enumerate(SPECS, start=1):
        event = chain_event(
            prev,
            edge_id=edge,
            seq=seq,
            kind=kind,
            station="line-1",
            occurred_at=T0 + timedelta(seconds=seq),
            body=body,
        )
        events.append(event)
        prev = event.hash
    return events


def post(central: RunningCentral, events: list[Event]) -> dict[str, Any]:
    body = {"edge_id": "edge-p1", "events": [e.model_dump(mode="json") for e in events]}
    with central.client("edge") as edge:
        return edge.post("/api/v1/parks/P1/events", json=body).raise_for_status().json()


def report(central: RunningCentral, **params: Any) -> dict[str, Any]:
    with central.client("officer") as officer:
        return officer.get("/api/v1/parks/P1/report", params=params).raise_for_status().json()


def parcels(items: list[dict[str, Any]]) -> list[str]:
    return [i["logisticsNo"] for i in items]


def test_failed_and_unconfirmed_actuations_are_listed_and_a_failed_release_is_an_alert(
    central: RunningCentral,
) -> None:
    answer = post(central, chain())
    assert answer["stored"] == len(SPECS) and answer["refused"] == []

    fresh = report(central)
    [failed] = fresh["released_actuation_failed"]["items"]
    assert fresh["released_actuation_failed"]["total"] == 1
    assert (failed["logisticsNo"], failed["decision_id"], failed["seq"]) == ("N-FAILED", "d-failed", 3)
    assert (failed["output"], failed["detail"]) == ("diverter_left", "coil 1 read back off after 3 tries")
    # received a moment ago: within the grace an edge has to report, not listed yet
    assert fresh["released_actuation_unconfirmed"] == {"total": 0, "items": []}
    assert fresh["actuation_grace_s"] == 300
    # with no grace, the release nobody reported on is listed (and only it: N-OLD names no decision)
    now = report(central, actuation_grace_s=0)
    assert parcels(now["released_actuation_unconfirmed"]["items"]) == ["N-SILENT"]

    alerts = [a for a in fresh["alerts"]["items"] if a["kind"] == "actuation_failed"]
    assert len(alerts) == 3  # N-FAILED, N-LATE's first report (since confirmed), and d-insp's lane
    assert any("N-FAILED" in a["detail"] and "diverter_right" not in a["detail"] for a in alerts)
    assert any(
        "d-insp" in a["detail"] and "may have left through the release lane" in a["detail"] for a in alerts
    )

    # a resent batch changes nothing
    again = post(central, chain())
    assert again["duplicates"] == len(SPECS)
    assert report(central)["released_actuation_failed"]["total"] == 1


def test_the_park_page_shows_both_lists_linking_the_parcels(central: RunningCentral) -> None:
    post(central, chain())
    # as if central had received the releases ten minutes ago: the silent one is overdue now
    earlier = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    central.write("UPDATE release_actuations SET received_at = ?", (earlier,))
    with httpx.Client(base_url=central.url, timeout=30) as browser:
        login = browser.post(
            "/ui/login",
            data={"token": central.tokens["officer"], "next": "/ui/parks/P1"},
            follow_redirects=True,
        )
        assert login.status_code == 200, login.text
        page = browser.get("/ui/parks/P1").text
    failed = _section(page, "released-actuation-failed")
    assert 'class="must-be-empty bad"' in failed
    assert 'href="/ui/clearances?logisticsNo=N-FAILED"' in failed and "coil 1 read back off" in failed
    unconfirmed = _section(page, "released-actuation-unconfirmed")
    assert 'href="/ui/clearances?logisticsNo=N-SILENT"' in unconfirmed
    assert "N-OK" not in failed + unconfirmed and "N-LATE" not in failed + unconfirmed
    assert "N-OLD" not in unconfirmed
    assert 'class="must-be-empty ok" id="released-twice"' in page  # the other checks still there


def _section(page: str, anchor: str) -> str:
    start = page.index(f'id="{anchor}"')
    start = page.rindex("<div", 0, start)
    return page[start : page.index("</div>", start)]

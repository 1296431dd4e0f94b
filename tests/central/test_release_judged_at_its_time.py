"""Reconciliation judges a release by the clearance status at the time of the release, and a parcel
that has left cannot be cancelled (issue 11 D). Three releases of a parcel at 500 vanished from
"released without clearance" after a later inspection_release (7 → 4); a CEB623 for a parcel central
held a release event for was approved, and the parcel then counted as released without clearance.
Real central (uvicorn, SQLite file), events over HTTP with a real hash chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kernel.wire import GENESIS_HASH, EventBody, EventKind, chain_event
from testkit import factories
from testkit.central_server import RunningCentral, run_central

pytestmark = pytest.mark.both_backends  # each test starts its own central: over both databases


class Edge:
    def __init__(self, central: RunningCentral, edge_id: str = "edge-p1") -> None:
        self.central, self.edge_id, self.seq, self.prev = central, edge_id, 0, GENESIS_HASH

    def release(self, s: Any, at: datetime | None = None) -> None:
        self.seq += 1
        body = EventBody(
            logisticsCode=s.waybill.logisticsCode, logisticsNo=s.waybill.logisticsNo, verdict="RELEASE"
        )
        event = chain_event(
            self.prev,
            edge_id=self.edge_id,
            seq=self.seq,
            kind=EventKind.RELEASE,
            station="line-1",
            occurred_at=at or datetime.now(UTC),
            body=body,
        )
        self.prev = event.hash
        with self.central.client("edge") as edge:
            answer = edge.post(
                "/api/v1/parks/P1/events",
                json={"edge_id": self.edge_id, "events": [event.model_dump(mode="json")]},
            )
            assert answer.status_code == 200 and answer.json()["stored"] == 1, answer.text


def declare(central: RunningCentral, start: int) -> tuple[Any, str]:
    s = factories.document_set(1, start=start)[0]
    with central.client("enterprise") as shop:
        for doc in s.documents:
            shop.post("/api/v1/documents", json=doc.model_dump(mode="json")).raise_for_status()
    with central.client("officer") as officer:
        [detail] = officer.get("/api/v1/clearances", params={"logisticsNo": s.waybill.logisticsNo}).json()
    return s, detail["clearance"]["invtNo"]


def uncleared(central: RunningCentral) -> list[tuple[str, str | None, bool | None]]:
    with central.client("officer") as officer:
        report = officer.get("/api/v1/parks/P1/report").raise_for_status().json()
    return [
        (i["logisticsNo"], i["status"], i["cancelled"]) for i in report["released_without_clearance"]["items"]
    ]


def test_releases_at_500_stay_listed_after_a_later_inspection_release(tmp_path: Path) -> None:
    with run_central(tmp_path, risk={"sampling_rate": 1}) as central:
        s, invt_no = declare(central, 700)
        edge = Edge(central)
        for _ in range(3):
            edge.release(s)  # while the parcel is at 500: never cleared to leave
        assert [u[:2] for u in uncleared(central)] == [(s.waybill.logisticsNo, "500")] * 3
        with central.client("officer") as officer:
            officer.post(
                f"/api/v1/clearances/{invt_no}/actions", json={"action": "inspection_release"}
            ).raise_for_status()
        assert [u[:2] for u in uncleared(central)] == [(s.waybill.logisticsNo, "500")] * 3
        edge.release(s)  # now at 800: this one is cleared
        assert len(uncleared(central)) == 3


def test_a_release_before_any_clearance_is_listed_even_once_one_exists(tmp_path: Path) -> None:
    with run_central(tmp_path) as central:
        s = factories.document_set(1, start=710)[0]
        Edge(central).release(s, at=datetime.now(UTC) - timedelta(minutes=5))
        declare(central, 710)  # cleared to 800 afterwards
        assert uncleared(central) == [(s.waybill.logisticsNo, None, None)]


def test_a_parcel_that_left_cannot_be_cancelled(tmp_path: Path) -> None:
    with run_central(tmp_path) as central:
        s, invt_no = declare(central, 720)
        Edge(central).release(s)
        cancel = factories.cancellation(720, invtNo=invt_no)
        with central.client("enterprise") as shop:
            [receipt] = shop.post("/api/v1/documents", json=cancel.model_dump(mode="json")).json()["receipts"]
        assert receipt["returnStatus"] == "100"
        assert "left the park" in receipt["returnInfo"] and "CEB625" in receipt["returnInfo"]
        with central.client("officer") as officer:
            [detail] = officer.get("/api/v1/clearances", params={"invtNo": invt_no}).json()
        assert detail["clearance"]["cancelled"] is False
        assert uncleared(central) == []


def test_a_release_after_an_approved_cancellation_is_listed(tmp_path: Path) -> None:
    with run_central(tmp_path) as central:
        s, invt_no = declare(central, 730)
        cancel = factories.cancellation(730, invtNo=invt_no)
        with central.client("enterprise") as shop:
            receipts = shop.post("/api/v1/documents", json=cancel.model_dump(mode="json")).json()["receipts"]
        assert receipts[-1]["returnStatus"] == "399"
        Edge(central).release(s)
        assert uncleared(central) == [(s.waybill.logisticsNo, "800", True)]


def test_an_edge_clock_running_ahead_cannot_move_a_release_past_a_later_change(tmp_path: Path) -> None:
    """A release at 500 stamped an hour ahead, then an inspection_release: the release is judged at
    the moment central received it at the latest, so it stays listed (outside finding)."""
    with run_central(tmp_path, risk={"sampling_rate": 1}) as central:
        s, invt_no = declare(central, 740)
        Edge(central).release(s, at=datetime.now(UTC) + timedelta(hours=1))
        with central.client("officer") as officer:
            officer.post(
                f"/api/v1/clearances/{invt_no}/actions", json={"action": "inspection_release"}
            ).raise_for_status()
        assert [u[:2] for u in uncleared(central)] == [(s.waybill.logisticsNo, "500")]


def report(central: RunningCentral) -> dict[str, Any]:
    with central.client("officer") as officer:
        return officer.get("/api/v1/parks/P1/report").raise_for_status().json()


def test_a_cancellation_approved_while_the_release_was_on_its_way_is_listed_and_alerted(
    tmp_path: Path,
) -> None:
    """The edge released the parcel at 800; central approved a CEB623 before the release event
    reached it. The release was cleared (not "without clearance"), but the declaration is cancelled
    for goods that left: an alert to the park and a list that must be empty (outside finding D)."""
    with run_central(tmp_path) as central:
        s, invt_no = declare(central, 750)
        with central.client("officer") as officer:
            [detail] = officer.get("/api/v1/clearances", params={"invtNo": invt_no}).json()
        [cleared_at] = [h["at"] for h in detail["history"] if h["to_status"] == "800"]
        left_at = datetime.fromisoformat(cleared_at)  # released the moment it was cleared
        cancel = factories.cancellation(750, invtNo=invt_no)
        with central.client("enterprise") as shop:
            receipts = shop.post("/api/v1/documents", json=cancel.model_dump(mode="json")).json()["receipts"]
        assert receipts[-1]["returnStatus"] == "399"  # approved: central held no release yet
        Edge(central).release(s, at=left_at)
        got = report(central)
        assert got["released_without_clearance"]["total"] == 0
        [item] = got["cancelled_after_release"]["items"]
        assert got["cancelled_after_release"]["total"] == 1
        assert (item["logisticsNo"], item["invtNo"], item["edge_id"], item["seq"]) == (
            s.waybill.logisticsNo,
            invt_no,
            "edge-p1",
            1,
        )
        assert item["occurred_at"] < item["cancelled_at"] < item["received_at"]
        kinds = [a["kind"] for a in got["alerts"]["items"]]
        assert kinds == ["cancelled_after_release"], got["alerts"]
        [alert] = got["alerts"]["items"]
        assert invt_no in alert["detail"] and "CEB623" in alert["detail"]


def test_a_release_after_the_cancellation_is_not_listed_as_cancelled_after_release(tmp_path: Path) -> None:
    with run_central(tmp_path) as central:
        s, invt_no = declare(central, 760)
        cancel = factories.cancellation(760, invtNo=invt_no)
        with central.client("enterprise") as shop:
            shop.post("/api/v1/documents", json=cancel.model_dump(mode="json")).raise_for_status()
        Edge(central).release(s)
        got = report(central)
        assert got["cancelled_after_release"]["total"] == 0
        assert got["released_without_clearance"]["total"] == 1
        assert [a["kind"] for a in got["alerts"]["items"]] == ["release_not_cleared"]


def test_a_release_before_clearance_then_a_cancellation_is_only_without_clearance(tmp_path: Path) -> None:
    """A release dated before the parcel was cleared, reaching central after a cancellation was
    approved, is a release without clearance, and only that: "cancelled after release" is for
    releases the parcel was cleared for (outside round 2, HIGH-1)."""
    with run_central(tmp_path) as central:
        s, invt_no = declare(central, 770)
        with central.client("officer") as officer:
            [detail] = officer.get("/api/v1/clearances", params={"invtNo": invt_no}).json()
        first = min(datetime.fromisoformat(h["at"]) for h in detail["history"])
        cancel = factories.cancellation(770, invtNo=invt_no)
        with central.client("enterprise") as shop:
            shop.post("/api/v1/documents", json=cancel.model_dump(mode="json")).raise_for_status()
        Edge(central).release(s, at=first - timedelta(hours=1))  # the edge's clock an hour behind
        got = report(central)
        assert got["released_without_clearance"]["total"] == 1
        assert got["cancelled_after_release"]["total"] == 0
        assert [a["kind"] for a in got["alerts"]["items"]] == ["release_not_cleared"]


def test_a_release_from_an_edge_clock_ahead_counts_in_the_hour_central_got_it(tmp_path: Path) -> None:
    """Releases per hour bin each release at its time, the earlier of the edge's occurred_at and
    central's received_at: one dated an hour ahead is counted now, not in an hour yet to come
    (outside round 2, MEDIUM-2); the hours are written with Z."""
    with run_central(tmp_path) as central:
        s, _ = declare(central, 780)
        Edge(central).release(s, at=datetime.now(UTC) + timedelta(hours=1))
        hours = report(central)["releases_per_hour"]
        assert sum(h["count"] for h in hours) == 1
        assert hours[-1]["count"] == 1 or hours[-2]["count"] == 1  # this hour (or the last, at :59:59)
        assert all(h["hour"].endswith(":00:00Z") for h in hours)

"""An edge is who its token says (issue 11 C). Any edge token could claim any unused edge id on first
contact — a park P2 token taking the id P1's real edge would later use locked that edge out for
good — and a second edge token of the same park could append to another edge's chain. Now each edge
token is bound to one edge id when it is made; anything else is 403, and the park targeted is
alerted. Real central (uvicorn, SQLite file), events over HTTP with a real hash chain."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from central.auth import hash_token
from central.store import parks as pstore
from central.store.db import open_database
from kernel.wire import GENESIS_HASH, EventBody, EventKind, chain_event
from testkit.central_server import RunningCentral


def heartbeats(edge_id: str, n: int = 1) -> dict[str, Any]:
    events, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        event = chain_event(
            prev,
            edge_id=edge_id,
            seq=seq,
            kind=EventKind.HEARTBEAT,
            occurred_at=datetime.now(UTC),
            body=EventBody(backlog=0),
        )
        events.append(event.model_dump(mode="json"))
        prev = event.hash
    return {"edge_id": edge_id, "events": events}


def make_token(central: RunningCentral, **body: Any) -> Any:
    with central.client("admin") as admin:
        return admin.post("/api/v1/tokens", json={"role": "edge", "name": "another", **body})


def legacy_token(central: RunningCentral, token_id: str) -> None:
    """A P1 edge token as made before tokens were bound (no edge id); its secret is bg_<id>_x."""
    db = open_database(central.settings.database)
    pstore.insert_token(
        db,
        token_id=token_id,
        token_hash=hash_token(f"bg_{token_id}_x"),
        role="edge",
        park_id="P1",
        name="old",
        now="2026-01-01T00:00:00Z",
    )
    db.close()


def alerts(central: RunningCentral, park: str) -> list[dict[str, Any]]:
    with central.client("officer") as officer:
        return officer.get(f"/api/v1/parks/{park}/report").raise_for_status().json()["alerts"]["items"]


def test_an_edge_token_names_its_edge_when_it_is_made(central: RunningCentral) -> None:
    missing = make_token(central, park_id="P1")
    assert missing.status_code == 400 and "must name its edge" in missing.json()["detail"]
    made = make_token(central, park_id="P1", edge_id="gate-2")
    assert made.status_code == 201 and made.json()["edge_id"] == "gate-2"
    # an edge id another park's token holds is not given to this park
    taken = make_token(central, park_id="P2", edge_id="gate-2")
    assert taken.status_code == 400 and "belongs to another park" in taken.json()["detail"]


def test_a_token_of_another_park_cannot_take_an_edge_id(central: RunningCentral) -> None:
    with central.client("edge_p2") as p2:
        answer = p2.post("/api/v1/parks/P2/events", json=heartbeats("gate-of-p1"))
    assert answer.status_code == 403 and "reports for edge edge-p2, not gate-of-p1" in answer.json()["detail"]
    # the id is still free: P1's real edge, with its own token, reports under it
    made = make_token(central, park_id="P1", edge_id="gate-of-p1").json()
    with central.client(made["token"]) as p1:
        answer = p1.post("/api/v1/parks/P1/events", json=heartbeats("gate-of-p1"))
    assert answer.status_code == 200 and answer.json()["stored"] == 1


def test_a_second_token_of_the_park_cannot_append_to_another_edges_chain(central: RunningCentral) -> None:
    with central.client("edge") as real:
        assert real.post("/api/v1/parks/P1/events", json=heartbeats("edge-p1")).json()["stored"] == 1
    other = make_token(central, park_id="P1", edge_id="gate-9").json()
    with central.client(other["token"]) as intruder:
        answer = intruder.post("/api/v1/parks/P1/events", json=heartbeats("edge-p1", 2))
        assert answer.status_code == 403
        # nor read that edge's chain
        assert intruder.get("/api/v1/parks/P1/edges/edge-p1/events").status_code == 403
    with central.client("officer") as officer:
        chain = officer.get("/api/v1/parks/P1/edges/edge-p1").json()
    assert chain["last_seq"] == 1  # nothing appended
    found = [a for a in alerts(central, "P1") if a["kind"] == "edge_mismatch"]
    assert len(found) == 2  # the report and the read, each refused and alerted
    assert all(a["edge_id"] == "edge-p1" and other["token_id"] in a["detail"] for a in found)


def test_a_token_made_before_binding_is_bound_to_the_edge_it_first_reports_for(
    central: RunningCentral,
) -> None:
    legacy_token(central, "legacy01")
    with central.client("bg_legacy01_x") as legacy:
        assert legacy.post("/api/v1/parks/P1/events", json=heartbeats("old-gate")).status_code == 200
        assert legacy.post("/api/v1/parks/P1/events", json=heartbeats("edge-p1")).status_code == 403
    with central.client("admin") as admin:
        [row] = [t for t in admin.get("/api/v1/tokens").json() if t["token_id"] == "legacy01"]
    assert row["edge_id"] == "old-gate"


def test_a_token_made_before_binding_cannot_take_an_edge_another_token_holds(central: RunningCentral) -> None:
    legacy_token(central, "legacy02")
    with central.client("bg_legacy02_x") as legacy:
        # edge-p1 is bound to the tests' edge token, even before it has reported
        answer = legacy.post("/api/v1/parks/P1/events", json=heartbeats("edge-p1"))
    assert answer.status_code == 403
    with central.client("edge") as real:
        assert real.post("/api/v1/parks/P1/events", json=heartbeats("edge-p1")).json()["stored"] == 1


def test_the_alert_goes_to_the_park_of_the_token_holding_an_edge_id_not_yet_reported(
    central: RunningCentral,
) -> None:
    """edge-p2 is bound to P2's token but has not reported: a P1 token claiming it in P1 alerts P2,
    the park targeted, not P1 (outside finding C)."""
    with central.client("edge") as p1:
        answer = p1.post("/api/v1/parks/P1/events", json=heartbeats("edge-p2"))
    assert answer.status_code == 403
    assert [a for a in alerts(central, "P1") if a["kind"] == "edge_mismatch"] == []
    [alert] = [a for a in alerts(central, "P2") if a["kind"] == "edge_mismatch"]
    assert alert["edge_id"] == "edge-p2" and "edge edge-p1 in park P1" in alert["detail"]


def test_a_token_addressing_another_park_is_refused_and_that_park_alerted(central: RunningCentral) -> None:
    with central.client("edge") as p1:
        posted = p1.post("/api/v1/parks/P2/events", json=heartbeats("edge-p2"))
        read = p1.get("/api/v1/parks/P2/feed")
    assert posted.status_code == 403 and read.status_code == 403
    found = [(a["edge_id"], a["detail"]) for a in alerts(central, "P2") if a["kind"] == "edge_mismatch"]
    assert len(found) == 2, found
    assert all("park P1" in detail and "refused" in detail for _, detail in found)
    assert {edge for edge, _ in found} == {"edge-p2", "edge-p1"}  # the edge named, or the token's
    assert [a for a in alerts(central, "P1") if a["kind"] == "edge_mismatch"] == []
    with central.client("edge") as p1:  # an unknown park: refused, nobody to alert
        assert p1.post("/api/v1/parks/NOPE/events", json=heartbeats("edge-p1")).status_code == 403


def test_reading_another_edge_or_probing_another_park_raises_an_alert(central: RunningCentral) -> None:
    """Refused reads are probes too: another edge's chain or events in the token's own park alert
    that park; an officer-only route of another park alerts the park targeted (outside round 2,
    MEDIUM-3)."""
    with central.client("edge") as p1:
        chain = p1.get("/api/v1/parks/P1/edges/edge-other")
        events = p1.get("/api/v1/parks/P1/edges/edge-other/events")
        edges = p1.get("/api/v1/parks/P2/edges")
        own = p1.get("/api/v1/parks/P1/edges")  # its own park's officer route: refused, no probe
    assert [r.status_code for r in (chain, events, edges, own)] == [403, 403, 403, 403]
    mine = [a for a in alerts(central, "P1") if a["kind"] == "edge_mismatch"]
    assert sorted(a["edge_id"] for a in mine) == ["edge-other", "edge-other"]
    assert all("refused" in a["detail"] for a in mine)
    theirs = [a for a in alerts(central, "P2") if a["kind"] == "edge_mismatch"]
    assert len(theirs) == 1 and "GET /api/v1/parks/P2/edges" in theirs[0]["detail"]

"""An event is taken only in the wire forms docs/canonical-form.md documents, because its hash is
over the canonical form of its values (outside finding B). `occurred_at` as an epoch number, a date
alone, a time with no zone or seven fraction digits, and `weight_kg` as a JSON number were accepted
and hashed over a form the document never gave; now they are refused 422, naming the field. An
event hashed in the earlier form (until 2026-12-05) continues a chain that is in it, and starts or
follows nothing else. Real central (uvicorn, SQLite file) over HTTP; the earlier-form chain on a
real SQLite file, as a central from before stored it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from central.events import ingest_events
from central.store import events as store
from central.store.db import Database, open_database
from central.store.parks import upsert_park
from kernel.wire import GENESIS_HASH, Event, EventBody, EventKind, canonical_json, canonical_json_v1
from testkit.central_server import RunningCentral


def event_json(edge_id: str, *, occurred_at: Any = "2026-12-05T08:01:01Z", **body: Any) -> dict[str, Any]:
    """seq 1 of a new chain, hashed over the canonical form of the literal values as sent."""
    event = {
        "edge_id": edge_id,
        "seq": 1,
        "kind": "discrepancy" if body else "heartbeat",
        "occurred_at": occurred_at,
        "body": body or {"backlog": 0},
        "prev_hash": GENESIS_HASH,
    }
    event["hash"] = hashlib.sha256(GENESIS_HASH.encode() + b"\n" + canonical_json(event)).hexdigest()
    return event


def post(central: RunningCentral, event: dict[str, Any]) -> Any:
    with central.client("edge") as edge:
        return edge.post("/api/v1/parks/P1/events", json={"edge_id": "edge-p1", "events": [event]})


def chain(central: RunningCentral) -> int:
    with central.client("officer") as officer:
        answer = officer.get("/api/v1/parks/P1/edges/edge-p1")
    return 0 if answer.status_code == 404 else int(answer.json()["last_seq"])


@pytest.mark.parametrize(
    "occurred_at",
    [
        1764921661,
        1764921661.5,
        0,
        True,
        "2026-12-05",
        "2026-12-05T08:01:01",
        "2026-12-05T08:01:01.1234567Z",
        "2026-12-05 08:01:01Z",
        "2026-12-05t08:01:01z",
        "2026-12-05T08:01Z",
    ],
)
@pytest.mark.one_backend  # refused before anything reaches the store
def test_an_occurred_at_not_in_the_wire_form_is_refused_naming_it(
    central: RunningCentral, occurred_at: Any
) -> None:
    answer = post(central, event_json("edge-p1", occurred_at=occurred_at))
    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["detail"]
    assert problem["loc"][-1] == "occurred_at" and "date-time" in problem["msg"], problem
    assert chain(central) == 0


@pytest.mark.one_backend  # refused before anything reaches the store
@pytest.mark.parametrize("weight", [0.815, 1, "1e3", "007.5", " 0.8", "0,8", "NaN", "٣"])
def test_a_weight_not_an_exact_decimal_string_is_refused_naming_it(
    central: RunningCentral, weight: Any
) -> None:
    answer = post(
        central, event_json("edge-p1", logisticsNo="X1", codes=["WEIGHT_MISMATCH"], weight_kg=weight)
    )
    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["detail"]
    assert problem["loc"][-1] == "weight_kg", problem
    assert chain(central) == 0


@pytest.mark.parametrize(
    ("occurred_at", "weight"),
    [
        ("2026-12-05T08:01:01Z", "0.815"),
        ("2026-12-05T16:01:01+08:00", "0.8150"),
        ("2026-12-05T08:01:01.25Z", "12"),
        ("2026-12-05T08:01:01.000000Z", "0"),
    ],
)
def test_the_documented_forms_are_taken_hashed_in_their_canonical_form(
    central: RunningCentral, occurred_at: str, weight: str
) -> None:
    event = event_json("edge-p1", occurred_at=occurred_at, logisticsNo="X1", codes=["W"], weight_kg=weight)
    canonical = Event.model_validate(event)  # the canonical form of the same values (UTC, Z)
    event["hash"] = canonical.expected_hash()
    answer = post(central, event)
    assert answer.status_code == 200 and answer.json()["stored"] == 1, answer.text


# --- the earlier form ---------------------------------------------------------------------------


def earlier(event: Event) -> Event:
    """The same event hashed in the earlier form (isoformat `+00:00`, empty arrays kept)."""
    content = canonical_json_v1(event.model_dump(mode="python", exclude={"hash"}))
    return event.model_copy(
        update={"hash": hashlib.sha256(event.prev_hash.encode() + b"\n" + content).hexdigest()}
    )


def heartbeat(seq: int, prev: str) -> Event:
    draft = Event(
        edge_id="old-edge",
        seq=seq,
        kind=EventKind.HEARTBEAT,
        occurred_at=datetime(2026, 12, 1, 8, seq, tzinfo=UTC),
        body=EventBody(backlog=0),
        prev_hash=prev,
        hash=GENESIS_HASH,
    )
    return draft.model_copy(update={"hash": draft.expected_hash()})


def ingest(db: Database, event: Event) -> Any:
    return ingest_events(db, park_id="P1", edge_id="old-edge", events=[event], now=datetime.now(UTC))


def test_the_earlier_form_continues_a_chain_in_it_and_nothing_else(central_database: str) -> None:
    db = open_database(central_database)
    upsert_park(db, park_id="P1", name="p", ems_nos=[], area_codes=[], now="2026-12-01T00:00:00Z")

    first = earlier(heartbeat(1, GENESIS_HASH))
    refused = ingest(db, first)  # a new chain does not start in the earlier form
    assert refused.stored == 0 and refused.refused[0].code == "chain_break"
    assert "earlier form" in refused.refused[0].reason

    # a chain an edge began before 2026-12-05, as central stored it then
    with db.write() as conn:
        edge = store.get_edge(conn, edge_id="old-edge")
        assert edge is not None and edge.last_seq == 0
        store.insert_event(
            conn,
            store.EventRow(
                edge_id="old-edge",
                epoch=1,
                seq=1,
                park_id="P1",
                kind="heartbeat",
                station=None,
                occurred_at="2026-12-01T08:01:00.000000Z",
                logistics_code=None,
                logistics_no=None,
                body=json.dumps({"backlog": 0}),
                prev_hash=GENESIS_HASH,
                hash=first.hash,
                received_at="2026-12-01T08:01:01.000000Z",
            ),
        )
        store.update_edge(conn, replace(edge, last_seq=1, last_hash=first.hash))

    second = earlier(heartbeat(2, first.hash))
    assert ingest(db, second).stored == 1  # the edge not yet upgraded carries on
    third = heartbeat(3, second.hash)
    assert ingest(db, third).stored == 1  # upgraded: the canonical form from here
    fourth = earlier(heartbeat(4, third.hash))
    after = ingest(db, fourth)
    assert after.stored == 0 and "earlier form" in after.refused[0].reason
    assert ingest(db, heartbeat(4, third.hash)).stored == 1
    db.close()

"""Re-provisioning at central, in process over a real SQLite file: closing an edge's chain, the next
epoch, the refusals of a closed or unknown epoch, and one alert for a stuck edge, not one per retry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from central.chains import EpochMoved, UnknownEdge, chain_events, chain_view, reprovision
from central.events import ingest_events
from central.store.db import Database, open_database
from kernel.wire import GENESIS_HASH, Event, EventBody, EventKind, chain_event

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def make_chain(n: int, *, epoch: int | None = None, backlog: int = 0) -> list[Event]:
    events, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        event = chain_event(
            prev,
            edge_id="E1",
            epoch=epoch,
            seq=seq,
            kind=EventKind.HEARTBEAT,
            occurred_at=T0 + timedelta(seconds=seq),
            body=EventBody(backlog=backlog + seq),
        )
        events.append(event)
        prev = event.hash
    return events


@pytest.fixture
def db(central_database: str) -> Iterator[Database]:
    database = open_database(central_database)
    with database.write() as conn:
        conn.execute(
            "INSERT INTO parks (park_id, name, created_at) VALUES ('P1', 'one', ?)", (T0.isoformat(),)
        )
    yield database
    database.close()


def alerts(db: Database) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in db.reader().execute("SELECT kind, detail FROM alerts ORDER BY id")]


def send(db: Database, events: list[Event]):  # type: ignore[no-untyped-def]
    return ingest_events(db, park_id="P1", edge_id="E1", events=events, now=T0 + timedelta(hours=1))


def test_a_restored_edge_is_refused_with_one_alert_then_reprovisioned_into_epoch_2(db: Database) -> None:
    assert send(db, make_chain(5)).acked_seq == 5
    restored = make_chain(3, backlog=100)  # another seq 1..3: what a restored or new database writes
    for n in (1, 2, 3):  # its outbox grows while it is refused: one alert, not one per attempt
        answer = send(db, restored[:n])
        assert [r.code for r in answer.refused] == ["conflict"] * n
    assert [k for k, _ in alerts(db)] == ["conflict"]
    assert "re-provision" in alerts(db)[0][1]

    done = reprovision(db, park_id="P1", edge_id="E1", actor="officer:olga", reason="disk replaced", now=T0)
    assert (done.epoch, done.closed.epoch, done.closed.last_seq) == (2, 1, 5)
    assert done.closed.closed_by == "officer:olga" and done.closed.reason == "disk replaced"
    kind, detail = alerts(db)[-1]
    assert kind == "edge_reprovisioned" and "epoch 1 closed at seq 5" in detail and "officer:olga" in detail

    # the old epoch is closed: refused with who closed it and what to do; acked_seq says where it ended
    stale = send(db, restored)
    assert (stale.acked_seq, stale.epoch) == (5, 1)
    assert {r.code for r in stale.refused} == {"epoch_closed"}
    assert (
        "bondgate edge reprovision" in stale.refused[0].reason and "disk replaced" in stale.refused[0].reason
    )
    # an epoch never opened is refused too
    assert {r.code for r in send(db, make_chain(2, epoch=3)).refused} == {"epoch_unknown"}
    # the new epoch starts at seq 1 and is taken
    taken = send(db, make_chain(3, epoch=2, backlog=100))
    assert (taken.acked_seq, taken.epoch, taken.stored, taken.refused) == (3, 2, 3, [])

    view = chain_view(db, park_id="P1", edge_id="E1")
    assert (view.epoch, view.last_seq, [c.last_seq for c in view.closed]) == (2, 3, [5])
    old = chain_events(db, park_id="P1", edge_id="E1", epoch=1, after=0, limit=100)
    assert [e.body["backlog"] for e in old] == [1, 2, 3, 4, 5]  # the closed chain stays readable
    new = chain_events(db, park_id="P1", edge_id="E1", epoch=None, after=0, limit=100)
    assert [(e.epoch, e.seq, e.body["backlog"]) for e in new] == [(2, 1, 101), (2, 2, 102), (2, 3, 103)]


def test_reprovisioning_names_the_edge_and_guards_against_doing_it_twice(db: Database) -> None:
    send(db, make_chain(2))
    with pytest.raises(UnknownEdge):
        reprovision(db, park_id="P1", edge_id="E9", actor="a", reason="nope!", now=T0)
    reprovision(db, park_id="P1", edge_id="E1", actor="a", reason="first", now=T0, expect_epoch=1)
    with pytest.raises(EpochMoved):
        reprovision(db, park_id="P1", edge_id="E1", actor="b", reason="second", now=T0, expect_epoch=1)
    assert chain_view(db, park_id="P1", edge_id="E1").epoch == 2


def _events(epoch: int | None, specs: list[tuple[EventKind, EventBody]]) -> list[Event]:
    events, prev = [], GENESIS_HASH
    for seq, (kind, body) in enumerate(specs, start=1):
        event = chain_event(
            prev,
            edge_id="E1",
            epoch=epoch,
            seq=seq,
            kind=kind,
            occurred_at=T0 + timedelta(seconds=seq),
            body=body,
        )
        events.append(event)
        prev = event.hash
    return events


def test_a_decision_id_used_again_in_a_new_epoch_binds_nothing_of_the_old_chain(db: Database) -> None:
    """Actuation reports bind to a release of their own chain only; a release naming a decision id
    the edge used before is alerted and not judged on actuation, and the earlier release keeps its
    own report (outside round 3, HIGH-1: the new chain's `failed` was pinned on the old release)."""
    release = EventBody(logisticsCode="SF", logisticsNo="A", verdict="RELEASE", decision_id="Z-1")
    confirmed = EventBody(decision_id="Z-1", actuation="confirmed", output="gate")
    assert (
        send(db, _events(None, [(EventKind.RELEASE, release), (EventKind.ACTUATION, confirmed)])).stored == 2
    )
    reprovision(db, park_id="P1", edge_id="E1", actor="officer:olga", reason="disk replaced", now=T0)
    again = release.model_copy(update={"logisticsNo": "B"})
    failed = EventBody(decision_id="Z-1", actuation="failed", output="gate")
    assert send(db, _events(2, [(EventKind.RELEASE, again), (EventKind.ACTUATION, failed)])).stored == 2
    rows = (
        db.reader().execute("SELECT epoch, seq, logistics_no, actuation FROM release_actuations").fetchall()
    )
    assert [tuple(r) for r in rows] == [(1, 1, "A", "confirmed")]
    assert any(kind == "decision_reused" and "Z-1" in detail for kind, detail in alerts(db))

"""Edge event intake: exactly once under resends and reordering, tamper evidence, release alerts."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central import events as intake
from central.events import IngestResult, RefusalCode, UnknownPark, edge_status, ingest_events
from central.store.db import Database, open_database
from kernel.timefmt import iso
from kernel.wire import GENESIS_HASH, Event, EventBody, EventKind, chain_event

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
_edge_numbers = itertools.count()  # hypothesis examples share a database, each with its own edge


# --- helpers -----------------------------------------------------------------------------------


def add_park(db: Database, park_id: str) -> None:
    with db.write() as conn:
        conn.execute(
            "INSERT INTO parks (park_id, name, ems_nos, area_codes, created_at) VALUES (?, ?, '[]', '[]', ?)",
            (park_id, f"park {park_id}", T0.isoformat()),
        )


def add_clearance(
    db: Database,
    *,
    park_id: str,
    logistics_no: str,
    status: str,
    cancelled: bool = False,
    logistics_code: str = "SF",
) -> None:
    with db.write() as conn:
        conn.execute(
            "INSERT INTO clearances (clearance_id, park_id, invt_no, cop_no, pre_no, order_no, ebp_code,"
            " ebc_code, logistics_code, logistics_no, gross_weight, net_weight, declared_value, goods,"
            " status, cancelled, comparison, risk, version, updated_at)"
            " VALUES (?, ?, ?, NULL, NULL, ?, 'EBP', 'EBC', ?, ?, '1.2', '1.0', '99.00', 'socks x2',"
            " ?, ?, NULL, NULL, 1, ?)",
            (
                f"EBP|O-{logistics_no}",
                park_id,
                f"I-{logistics_no}",
                f"O-{logistics_no}",
                logistics_code,
                logistics_no,
                status,
                int(cancelled),
                T0.isoformat(),
            ),
        )
        # its history, as central writes it with every change: a release is judged on it
        steps = [(status, "seed")] + ([(status, "cancellation")] if cancelled else [])
        conn.executemany(
            "INSERT INTO clearance_history (clearance_id, from_status, to_status, action, actor, info, at)"
            " VALUES (?, NULL, ?, ?, 'test', '', ?)",
            [(f"EBP|O-{logistics_no}", to, action, iso(T0)) for to, action in steps],
        )


def make_chain(
    n: int,
    *,
    edge_id: str = "E1",
    bodies: dict[int, tuple[EventKind, EventBody]] | None = None,
    start: int = 1,
    prev: str = GENESIS_HASH,
) -> list[Event]:
    """A valid chain; events are heartbeats unless `bodies` says otherwise for a seq."""
    chain: list[Event] = []
    for seq in range(start, start + n):
        kind, body = (bodies or {}).get(seq, (EventKind.HEARTBEAT, EventBody(backlog=100 - seq)))
        event = chain_event(
            prev, edge_id=edge_id, seq=seq, kind=kind, occurred_at=T0 + timedelta(seconds=seq), body=body
        )
        chain.append(event)
        prev = event.hash
    return chain


def release(logistics_no: str, logistics_code: str = "SF") -> tuple[EventKind, EventBody]:
    body = EventBody(logisticsCode=logistics_code, logisticsNo=logistics_no, verdict="RELEASE")
    return EventKind.RELEASE, body


def rewritten_second(chain: list[Event]) -> Event:
    """A validly hashed seq 2 that differs from the chain's: what a forked or rewritten edge sends."""
    body = EventBody(backlog=7)
    head = chain[0].hash
    return chain_event(head, edge_id="E1", seq=2, kind=EventKind.HEARTBEAT, occurred_at=T0, body=body)


def send(
    db: Database, events: list[Event], *, edge_id: str = "E1", park_id: str = "P1", now: datetime = NOW
) -> IngestResult:
    return ingest_events(db, park_id=park_id, edge_id=edge_id, events=events, now=now)


def held(db: Database, edge_id: str = "E1") -> list[tuple[int, str]]:
    rows = db.reader().execute("SELECT seq, hash FROM events WHERE edge_id = ? ORDER BY seq", (edge_id,))
    return [(r[0], r[1]) for r in rows]


def alerts(db: Database, park_id: str = "P1") -> list[sqlite3.Row]:
    return list(db.reader().execute("SELECT * FROM alerts WHERE park_id = ? ORDER BY id", (park_id,)))


def alert_kinds(db: Database, park_id: str = "P1") -> list[str]:
    return [r["kind"] for r in alerts(db, park_id)]


def codes(result: IngestResult) -> list[tuple[int, str]]:
    return [(r.seq, r.code.value) for r in result.refused]


@pytest.fixture
def db(central_database: str) -> Iterator[Database]:
    database = open_database(central_database)
    add_park(database, "P1")
    add_park(database, "P2")
    yield database
    database.close()


# --- exactly once ------------------------------------------------------------------------------


def test_first_batch_is_stored_and_acknowledged(db: Database) -> None:
    chain = make_chain(5)
    result = send(db, chain)
    assert result == IngestResult(acked_seq=5, stored=5, duplicates=0, refused=[])
    assert held(db) == [(e.seq, e.hash) for e in chain]
    edge = db.reader().execute("SELECT * FROM edges WHERE edge_id = 'E1'").fetchone()
    assert (edge["park_id"], edge["last_seq"], edge["last_hash"]) == ("P1", 5, chain[-1].hash)
    assert alerts(db) == []


def test_stored_row_carries_the_event(db: Database) -> None:
    [event] = make_chain(1, bodies={1: release("N1")})
    send(db, [event])
    row = db.reader().execute("SELECT * FROM events").fetchone()
    assert row["park_id"] == "P1" and row["kind"] == "release"
    assert (row["logistics_code"], row["logistics_no"]) == ("SF", "N1")
    assert row["occurred_at"] == "2025-03-01T08:00:01.000000Z"
    assert row["received_at"] == "2025-03-01T09:00:00.000000Z"
    assert (row["prev_hash"], row["hash"]) == (GENESIS_HASH, event.hash)


def test_resending_a_batch_changes_nothing(db: Database) -> None:
    chain = make_chain(5)
    send(db, chain)
    again = send(db, chain)
    assert again == IngestResult(acked_seq=5, stored=0, duplicates=5, refused=[])
    assert held(db) == [(e.seq, e.hash) for e in chain]


def test_duplicates_within_a_batch(db: Database) -> None:
    c = make_chain(3)
    result = send(db, [c[2], c[0], c[1], c[0], c[2], c[2]])
    assert result == IngestResult(acked_seq=3, stored=3, duplicates=3, refused=[])
    assert len(held(db)) == 3


def test_overlapping_batches(db: Database) -> None:
    chain = make_chain(8)
    assert send(db, chain[0:5]).acked_seq == 5
    result = send(db, chain[2:8])
    assert result == IngestResult(acked_seq=8, stored=3, duplicates=3, refused=[])
    assert [s for s, _ in held(db)] == list(range(1, 9))


def test_batch_ahead_of_the_chain_is_refused_until_the_gap_is_filled(db: Database) -> None:
    chain = make_chain(10)
    send(db, chain[0:5])
    ahead = send(db, chain[7:10])
    assert ahead.acked_seq == 5 and ahead.stored == 0
    assert codes(ahead) == [(8, "seq_gap"), (9, "seq_gap"), (10, "seq_gap")]
    assert "expected seq 6" in ahead.refused[0].reason
    assert [s for s, _ in held(db)] == [1, 2, 3, 4, 5]
    assert alert_kinds(db) == ["seq_gap"]

    assert send(db, chain[5:7]) == IngestResult(acked_seq=7, stored=2)
    assert send(db, chain[7:10]) == IngestResult(acked_seq=10, stored=3)
    assert [s for s, _ in held(db)] == list(range(1, 11))


def test_a_resent_gapped_batch_raises_one_alert_not_one_per_try(db: Database) -> None:
    chain = make_chain(10)
    send(db, chain[0:5])
    for _ in range(3):
        send(db, chain[7:10])
    assert alert_kinds(db) == ["seq_gap"]


def test_gap_inside_a_batch_stores_up_to_the_gap(db: Database) -> None:
    chain = make_chain(6)
    result = send(db, [chain[0], chain[1], chain[3], chain[4]])
    assert result.acked_seq == 2 and result.stored == 2
    assert codes(result) == [(4, "seq_gap"), (5, "seq_gap")]
    assert len(alerts(db)) == 1


def test_empty_batch_reports_the_acknowledged_seq(db: Database) -> None:
    send(db, make_chain(4))
    assert send(db, []) == IngestResult(acked_seq=4)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_delivery_pattern_stores_each_event_exactly_once(
    shared_db: Database, data: st.DataObject
) -> None:
    """Random overlapping, duplicated, reordered and re-delivered batches, then the edge's own resends."""
    n = data.draw(st.integers(1, 25), label="n")
    edge_id = f"H{next(_edge_numbers)}"
    chain = make_chain(n, edge_id=edge_id)
    batches = data.draw(st.lists(st.lists(st.integers(1, n), min_size=1, max_size=10), max_size=10))
    again = data.draw(st.lists(st.sampled_from(batches), max_size=5)) if batches else []
    acked = 0

    def deliver(seqs: list[int]) -> None:
        nonlocal acked
        result = send(shared_db, [chain[s - 1] for s in seqs], edge_id=edge_id)
        assert result.acked_seq >= acked
        assert result.stored + result.duplicates + len(result.refused) == len(seqs)
        assert {r.code for r in result.refused} <= {RefusalCode.SEQ_GAP}
        acked = result.acked_seq
        assert [s for s, _ in held(shared_db, edge_id)] == list(range(1, acked + 1))

    for seqs in data.draw(st.permutations(batches + again), label="deliveries"):
        deliver(seqs)
    while acked < n:  # the edge resends from acked + 1, in windows of its choosing
        window = data.draw(st.integers(1, 10))
        deliver(list(range(acked + 1, min(n, acked + window) + 1)))
    assert held(shared_db, edge_id) == [(e.seq, e.hash) for e in chain]
    assert set(alert_kinds(shared_db)) <= {"seq_gap"}


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """One database for every hypothesis example; each example uses a fresh edge id."""
    database = open_database(tmp_path_factory.mktemp("hyp") / "c.db")
    add_park(database, "P1")
    yield database
    database.close()


# --- tampering ---------------------------------------------------------------------------------


def test_altered_body_with_its_original_hash_is_refused(db: Database) -> None:
    chain = make_chain(5)
    send(db, chain[:2])
    forged = chain[2].model_copy(update={"body": EventBody(backlog=0, detail="nothing to see")})
    result = send(db, [forged, chain[3], chain[4]])
    assert result.acked_seq == 2 and result.stored == 0
    assert codes(result) == [(3, "chain_break"), (4, "chain_break"), (5, "chain_break")]
    assert result.refused[0].reason == "content does not match its hash"
    assert "follows refused seq 3" in result.refused[1].reason
    assert [s for s, _ in held(db)] == [1, 2]
    [alert] = alerts(db)
    assert alert["kind"] == "chain_break" and alert["edge_id"] == "E1" and "seq 3" in alert["detail"]
    assert send(db, chain[2:]).acked_seq == 5  # the genuine events still go through


def test_wrong_prev_hash_is_refused(db: Database) -> None:
    chain = make_chain(3)
    send(db, chain[:2])
    forged = chain_event(
        "f" * 64, edge_id="E1", seq=3, kind=EventKind.HEARTBEAT, occurred_at=T0, body=EventBody(backlog=1)
    )
    later = make_chain(2, start=4, prev=forged.hash)
    result = send(db, [forged, *later])
    assert codes(result) == [(3, "chain_break"), (4, "chain_break"), (5, "chain_break")]
    assert "prev_hash" in result.refused[0].reason
    assert result.acked_seq == 2 and [s for s, _ in held(db)] == [1, 2]
    assert alert_kinds(db) == ["chain_break"]


def test_same_seq_with_different_content_is_a_conflict_and_never_overwrites(db: Database) -> None:
    chain = make_chain(4)
    send(db, chain[:3])
    other = rewritten_second(chain)
    result = send(db, [other, chain[3]])
    assert codes(result) == [(2, "conflict"), (4, "conflict")]
    assert result.acked_seq == 3 and result.stored == 0
    assert held(db) == [(e.seq, e.hash) for e in chain[:3]]
    assert alert_kinds(db) == ["conflict"]


def test_conflict_inside_one_batch(db: Database) -> None:
    chain = make_chain(3)
    other = rewritten_second(chain)
    result = send(db, [chain[0], chain[1], other, chain[2]])
    assert result.stored == 2 and codes(result) == [(2, "conflict"), (3, "conflict")]
    assert held(db) == [(e.seq, e.hash) for e in chain[:2]]


def test_resend_with_altered_content_but_the_stored_hash_is_not_a_duplicate(db: Database) -> None:
    chain = make_chain(3)
    send(db, chain)
    forged = chain[1].model_copy(update={"station": "GATE-9"})
    result = send(db, [forged])
    assert result.duplicates == 0 and codes(result) == [(2, "chain_break")]
    assert alert_kinds(db) == ["chain_break"]


def test_event_of_another_edge_in_the_batch_is_refused(db: Database) -> None:
    mine, theirs = make_chain(3), make_chain(3, edge_id="E2")
    result = send(db, [mine[0], theirs[1], mine[1], mine[2]])
    assert result.stored == 1 and result.acked_seq == 1
    assert codes(result) == [(2, "edge_mismatch"), (2, "edge_mismatch"), (3, "edge_mismatch")]
    assert held(db, "E2") == []
    assert alert_kinds(db) == ["edge_mismatch"]


def test_edge_bound_to_another_park_is_refused(db: Database) -> None:
    chain = make_chain(4)
    send(db, chain[:2], park_id="P1")
    result = send(db, chain, park_id="P2")
    assert result.acked_seq == 0 and result.stored == 0 and result.duplicates == 0
    assert {r.code for r in result.refused} == {RefusalCode.EDGE_MISMATCH} and len(result.refused) == 4
    assert [s for s, _ in held(db)] == [1, 2]
    [alert] = alerts(db, "P1")
    assert alert["kind"] == "edge_mismatch" and "park P2" in alert["detail"]
    assert edge_status(db, "P2") == []


def test_unknown_park_is_an_error_and_stores_nothing(db: Database) -> None:
    with pytest.raises(UnknownPark):
        send(db, make_chain(2), park_id="NOPE")
    assert held(db) == []
    assert db.reader().execute("SELECT COUNT(*) FROM edges").fetchone()[0] == 0


def test_a_failure_mid_batch_rolls_the_whole_batch_back(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_clearance(db, park_id="P1", logistics_no="N1", status="120")

    def broken(*args: object, **kwargs: object) -> int:
        raise sqlite3.OperationalError("disk on fire")

    monkeypatch.setattr(intake.store, "insert_alert", broken)
    with pytest.raises(sqlite3.OperationalError):
        send(db, make_chain(3, bodies={3: release("N1")}))
    assert held(db) == []
    assert db.reader().execute("SELECT COUNT(*) FROM edges").fetchone()[0] == 0


# --- heartbeats and edge status ------------------------------------------------------------------


def test_heartbeat_updates_edge_status(db: Database) -> None:
    chain = make_chain(3, bodies={2: (EventKind.DISCREPANCY, EventBody(codes=["NO_READ"]))})
    send(db, chain, now=NOW)
    later = make_chain(1, start=4, prev=chain[-1].hash, bodies={4: (EventKind.DEVICE_FAULT, EventBody())})
    send(db, later, now=NOW + timedelta(minutes=5))
    [status] = edge_status(db, "P1")
    assert status.edge_id == "E1" and status.last_seq == 4
    assert status.last_seen == NOW + timedelta(minutes=5)
    assert status.last_heartbeat == T0 + timedelta(seconds=3)
    assert status.backlog == 97
    assert edge_status(db, "P2") == []


def test_refused_batch_still_counts_as_contact(db: Database) -> None:
    chain = make_chain(5)
    send(db, chain[:2], now=NOW)
    send(db, chain[3:], now=NOW + timedelta(minutes=1))
    [status] = edge_status(db, "P1")
    assert status.last_seq == 2 and status.last_seen == NOW + timedelta(minutes=1)


# --- release effects -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cancelled", "alerted"),
    [
        ("800", False, False),
        ("899", False, False),
        ("800", True, True),
        ("120", False, True),
        ("399", False, True),
        ("500", False, True),
        ("100", False, True),
    ],
)
def test_release_is_checked_against_the_clearance(
    db: Database, status: str, cancelled: bool, alerted: bool
) -> None:
    add_clearance(db, park_id="P1", logistics_no="N1", status=status, cancelled=cancelled)
    result = send(db, make_chain(1, bodies={1: release("N1")}))
    assert result.stored == 1  # the event is a fact: stored, and flagged when wrong
    if alerted:
        [alert] = alerts(db)
        assert alert["kind"] == "release_not_cleared" and "SF/N1" in alert["detail"]
        assert f"status {status}" in alert["detail"]
        assert ("cancelled" in alert["detail"]) == cancelled
    else:
        assert alerts(db) == []


def test_release_of_an_unknown_parcel_or_one_of_another_park_raises_an_alert(db: Database) -> None:
    add_clearance(db, park_id="P2", logistics_no="N2", status="800")
    send(db, make_chain(2, bodies={1: release("N1"), 2: release("N2")}))
    details = [a["detail"] for a in alerts(db)]
    assert alert_kinds(db) == ["release_not_cleared", "release_not_cleared"]
    assert all("no clearance in this park" in d for d in details)


def test_release_without_a_parcel_key_raises_an_alert(db: Database) -> None:
    send(db, make_chain(1, bodies={1: (EventKind.RELEASE, EventBody(verdict="RELEASE"))}))
    [alert] = alerts(db)
    assert alert["kind"] == "release_not_cleared" and "names no parcel" in alert["detail"]


def test_second_release_of_a_parcel_from_any_edge_raises_an_alert(db: Database) -> None:
    add_clearance(db, park_id="P1", logistics_no="N1", status="800")
    send(db, make_chain(1, bodies={1: release("N1")}))
    assert alerts(db) == []
    send(db, make_chain(1, edge_id="E2", bodies={1: release("N1")}), edge_id="E2")
    [alert] = alerts(db)
    assert alert["kind"] == "released_twice" and alert["edge_id"] == "E2" and "E1 seq 1" in alert["detail"]


def test_second_release_within_one_batch_raises_an_alert(db: Database) -> None:
    add_clearance(db, park_id="P1", logistics_no="N1", status="800")
    send(db, make_chain(3, bodies={1: release("N1"), 3: release("N1")}))
    assert alert_kinds(db) == ["released_twice"]


def test_resent_release_is_not_a_second_release(db: Database) -> None:
    add_clearance(db, park_id="P1", logistics_no="N1", status="800")
    chain = make_chain(2, bodies={1: release("N1")})
    send(db, chain)
    send(db, chain)
    assert alerts(db) == []


def test_central_commits_are_durable_before_they_are_answered(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An edge deletes what central acknowledged: central's commits must survive a power cut, so its
    connections run SQLite at synchronous=FULL (NORMAL acknowledged events it had not yet synced)."""

    db = open_database(tmp_path / "central.db")
    try:
        with db.write() as conn:
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert db.reader().execute("PRAGMA synchronous").fetchone()[0] == 2
    finally:
        db.close()

"""Park reconciliation report: every figure checked on a small seeded park, plus capping and isolation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from central.events import ingest_events
from central.reports import ParkReport, park_report
from central.store.db import Database, open_database
from kernel.wire import GENESIS_HASH, Event, EventBody, EventKind, chain_event

NOW = datetime(2025, 3, 2, 12, 30, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def add_park(db: Database, park_id: str) -> None:
    with db.write() as conn:
        conn.execute(
            "INSERT INTO parks (park_id, name, ems_nos, area_codes, created_at) VALUES (?, ?, '[]', '[]', ?)",
            (park_id, f"park {park_id}", NOW.isoformat()),
        )


def add_clearance(
    db: Database,
    park_id: str,
    logistics_no: str,
    status: str,
    *,
    cancelled: bool = False,
    updated_at: str = "2025-03-01T00:00:00.000000Z",
) -> None:
    with db.write() as conn:
        conn.execute(
            "INSERT INTO clearances (clearance_id, park_id, invt_no, cop_no, pre_no, order_no, ebp_code,"
            " ebc_code, logistics_code, logistics_no, gross_weight, net_weight, declared_value, goods,"
            " status, cancelled, comparison, risk, version, updated_at)"
            " VALUES (?, ?, ?, NULL, NULL, ?, 'EBP', 'EBC', 'SF', ?, '1.2', '1.0', '99.00', 'socks x2',"
            " ?, ?, NULL, NULL, 1, ?)",
            (
                f"EBP|O-{logistics_no}",
                park_id,
                f"I-{logistics_no}",
                f"O-{logistics_no}",
                logistics_no,
                status,
                int(cancelled),
                updated_at,
            ),
        )
        # its history: reconciliation judges a release by the status at the release's time
        history = [(status, "seed")] + ([(status, "cancellation")] if cancelled else [])
        conn.executemany(
            "INSERT INTO clearance_history (clearance_id, from_status, to_status, action, actor, info, at)"
            " VALUES (?, NULL, ?, ?, 'test', '', ?)",
            [(f"EBP|O-{logistics_no}", to, action, updated_at) for to, action in history],
        )


Spec = tuple[EventKind, EventBody, datetime]


def release(logistics_no: str, when: str) -> Spec:
    return EventKind.RELEASE, EventBody(logisticsCode="SF", logisticsNo=logistics_no), at(when)


def discrepancy(*codes: str) -> Spec:
    return EventKind.DISCREPANCY, EventBody(logisticsCode="SF", logisticsNo="X", codes=list(codes)), NOW


def send(db: Database, park_id: str, edge_id: str, specs: list[Spec], now: datetime) -> None:
    prev, events = GENESIS_HASH, list[Event]()
    for seq, (kind, body, when) in enumerate(specs, start=1):
        event = chain_event(prev, edge_id=edge_id, seq=seq, kind=kind, occurred_at=when, body=body)
        events.append(event)
        prev = event.hash
    result = ingest_events(db, park_id=park_id, edge_id=edge_id, events=events, now=now)
    assert result.stored == len(events)


@pytest.fixture
def db(central_database: str) -> Iterator[Database]:
    database = open_database(central_database)
    yield database
    database.close()


@pytest.fixture
def seeded(db: Database) -> Database:
    """Park P1 with one parcel of every situation; park P2 with noise that must not leak into P1."""
    add_park(db, "P1")
    add_park(db, "P2")
    add_clearance(db, "P1", "A1", "800")  # released: fine
    add_clearance(db, "P1", "A2", "800", updated_at="2025-03-01T08:00:00.000000Z")  # cleared, not out
    add_clearance(db, "P1", "A3", "800", updated_at="2025-03-02T08:00:00.000000Z")  # cleared, not out
    add_clearance(db, "P1", "A4", "800", cancelled=True)  # released though cancelled
    add_clearance(db, "P1", "A5", "899")  # released, since closed: fine
    add_clearance(db, "P1", "A6", "120")  # released though only accepted
    add_clearance(db, "P1", "A7", "500")  # waiting for inspection
    add_clearance(db, "P1", "A8", "800")  # released twice
    add_clearance(db, "P1", "A9", "800", cancelled=True)  # cancelled, not out: fine
    add_clearance(db, "P1", "A10", "800")  # released 30 h ago
    add_clearance(db, "P2", "B1", "800")  # another park's backlog
    send(
        db,
        "P1",
        "E1",
        [
            release("A10", "2025-03-01T06:30"),
            release("A6", "2025-03-01T13:05"),
            release("U1", "2025-03-01T12:59"),  # unknown parcel, just before the 24 h window
            release("A8", "2025-03-02T09:00"),
            release("A1", "2025-03-02T11:30"),
            release("A4", "2025-03-02T12:10"),
            release("A5", "2025-03-02T12:20"),
            discrepancy("NO_READ"),
            discrepancy("WEIGHT_MISMATCH", "LABEL_MISMATCH"),
            discrepancy("NO_READ"),
            (EventKind.HEARTBEAT, EventBody(backlog=0), NOW),
        ],
        now=NOW - timedelta(minutes=5),
    )
    send(db, "P1", "E2", [release("A8", "2025-03-02T10:15")], now=NOW)
    send(
        db,
        "P2",
        "E3",
        [
            release("A2", "2025-03-02T11:00"),
            release("A2", "2025-03-02T11:01"),
            discrepancy("NO_READ"),
        ],
        now=NOW,
    )
    return db


def test_clearance_counts(seeded: Database) -> None:
    counts = park_report(seeded, park_id="P1", now=NOW).clearances
    assert counts.by_status == {"120": 1, "500": 1, "800": 7, "899": 1}
    assert (counts.total, counts.cancelled) == (10, 2)


def test_releases_per_hour_cover_the_last_24_hours(seeded: Database) -> None:
    hours = park_report(seeded, park_id="P1", now=NOW).releases_per_hour
    assert len(hours) == 24
    assert hours[0].hour == "2025-03-01T13:00:00Z" and hours[-1].hour == "2025-03-02T12:00:00Z"
    nonzero = {h.hour[:13]: h.count for h in hours if h.count}
    assert nonzero == {
        "2025-03-01T13": 1,
        "2025-03-02T09": 1,
        "2025-03-02T10": 1,
        "2025-03-02T11": 1,
        "2025-03-02T12": 2,
    }


def test_discrepancies_by_code(seeded: Database) -> None:
    report = park_report(seeded, park_id="P1", now=NOW)
    assert report.discrepancies == {"NO_READ": 2, "LABEL_MISMATCH": 1, "WEIGHT_MISMATCH": 1}
    assert next(iter(report.discrepancies)) == "NO_READ"  # most frequent first


def test_cleared_not_out_lists_the_oldest_first(seeded: Database) -> None:
    listed = park_report(seeded, park_id="P1", now=NOW).cleared_not_out
    assert listed.total == 2
    assert [(i.logisticsCode, i.logisticsNo, i.invtNo) for i in listed.items] == [
        ("SF", "A2", "I-A2"),
        ("SF", "A3", "I-A3"),
    ]
    assert listed.items[0].updated_at == at("2025-03-01T08:00")


def test_released_without_clearance(seeded: Database) -> None:
    listed = park_report(seeded, park_id="P1", now=NOW).released_without_clearance
    assert listed.total == 3
    got = [(i.edge_id, i.seq, i.logisticsNo, i.status, i.cancelled, i.occurred_at) for i in listed.items]
    assert got == [
        ("E1", 3, "U1", None, None, at("2025-03-01T12:59")),
        ("E1", 2, "A6", "120", False, at("2025-03-01T13:05")),
        ("E1", 6, "A4", "800", True, at("2025-03-02T12:10")),
    ]


def test_released_twice(seeded: Database) -> None:
    listed = park_report(seeded, park_id="P1", now=NOW).released_twice
    assert listed.total == 1
    [item] = listed.items
    assert (item.logisticsCode, item.logisticsNo, item.releases) == ("SF", "A8", 2)
    assert (item.first_at, item.last_at) == (at("2025-03-02T09:00"), at("2025-03-02T10:15"))


def test_alerts_newest_first(seeded: Database) -> None:
    listed = park_report(seeded, park_id="P1", now=NOW).alerts
    assert listed.total == 4
    assert [(a.kind, a.edge_id) for a in listed.items] == [
        ("released_twice", "E2"),
        ("release_not_cleared", "E1"),  # A4, cancelled
        ("release_not_cleared", "E1"),  # U1, unknown
        ("release_not_cleared", "E1"),  # A6, at 120
    ]
    assert "SF/A4" in listed.items[1].detail and "SF/U1" in listed.items[2].detail
    assert listed.items[0].created_at == NOW


def test_lists_are_capped_but_totals_are_not(seeded: Database) -> None:
    report = park_report(seeded, park_id="P1", now=NOW, limit=1)
    assert (report.cleared_not_out.total, len(report.cleared_not_out.items)) == (2, 1)
    assert (report.released_without_clearance.total, len(report.released_without_clearance.items)) == (3, 1)
    assert (report.alerts.total, len(report.alerts.items)) == (4, 1)
    assert report.cleared_not_out.items[0].logisticsNo == "A2"


def test_other_park_sees_only_its_own(seeded: Database) -> None:
    report = park_report(seeded, park_id="P2", now=NOW)
    assert report.clearances.by_status == {"800": 1}
    assert [i.logisticsNo for i in report.cleared_not_out.items] == ["B1"]
    assert [i.logisticsNo for i in report.released_without_clearance.items] == ["A2", "A2"]
    assert [(i.logisticsNo, i.releases) for i in report.released_twice.items] == [("A2", 2)]
    assert report.discrepancies == {"NO_READ": 1}
    assert sum(h.count for h in report.releases_per_hour) == 2


def test_empty_park(db: Database) -> None:
    add_park(db, "P1")
    report = park_report(db, park_id="P1", now=NOW)
    assert report.clearances.total == 0 and report.clearances.by_status == {}
    assert [h.count for h in report.releases_per_hour] == [0] * 24
    assert report.discrepancies == {}
    lists = (report.cleared_not_out, report.released_without_clearance, report.released_twice, report.alerts)
    for listed in lists:
        assert (listed.total, listed.items) == (0, [])


def test_report_serialises(seeded: Database) -> None:
    report = park_report(seeded, park_id="P1", now=NOW, limit=2)
    assert ParkReport.model_validate_json(report.model_dump_json()) == report


BIG_TABLES = {"clearances", "c", "events", "e"}


def test_report_reaches_clearances_and_events_only_through_indexes(seeded: Database) -> None:
    """A park may hold a million clearances: no query may walk a whole table or a whole park.
    (SQLite's plans, read here; on PostgreSQL the planner chooses by statistics, and
    bench/central_lookup.py measures the report at a million clearances.)"""
    if seeded.dialect != "sqlite":
        pytest.skip("SQLite's query plans")
    statements: list[str] = []
    conn = seeded.reader()
    conn.set_trace_callback(statements.append)
    try:
        park_report(seeded, park_id="P1", now=NOW)
    finally:
        conn.set_trace_callback(None)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) >= 8
    scans: list[str] = []
    probes: list[str] = []
    for statement in selects:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}")]
        scans += [p for p in plan if p.startswith("SCAN") and p.split()[1] in BIG_TABLES]
        correlated = [i for i, p in enumerate(plan) if p.startswith("CORRELATED")]
        probes += [p for p in plan[correlated[0] + 1 :] if p.startswith("SEARCH")] if correlated else []
    assert scans == []
    # the per-row probes go by parcel key (and a clearance's history by its id), never through the
    # park's (park_id, status) range
    keyed = ("clearances_logistics", "events_parcel", "clearance_history_id")
    assert probes and all(any(k in p for k in keyed) for p in probes), probes

"""The report's maintained figures (schema 0011 triggers) always equal what a scan of the base tables
says: after any sequence of clearance inserts, status changes, cancellations, re-keys, park moves and
release/discrepancy events — in any order of history and event times — the tallied report equals the
report of the scanning queries it replaced, and `tallies.rebuild` changes nothing."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from central.events import CLEARED_STATUSES, ingest_events
from central.reports import park_report
from central.store import tallies
from central.store.db import Database, open_database
from central.store.schema import release_judgement
from kernel.wire import GENESIS_HASH, Event, EventBody, EventKind, chain_event

T0 = datetime(2025, 3, 2, 0, 0, tzinfo=UTC)
NOS = ["A", "B", "C"]
PARKS = ["P1", "P2"]
MOSTLY_P1 = ["P1", "P1", "P2"]
STATUSES = ["120", "399", "500", "800", "899", "100"]


def _iso(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- the scanning queries the tallies replaced (the definition of each figure) --------------------


# a release's time: the earlier of occurred_at and received_at (SQLite's scalar MIN, PostgreSQL's LEAST)
EARLIER = "(CASE WHEN e.occurred_at < e.received_at THEN e.occurred_at ELSE e.received_at END)"


def scan_counts(conn: sqlite3.Connection, park: str) -> dict[str, tuple[int, int]]:
    rows = conn.execute(
        "SELECT status, COUNT(*), SUM(cancelled) FROM clearances WHERE park_id = ? GROUP BY status", (park,)
    )
    return {r[0]: (r[1], r[2] or 0) for r in rows}


def scan_cleared_not_out(conn: sqlite3.Connection, park: str) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT c.logistics_no FROM clearances c WHERE c.park_id = ? AND c.status = '800'"
            " AND c.cancelled = 0 AND NOT EXISTS (SELECT 1 FROM events e WHERE e.logistics_code ="
            " c.logistics_code AND e.logistics_no = c.logistics_no AND e.kind = 'release'"
            " AND e.park_id = c.park_id AND NOT EXISTS (SELECT 1 FROM release_actuations ra"
            " WHERE ra.edge_id = e.edge_id AND ra.epoch = e.epoch AND ra.seq = e.seq"
            " AND ra.actuation = 'withheld')) ORDER BY c.updated_at, c.clearance_id",
            (park,),
        )
    ]


def scan_uncleared(conn: sqlite3.Connection, park: str) -> list[tuple[Any, ...]]:
    history = (
        "FROM clearance_history h JOIN clearances c ON c.clearance_id = h.clearance_id"
        " WHERE c.logistics_code = e.logistics_code AND c.logistics_no = e.logistics_no"
        " AND COALESCE(c.park_id, '') = e.park_id AND h.at <= " + EARLIER + ""
    )
    status_then = f"(SELECT h.to_status {history} ORDER BY h.at DESC, h.id DESC LIMIT 1)"
    cancelled_then = f"EXISTS (SELECT 1 {history} AND h.action IN ('cancellation', 'return'))"
    return [
        tuple(r)
        for r in conn.execute(
            f"SELECT edge_id, seq FROM (SELECT e.edge_id, e.seq, {status_then} AS status,"
            f" {cancelled_then} AS cancelled FROM events e WHERE e.park_id = ? AND e.kind = 'release')"
            " AS judged"
            " WHERE status IS NULL OR status NOT IN ('800', '899') OR cancelled ORDER BY edge_id, seq",
            (park,),
        )
    ]


def scan_cancelled_late(conn: sqlite3.Connection, park: str) -> list[tuple[Any, ...]]:
    """Releases the parcel was cleared for at their time, whose cancellation came after."""
    cleared = {tuple(r) for r in scan_all_releases(conn, park)} - set(scan_uncleared(conn, park))
    late = {
        tuple(r)
        for r in conn.execute(
            "SELECT DISTINCT e.edge_id, e.seq FROM events e JOIN clearances c ON c.logistics_code ="
            " e.logistics_code AND c.logistics_no = e.logistics_no AND COALESCE(c.park_id, '') = e.park_id"
            " JOIN clearance_history h ON h.clearance_id = c.clearance_id AND h.action = 'cancellation'"
            " AND h.at > " + EARLIER + " WHERE e.park_id = ? AND e.kind = 'release'",
            (park,),
        )
    }
    return sorted(cleared & late)


def scan_all_releases(conn: sqlite3.Connection, park: str) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in conn.execute(
            "SELECT edge_id, seq FROM events WHERE park_id = ? AND kind = 'release'", (park,)
        )
    ]


def scan_twice(conn: sqlite3.Connection, park: str) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in conn.execute(
            "SELECT logistics_no, COUNT(*) FROM events WHERE park_id = ? AND kind = 'release'"
            " GROUP BY logistics_code, logistics_no HAVING COUNT(*) > 1 ORDER BY logistics_no",
            (park,),
        )
    ]


def scan_discrepancies(conn: sqlite3.Connection, park: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for (body,) in conn.execute(
        "SELECT body FROM events WHERE park_id = ? AND kind = 'discrepancy'", (park,)
    ):
        for code in json.loads(body).get("codes", []):
            if isinstance(code, str):
                counts[code] = counts.get(code, 0) + 1
    return counts


def scan_hours(conn: sqlite3.Connection, park: str) -> dict[str, int]:
    rows = conn.execute(
        f"SELECT substr({EARLIER.replace('e.', '')}, 1, 13), COUNT(*) FROM events"
        " WHERE park_id = ? AND kind = 'release'"
        " GROUP BY 1",
        (park,),
    )
    return {r[0]: r[1] for r in rows}


# --- operations -------------------------------------------------------------------------------------

ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("clearance"), st.sampled_from(NOS), st.sampled_from(PARKS), st.sampled_from(STATUSES)
        ),
        st.tuples(st.just("status"), st.sampled_from(NOS), st.sampled_from(STATUSES), st.integers(0, 150)),
        st.tuples(
            st.just("cancel"),
            st.sampled_from(NOS),
            st.sampled_from(["cancellation", "return"]),
            st.integers(0, 150),
        ),
        st.tuples(st.just("rekey"), st.sampled_from(NOS), st.sampled_from(NOS)),
        st.tuples(st.just("move"), st.sampled_from(NOS), st.sampled_from(PARKS)),
        st.tuples(st.just("release"), st.sampled_from(NOS), st.sampled_from(MOSTLY_P1), st.integers(0, 150)),
        st.tuples(
            st.just("actuate"), st.integers(0, 20), st.sampled_from(["confirmed", "failed", "withheld"])
        ),
        st.tuples(
            st.just("discrepancy"),
            st.sampled_from(PARKS),
            st.lists(st.sampled_from(["WEIGHT", "NOT_FOUND", "AMBIGUOUS_READ"]), max_size=3),
        ),
    ),
    max_size=30,
)


class Park:
    """A real central database driven the way central's code paths write it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.chains: dict[str, tuple[int, str]] = {}
        self.clock = 0  # central's received_at, in minutes: only moves forward
        self.decisions: list[tuple[str, str]] = []  # (park, decision_id) of each release sent
        with db.write() as conn:
            for park in PARKS:
                conn.execute(
                    "INSERT INTO parks (park_id, name, ems_nos, area_codes, created_at)"
                    " VALUES (?, ?, '[]', '[]', 'x')",
                    (park, park),
                )

    def apply(self, op: tuple[Any, ...]) -> None:
        kind, *args = op
        self.clock += 7
        getattr(self, f"_{kind}")(*args)

    def _clearance(self, no: str, park: str, status: str) -> None:
        with self.db.write() as conn:
            cid = f"EBP|{no}"
            if conn.execute("SELECT 1 FROM clearances WHERE clearance_id = ?", (cid,)).fetchone():
                return
            conn.execute(
                "INSERT INTO clearances (clearance_id, park_id, invt_no, order_no, ebp_code, ebc_code,"
                " logistics_code, logistics_no, gross_weight, net_weight, declared_value, goods, status,"
                " cancelled, version, updated_at) VALUES (?, ?, ?, ?, 'EBP', 'EBC', 'SF', ?, '1', '1', '1',"
                " 'g', ?, 0, 1, ?)",
                (cid, park, f"I{no}", no, no, status, _iso(self.clock)),
            )
            self._history(conn, cid, status, "compare", self.clock)

    def _history(self, conn: sqlite3.Connection, cid: str, status: str, action: str, at: int) -> None:
        conn.execute(
            "INSERT INTO clearance_history (clearance_id, from_status, to_status, action, actor, info, at)"
            " VALUES (?, NULL, ?, ?, 't', '', ?)",
            (cid, status, action, _iso(at)),
        )

    def _status(self, no: str, status: str, at: int) -> None:
        with self.db.write() as conn:
            cur = conn.execute(
                "UPDATE clearances SET status = ?, updated_at = ? WHERE clearance_id = ?",
                (status, _iso(at), f"EBP|{no}"),
            )
            if cur.rowcount:
                self._history(conn, f"EBP|{no}", status, "officer", at)

    def _cancel(self, no: str, action: str, at: int) -> None:
        with self.db.write() as conn:
            row = conn.execute(
                "SELECT status FROM clearances WHERE clearance_id = ?", (f"EBP|{no}",)
            ).fetchone()
            if row is None:
                return
            conn.execute("UPDATE clearances SET cancelled = 1 WHERE clearance_id = ?", (f"EBP|{no}",))
            self._history(conn, f"EBP|{no}", row[0], action, at)

    def _rekey(self, no: str, new_no: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                "UPDATE clearances SET logistics_no = ? WHERE clearance_id = ?", (new_no, f"EBP|{no}")
            )

    def _move(self, no: str, park: str) -> None:
        with self.db.write() as conn:
            conn.execute("UPDATE clearances SET park_id = ? WHERE clearance_id = ?", (park, f"EBP|{no}"))

    def _send(self, park: str, kind: EventKind, body: EventBody, occurred: int) -> None:
        edge = f"E-{park}"
        seq, prev = self.chains.get(edge, (0, GENESIS_HASH))
        event: Event = chain_event(
            prev,
            edge_id=edge,
            seq=seq + 1,
            kind=kind,
            occurred_at=T0 + timedelta(minutes=occurred),
            body=body,
        )
        now = T0 + timedelta(minutes=self.clock)
        assert ingest_events(self.db, park_id=park, edge_id=edge, events=[event], now=now).stored == 1
        self.chains[edge] = (seq + 1, event.hash)

    def _release(self, no: str, park: str, occurred: int) -> None:
        decision = f"d{len(self.decisions)}"
        self.decisions.append((park, decision))
        body = EventBody(logisticsCode="SF", logisticsNo=no, decision_id=decision)
        self._send(park, EventKind.RELEASE, body, occurred)

    def _actuate(self, which: int, outcome: str) -> None:
        if which >= len(self.decisions):
            return
        park, decision = self.decisions[which]
        body = EventBody(decision_id=decision, actuation=outcome, output="gate")  # type: ignore[arg-type]
        self._send(park, EventKind.ACTUATION, body, self.clock)

    def _discrepancy(self, park: str, codes: list[str]) -> None:
        body = EventBody(logisticsCode="SF", logisticsNo="X", codes=codes)
        self._send(park, EventKind.DISCREPANCY, body, self.clock)


def check(db: Database) -> None:
    now = T0 + timedelta(hours=20)
    conn = db.reader()
    for park in PARKS:
        report = park_report(db, park_id=park, now=now, limit=100)
        counts = scan_counts(conn, park)
        assert report.clearances.by_status == {s: n for s, (n, _) in counts.items()}
        assert report.clearances.cancelled == sum(c for _, c in counts.values())
        expected = scan_cleared_not_out(conn, park)
        assert report.cleared_not_out.total == len(expected)
        assert [i.logisticsNo for i in report.cleared_not_out.items] == expected
        uncleared = [(i.edge_id, i.seq) for i in report.released_without_clearance.items]
        assert sorted(uncleared) == scan_uncleared(conn, park)
        assert report.released_without_clearance.total == len(uncleared)
        late = sorted((i.edge_id, i.seq) for i in report.cancelled_after_release.items)
        assert late == scan_cancelled_late(conn, park) and report.cancelled_after_release.total == len(late)
        twice = sorted((i.logisticsNo, i.releases) for i in report.released_twice.items)
        assert twice == scan_twice(conn, park) and report.released_twice.total == len(twice)
        assert report.discrepancies == scan_discrepancies(conn, park)
        for grace in (timedelta(minutes=5), timedelta(hours=20) - timedelta(minutes=100)):
            graced = park_report(db, park_id=park, now=now, limit=100, actuation_grace=grace)
            cutoff = (now - grace).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            unreported = conn.execute(
                "SELECT COUNT(*) FROM release_actuations WHERE park_id = ? AND actuation IS NULL"
                " AND received_at < ?",
                (park, cutoff),
            ).fetchone()[0]
            assert graced.released_actuation_unconfirmed.total == unreported
        hours = scan_hours(conn, park)
        assert {h.hour[:13]: h.count for h in report.releases_per_hour if h.count} == {
            k: n for k, n in hours.items() if _iso(-4 * 60)[:13] <= k <= _iso(20 * 60)[:13]
        }
    # and rebuilding from the base tables changes nothing
    with db.write() as wconn:
        before = tallies.snapshot(wconn)
        tallies.rebuild(wconn)
        assert tallies.snapshot(wconn) == before


SHARED = Path("tallies-examples")  # the PostgreSQL examples' one database (a key, not a folder)
TABLES = [
    "parks", "tokens", "documents", "receipts", "clearances", "clearance_history", "feed", "feed_heads",
    "edges", "edge_chains", "events", "alerts", "release_actuations", "guids", "customs_receipts", "tallies",
]  # fmt: skip


EXAMPLES: list[list[tuple[Any, ...]]] = [
    # history dated before a release that central already judged: the verdict changes (both ways)
    [("clearance", "A", "P1", "120"), ("release", "A", "P1", 100), ("status", "A", "800", 10)],
    [("clearance", "A", "P1", "800"), ("release", "A", "P1", 100), ("cancel", "A", "return", 10)],
    # the clearance arrives after its parcel's release; a re-keyed clearance and a park move
    [("release", "B", "P1", 3), ("clearance", "B", "P1", "800"), ("rekey", "B", "A")],
    [("clearance", "C", "P1", "800"), ("release", "C", "P2", 100), ("move", "C", "P2")],
    # a release reported withheld was not carried out: the parcel is cleared and still in the park
    [("clearance", "A", "P1", "800"), ("release", "A", "P1", 100), ("actuate", 0, "withheld")],
    [
        ("clearance", "A", "P1", "800"),
        ("release", "A", "P1", 100),
        ("actuate", 0, "withheld"),
        ("actuate", 0, "confirmed"),
    ],
    # a discrepancy listing a code twice counts it twice (PostgreSQL's trigger groups the codes)
    [("discrepancy", "P1", ["WEIGHT", "WEIGHT"])],
]


def with_examples(test: Callable[..., None]) -> Callable[..., None]:
    for operations in reversed(EXAMPLES):
        test = example(operations)(test)
    return test


def run_operations(db: Database, operations: list[tuple[Any, ...]]) -> None:
    try:
        park = Park(db)
        for op in operations:
            park.apply(op)
        check(db)
    finally:
        db.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
@with_examples
def test_tallied_report_equals_the_scan(operations: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        run_operations(open_database(Path(folder) / "c.db"), operations)


TABLES = [
    "parks", "tokens", "documents", "receipts", "clearances", "clearance_history", "feed", "feed_heads",
    "edges", "edge_chains", "events", "alerts", "release_actuations", "guids", "customs_receipts", "tallies",
]  # fmt: skip


@pytest.mark.postgresql
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
@with_examples
def test_tallied_report_equals_the_scan_on_postgresql(
    central_pg: Any, operations: list[tuple[Any, ...]]
) -> None:
    """The same on PostgreSQL, whose figures PL/pgSQL triggers keep: fewer random examples (each
    costs ten times SQLite's), one database emptied before each."""
    db = open_database(central_pg.for_folder(Path("tallies-examples")))
    with db.write() as conn:
        conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY")
    run_operations(db, operations)


def test_a_database_from_before_the_tallies_gets_them_on_migration(tmp_path: Path) -> None:
    """Migration 0011 fills the tallies of the rows already stored (here: written with the triggers
    dropped, as a database of the previous version holds them)."""
    db = open_database(tmp_path / "c.db")
    with db.write() as conn:
        triggers = [r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger'")]
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f"DROP TRIGGER {name}")
    park = Park(db)
    for op in [
        ("clearance", "A", "P1", "800"),
        ("clearance", "B", "P1", "800"),
        ("clearance", "C", "P1", "120"),
        ("release", "A", "P1", 50),
        ("release", "A", "P1", 51),
        ("release", "C", "P1", 30),
        ("discrepancy", "P1", ["WEIGHT"]),
    ]:
        park.apply(op)
    with db.write() as conn:
        assert conn.execute("SELECT COUNT(*) FROM tallies").fetchone()[0] == 0
        conn.execute("DELETE FROM schema_migrations WHERE name = '0011_tallies'")
        for statement in triggers:
            conn.execute(statement)
        tallies.rebuild(conn)  # what the migration's last statements do
    check(db)
    report = park_report(db, park_id="P1", now=T0 + timedelta(hours=1))
    assert report.cleared_not_out.total == 1 and report.released_twice.total == 1
    assert report.released_without_clearance.total == 1
    db.close()


def test_the_triggers_know_the_cleared_statuses() -> None:
    """The judgement in SQL names the statuses central.events counts as cleared."""
    sql = release_judgement("e")
    assert (
        all(f"'{s}'" in sql for s in CLEARED_STATUSES) and sql.count("', '") == len(CLEARED_STATUSES) - 1 + 1
    )

"""SQL for a park's reconciliation report. Every query is bounded by park and index-driven.

Listed rows come back as dicts named for the report's fields (`central/reports.py`), so each
validates as its model whole.

A park may hold a million clearances, so nothing here reads a park's whole tables: the counts come
from the tallies and flags that schema 0011's triggers keep in the transactions that change the rows,
lists are fetched with LIMIT through partial indexes that hold only their rows, and the "must be
empty" lists are normally empty and cost one index range scan each. All queries run inside
one read transaction (`Database.snapshot`) so the figures agree with each other.

Lookups of clearances by parcel key compare the park as `COALESCE(c.park_id, '') = ...`: with a
plain `c.park_id = ...` SQLite's planner (no ANALYZE statistics) prefers the (park_id, status)
index over (logistics_code, logistics_no) and would walk the whole park once per release.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from central.store.connection import Connection, is_postgres

Rows = list[dict[str, Any]]
# a release's time: the earlier of the edge's occurred_at and central's received_at (SQLite's scalar
# MIN is LEAST on PostgreSQL; CASE is both's)
_RELEASE_TIME = "(CASE WHEN e.occurred_at < e.received_at THEN e.occurred_at ELSE e.received_at END)"


def _indexed(conn: Connection, index: str) -> str:
    """SQLite's INDEXED BY (its planner has no statistics to choose by); PostgreSQL's planner has."""
    return "" if is_postgres(conn) else f" INDEXED BY {index}"


def capped(conn: Connection, select: str, order_by: str, params: list[Any], limit: int) -> tuple[int, Rows]:
    """(total, first `limit` rows) of a query: the total is counted, never materialised."""
    total = int(conn.execute(f"SELECT COUNT(*) FROM ({select}) AS listed", params).fetchone()[0])
    if total == 0 or limit <= 0:
        return total, []
    rows = conn.execute(f"{select} ORDER BY {order_by} LIMIT ?", [*params, limit])
    return total, [dict(r) for r in rows]


TALLIED = ("status", "cancelled", "discrepancy", "awaiting_exit", "actuation_unreported")


@dataclass(frozen=True)
class ParkTallies:
    """A park's maintained figures (schema 0011), read in one query: kind -> key -> n."""

    by_kind: dict[str, dict[str, int]]

    def of(self, kind: str) -> dict[str, int]:
        return self.by_kind.get(kind, {})


def park_tallies(conn: Connection, *, park_id: str, since: str, until: str) -> ParkTallies:
    """Every figure the report reads from the tallies, in one round trip (each was one, and on
    PostgreSQL a round trip is most of a tally's cost): the counts, and the releases per hour in
    [`since`, `until`) — whole hours, keyed 'YYYY-MM-DDTHH' (see `releases_by_hour`)."""
    marks = ", ".join("?" * len(TALLIED))
    rows = conn.execute(
        f"SELECT kind, key, n FROM tallies WHERE park_id = ? AND kind IN ({marks})"
        " UNION ALL SELECT kind, key, n FROM tallies WHERE park_id = ? AND kind = 'release_hour'"
        " AND key >= ? AND key < ?",
        (park_id, *TALLIED, park_id, since[:13], until[:13]),
    )
    by_kind: dict[str, dict[str, int]] = {}
    for kind, key, n in rows:
        by_kind.setdefault(str(kind), {})[str(key)] = int(n)
    return ParkTallies(by_kind)


def clearance_counts(tallies: ParkTallies) -> Rows:
    """(status, n, cancelled) per status with clearances, in status order."""
    cancelled = tallies.of("cancelled")
    return [
        {"status": status, "n": n, "cancelled": cancelled.get(status, 0)}
        for status, n in sorted(tallies.of("status").items())
        if n > 0
    ]


def releases_by_hour(tallies: ParkTallies) -> dict[str, int]:
    """Release counts keyed by 'YYYY-MM-DDTHH' (the stored fixed-width UTC form makes this a prefix)
    of each release's time, the earlier of the edge's occurred_at and central's received_at (an edge
    clock running ahead does not put a release in an hour yet to come), for the hours `park_tallies`
    was asked for."""
    return {key: n for key, n in tallies.of("release_hour").items() if n}


def discrepancy_codes(tallies: ParkTallies) -> dict[str, int]:
    """How often each discrepancy code was reported, most frequent first."""
    counts = tallies.of("discrepancy")
    return dict(sorted(((k, n) for k, n in counts.items() if n), key=lambda kv: (-kv[1], kv[0])))


def cleared_not_out(conn: Connection, tallies: ParkTallies, *, park_id: str, limit: int) -> tuple[int, Rows]:
    """Clearances at 800, not cancelled, with no release carried out (none, or every one reported
    withheld: the edge sent the parcel to hold): oldest first, they waited longest.
    Counted by the tallies, listed through the partial index that holds just them."""
    total = tallies.of("awaiting_exit").get("", 0)
    if total <= 0 or limit <= 0:
        return max(total, 0), []
    rows = conn.execute(
        'SELECT logistics_code AS "logisticsCode", logistics_no AS "logisticsNo", invt_no AS "invtNo",'
        " updated_at, clearance_id FROM clearances"
        f"{_indexed(conn, 'clearances_awaiting_exit')}"
        " WHERE park_id = ? AND status = '800' AND cancelled = 0 AND released = 0"
        " ORDER BY updated_at, clearance_id LIMIT ?",
        (park_id, limit),
    )
    return total, [dict(r) for r in rows]


def released_without_clearance(conn: Connection, *, park_id: str, limit: int) -> tuple[int, Rows]:
    """Release events whose parcel, at the moment of the release, had no cleared, uncancelled
    clearance in the park: judged on the status history at the event's time, so a later change (an
    inspection release after releases at 500, a cancellation after the parcel left) neither hides nor
    invents one. The release's time is the edge's `occurred_at`, but never later than central
    received it: an edge clock running ahead cannot move a release past a later change of status.
    The triggers of schema 0011 keep the verdict on the event (`uncleared`); the status and
    cancelled columns of the listed rows are worked out here, as of the release."""
    history = (
        "FROM clearance_history h JOIN clearances c ON c.clearance_id = h.clearance_id"
        " WHERE c.logistics_code = e.logistics_code AND c.logistics_no = e.logistics_no"
        " AND COALESCE(c.park_id, '') = e.park_id AND h.at <= " + _RELEASE_TIME + ""
    )
    status_then = f"(SELECT h.to_status {history} ORDER BY h.at DESC, h.id DESC LIMIT 1)"
    cancelled_then = f"EXISTS (SELECT 1 {history} AND h.action IN ('cancellation', 'return'))"
    select = (
        'SELECT edge_id, epoch, seq, logistics_code AS "logisticsCode", logistics_no AS "logisticsNo",'
        " occurred_at, status,"
        " CASE WHEN status IS NULL THEN NULL ELSE cancelled END AS cancelled"
        " FROM (SELECT e.edge_id, e.epoch, e.seq, e.logistics_code, e.logistics_no, e.occurred_at,"
        f" {status_then} AS status, {cancelled_then} AS cancelled"
        f" FROM events e{_indexed(conn, 'events_uncleared')}"
        " WHERE e.park_id = ? AND e.uncleared = 1) AS judged"
    )
    return capped(conn, select, "occurred_at, edge_id, epoch, seq", [park_id], limit)


def released_twice(conn: Connection, *, park_id: str, limit: int) -> tuple[int, Rows]:
    """Parcels with more than one release event in the park, from any edge: the triggers mark each
    release that had one before it (`repeat`), and only those parcels are grouped."""
    select = (
        'SELECT logistics_code AS "logisticsCode", logistics_no AS "logisticsNo", releases, first_at,'
        " last_at FROM (SELECT e.logistics_code, e.logistics_no, COUNT(*) AS releases,"
        " MIN(e.occurred_at) AS first_at, MAX(e.occurred_at) AS last_at"
        " FROM (SELECT DISTINCT logistics_code, logistics_no FROM events"
        f"{_indexed(conn, 'events_repeat')} WHERE park_id = ? AND repeat = 1) r"
        " JOIN events e ON e.logistics_code = r.logistics_code AND e.logistics_no = r.logistics_no"
        " AND e.kind = 'release' WHERE e.park_id = ? GROUP BY e.logistics_code, e.logistics_no) AS repeated"
    )
    return capped(conn, select, "last_at DESC, logistics_code, logistics_no", [park_id, park_id], limit)


_ACTUATED = (
    'SELECT edge_id, epoch, seq, decision_id, logistics_code AS "logisticsCode",'
    ' logistics_no AS "logisticsNo", occurred_at, received_at, actuation, output, detail, actuated_at'
    " FROM release_actuations"
)


def actuation_failed(conn: Connection, *, park_id: str, limit: int) -> tuple[int, Rows]:
    """Releases whose latest actuation report says the output did not move as commanded, or that the
    release was not carried out (withheld: the parcel went to the hold lane)."""
    select = f"{_ACTUATED} WHERE park_id = ? AND actuation IN ('failed', 'withheld')"
    return capped(conn, select, "occurred_at DESC, edge_id, epoch, seq", [park_id], limit)


def actuation_unconfirmed(
    conn: Connection, tallies: ParkTallies, *, park_id: str, received_before: str, limit: int
) -> tuple[int, Rows]:
    """Releases central has known of since before `received_before` with no actuation report yet.
    Counted as the tally of unreported releases less the recent ones (a range of the index), so a
    park with many never reported costs no more than one with none."""
    unreported = tallies.of("actuation_unreported").get("", 0)
    recent = conn.execute(
        "SELECT COUNT(*) FROM release_actuations"
        " WHERE park_id = ? AND actuation IS NULL AND received_at >= ?",
        (park_id, received_before),
    ).fetchone()[0]
    total = max(unreported - int(recent), 0)
    if total == 0 or limit <= 0:
        return total, []
    rows = conn.execute(
        f"{_ACTUATED} WHERE park_id = ? AND actuation IS NULL AND received_at < ?"
        " ORDER BY received_at, edge_id, epoch, seq LIMIT ?",
        (park_id, received_before, limit),
    )
    return total, [dict(r) for r in rows]


def latest_alerts(conn: Connection, *, park_id: str, limit: int) -> tuple[int, Rows]:
    select = "SELECT id, edge_id, kind, detail, created_at FROM alerts WHERE park_id = ?"
    return capped(conn, select, "created_at DESC, id DESC", [park_id], limit)


def cancelled_after_release(conn: Connection, *, park_id: str, limit: int) -> tuple[int, Rows]:
    """Release events whose parcel's cancellation (CEB623) was approved after the release: central
    approved it while the release was on its way (central refuses a cancellation once it holds a
    release). The release's time is as in `released_without_clearance`. A return request (CEB625)
    after a release is what returns are for, and is not listed."""
    cancelled_at = (
        "(SELECT MIN(h.at) FROM clearance_history h JOIN clearances c ON c.clearance_id = h.clearance_id"
        " WHERE c.logistics_code = e.logistics_code AND c.logistics_no = e.logistics_no"
        " AND COALESCE(c.park_id, '') = e.park_id AND h.action = 'cancellation'"
        " AND h.at > " + _RELEASE_TIME + ")"
    )
    invt_no = (
        "(SELECT c.invt_no FROM clearances c WHERE c.logistics_code = e.logistics_code"
        " AND c.logistics_no = e.logistics_no AND COALESCE(c.park_id, '') = e.park_id LIMIT 1)"
    )
    select = (
        'SELECT e.edge_id, e.epoch, e.seq, e.logistics_code AS "logisticsCode",'
        ' e.logistics_no AS "logisticsNo", e.occurred_at, e.received_at,'
        f' {invt_no} AS "invtNo", {cancelled_at} AS cancelled_at'
        f" FROM events e{_indexed(conn, 'events_cancelled_late')}"
        " WHERE e.park_id = ? AND e.cancelled_late = 1"
    )
    return capped(conn, select, "cancelled_at, edge_id, epoch, seq", [park_id], limit)

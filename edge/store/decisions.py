"""Decisions and what says a parcel left: the release marker, the release ledger, RELEASE decisions.

`decisions` holds every decision with what was checked and what the outputs did; `releases` one
marker per released parcel (the row a decision checks); `release_ledger` every release, append-only
and hash-chained (edge/release_ledger.py keeps and verifies the chain).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

from edge.store.writer import Reads
from kernel.wire import GENESIS_HASH, release_entry_hash


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


class ReleaseWitnesses(NamedTuple):
    """What the edge's own records say of one parcel having left (edge/checker.py)."""

    marker: bool  # the `releases` row the decision path writes
    ledger_n: int | None  # its entry in the hash-chained release ledger
    decision_id: str | None  # a RELEASE decision for it

    def evidence(self) -> tuple[str, ...]:
        found: tuple[str, ...] = ("release marker",) if self.marker else ()
        if self.ledger_n is not None:
            found += (f"release ledger entry {self.ledger_n}",)
        if self.decision_id is not None:
            found += (f"RELEASE decision {self.decision_id}",)
        return found


class RecordFacts(NamedTuple):
    """`DecisionTables.record_facts`: the version mark and the release witnesses of one clearance."""

    version_seen: int | None  # the highest version of it ever stored (None: no mark)
    released: ReleaseWitnesses


class DecisionTables:
    """`Store`'s methods over decisions, releases and release_ledger."""

    # --- decisions ---------------------------------------------------------------------------------
    @staticmethod
    def insert_decision(
        conn: sqlite3.Connection,
        *,
        decision_id: str,
        station: str,
        code: str | None,
        logistics_code: str | None,
        verdict: str,
        codes: Sequence[str],
        reason: str,
        checked: Mapping[str, Any],
        weight_kg: Decimal | None,
        evidence: str | None,
        operator: str | None,
        created_at: str,
    ) -> int:
        """Store one decision in the caller's transaction; returns its row id."""
        cur = conn.execute(
            """INSERT INTO decisions (decision_id, station, code, logistics_code, verdict, codes, reason,
                                      checked, weight_kg, evidence, operator, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id""",
            (
                decision_id,
                station,
                code,
                logistics_code,
                verdict,
                _json(list(codes)),
                reason,
                _json(checked),
                format(weight_kg, "f") if weight_kg is not None else None,
                evidence,
                operator,
                created_at,
            ),
        )
        return int(cur.fetchone()[0])

    @staticmethod
    def set_overrides(conn: sqlite3.Connection, decision: int, overridden: int) -> None:
        """Decision row `decision` overrides decision row `overridden`, in the caller's transaction."""
        conn.execute("UPDATE decisions SET overrides = ? WHERE id = ?", (overridden, decision))

    def override_of(self: Reads, decision: int) -> int | None:
        """The row id of the decision that overrides decision row `decision` (None: none does)."""
        row = self.reader().execute("SELECT id FROM decisions WHERE overrides = ?", (decision,)).fetchone()
        return int(row[0]) if row is not None else None

    @staticmethod
    def set_actuation(conn: sqlite3.Connection, decision: int, outcome: str, detail: str) -> None:
        """What the outputs did for decision row `decision`, in the caller's transaction."""
        conn.execute(
            "UPDATE decisions SET actuation = ?, actuation_detail = ? WHERE id = ?",
            (outcome, detail, decision),
        )

    def discrepancy_queue(self: Reads, limit: int = 100) -> list[dict[str, Any]]:
        """Decisions that stopped a parcel or a vehicle and have not been overridden, newest first."""
        rows = self.reader().execute(
            "SELECT decision_id, station, code, verdict, codes, reason, operator, created_at"
            " FROM decisions d WHERE verdict NOT IN ('RELEASE', 'PASS')"
            " AND NOT EXISTS (SELECT 1 FROM decisions o WHERE o.overrides = d.id)"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [{**dict(r), "codes": json.loads(r["codes"] or "[]")} for r in rows]

    # --- releases: the marker, the ledger and the decisions that say a parcel left ----------------
    @staticmethod
    def mark_released(
        conn: sqlite3.Connection, logistics_no: str, logistics_code: str, decision: int
    ) -> None:
        """The release marker of this parcel, made by decision row `decision`, in the caller's transaction."""
        conn.execute(
            "INSERT INTO releases (logistics_no, logistics_code, decision) VALUES (?, ?, ?)",
            (logistics_no, logistics_code, decision),
        )

    @staticmethod
    def record_facts(conn: sqlite3.Connection, logistics_no: str, logistics_code: str) -> RecordFacts:
        """What the edge's own records say of one clearance, in one statement of index lookups: its
        highest version ever stored, and every record that says the parcel left."""
        row = conn.execute(
            """SELECT (SELECT version FROM versions_seen WHERE logistics_no = ?1 AND logistics_code = ?2),
                      (SELECT 1 FROM releases WHERE logistics_no = ?1 AND logistics_code = ?2),
                      (SELECT MIN(n) FROM release_ledger WHERE logistics_no = ?1 AND logistics_code = ?2),
                      (SELECT MIN(decision_id) FROM decisions
                        WHERE code = ?1 AND logistics_code = ?2 AND verdict = 'RELEASE')""",
            (logistics_no, logistics_code),
        ).fetchone()
        return RecordFacts(row[0], ReleaseWitnesses(row[1] is not None, row[2], row[3]))

    @staticmethod
    def import_release(
        conn: sqlite3.Connection,
        logistics_no: str,
        logistics_code: str,
        decision_id: str,
        version: int,
        now: str,
    ) -> bool:
        """A release central holds of this edge but this database does not (it was restored from an
        older copy, or lost): recorded as one — a decision, its marker, a ledger entry — so the
        parcel is held as already released. False when this database knows it already."""
        known = conn.execute(
            "SELECT 1 FROM releases WHERE logistics_no = ? AND logistics_code = ?",
            (logistics_no, logistics_code),
        ).fetchone()
        if known is not None:
            return False
        row = conn.execute(
            """INSERT INTO decisions (decision_id, station, code, logistics_code, verdict, codes, reason,
                                      checked, created_at)
               VALUES (?, '(central)', ?, ?, 'RELEASE', '[]', ?, '{}', ?)
               ON CONFLICT (decision_id) DO NOTHING RETURNING id""",
            (
                decision_id,
                logistics_no,
                logistics_code,
                "released before this database was restored: known from central's copy of the events",
                now,
            ),
        ).fetchone()
        if row is None:  # that decision is here, its marker gone: the ledger/marker checks hold it
            return False
        DecisionTables.mark_released(conn, logistics_no, logistics_code, int(row[0]))
        n, head = DecisionTables.ledger_head(conn)
        DecisionTables.append_ledger(conn, n + 1, logistics_no, logistics_code, decision_id, version, head)
        return True

    @staticmethod
    def ledger_head(conn: sqlite3.Connection) -> tuple[int, str]:
        row = conn.execute("SELECT n, hash FROM release_ledger ORDER BY n DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row is not None else (0, GENESIS_HASH)

    @staticmethod
    def append_ledger(
        conn: sqlite3.Connection,
        n: int,
        logistics_no: str,
        logistics_code: str,
        decision_id: str,
        record_version: int,
        prev_hash: str,
    ) -> str:
        """Append entry `n` after the entry whose hash is `prev_hash`; returns the new entry's hash."""
        entry_hash = release_entry_hash(
            prev_hash,
            n=n,
            logistics_no=logistics_no,
            logistics_code=logistics_code,
            decision_id=decision_id,
            record_version=record_version,
        )
        conn.execute(
            """INSERT INTO release_ledger (n, logistics_no, logistics_code, decision_id, record_version,
                                           prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)""",
            (n, logistics_no, logistics_code, decision_id, record_version, prev_hash, entry_hash),
        )
        return entry_hash

    @staticmethod
    def ledger_entries(conn: sqlite3.Connection) -> Iterator[sqlite3.Row]:
        """Every ledger entry in order, streamed."""
        return conn.execute(
            "SELECT n, logistics_no, logistics_code, decision_id, record_version, prev_hash, hash"
            " FROM release_ledger ORDER BY n"
        )

    @staticmethod
    def unledgered_releases(conn: sqlite3.Connection, limit: int = 20) -> list[tuple[str, str, str]]:
        """(logisticsNo, carrier, what) of release markers and RELEASE decisions with no ledger entry."""
        rows = conn.execute(
            """SELECT r.logistics_no, r.logistics_code, 'release marker' FROM releases r
                 WHERE NOT EXISTS (SELECT 1 FROM release_ledger l WHERE l.logistics_no = r.logistics_no
                                                                    AND l.logistics_code = r.logistics_code)
               UNION ALL
               SELECT d.code, d.logistics_code, 'RELEASE decision ' || d.decision_id FROM decisions d
                 WHERE d.verdict = 'RELEASE'
                   AND NOT EXISTS (SELECT 1 FROM release_ledger l WHERE l.logistics_no = d.code
                                                                    AND l.logistics_code = d.logistics_code)
               LIMIT ?""",
            (limit,),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    @staticmethod
    def unmarked_ledger_entries(conn: sqlite3.Connection, limit: int = 20) -> list[tuple[int, str, str]]:
        """(n, logisticsNo, carrier) of ledger entries whose release marker is gone."""
        rows = conn.execute(
            """SELECT l.n, l.logistics_no, l.logistics_code FROM release_ledger l
               WHERE NOT EXISTS (SELECT 1 FROM releases r WHERE r.logistics_no = l.logistics_no
                                                           AND r.logistics_code = l.logistics_code)
               ORDER BY l.n LIMIT ?""",
            (limit,),
        )
        return [(int(r[0]), r[1], r[2]) for r in rows]

    @staticmethod
    def markers_without_release_decision(conn: sqlite3.Connection) -> int:
        """Release markers whose decision is not a RELEASE decision (or is gone)."""
        row = conn.execute(
            "SELECT COUNT(*) FROM releases r LEFT JOIN decisions d ON d.id = r.decision"
            " WHERE d.verdict IS NOT 'RELEASE'"
        ).fetchone()
        return int(row[0])

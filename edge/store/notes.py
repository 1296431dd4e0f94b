"""Release notes (核放单) from the park's feed: the signed record of each note as received.

A note's row is never deleted, so its stored version is also its mark: a record older than it is a
rollback and is not stored (like a clearance's `versions_seen`). The vehicle gate finds a vehicle's
notes by plate or by electronic plate / IC card and checks each record's signature again when it
decides.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import ValidationError

from edge.store.cache import CachedRecord, CacheTables
from edge.store.writer import Reads
from kernel.plates import normalise_plate
from kernel.wire import NoteRecord


@dataclass(frozen=True)
class CachedNote:
    record: NoteRecord | None  # None: the stored text no longer parses (never passes a vehicle)
    raw: str
    note_no: str
    status: str


def _cached(row: sqlite3.Row | tuple[str, str, str]) -> CachedNote:
    note_no, status, raw = row[0], row[1], row[2]
    try:
        record: NoteRecord | None = NoteRecord.model_validate_json(raw)
    except ValidationError:
        record = None
    return CachedNote(record=record, raw=raw, note_no=note_no, status=status)


class NoteTables:
    """`Store`'s methods over release_notes."""

    @staticmethod
    def apply_notes(conn: sqlite3.Connection, notes: Iterable[tuple[NoteRecord, str]]) -> list[NoteRecord]:
        """Store notes (newer versions win) in the caller's transaction; returns the rolled-back ones
        (older than the version stored)."""
        rolled_back = []
        for record, raw in notes:
            row = conn.execute(
                "SELECT version FROM release_notes WHERE note_no = ?", (record.etpsPreentNo,)
            ).fetchone()
            if row is not None and record.version < row[0]:
                rolled_back.append(record)
                continue
            conn.execute(
                """INSERT INTO release_notes (note_no, feed_seq, version, status, plate, ic_no, record)
                   VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (note_no) DO UPDATE SET feed_seq = excluded.feed_seq,
                       version = excluded.version, status = excluded.status, plate = excluded.plate,
                       ic_no = excluded.ic_no, record = excluded.record
                   WHERE excluded.version >= release_notes.version""",
                (
                    record.etpsPreentNo,
                    record.seq,
                    record.version,
                    record.status,
                    normalise_plate(record.vehicleNo),
                    normalise_plate(record.vehicleIcNo) if record.vehicleIcNo else None,
                    raw,
                ),
            )
        return rolled_back

    @staticmethod
    def notes_for_vehicle(
        conn: sqlite3.Connection, *, plate: str | None, card: str | None
    ) -> list[CachedNote]:
        """Notes naming this plate or this card, compared as `normalise_plate` writes them (a plate and
        a card of different vehicles find both)."""
        plate = normalise_plate(plate) if plate else None
        card = normalise_plate(card) if card else None
        rows = conn.execute(
            "SELECT note_no, status, record FROM release_notes WHERE plate = ? OR ic_no = ? ORDER BY note_no",
            (plate, card),
        )
        return [_cached(r) for r in rows]

    @staticmethod
    def clearances_by_invt(
        conn: sqlite3.Connection, invt_nos: Iterable[str]
    ) -> dict[str, list[CachedRecord]]:
        """invtNo → the cached clearances carrying it (normally one)."""
        found: dict[str, list[CachedRecord]] = {}
        for invt_no in invt_nos:
            rows = conn.execute(
                "SELECT logistics_no, logistics_code FROM clearances WHERE invt_no = ?", (invt_no,)
            ).fetchall()
            for no, code in rows:
                found.setdefault(invt_no, []).extend(
                    r for r in CacheTables.find(conn, no) if r.record.logisticsCode == code
                )
        return found

    @staticmethod
    def carried_out(conn: sqlite3.Connection, logistics_no: str, logistics_code: str) -> bool:
        """A station of this edge released the parcel and its outputs did not say otherwise: a
        RELEASE decision whose actuation is confirmed, or not reported (a bench has no outputs). One
        reported withheld went to the hold lane, one reported failed may be anywhere: neither was
        released by the line, whatever its release marker says."""
        row = conn.execute(
            "SELECT 1 FROM decisions WHERE code = ? AND logistics_code = ? AND verdict = 'RELEASE'"
            " AND (actuation IS NULL OR actuation = 'confirmed') LIMIT 1",
            (logistics_no, logistics_code),
        ).fetchone()
        return row is not None

    @staticmethod
    def passages_on(conn: sqlite3.Connection, note_no: str, gate: str) -> int:
        """Vehicles this edge let through on `note_no` at `gate` (single, first or second)."""
        row = conn.execute(
            "SELECT COUNT(*) FROM passages WHERE note_no = ? AND gate = ? AND verdict = 'PASS'",
            (note_no, gate),
        ).fetchone()
        return int(row[0])

    @staticmethod
    def passed_out(conn: sqlite3.Connection, invt_nos: Iterable[str]) -> set[str]:
        """Those of `invt_nos` a PASS at this edge's gate already took out."""
        out = set()
        for invt_no in invt_nos:
            if conn.execute("SELECT 1 FROM passed_inventories WHERE invt_no = ?", (invt_no,)).fetchone():
                out.add(invt_no)
        return out

    @staticmethod
    def insert_passage(
        conn: sqlite3.Connection,
        *,
        decision_id: str,
        station: str,
        note_no: str | None,
        gate: str,
        verdict: str,
        overridden: bool,
        inventories: tuple[str, ...],
        created_at: str,
        plate: str | None = None,
        card: str | None = None,
    ) -> None:
        """A vehicle's passage beside its decision; a PASS at the last gate (single or second) takes its
        note's parcels out."""
        conn.execute(
            "INSERT INTO passages (decision_id, station, note_no, gate, verdict, overridden, inventories,"
            " created_at, plate, card) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                decision_id,
                station,
                note_no,
                gate,
                verdict,
                int(overridden),
                json.dumps(list(inventories)),
                created_at,
                plate,
                card,
            ),
        )
        if verdict == "PASS" and gate in ("single", "second"):
            conn.executemany(
                "INSERT OR IGNORE INTO passed_inventories (invt_no, decision_id) VALUES (?, ?)",
                [(invt_no, decision_id) for invt_no in inventories],
            )

    @staticmethod
    def note(conn: sqlite3.Connection, note_no: str) -> CachedNote | None:
        row = conn.execute(
            "SELECT note_no, status, record FROM release_notes WHERE note_no = ?", (note_no,)
        ).fetchone()
        return None if row is None else _cached(row)

    @staticmethod
    def mark_gone(conn: sqlite3.Connection, decision_id: str, at: str) -> None:
        """The vehicle of pass `decision_id` is through the lane (or will not be let through any more)."""
        conn.execute(
            "UPDATE passages SET gone_at = ? WHERE decision_id = ? AND gone_at IS NULL", (at, decision_id)
        )

    @staticmethod
    def unfinished_pass(conn: sqlite3.Connection, station: str) -> sqlite3.Row | None:
        """This lane's latest decision if it is a pass whose vehicle was not seen through: the
        decision row with `actuation` (None: the barrier never moved for it)."""
        return conn.execute(
            "SELECT d.id, d.decision_id, d.code, d.verdict, d.codes, d.reason, d.weight_kg, d.created_at,"
            " d.actuation, p.gone_at, p.plate, p.card FROM passages p"
            " JOIN decisions d ON d.decision_id = p.decision_id"
            " WHERE p.station = ? AND p.rowid = (SELECT MAX(rowid) FROM passages WHERE station = ?)"
            " AND p.verdict = 'PASS' AND p.gone_at IS NULL",
            (station, station),
        ).fetchone()

    def count_notes(self: Reads) -> int:
        return int(self.reader().execute("SELECT COUNT(*) FROM release_notes").fetchone()[0])

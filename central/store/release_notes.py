"""Release notes (核放单), the inventories they hold, their history and receipts; the vehicle registry.

Writers run inside a write transaction (Database.write), readers take any connection. An open note
(applied, approved, passed the first gate) holds its inventories: `release_note_inventories.holds` is
1 and a partial unique index lets no second open note list the same invtNo, whatever the checks
before it missed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from central.store.connection import Connection
from central.store.reports import capped


@dataclass(frozen=True)
class NoteRow:
    note_no: str
    park_id: str
    passport_no: str | None
    status: str
    note_type: str
    direction: str
    plate: str
    ic_no: str | None
    declarant: str
    container_no: str | None
    seal_ids: str | None
    body: dict[str, Any]
    version: int
    created_at: str
    updated_at: str


def _note(row: Any) -> NoteRow:
    values = dict(row)
    values["body"] = json.loads(values["body"])
    return NoteRow(**values)


_COLUMNS = (
    "note_no, park_id, passport_no, status, note_type, direction, plate, ic_no, declarant, container_no,"
    " seal_ids, body, version, created_at, updated_at"
)


def get(conn: Connection, *, note_no: str) -> NoteRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM release_notes WHERE note_no = ?", (note_no,)).fetchone()
    return None if row is None else _note(row)


def by_passport(conn: Connection, *, passport_no: str) -> NoteRow | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM release_notes WHERE passport_no = ?", (passport_no,)
    ).fetchone()
    return None if row is None else _note(row)


def listed(
    conn: Connection,
    *,
    park_id: str | None = None,
    status: str | None = None,
    plate: str | None = None,
    limit: int = 100,
) -> list[NoteRow]:
    where, args = [], []
    for column, value in (("park_id", park_id), ("status", status), ("plate", plate)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    sql = f"SELECT {_COLUMNS} FROM release_notes"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY updated_at DESC, note_no LIMIT ?"
    return [_note(r) for r in conn.execute(sql, (*args, limit))]


def insert(
    conn: Connection,
    *,
    note_no: str,
    park_id: str,
    status: str,
    note_type: str,
    direction: str,
    plate: str,
    ic_no: str | None,
    declarant: str,
    container_no: str | None,
    seal_ids: tuple[str, ...],
    body: dict[str, Any],
    inventories: tuple[str, ...],
    now: str,
) -> None:
    seals = "|" + "|".join(seal_ids) + "|" if seal_ids else None
    conn.execute(
        f"INSERT INTO release_notes ({_COLUMNS}) VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
        (
            note_no,
            park_id,
            status,
            note_type,
            direction,
            plate,
            ic_no,
            declarant,
            container_no,
            seals,
            json.dumps(body),
            now,
            now,
        ),
    )
    for invt_no in inventories:
        conn.execute(
            "INSERT INTO release_note_inventories (note_no, invt_no, holds) VALUES (?, ?, 1)",
            (note_no, invt_no),
        )


def set_status(
    conn: Connection, note: NoteRow, *, status: str, holds: bool, now: str, passport_no: str | None = None
) -> NoteRow:
    """The note at `status` (version + 1); `holds` False frees its inventories for another note."""
    passport = passport_no if passport_no is not None else note.passport_no
    conn.execute(
        "UPDATE release_notes SET status = ?, passport_no = ?, version = version + 1, updated_at = ?"
        " WHERE note_no = ?",
        (status, passport, now, note.note_no),
    )
    conn.execute(
        "UPDATE release_note_inventories SET holds = ? WHERE note_no = ?", (int(holds), note.note_no)
    )
    return NoteRow(
        **{
            **note.__dict__,
            "status": status,
            "passport_no": passport,
            "version": note.version + 1,
            "updated_at": now,
        }
    )


def _chunks(values: list[str], size: int = 500) -> list[list[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def claims(conn: Connection, *, invt_nos: list[str]) -> dict[str, tuple[str, str]]:
    """invtNo → (note_no, status) of the note that holds it (open) or that it left the area on."""
    found: dict[str, tuple[str, str]] = {}
    for chunk in _chunks(invt_nos):
        marks = ", ".join("?" * len(chunk))
        for row in conn.execute(
            "SELECT i.invt_no, i.note_no, n.status FROM release_note_inventories i"
            " JOIN release_notes n ON n.note_no = i.note_no"
            f" WHERE i.invt_no IN ({marks}) AND (i.holds = 1 OR n.status IN ('2', '4'))",
            chunk,
        ):
            found[row["invt_no"]] = (row["note_no"], row["status"])
    return found


def open_holding(conn: Connection, *, container_no: str | None, seal_ids: tuple[str, ...]) -> list[str]:
    """Open notes (applied, approved, through the first gate) that name this container or a seal."""
    found = []
    if container_no is not None:
        rows = conn.execute(
            "SELECT note_no FROM release_notes WHERE container_no = ? AND status IN ('0', '1', '3')",
            (container_no,),
        )
        found += [f"container {container_no} is on open note {r['note_no']}" for r in rows]
    for seal in seal_ids:
        rows = conn.execute(
            "SELECT note_no FROM release_notes WHERE seal_ids LIKE ? AND status IN ('0', '1', '3')",
            (f"%|{seal}|%",),
        )
        found += [f"seal {seal} is on open note {r['note_no']}" for r in rows]
    return found


@dataclass(frozen=True)
class InventoryFacts:
    invt_no: str
    park_id: str | None
    status: str
    cancelled: bool
    gross_weight: str
    enterprises: frozenset[str]  # ebpCode, ebcCode, logisticsCode: who may take the parcel out


def inventory_facts(conn: Connection, *, invt_nos: list[str]) -> dict[str, InventoryFacts]:
    """What a note needs to know of each listed inventory's clearance."""
    found: dict[str, InventoryFacts] = {}
    for chunk in _chunks(invt_nos):
        marks = ", ".join("?" * len(chunk))
        for row in conn.execute(
            "SELECT invt_no, park_id, status, cancelled, gross_weight, ebp_code, ebc_code, logistics_code"
            f" FROM clearances WHERE invt_no IN ({marks})",
            chunk,
        ):
            found[row["invt_no"]] = InventoryFacts(
                invt_no=row["invt_no"],
                park_id=row["park_id"],
                status=row["status"],
                cancelled=bool(row["cancelled"]),
                gross_weight=row["gross_weight"],
                enterprises=frozenset({row["ebp_code"], row["ebc_code"], row["logistics_code"]}),
            )
    return found


def inventories(conn: Connection, *, note_no: str) -> list[str]:
    rows = conn.execute(
        "SELECT invt_no FROM release_note_inventories WHERE note_no = ? ORDER BY invt_no", (note_no,)
    )
    return [r["invt_no"] for r in rows]


def add_history(
    conn: Connection,
    *,
    note_no: str,
    from_status: str | None,
    to_status: str,
    action: str,
    actor: str,
    info: str,
    now: str,
) -> None:
    conn.execute(
        "INSERT INTO release_note_history (note_no, from_status, to_status, action, actor, info, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (note_no, from_status, to_status, action, actor, info, now),
    )


def history(conn: Connection, *, note_no: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT from_status, to_status, action, actor, info, at FROM release_note_history"
        " WHERE note_no = ? ORDER BY id",
        (note_no,),
    )
    return [dict(r) for r in rows]


def add_receipt(
    conn: Connection,
    *,
    note_no: str,
    message_type: str,
    source: str,
    body: dict[str, Any],
    state: str,
    reason: str,
    now: str,
) -> None:
    conn.execute(
        "INSERT INTO release_note_receipts (note_no, message_type, source, body, state, reason, received_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (note_no, message_type, source, json.dumps(body), state, reason, now),
    )


def receipts(conn: Connection, *, note_no: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT message_type, source, body, state, reason, received_at FROM release_note_receipts"
        " WHERE note_no = ? ORDER BY id",
        (note_no,),
    )
    return [{**dict(r), "body": json.loads(r["body"])} for r in rows]


def next_passport_serial(conn: Connection) -> int:
    """1 + the notes that have a customs number: the serial of simulate mode's passportNo."""
    row = conn.execute("SELECT COUNT(*) FROM release_notes WHERE passport_no IS NOT NULL").fetchone()
    return int(row[0]) + 1


# --- vehicles ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VehicleRow:
    plate: str
    ic_no: str | None
    tare_kg: str
    frame_no: str | None
    frame_kg: str | None
    owner_code: str
    confirmed_by: str | None
    registered_at: str
    updated_at: str


_VEHICLE = "plate, ic_no, tare_kg, frame_no, frame_kg, owner_code, confirmed_by, registered_at, updated_at"


def vehicle(conn: Connection, *, plate: str) -> VehicleRow | None:
    row = conn.execute(f"SELECT {_VEHICLE} FROM vehicles WHERE plate = ?", (plate,)).fetchone()
    return None if row is None else VehicleRow(**dict(row))


def vehicle_by_card(conn: Connection, *, ic_no: str) -> VehicleRow | None:
    row = conn.execute(f"SELECT {_VEHICLE} FROM vehicles WHERE ic_no = ?", (ic_no,)).fetchone()
    return None if row is None else VehicleRow(**dict(row))


def vehicles(
    conn: Connection, *, owner_codes: list[str] | None = None, limit: int = 1000
) -> list[VehicleRow]:
    """Registered vehicles by plate; only those of `owner_codes` when given."""
    if owner_codes is not None and not owner_codes:
        return []
    where, args = "", []
    if owner_codes is not None:
        where = f" WHERE owner_code IN ({', '.join('?' * len(owner_codes))})"
        args = list(owner_codes)
    rows = conn.execute(f"SELECT {_VEHICLE} FROM vehicles{where} ORDER BY plate LIMIT ?", (*args, limit))
    return [VehicleRow(**dict(r)) for r in rows]


def put_vehicle(
    conn: Connection,
    *,
    plate: str,
    ic_no: str | None,
    tare_kg: str,
    frame_no: str | None,
    frame_kg: str | None,
    owner_code: str,
    confirmed_by: str | None,
    now: str,
) -> VehicleRow:
    """Register or update a vehicle; `confirmed_by` None keeps an earlier confirmation (the caller has
    checked that the weights did not change)."""
    conn.execute(
        f"INSERT INTO vehicles ({_VEHICLE}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (plate) DO UPDATE SET ic_no = excluded.ic_no, tare_kg = excluded.tare_kg,"
        " frame_no = excluded.frame_no, frame_kg = excluded.frame_kg, owner_code = excluded.owner_code,"
        " confirmed_by = COALESCE(excluded.confirmed_by, vehicles.confirmed_by),"
        " updated_at = excluded.updated_at",
        (plate, ic_no, tare_kg, frame_no, frame_kg, owner_code, confirmed_by, now, now),
    )
    found = vehicle(conn, plate=plate)
    assert found is not None
    return found


# --- gate passages ----------------------------------------------------------------------------------


def add_passage(
    conn: Connection,
    *,
    edge_id: str,
    epoch: int,
    seq: int,
    park_id: str,
    station: str | None,
    note_no: str | None,
    verdict: str,
    overridden: bool,
    gate: str,
    body: dict[str, Any],
    outcome: str,
    occurred_at: str,
    received_at: str,
    decision_id: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO gate_passages (edge_id, epoch, seq, park_id, station, note_no, verdict, overridden,"
        " gate, body, outcome, occurred_at, received_at, decision_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            edge_id,
            epoch,
            seq,
            park_id,
            station,
            note_no,
            verdict,
            int(overridden),
            gate,
            json.dumps(body),
            outcome,
            occurred_at,
            received_at,
            decision_id,
        ),
    )


def passage_actuated(
    conn: Connection, *, edge_id: str, decision_id: str, actuation: str, detail: str
) -> None:
    """What the lane's barrier did for a passage (the latest report wins)."""
    conn.execute(
        "UPDATE gate_passages SET actuation = ?, actuation_detail = ? WHERE edge_id = ? AND decision_id = ?",
        (actuation, detail, edge_id, decision_id),
    )


def passages(
    conn: Connection, *, park_id: str | None = None, note_no: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Gate passages, newest first: a park's, or a note's."""
    where, args = [], []
    for column, value in (("park_id", park_id), ("note_no", note_no)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    sql = (
        "SELECT edge_id, epoch, seq, park_id, station, note_no, verdict, overridden, gate, body, outcome,"
        " occurred_at, received_at, actuation, actuation_detail FROM gate_passages"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY occurred_at DESC, edge_id, seq DESC LIMIT ?"
    rows = conn.execute(sql, (*args, limit))
    return [{**dict(r), "overridden": bool(r["overridden"]), "body": json.loads(r["body"])} for r in rows]


# --- the gate's reconciliation ------------------------------------------------------------------------

_LEFT = "('2', '4')"  # passed (single gate) or passed the second gate: the vehicle left
# ... unless the lane reported that its barrier never let the vehicle through (a reversal, a swap)
_NOT_CARRIED_OUT = (
    "EXISTS (SELECT 1 FROM gate_passages g WHERE g.note_no = n.note_no AND g.verdict = 'PASS'"
    " AND g.actuation IN ('withheld', 'failed'))"
)
_LINE_RELEASED_AT = (
    "(SELECT MIN(e.occurred_at) FROM events e WHERE e.park_id = c.park_id AND e.kind = 'release'"
    " AND e.logistics_code = c.logistics_code AND e.logistics_no = c.logistics_no)"
)


def released_not_through_gate(
    conn: Connection, *, park_id: str, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    """Parcels the park's line released (carried out) that left on no passed note: oldest first."""
    select = (
        f'SELECT c.invt_no AS "invtNo", c.logistics_code AS "logisticsCode", c.logistics_no AS "logisticsNo",'
        f" {_LINE_RELEASED_AT} AS released_at,"
        " (SELECT MIN(i.note_no) FROM release_note_inventories i WHERE i.invt_no = c.invt_no AND i.holds = 1)"
        " AS open_note"
        " FROM clearances c WHERE c.park_id = ? AND c.released = 1 AND c.invt_no IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM release_note_inventories i"
        " JOIN release_notes n ON n.note_no = i.note_no"
        f" WHERE i.invt_no = c.invt_no AND n.status IN {_LEFT} AND NOT {_NOT_CARRIED_OUT})"
    )
    return capped(conn, select, 'released_at, "invtNo"', [park_id], limit)


def through_gate_without_line_release(
    conn: Connection, *, park_id: str, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    """Parcels on a note whose vehicle left, that the park's line never released (must be empty)."""
    select = (
        'SELECT i.invt_no AS "invtNo", n.note_no AS "note", n.plate AS "vehicleNo", n.updated_at AS passed_at'
        " FROM release_notes n JOIN release_note_inventories i ON i.note_no = n.note_no"
        f" WHERE n.park_id = ? AND n.status IN {_LEFT} AND NOT {_NOT_CARRIED_OUT}"
        " AND NOT EXISTS (SELECT 1 FROM clearances c"
        " WHERE c.invt_no = i.invt_no AND c.park_id = n.park_id AND c.released = 1)"
    )
    return capped(conn, select, 'passed_at DESC, "invtNo"', [park_id], limit)


def on_note_not_loaded(conn: Connection, *, park_id: str, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """Parcels on an approved note (or one through its first gate) that the line has not released:
    the vehicle cannot pass until they are loaded."""
    select = (
        'SELECT i.invt_no AS "invtNo", n.note_no AS "note", n.plate AS "vehicleNo", n.status AS "noteStatus",'
        " n.updated_at AS since FROM release_notes n JOIN release_note_inventories i ON i.note_no = n.note_no"
        " WHERE n.park_id = ? AND n.status IN ('1', '3') AND NOT EXISTS (SELECT 1 FROM clearances c"
        " WHERE c.invt_no = i.invt_no AND c.park_id = n.park_id AND c.released = 1)"
    )
    return capped(conn, select, 'since, "invtNo"', [park_id], limit)


def passes_not_carried_out(conn: Connection, *, park_id: str, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """Passes whose barrier the lane reported did not let the vehicle through (withheld: it backed
    out or another vehicle came on; failed: not confirmed): the note is spent, its parcels are not out."""
    select = (
        'SELECT note_no AS "note", station, occurred_at, actuation, actuation_detail AS detail'
        " FROM gate_passages WHERE park_id = ? AND verdict = 'PASS' AND actuation IN ('withheld', 'failed')"
    )
    return capped(conn, select, "occurred_at DESC", [park_id], limit)

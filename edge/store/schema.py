"""The edge database's schema: its migrations, applied in order when the store opens.

Each migration runs in its own transaction with its record (kernel/sqlite.py `migrate`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence

from edge.store.decisions import DecisionTables
from kernel.sqlite import Migration
from kernel.wire import GENESIS_HASH

Step = str | Callable[[sqlite3.Connection], None]  # a statement, or a function of the connection

SCHEMA_V1 = [
    """CREATE TABLE IF NOT EXISTS clearances (
        logistics_no TEXT NOT NULL,
        logistics_code TEXT NOT NULL,
        feed_seq INTEGER NOT NULL,
        version INTEGER NOT NULL,
        status TEXT NOT NULL,
        cancelled INTEGER NOT NULL,
        record TEXT NOT NULL,              -- the signed wire.FeedRecord as received
        PRIMARY KEY (logistics_no, logistics_code)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS sync_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        cursor INTEGER NOT NULL,
        last_success TEXT,                 -- ISO time of the last successful pull
        records INTEGER NOT NULL DEFAULT 0
    )""",
    "INSERT OR IGNORE INTO sync_state (id, cursor) VALUES (1, 0)",
    """CREATE TABLE IF NOT EXISTS decisions (
        id INTEGER PRIMARY KEY,
        decision_id TEXT NOT NULL UNIQUE,
        station TEXT NOT NULL,
        code TEXT,                         -- scanned waybill code (NULL: no read)
        logistics_code TEXT,
        verdict TEXT NOT NULL,
        codes TEXT NOT NULL,               -- JSON list of discrepancy codes
        reason TEXT NOT NULL,
        checked TEXT NOT NULL,             -- JSON: what was checked (record version, signature, weight…)
        weight_kg TEXT,
        evidence TEXT,
        operator TEXT,                     -- set for overrides
        overrides INTEGER,                 -- the decision id this one overrides
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS decisions_code ON decisions (code)",
    """CREATE TABLE IF NOT EXISTS releases (
        logistics_no TEXT NOT NULL,
        logistics_code TEXT NOT NULL,
        decision INTEGER NOT NULL REFERENCES decisions(id),
        PRIMARY KEY (logistics_no, logistics_code)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY,           -- the event's seq: contiguous from 1 per edge
        event TEXT NOT NULL,               -- wire.Event JSON, hash-chained
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS chain (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_seq INTEGER NOT NULL,
        last_hash TEXT NOT NULL,
        acked_seq INTEGER NOT NULL DEFAULT 0
    )""",
    f"INSERT OR IGNORE INTO chain (id, last_seq, last_hash) VALUES (1, 0, '{GENESIS_HASH}')",
]
# V2: what the outputs did for each decision (confirmed by read-back, failed, or withheld), so a
# release that never moved the diverter is on the record and reported
SCHEMA_V2 = [
    "ALTER TABLE decisions ADD COLUMN actuation TEXT",  # NULL: not (yet) actuated
    "ALTER TABLE decisions ADD COLUMN actuation_detail TEXT",
]
# V3: re-provisioning (edge/chain.py): the chain has an epoch; a closed one is remembered in chain_history.
SCHEMA_V2_EPOCHS = [
    "ALTER TABLE chain ADD COLUMN epoch INTEGER NOT NULL DEFAULT 1",
    """CREATE TABLE IF NOT EXISTS chain_history (
        epoch INTEGER PRIMARY KEY,         -- the closed epoch
        last_seq INTEGER NOT NULL,         -- where this database's chain of it ended
        last_hash TEXT NOT NULL,
        acked_seq INTEGER NOT NULL,        -- what central had acknowledged of it here
        delivered INTEGER NOT NULL,        -- pending events central turned out to hold: dropped
        carried INTEGER NOT NULL,          -- pending events central never got: now seq 1..carried
        next_epoch INTEGER NOT NULL,       --   of this epoch, in their order
        closed_at TEXT NOT NULL
    )""",
]


def _ledger_from_markers(conn: sqlite3.Connection) -> None:
    """Migration 4: the releases made before the ledger existed become its first entries, in order."""
    rows = conn.execute(
        """SELECT r.logistics_no, r.logistics_code, d.decision_id, d.checked FROM releases r
           JOIN decisions d ON d.id = r.decision ORDER BY r.decision"""
    ).fetchall()
    prev = GENESIS_HASH
    for n, (no, carrier, decision_id, checked) in enumerate(rows, start=1):
        try:
            version = int(json.loads(checked).get("record_version") or 0)
        except (TypeError, ValueError, AttributeError):
            version = 0
        prev = DecisionTables.append_ledger(conn, n, no, carrier, decision_id, version, prev)


# V4: the feed checkpoint verified last, each clearance's highest version seen, and the
# hash-chained, append-only ledger of every release this edge made.
SCHEMA_V4_LEDGER: list[Step] = [
    "ALTER TABLE sync_state ADD COLUMN checkpoint TEXT",  # wire.FeedCheckpoint JSON; NULL: none yet
    """CREATE TABLE versions_seen (
        logistics_no TEXT NOT NULL,
        logistics_code TEXT NOT NULL,
        version INTEGER NOT NULL,          -- the highest version of this clearance ever stored
        PRIMARY KEY (logistics_no, logistics_code)
    ) WITHOUT ROWID""",
    "INSERT INTO versions_seen (logistics_no, logistics_code, version)"
    " SELECT logistics_no, logistics_code, version FROM clearances",
    """CREATE TABLE release_ledger (
        n INTEGER PRIMARY KEY,             -- 1, 2, 3 … with no gap
        logistics_no TEXT NOT NULL,
        logistics_code TEXT NOT NULL,
        decision_id TEXT NOT NULL,
        record_version INTEGER NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL                 -- wire.release_entry_hash(prev_hash, …)
    )""",
    "CREATE INDEX release_ledger_parcel ON release_ledger (logistics_no, logistics_code)",
    _ledger_from_markers,
    """CREATE TRIGGER release_ledger_no_update BEFORE UPDATE ON release_ledger
       BEGIN SELECT RAISE(ABORT, 'release_ledger is append-only'); END""",
    """CREATE TRIGGER release_ledger_no_delete BEFORE DELETE ON release_ledger
       BEGIN SELECT RAISE(ABORT, 'release_ledger is append-only'); END""",
]


# V5: release notes (核放单) from the feed, for the vehicle gate (edge/store/notes.py).
SCHEMA_V5_NOTES: list[Step] = [
    """CREATE TABLE release_notes (
        note_no TEXT PRIMARY KEY,          -- etpsPreentNo
        feed_seq INTEGER NOT NULL,
        version INTEGER NOT NULL,          -- rows are never deleted: also the note's version mark
        status TEXT NOT NULL,
        plate TEXT NOT NULL,
        ic_no TEXT,
        record TEXT NOT NULL               -- the signed wire.NoteRecord as received
    )""",
    "CREATE INDEX release_notes_plate ON release_notes (plate)",
    "CREATE INDEX release_notes_card ON release_notes (ic_no)",
    # a note lists inventories by invtNo: the cache finds their clearances by it
    "ALTER TABLE clearances ADD COLUMN invt_no TEXT",
    "UPDATE clearances SET invt_no = json_extract(record, '$.invtNo')",
    "CREATE INDEX clearances_invt ON clearances (invt_no)",
    # every vehicle the gate decided, beside its decision row: which note, which gate, which parcels
    """CREATE TABLE passages (
        decision_id TEXT PRIMARY KEY,
        station TEXT NOT NULL,
        note_no TEXT,
        gate TEXT NOT NULL,                -- single, first, second
        verdict TEXT NOT NULL,             -- PASS or STOP
        overridden INTEGER NOT NULL,
        inventories TEXT NOT NULL,         -- JSON list of the note's invtNo
        created_at TEXT NOT NULL,
        gone_at TEXT,                      -- a pass: when it was closed (through, or not carried out)
        plate TEXT,                        -- the vehicle as read for the decision
        card TEXT
    )""",
    "CREATE INDEX passages_note ON passages (note_no, gate, verdict)",
    """CREATE TABLE passed_inventories (   -- every parcel a PASS took through the gate (out)
        invt_no TEXT NOT NULL,
        decision_id TEXT NOT NULL,
        PRIMARY KEY (invt_no, decision_id)
    ) WITHOUT ROWID""",
]


def _steps(
    steps: Sequence[str | Callable[[sqlite3.Connection], None]],
) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        for step in steps:
            if callable(step):
                step(conn)
            else:
                conn.execute(step)

    return run


# Append; never edit or reorder. Databases made before migrations had names counted them in
# user_version: the first N of these are what user_version N meant (kernel/sqlite.py `migrate`).
MIGRATIONS: list[Migration] = [
    ("0001_initial", _steps(SCHEMA_V1)),
    ("0002_actuations", _steps(SCHEMA_V2)),
    ("0003_chain_epochs", _steps(SCHEMA_V2_EPOCHS)),
    ("0004_release_ledger", _steps(SCHEMA_V4_LEDGER)),
    ("0005_release_notes", _steps(SCHEMA_V5_NOTES)),
]

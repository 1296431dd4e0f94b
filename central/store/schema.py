"""Schema migrations, applied in order at start (central/store/db.py records which ran).

Append new migrations; never edit one that has shipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import sqlite_utils

from bondgate.wire import GENESIS_HASH, feed_chain

V1 = [
    # parks and who may call the API
    """CREATE TABLE parks (
        park_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        ems_nos TEXT NOT NULL DEFAULT '[]',      -- JSON list of bonded account books
        area_codes TEXT NOT NULL DEFAULT '[]',   -- JSON list of area codes
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE tokens (
        token_id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,          -- sha256 of the secret; the secret is never stored
        role TEXT NOT NULL,
        park_id TEXT REFERENCES parks(park_id),
        name TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    )""",
    # the documents as last submitted (a change replaces, a delete marks deleted)
    """CREATE TABLE documents (
        kind TEXT NOT NULL,                       -- CEB311, CEB411, ...
        doc_key TEXT NOT NULL,                    -- business key joined with '|'
        guid TEXT NOT NULL,
        ebp_code TEXT, order_no TEXT, logistics_code TEXT, logistics_no TEXT,
        body TEXT NOT NULL,                       -- the document as JSON (Decimal as strings)
        version INTEGER NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        received_at TEXT NOT NULL,
        PRIMARY KEY (kind, doc_key)
    )""",
    "CREATE INDEX documents_order ON documents (ebp_code, order_no)",
    "CREATE INDEX documents_logistics ON documents (logistics_code, logistics_no)",
    "CREATE INDEX documents_guid ON documents (guid)",
    # receipts in the standard's form, one row per document status change
    """CREATE TABLE receipts (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        doc_key TEXT NOT NULL,
        guid TEXT NOT NULL,
        key_fields TEXT NOT NULL,                 -- JSON: the fields the receipt XML carries
        return_status TEXT NOT NULL,
        return_time TEXT NOT NULL,
        return_info TEXT NOT NULL
    )""",
    "CREATE INDEX receipts_doc ON receipts (kind, doc_key)",
    "CREATE INDEX receipts_guid ON receipts (guid)",
    # one clearance per inventory; status NULL while the document set is incomplete
    """CREATE TABLE clearances (
        clearance_id TEXT PRIMARY KEY,            -- ebpCode|orderNo of the inventory
        park_id TEXT REFERENCES parks(park_id),
        invt_no TEXT,
        cop_no TEXT, pre_no TEXT,
        order_no TEXT NOT NULL, ebp_code TEXT NOT NULL, ebc_code TEXT NOT NULL,
        logistics_code TEXT NOT NULL, logistics_no TEXT NOT NULL,
        gross_weight TEXT NOT NULL, net_weight TEXT NOT NULL,
        declared_value TEXT NOT NULL,
        goods TEXT NOT NULL,
        status TEXT NOT NULL,
        cancelled INTEGER NOT NULL DEFAULT 0,
        comparison TEXT,                          -- JSON list of failures of the last comparison
        risk TEXT,                                -- JSON list of reasons it was selected
        version INTEGER NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    "CREATE UNIQUE INDEX clearances_invt_no ON clearances (invt_no)",
    "CREATE INDEX clearances_logistics ON clearances (logistics_code, logistics_no)",
    "CREATE INDEX clearances_park_status ON clearances (park_id, status)",
    "CREATE INDEX clearances_order ON clearances (order_no)",
    """CREATE TABLE clearance_history (
        id INTEGER PRIMARY KEY,
        clearance_id TEXT NOT NULL,
        from_status TEXT, to_status TEXT NOT NULL,
        action TEXT NOT NULL, actor TEXT NOT NULL, info TEXT NOT NULL,
        at TEXT NOT NULL
    )""",
    "CREATE INDEX clearance_history_id ON clearance_history (clearance_id)",
    # the park feed: every change of a park's clearance records, in commit order
    """CREATE TABLE feed (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        park_id TEXT NOT NULL,
        clearance_id TEXT NOT NULL,
        record TEXT NOT NULL                      -- signed wire.FeedRecord JSON without seq
    )""",
    "CREATE INDEX feed_park_seq ON feed (park_id, seq)",
    # events reported by edges; (edge_id, seq) is the idempotency key
    """CREATE TABLE edges (
        edge_id TEXT PRIMARY KEY,
        park_id TEXT NOT NULL REFERENCES parks(park_id),
        last_seq INTEGER NOT NULL DEFAULT 0,
        last_hash TEXT NOT NULL,
        last_seen TEXT,
        last_heartbeat TEXT,
        backlog INTEGER
    )""",
    """CREATE TABLE events (
        edge_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        park_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        station TEXT,
        occurred_at TEXT NOT NULL,
        logistics_code TEXT, logistics_no TEXT,
        body TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        received_at TEXT NOT NULL,
        PRIMARY KEY (edge_id, seq)
    )""",
    "CREATE INDEX events_parcel ON events (logistics_code, logistics_no, kind)",
    "CREATE INDEX events_park_kind ON events (park_id, kind, occurred_at)",
    """CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        park_id TEXT NOT NULL,
        edge_id TEXT,
        kind TEXT NOT NULL,                       -- release_not_cleared, chain_break, seq_gap, ...
        detail TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX alerts_park ON alerts (park_id, created_at)",
]


def _v1(db: sqlite_utils.Database) -> None:
    for statement in V1:
        db.execute(statement)


# Re-provisioning (README "Re-provisioning an edge"): an edge's events form one chain per epoch.
# Closing a chain opens the next epoch of the same edge_id at seq 1; the closed chain stays stored,
# its end and who closed it (and why) in edge_chains. Events are keyed by (edge_id, epoch, seq), so
# the table is rebuilt with the epoch in its primary key; every existing event is of epoch 1.
V2_EDGE_EPOCHS = [
    "ALTER TABLE edges ADD COLUMN epoch INTEGER NOT NULL DEFAULT 1",
    "ALTER TABLE edges ADD COLUMN epoch_opened_at TEXT",
    """CREATE TABLE edge_chains (
        edge_id TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        park_id TEXT NOT NULL,
        last_seq INTEGER NOT NULL,                -- where the closed chain ends
        last_hash TEXT NOT NULL,
        opened_at TEXT,                           -- NULL: the edge's first chain, from before epochs
        closed_at TEXT NOT NULL,
        closed_by TEXT NOT NULL,                  -- who re-provisioned (token name or CLI user)
        reason TEXT NOT NULL,
        PRIMARY KEY (edge_id, epoch)
    )""",
    """CREATE TABLE events_by_epoch (
        edge_id TEXT NOT NULL,
        epoch INTEGER NOT NULL DEFAULT 1,
        seq INTEGER NOT NULL,
        park_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        station TEXT,
        occurred_at TEXT NOT NULL,
        logistics_code TEXT, logistics_no TEXT,
        body TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        received_at TEXT NOT NULL,
        PRIMARY KEY (edge_id, epoch, seq)
    )""",
    """INSERT INTO events_by_epoch (edge_id, epoch, seq, park_id, kind, station, occurred_at,
        logistics_code, logistics_no, body, prev_hash, hash, received_at)
       SELECT edge_id, 1, seq, park_id, kind, station, occurred_at, logistics_code, logistics_no, body,
        prev_hash, hash, received_at FROM events""",
    "DROP TABLE events",
    "ALTER TABLE events_by_epoch RENAME TO events",
    "CREATE INDEX events_parcel ON events (logistics_code, logistics_no, kind)",
    "CREATE INDEX events_park_kind ON events (park_id, kind, occurred_at)",
]


def _v2_edge_epochs(db: sqlite_utils.Database) -> None:
    for statement in V2_EDGE_EPOCHS:
        db.execute(statement)


# "Actuation is part of the record": one row per release event that names its decision, and what its
# outputs did as the edge's later `actuation` event reported it (NULL: nothing reported yet). The
# reconciliation lists failed and overdue ones from here, by index, without reading event bodies.
V3_RELEASE_ACTUATIONS = [
    """CREATE TABLE release_actuations (
        edge_id TEXT NOT NULL,
        decision_id TEXT NOT NULL,
        park_id TEXT NOT NULL,
        epoch INTEGER NOT NULL, seq INTEGER NOT NULL,   -- the release event
        logistics_code TEXT, logistics_no TEXT,
        occurred_at TEXT NOT NULL,
        received_at TEXT NOT NULL,
        actuation TEXT,                                 -- NULL (none yet), 'confirmed' or 'failed'
        output TEXT,
        detail TEXT,
        actuated_at TEXT,                               -- occurred_at of the latest actuation event
        actuation_epoch INTEGER, actuation_seq INTEGER, -- that event
        PRIMARY KEY (edge_id, decision_id)
    )""",
    "CREATE INDEX release_actuations_state ON release_actuations (park_id, actuation, received_at)",
]


def _v3_release_actuations(db: sqlite_utils.Database) -> None:
    for statement in V3_RELEASE_ACTUATIONS:
        db.execute(statement)


def _v4_feed_chain(db: sqlite_utils.Database) -> None:
    """Each park's feed as a hash chain with signed checkpoints (bondgate/wire.py `feed_chain`).

    Every feed row gets `n` (its place in its park's feed, from 1) and `chain` (the running hash up to
    and including it), and `feed_heads` the last of each per park, all written in the transaction that
    appends the row (central/feed.py). Rows already there are chained here; their `checkpoint`
    signature stays NULL (migrations have no key) and is made when a page ending there is served."""
    conn = db.conn
    conn.execute("ALTER TABLE feed ADD COLUMN n INTEGER")
    conn.execute("ALTER TABLE feed ADD COLUMN chain TEXT")
    conn.execute("ALTER TABLE feed ADD COLUMN checkpoint TEXT")  # Ed25519 over the checkpoint at this row
    conn.execute(
        """CREATE TABLE feed_heads (
            park_id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL,                 -- the park's last feed row
            n INTEGER NOT NULL,                   -- how many rows the park's feed has
            chain TEXT NOT NULL                   -- the running hash after the last row
        )"""
    )
    heads: dict[str, tuple[int, int, str]] = {}
    last = 0
    while True:
        rows = conn.execute(
            "SELECT seq, park_id, record FROM feed WHERE seq > ? ORDER BY seq LIMIT 10000", (last,)
        ).fetchall()
        if not rows:
            break
        updates = []
        for seq, park_id, record in rows:
            _, n, chain = heads.get(park_id, (0, 0, GENESIS_HASH))
            chain = feed_chain(chain, [{"seq": seq, **json.loads(record)}])
            heads[park_id] = (seq, n + 1, chain)
            updates.append((n + 1, chain, seq))
        conn.executemany("UPDATE feed SET n = ?, chain = ? WHERE seq = ?", updates)
        last = rows[-1][0]
    conn.executemany(
        "INSERT INTO feed_heads (park_id, seq, n, chain) VALUES (?, ?, ?, ?)",
        [(park_id, *head) for park_id, head in heads.items()],
    )


def _v5_guids(db: sqlite_utils.Database) -> None:
    """Every document guid taken, with a digest of the document it came with: a guid names one
    document for good (a different document under it is refused; the same one sent again gets its
    original receipts). Guids from before this migration are known by their receipts only: their
    digest is NULL, so a resend of one is refused as a reuse rather than guessed identical."""
    conn = db.conn
    conn.execute(
        """CREATE TABLE guids (
            guid TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            digest TEXT,                           -- sha256 of the document's canonical JSON
            taken_at TEXT NOT NULL
        )"""
    )
    conn.execute(
        "INSERT OR IGNORE INTO guids (guid, kind, digest, taken_at)"
        " SELECT guid, kind, NULL, MIN(return_time) FROM receipts GROUP BY guid"
    )


def _v6_customs_receipts(db: sqlite_utils.Database) -> None:
    """Each customs receipt (CEB622) taken, and what became of it: applied, waiting for the receipt
    before it (it arrived first; applied when that one comes), stale (older than one applied) or
    refused (with the reason). Receipts apply in returnTime order, whatever order they arrive in."""
    conn = db.conn
    conn.execute(
        """CREATE TABLE customs_receipts (
            id INTEGER PRIMARY KEY,
            clearance_id TEXT NOT NULL,
            guid TEXT NOT NULL,
            return_status TEXT NOT NULL,
            return_time TEXT NOT NULL,            -- yyyyMMddHHmmssfff, customs' own time
            return_info TEXT NOT NULL,
            state TEXT NOT NULL,                  -- applied, waiting, stale, refused
            reason TEXT NOT NULL,
            received_at TEXT NOT NULL
        )"""
    )
    conn.execute(
        "CREATE INDEX customs_receipts_clearance ON customs_receipts (clearance_id, state, return_time)"
    )


def _v7_token_edge(db: sqlite_utils.Database) -> None:
    """An edge token is bound to one edge id: set when the token is made. Tokens made before carry
    none and are bound to the edge id they first report for (central/events.py)."""
    db.conn.execute("ALTER TABLE tokens ADD COLUMN edge_id TEXT")


def _v8_token_enterprise_codes(db: sqlite_utils.Database) -> None:
    """An enterprise token acts for the enterprise codes it is made for (JSON list). Tokens made
    before carry none and submit nothing until replaced."""
    db.conn.execute("ALTER TABLE tokens ADD COLUMN enterprise_codes TEXT")


def _v9_lookup_indexes(db: sqlite_utils.Database) -> None:
    """Every lookup an officer or a receipt makes goes through an index (issue 11 J): a parcel by
    logisticsNo alone (the (code, no) index needs its code first), a pending inventory by orderNo,
    logisticsNo or a sender-given invtNo (was json_extract over every body), a receipt's inventory
    by copNo."""
    for statement in (
        "CREATE INDEX clearances_logistics_no ON clearances (logistics_no)",
        "CREATE INDEX clearances_cop_no ON clearances (cop_no)",
        "CREATE INDEX documents_inventory_order ON documents (order_no) WHERE kind = 'CEB621'",
        "CREATE INDEX documents_inventory_logistics ON documents (logistics_no) WHERE kind = 'CEB621'",
        "CREATE INDEX documents_inventory_invt_no ON documents (json_extract(body, '$.invtNo'))"
        " WHERE kind = 'CEB621'",
    ):
        db.conn.execute(statement)


def _v10_guid_case(db: sqlite_utils.Database) -> None:
    """A guid is a UUID, and a UUID's hex digits have no case: a guid in other letters is the same
    guid (a different order under the lower-case form of a taken guid was taken)."""
    conn = db.conn
    conn.execute("ALTER TABLE guids ADD COLUMN folded TEXT")
    conn.execute("UPDATE guids SET folded = upper(guid)")
    conn.execute("CREATE INDEX guids_folded ON guids (folded)")


MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = [
    ("0001_initial", _v1),
    ("0002_edge_epochs", _v2_edge_epochs),
    ("0003_release_actuations", _v3_release_actuations),
    ("0004_feed_chain", _v4_feed_chain),
    ("0005_guids", _v5_guids),
    ("0006_customs_receipts", _v6_customs_receipts),
    ("0007_token_edge", _v7_token_edge),
    ("0008_token_enterprise_codes", _v8_token_enterprise_codes),
    ("0009_lookup_indexes", _v9_lookup_indexes),
    ("0010_guid_case", _v10_guid_case),
]

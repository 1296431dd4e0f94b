"""Schema migrations, applied in order when the database is opened (kernel/sqlite.py `migrate`
records which ran, by name, in `schema_migrations`).

Append new migrations; never edit one that has shipped.
"""

from __future__ import annotations

import json
import sqlite3

from kernel.sqlite import Migration
from kernel.wire import GENESIS_HASH, feed_chain

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


def _v1(conn: sqlite3.Connection) -> None:
    for statement in V1:
        conn.execute(statement)


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


def _v2_edge_epochs(conn: sqlite3.Connection) -> None:
    for statement in V2_EDGE_EPOCHS:
        conn.execute(statement)


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


def _v3_release_actuations(conn: sqlite3.Connection) -> None:
    for statement in V3_RELEASE_ACTUATIONS:
        conn.execute(statement)


def _v4_feed_chain(conn: sqlite3.Connection) -> None:
    """Each park's feed as a hash chain with signed checkpoints (kernel/wire.py `feed_chain`).

    Every feed row gets `n` (its place in its park's feed, from 1) and `chain` (the running hash up to
    and including it), and `feed_heads` the last of each per park, all written in the transaction that
    appends the row (central/feed.py). Rows already there are chained here; their `checkpoint`
    signature stays NULL (migrations have no key) and is made when a page ending there is served."""
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


def _v5_guids(conn: sqlite3.Connection) -> None:
    """Every document guid taken, with a digest of the document it came with: a guid names one
    document for good (a different document under it is refused; the same one sent again gets its
    original receipts). Guids from before this migration are known by their receipts only: their
    digest is NULL, so a resend of one is refused as a reuse rather than guessed identical."""
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


def _v6_customs_receipts(conn: sqlite3.Connection) -> None:
    """Each customs receipt (CEB622) taken, and what became of it: applied, waiting for the receipt
    before it (it arrived first; applied when that one comes), stale (older than one applied) or
    refused (with the reason). Receipts apply in returnTime order, whatever order they arrive in."""
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


def _v7_token_edge(conn: sqlite3.Connection) -> None:
    """An edge token is bound to one edge id: set when the token is made. Tokens made before carry
    none and are bound to the edge id they first report for (central/events.py)."""
    conn.execute("ALTER TABLE tokens ADD COLUMN edge_id TEXT")


def _v8_token_enterprise_codes(conn: sqlite3.Connection) -> None:
    """An enterprise token acts for the enterprise codes it is made for (JSON list). Tokens made
    before carry none and submit nothing until replaced."""
    conn.execute("ALTER TABLE tokens ADD COLUMN enterprise_codes TEXT")


def _v9_lookup_indexes(conn: sqlite3.Connection) -> None:
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
        conn.execute(statement)


def _v10_guid_case(conn: sqlite3.Connection) -> None:
    """A guid is a UUID, and a UUID's hex digits have no case: a guid in other letters is the same
    guid (a different order under the lower-case form of a taken guid was taken)."""
    conn.execute("ALTER TABLE guids ADD COLUMN folded TEXT")
    conn.execute("UPDATE guids SET folded = upper(guid)")
    conn.execute("CREATE INDEX guids_folded ON guids (folded)")


# The reconciliation report reads maintained figures, not whole tables (issue 11 J): a park of a
# million clearances answers in milliseconds. SQLite triggers keep them in the transaction that changes
# the rows they count, whichever code path writes (intake, officer, customs receipt, events):
#   tallies           (park, kind, key) -> n: clearances per status and cancelled per status, the
#                     cleared-but-not-out count, releases per hour (of the release's time: the
#                     earlier of occurred_at and received_at), discrepancy codes, releases whose
#                     actuation is not reported yet
#   clearances.released   1 once a release event for the parcel reached central (from any edge), unless
#                         every such release was reported withheld (the parcel went to hold)
#   events.uncleared      release events: 1 when, at the release's time (min of occurred_at and
#                         received_at), the parcel had no cleared, uncancelled clearance; re-judged when
#                         the parcel's status history grows (a history row dated at or before it counts)
#   events.cancelled_late release events: 1 when the parcel was cleared at the release's time and its
#                         cancellation was approved after (while the release was on its way)
#   events.repeat         release events: 1 when another release of the parcel came before it
# The cleared statuses are 800 and 899 (central.events.CLEARED_STATUSES); the "must be empty" lists
# are read through partial indexes that hold only their rows.
_PARCEL_CLEARANCES = (
    "FROM clearance_history h JOIN clearances c ON c.clearance_id = h.clearance_id"
    " WHERE c.logistics_code = {e}.logistics_code AND c.logistics_no = {e}.logistics_no"
    " AND COALESCE(c.park_id, '') = {e}.park_id AND h.at <= MIN({e}.occurred_at, {e}.received_at)"
)


def _late_cancellation(e: str) -> str:
    """SQL: 1 when the parcel of release event `e` had its cancellation (CEB623) approved after the
    release: approved while the release was on its way to central (see central/store/reports.py)."""
    parcel = _PARCEL_CLEARANCES.format(e=e).split(" AND h.at <= ")[0]
    moment = f"MIN({e}.occurred_at, {e}.received_at)"
    return f"EXISTS (SELECT 1 {parcel} AND h.action = 'cancellation' AND h.at > {moment})"


def _verdicts(e: str) -> str:
    """SQL SET list of a release event's two verdicts: a cancellation approved after the release
    counts only against a release the parcel was cleared for (one it was not cleared for is
    "without clearance", whatever came after)."""
    judgement = release_judgement(e)
    late = f"CASE WHEN {judgement} = 0 THEN {_late_cancellation(e)} ELSE 0 END"
    return f"uncleared = {judgement}, cancelled_late = {late}"


def release_judgement(e: str) -> str:
    """SQL: 1 when the release event `e` found its parcel uncleared or cancelled, else 0."""
    history = _PARCEL_CLEARANCES.format(e=e)
    status_then = f"(SELECT h.to_status {history} ORDER BY h.at DESC, h.id DESC LIMIT 1)"
    cancelled_then = f"EXISTS (SELECT 1 {history} AND h.action IN ('cancellation', 'return'))"
    return f"(CASE WHEN {status_then} IN ('800', '899') AND NOT {cancelled_then} THEN 0 ELSE 1 END)"


def _clearance_tally(row: str, sign: str) -> list[str]:
    """Statements adding `sign` (+1/-1) of clearance `row` (new/old) to its park's tallies."""
    park = f"COALESCE({row}.park_id, '')"
    upsert = " ON CONFLICT (park_id, kind, key) DO UPDATE SET n = n + excluded.n"
    return [
        f"INSERT INTO tallies (park_id, kind, key, n) VALUES ({park}, 'status', {row}.status, {sign})"
        f"{upsert};",
        f"INSERT INTO tallies (park_id, kind, key, n) SELECT {park}, 'cancelled', {row}.status, {sign}"
        f" WHERE {row}.cancelled{upsert};",
        f"INSERT INTO tallies (park_id, kind, key, n) SELECT {park}, 'awaiting_exit', '', {sign}"
        f" WHERE {row}.status = '800' AND {row}.cancelled = 0 AND {row}.released = 0{upsert};",
    ]


# a release carried out: its actuation was not reported `withheld` (the edge sent the parcel to hold)
_CARRIED_OUT = (
    "NOT EXISTS (SELECT 1 FROM release_actuations ra WHERE ra.edge_id = e.edge_id AND ra.epoch = e.epoch"
    " AND ra.seq = e.seq AND ra.actuation = 'withheld')"
)


def _left(c: str) -> str:
    """SQL: 1 when the parcel of clearance row `c` has a release carried out in its park."""
    return (
        f"EXISTS (SELECT 1 FROM events e WHERE e.logistics_code = {c}.logistics_code"
        f" AND e.logistics_no = {c}.logistics_no AND e.kind = 'release'"
        f" AND e.park_id = COALESCE({c}.park_id, '') AND {_CARRIED_OUT})"
    )


_RELEASE_EXISTS = _left("new")
_HISTORY_PARCEL = "(SELECT {col} FROM clearances WHERE clearance_id = new.clearance_id)"
_HISTORY_PARK = "(SELECT COALESCE(park_id, '') FROM clearances WHERE clearance_id = new.clearance_id)"


def _v11_tallies_statements() -> list[str]:
    upsert = " ON CONFLICT (park_id, kind, key) DO UPDATE SET n = n + excluded.n"
    return [
        """CREATE TABLE tallies (
            park_id TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, n INTEGER NOT NULL,
            PRIMARY KEY (park_id, kind, key)
        ) WITHOUT ROWID""",
        "ALTER TABLE clearances ADD COLUMN released INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE events ADD COLUMN uncleared INTEGER",
        "ALTER TABLE events ADD COLUMN cancelled_late INTEGER",
        "ALTER TABLE events ADD COLUMN repeat INTEGER",
        "CREATE INDEX clearances_awaiting_exit ON clearances (park_id, updated_at, clearance_id)"
        " WHERE status = '800' AND cancelled = 0 AND released = 0",
        "CREATE INDEX events_uncleared ON events (park_id, occurred_at) WHERE uncleared = 1",
        "CREATE INDEX events_cancelled_late ON events (park_id, occurred_at) WHERE cancelled_late = 1",
        "CREATE INDEX events_repeat ON events (park_id, logistics_code, logistics_no) WHERE repeat = 1",
        # clearances: every insert, change of counted columns and delete moves the tallies
        "CREATE TRIGGER clearances_tally_insert AFTER INSERT ON clearances BEGIN "
        + " ".join(_clearance_tally("new", "1"))
        + " END",
        "CREATE TRIGGER clearances_tally_update AFTER UPDATE OF status, cancelled, released, park_id"
        " ON clearances WHEN old.status IS NOT new.status OR old.cancelled IS NOT new.cancelled"
        " OR old.released IS NOT new.released OR old.park_id IS NOT new.park_id BEGIN "
        + " ".join(_clearance_tally("old", "-1") + _clearance_tally("new", "1"))
        + " END",
        "CREATE TRIGGER clearances_tally_delete AFTER DELETE ON clearances BEGIN "
        + " ".join(_clearance_tally("old", "-1"))
        + " END",
        # a clearance made, or moved to another parcel key, after its parcel was released
        f"CREATE TRIGGER clearances_released_insert AFTER INSERT ON clearances WHEN {_RELEASE_EXISTS}"
        " BEGIN UPDATE clearances SET released = 1 WHERE clearance_id = new.clearance_id; END",
        # (its history now speaks for other releases: those of the old key and of the new are judged again)
        "CREATE TRIGGER clearances_released_rekey AFTER UPDATE OF logistics_code, logistics_no, park_id"
        " ON clearances WHEN old.logistics_code IS NOT new.logistics_code"
        " OR old.logistics_no IS NOT new.logistics_no OR old.park_id IS NOT new.park_id BEGIN"
        f" UPDATE clearances SET released = {_RELEASE_EXISTS} WHERE clearance_id = new.clearance_id;"
        f" UPDATE events SET {_verdicts('events')} WHERE kind = 'release' AND ("
        "(logistics_code = old.logistics_code AND logistics_no = old.logistics_no"
        " AND park_id = COALESCE(old.park_id, '')) OR (logistics_code = new.logistics_code"
        " AND logistics_no = new.logistics_no AND park_id = COALESCE(new.park_id, ''))); END",
        # a release event: judged, marked when repeated, counted per hour; its parcel has left
        "CREATE TRIGGER events_release AFTER INSERT ON events WHEN new.kind = 'release' BEGIN"
        f" UPDATE events SET {_verdicts('new')},"
        " repeat = EXISTS (SELECT 1 FROM events o WHERE o.logistics_code = new.logistics_code"
        " AND o.logistics_no = new.logistics_no AND o.kind = 'release' AND o.park_id = new.park_id"
        " AND o.rowid != new.rowid) WHERE rowid = new.rowid;"
        " UPDATE clearances SET released = 1 WHERE logistics_code = new.logistics_code"
        " AND logistics_no = new.logistics_no AND COALESCE(park_id, '') = new.park_id AND released = 0;"
        " INSERT INTO tallies (park_id, kind, key, n)"
        " VALUES (new.park_id, 'release_hour', substr(MIN(new.occurred_at, new.received_at), 1, 13), 1)"
        f"{upsert}; END",
        # a release reported withheld was not carried out: its parcel is still in the park
        "CREATE INDEX release_actuations_event ON release_actuations (edge_id, epoch, seq)",
        "CREATE TRIGGER actuations_withheld AFTER UPDATE OF actuation ON release_actuations"
        " WHEN (COALESCE(old.actuation, '') = 'withheld') != (COALESCE(new.actuation, '') = 'withheld') BEGIN"
        f" UPDATE clearances SET released = {_left('clearances')} WHERE logistics_code = new.logistics_code"
        " AND logistics_no = new.logistics_no AND COALESCE(park_id, '') = new.park_id; END",
        # releases whose actuation is not reported yet (the report subtracts the recent ones)
        "CREATE TRIGGER actuations_unreported_insert AFTER INSERT ON release_actuations"
        " WHEN new.actuation IS NULL BEGIN INSERT INTO tallies (park_id, kind, key, n)"
        f" VALUES (new.park_id, 'actuation_unreported', '', 1){upsert}; END",
        "CREATE TRIGGER actuations_unreported_update AFTER UPDATE OF actuation, park_id ON release_actuations"
        " WHEN (old.actuation IS NULL) != (new.actuation IS NULL) OR old.park_id IS NOT new.park_id BEGIN"
        " INSERT INTO tallies (park_id, kind, key, n) SELECT old.park_id, 'actuation_unreported', '', -1"
        f" WHERE old.actuation IS NULL{upsert};"
        " INSERT INTO tallies (park_id, kind, key, n) SELECT new.park_id, 'actuation_unreported', '', 1"
        f" WHERE new.actuation IS NULL{upsert}; END",
        "CREATE TRIGGER actuations_unreported_delete AFTER DELETE ON release_actuations"
        " WHEN old.actuation IS NULL BEGIN INSERT INTO tallies (park_id, kind, key, n)"
        f" VALUES (old.park_id, 'actuation_unreported', '', -1){upsert}; END",
        "CREATE TRIGGER events_discrepancy AFTER INSERT ON events WHEN new.kind = 'discrepancy' BEGIN"
        " INSERT INTO tallies (park_id, kind, key, n)"
        " SELECT new.park_id, 'discrepancy', j.value, 1 FROM json_each(new.body, '$.codes') j"
        f" WHERE j.type = 'text'{upsert}; END",
        # the parcel's history grew: its releases are judged again (only rows dated at or before a
        # release can change its verdict; the judgement reads them all)
        "CREATE TRIGGER history_rejudge AFTER INSERT ON clearance_history BEGIN"
        f" UPDATE events SET {_verdicts('events')}"
        f" WHERE logistics_code = {_HISTORY_PARCEL.format(col='logistics_code')}"
        f" AND logistics_no = {_HISTORY_PARCEL.format(col='logistics_no')} AND kind = 'release'"
        f" AND park_id = {_HISTORY_PARK}; END",
        *TALLIES_REBUILD,
    ]


# Recomputes every maintained figure from the base tables: the migration's first fill, and
# central/store/tallies.rebuild after rows were written around the triggers.
TALLIES_REBUILD = [
    f"UPDATE clearances SET released = {_left('clearances')}",
    f"UPDATE events SET {_verdicts('events')},"
    " repeat = EXISTS (SELECT 1 FROM events o WHERE o.logistics_code = events.logistics_code"
    " AND o.logistics_no = events.logistics_no AND o.kind = 'release' AND o.park_id = events.park_id"
    " AND o.rowid < events.rowid) WHERE kind = 'release'",
    "DELETE FROM tallies",  # after the flags: their updates move tallies through the triggers
    "INSERT INTO tallies (park_id, kind, key, n) SELECT COALESCE(park_id, ''), 'status', status, COUNT(*)"
    " FROM clearances GROUP BY 1, 3",
    "INSERT INTO tallies (park_id, kind, key, n) SELECT COALESCE(park_id, ''), 'cancelled', status, COUNT(*)"
    " FROM clearances WHERE cancelled GROUP BY 1, 3",
    "INSERT INTO tallies (park_id, kind, key, n) SELECT COALESCE(park_id, ''), 'awaiting_exit', '', COUNT(*)"
    " FROM clearances WHERE status = '800' AND cancelled = 0 AND released = 0 GROUP BY 1",
    "INSERT INTO tallies (park_id, kind, key, n) SELECT park_id, 'release_hour',"
    " substr(MIN(occurred_at, received_at), 1, 13), COUNT(*) FROM events WHERE kind = 'release'"
    " GROUP BY 1, 3",
    "INSERT INTO tallies (park_id, kind, key, n) SELECT park_id, 'actuation_unreported', '', COUNT(*)"
    " FROM release_actuations WHERE actuation IS NULL GROUP BY 1",
    "INSERT INTO tallies (park_id, kind, key, n) SELECT e.park_id, 'discrepancy', j.value, COUNT(*)"
    " FROM events e, json_each(e.body, '$.codes') j WHERE e.kind = 'discrepancy' AND j.type = 'text'"
    " GROUP BY 1, 3",
]


def _v11_tallies(conn: sqlite3.Connection) -> None:
    for statement in _v11_tallies_statements():
        conn.execute(statement)


def _v12_document_kind_indexes(conn: sqlite3.Connection) -> None:
    """Intake finds a set's other documents by order or by waybill number and kind, newest first: with
    the kind and the time in the index that is one index probe per document, not a read of every
    document of the order (its order, payment and inventory bodies) and a sort."""
    for statement in (
        "DROP INDEX documents_order",
        "DROP INDEX documents_logistics",
        "CREATE INDEX documents_order ON documents (ebp_code, order_no, kind, received_at)",
        "CREATE INDEX documents_logistics ON documents (logistics_code, logistics_no, kind, received_at)",
    ):
        conn.execute(statement)


def _v13_guid_keys(conn: sqlite3.Connection) -> None:
    """Fewer random-key index writes per document (issue 11 J: with a million documents stored, each
    new one dirtied a random leaf of four guid-keyed indexes, and intake ran at 0.6 of its rate on an
    empty database). `guids` is keyed by the case-folded guid it is looked up by (it had a second
    index on the guid as given, which nothing reads), and `documents_guid` goes: no query reads
    documents by guid (a guid's receipts are read from `receipts`). Guids taken twice in different
    letters before 0010 keep the first."""
    conn.execute("DROP INDEX IF EXISTS documents_guid")
    conn.execute(
        """CREATE TABLE guids_folded_key (
            folded TEXT PRIMARY KEY,               -- upper(guid): a UUID's hex digits have no case
            guid TEXT NOT NULL,                    -- as first given
            kind TEXT NOT NULL,
            digest TEXT,                           -- "b:" + sha256 of the stored JSON (earlier: canonical)
            taken_at TEXT NOT NULL
        ) WITHOUT ROWID"""
    )
    conn.execute(
        "INSERT OR IGNORE INTO guids_folded_key (folded, guid, kind, digest, taken_at)"
        " SELECT COALESCE(folded, upper(guid)), guid, kind, digest, taken_at FROM guids ORDER BY rowid"
    )
    conn.execute("DROP TABLE guids")
    conn.execute("ALTER TABLE guids_folded_key RENAME TO guids")


def _v14_receipts_by_document(conn: sqlite3.Connection) -> None:
    """A guid's receipts are found through the document it names (guids gets the doc_key; receipts
    are indexed by (kind, doc_key) already), and `receipts_guid` goes: every receipt written landed
    on a random leaf of it, which with millions stored made each intake commit write thousands of
    pages more than on an empty database (issue 11 J). Guids taken before get the doc_key of their
    receipts."""
    conn.execute("ALTER TABLE guids ADD COLUMN doc_key TEXT")
    conn.execute(
        "UPDATE guids SET doc_key = (SELECT r.doc_key FROM receipts r WHERE r.guid = guids.guid"
        " ORDER BY r.id LIMIT 1)"
    )
    conn.execute("DROP INDEX IF EXISTS receipts_guid")


def release_note_tables(*, identity: str, key: str) -> list[str]:
    """Release notes (核放单) and the vehicle registry, written once for both databases: `identity` is
    the dialect's auto-numbered primary key, `key` the type of a compared text key (byte-wise on
    PostgreSQL, as SQLite compares)."""
    return [
        f"""CREATE TABLE release_notes (
            note_no {key} PRIMARY KEY,            -- etpsPreentNo, the enterprise's own number
            park_id {key} NOT NULL,
            passport_no {key} UNIQUE,             -- customs' number, assigned on approval
            status TEXT NOT NULL,                 -- SAS stucd: 0 applied … 6 voided
            note_type TEXT NOT NULL,              -- passportTypecd
            direction TEXT NOT NULL,              -- ioTypecd
            plate {key} NOT NULL,
            ic_no {key},
            declarant {key} NOT NULL,             -- dclEtpsno
            container_no {key},                   -- held, with the seals, by an open note alone
            seal_ids TEXT,                        -- '|ES001|ES002|' (NULL: none)
            body TEXT NOT NULL,                   -- the note as JSON: head, list, acmp
            version INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX release_notes_park ON release_notes (park_id, status, updated_at)",
        "CREATE INDEX release_notes_plate ON release_notes (plate, status)",
        "CREATE INDEX release_notes_container ON release_notes (container_no, status)",
        f"""CREATE TABLE release_note_inventories (
            note_no {key} NOT NULL,
            invt_no {key} NOT NULL,
            holds INTEGER NOT NULL,               -- 1 while the note is open: no other note may list it
            PRIMARY KEY (note_no, invt_no)
        )""",
        "CREATE UNIQUE INDEX release_note_inventories_held ON release_note_inventories (invt_no)"
        " WHERE holds = 1",
        "CREATE INDEX release_note_inventories_invt ON release_note_inventories (invt_no)",
        f"""CREATE TABLE release_note_history (
            id {identity},
            note_no {key} NOT NULL,
            from_status TEXT,
            to_status TEXT NOT NULL,
            action TEXT NOT NULL,
            actor TEXT NOT NULL,
            info TEXT NOT NULL,
            at TEXT NOT NULL
        )""",
        "CREATE INDEX release_note_history_note ON release_note_history (note_no, id)",
        f"""CREATE TABLE release_note_receipts (
            id {identity},
            note_no {key} NOT NULL,
            message_type TEXT NOT NULL,           -- SAS221 approval, SAS223 passed the gate
            source TEXT NOT NULL,                 -- central (simulate mode) or customs
            body TEXT NOT NULL,                   -- the receipt as JSON
            state TEXT NOT NULL,                  -- applied or refused
            reason TEXT NOT NULL,
            received_at TEXT NOT NULL
        )""",
        "CREATE INDEX release_note_receipts_note ON release_note_receipts (note_no, id)",
        # every vehicle a park's gate reported (edge passage events), kept apart from the events
        # for the officer pages and the reconciliation
        f"""CREATE TABLE gate_passages (
            edge_id {key} NOT NULL,
            epoch INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            park_id {key} NOT NULL,
            station TEXT,
            note_no {key},
            verdict TEXT NOT NULL,                -- PASS or STOP
            overridden INTEGER NOT NULL,
            gate TEXT NOT NULL,                   -- single, first, second
            body TEXT NOT NULL,                   -- the passage as reported (wire.PassageBody JSON)
            outcome TEXT NOT NULL,                -- what central did with it
            decision_id TEXT,                     -- the edge's decision: its actuation reports bind here
            actuation TEXT,                       -- the latest: confirmed, withheld, failed (NULL: none)
            actuation_detail TEXT,
            occurred_at TEXT NOT NULL,
            received_at TEXT NOT NULL,
            PRIMARY KEY (edge_id, epoch, seq)
        )""",
        "CREATE INDEX gate_passages_park ON gate_passages (park_id, occurred_at)",
        "CREATE INDEX gate_passages_note ON gate_passages (note_no)",
        "CREATE INDEX gate_passages_decision ON gate_passages (edge_id, decision_id)",
        f"""CREATE TABLE vehicles (
            plate {key} PRIMARY KEY,
            ic_no {key} UNIQUE,                   -- electronic plate / IC card
            tare_kg TEXT NOT NULL,                -- registered tare (SAS131-like registration)
            frame_no TEXT,
            frame_kg TEXT,
            owner_code {key} NOT NULL,            -- the enterprise that registered it
            confirmed_by TEXT,                    -- the officer who confirmed the weights (NULL: not yet)
            registered_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
    ]


def _v15_release_notes(conn: sqlite3.Connection) -> None:
    for statement in release_note_tables(identity="INTEGER PRIMARY KEY", key="TEXT"):
        conn.execute(statement)


MIGRATIONS: list[Migration] = [
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
    ("0011_tallies", _v11_tallies),
    ("0012_document_kind_indexes", _v12_document_kind_indexes),
    ("0013_guid_keys", _v13_guid_keys),
    ("0014_receipts_by_document", _v14_receipts_by_document),
    ("0015_release_notes", _v15_release_notes),
]

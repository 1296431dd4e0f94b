"""Central's schema on PostgreSQL: the tables, indexes and maintained figures that the SQLite
migrations in central/store/schema.py arrive at, created in one step on a new database.

The same columns with the same meaning, so the store's SQL runs on both; what differs:

- `rowid` is an ordinary `bigint` column where the store reads SQLite's row number (documents,
  clearances: the number customs numbers are made from, the largest plus one when the insert
  gives none, as SQLite numbers rows; events: arrival order).
- Documents, receipts and events are partitioned by month (declarative range partitioning on the
  ISO-text time, `COLLATE "C"`, so ranges compare byte-wise). A `DEFAULT` partition takes any row
  whose month has no partition yet, so an insert never fails; `ensure_partitions` creates the
  current month's and the next one's at every start and every six hours. PostgreSQL requires the
  partition key in every unique key, so (kind, doc_key) and (edge_id, epoch, seq) are unique per month by
  their keys and across months by the write lock every transaction holds (central/store/postgres.py)
  and the store's read-before-insert; docs/scaling.md says what that means past one server.
- The park is in the keys of the tables a park's data lives in (feed, events, actuations, alerts,
  tallies), as Citus would distribute them (docs/scaling.md).
- The report's maintained figures (schema.py 0011) are kept by PL/pgSQL triggers built from the same
  SQL fragments: `LEAST` for SQLite's scalar `MIN`, `EXISTS` cast to integer where it is a value,
  `jsonb_path_query` for `json_each`.

Append new migrations to `PG_MIGRATIONS`; never edit one that has shipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from central.store.connection import Connection
from central.store.schema import _late_cancellation, _left, release_judgement, release_note_tables

log = logging.getLogger(__name__)

PgStep = Callable[[Connection], None]

_C = 'COLLATE "C"'

TABLES = [
    # jsonb refuses the escape \u0000 that JSON allows (PostgreSQL text holds no NUL): stored JSON is
    # read as jsonb with it made U+FFFD, as PgConnection stores a NUL in a text column
    """CREATE FUNCTION bondgate_jsonb(body text) RETURNS jsonb LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$ SELECT replace(body, '\\u0000', '\\ufffd')::jsonb $$""",
    """CREATE TABLE parks (
        park_id text PRIMARY KEY,
        name text NOT NULL,
        ems_nos text NOT NULL DEFAULT '[]',
        area_codes text NOT NULL DEFAULT '[]',
        created_at text NOT NULL
    )""",
    """CREATE TABLE tokens (
        token_id text PRIMARY KEY,
        token_hash text NOT NULL UNIQUE,
        role text NOT NULL,
        park_id text REFERENCES parks(park_id),
        name text NOT NULL,
        created_at text NOT NULL,
        revoked_at text,
        edge_id text,
        enterprise_codes text
    )""",
    f"""CREATE TABLE documents (
        rowid bigint NOT NULL,
        kind text NOT NULL,
        doc_key text NOT NULL,
        guid text NOT NULL,
        ebp_code text, order_no text, logistics_code text, logistics_no text,
        body text NOT NULL,
        version bigint NOT NULL,
        deleted integer NOT NULL DEFAULT 0,
        received_at text {_C} NOT NULL,
        PRIMARY KEY (kind, doc_key, received_at)
    ) PARTITION BY RANGE (received_at)""",
    "CREATE INDEX documents_rowid ON documents (rowid)",
    "CREATE INDEX documents_order ON documents (ebp_code, order_no, kind, received_at)",
    "CREATE INDEX documents_logistics ON documents (logistics_code, logistics_no, kind, received_at)",
    "CREATE INDEX documents_inventory_order ON documents (order_no) WHERE kind = 'CEB621'",
    "CREATE INDEX documents_inventory_logistics ON documents (logistics_no) WHERE kind = 'CEB621'",
    "CREATE INDEX documents_inventory_invt_no ON documents ((bondgate_jsonb(body) ->> 'invtNo'))"
    " WHERE kind = 'CEB621'",
    f"""CREATE TABLE receipts (
        id bigint GENERATED ALWAYS AS IDENTITY,
        kind text NOT NULL,
        doc_key text NOT NULL,
        guid text NOT NULL,
        key_fields text NOT NULL,
        return_status text NOT NULL,
        return_time text {_C} NOT NULL,           -- yyyyMMddHHmmssfff
        return_info text NOT NULL,
        PRIMARY KEY (id, return_time)
    ) PARTITION BY RANGE (return_time)""",
    "CREATE INDEX receipts_doc ON receipts (kind, doc_key)",
    """CREATE TABLE clearances (
        rowid bigint NOT NULL UNIQUE,
        clearance_id text PRIMARY KEY,
        park_id text REFERENCES parks(park_id),
        invt_no text UNIQUE,
        cop_no text, pre_no text,
        order_no text NOT NULL, ebp_code text NOT NULL, ebc_code text NOT NULL,
        logistics_code text NOT NULL, logistics_no text NOT NULL,
        gross_weight text NOT NULL, net_weight text NOT NULL,
        declared_value text NOT NULL,
        goods text NOT NULL,
        status text NOT NULL,
        cancelled integer NOT NULL DEFAULT 0,
        comparison text,
        risk text,
        version bigint NOT NULL,
        updated_at text NOT NULL,
        released integer NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX clearances_logistics ON clearances (logistics_code, logistics_no)",
    "CREATE INDEX clearances_park_status ON clearances (park_id, status)",
    "CREATE INDEX clearances_order ON clearances (order_no)",
    "CREATE INDEX clearances_logistics_no ON clearances (logistics_no)",
    "CREATE INDEX clearances_cop_no ON clearances (cop_no)",
    "CREATE INDEX clearances_awaiting_exit ON clearances (park_id, updated_at, clearance_id)"
    " WHERE status = '800' AND cancelled = 0 AND released = 0",
    """CREATE TABLE clearance_history (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        clearance_id text NOT NULL,
        from_status text, to_status text NOT NULL,
        action text NOT NULL, actor text NOT NULL, info text NOT NULL,
        at text NOT NULL
    )""",
    "CREATE INDEX clearance_history_id ON clearance_history (clearance_id)",
    """CREATE TABLE feed (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        park_id text NOT NULL,
        clearance_id text NOT NULL,
        record text NOT NULL,
        n bigint,
        chain text,
        checkpoint text
    )""",
    "CREATE UNIQUE INDEX feed_park_seq ON feed (park_id, seq)",
    """CREATE TABLE feed_heads (
        park_id text PRIMARY KEY,
        seq bigint NOT NULL,
        n bigint NOT NULL,
        chain text NOT NULL
    )""",
    """CREATE TABLE edges (
        edge_id text PRIMARY KEY,
        park_id text NOT NULL REFERENCES parks(park_id),
        last_seq bigint NOT NULL DEFAULT 0,
        last_hash text NOT NULL,
        last_seen text,
        last_heartbeat text,
        backlog bigint,
        epoch bigint NOT NULL DEFAULT 1,
        epoch_opened_at text
    )""",
    """CREATE TABLE edge_chains (
        park_id text NOT NULL,
        edge_id text NOT NULL,
        epoch bigint NOT NULL,
        last_seq bigint NOT NULL,
        last_hash text NOT NULL,
        opened_at text,
        closed_at text NOT NULL,
        closed_by text NOT NULL,
        reason text NOT NULL,
        PRIMARY KEY (edge_id, epoch)
    )""",
    f"""CREATE TABLE events (
        rowid bigint GENERATED ALWAYS AS IDENTITY,
        park_id text NOT NULL,
        edge_id text NOT NULL,
        epoch bigint NOT NULL DEFAULT 1,
        seq bigint NOT NULL,
        kind text NOT NULL,
        station text,
        occurred_at text NOT NULL,
        logistics_code text, logistics_no text,
        body text NOT NULL,
        prev_hash text NOT NULL,
        hash text NOT NULL,
        received_at text {_C} NOT NULL,
        uncleared integer,
        cancelled_late integer,
        repeat integer,
        PRIMARY KEY (park_id, edge_id, epoch, seq, received_at)
    ) PARTITION BY RANGE (received_at)""",
    "CREATE INDEX events_chain ON events (edge_id, epoch, seq)",
    "CREATE INDEX events_parcel ON events (logistics_code, logistics_no, kind)",
    "CREATE INDEX events_park_kind ON events (park_id, kind, occurred_at)",
    "CREATE INDEX events_uncleared ON events (park_id, occurred_at) WHERE uncleared = 1",
    "CREATE INDEX events_cancelled_late ON events (park_id, occurred_at) WHERE cancelled_late = 1",
    "CREATE INDEX events_repeat ON events (park_id, logistics_code, logistics_no) WHERE repeat = 1",
    """CREATE TABLE alerts (
        id bigint GENERATED ALWAYS AS IDENTITY,
        park_id text NOT NULL,
        edge_id text,
        kind text NOT NULL,
        detail text NOT NULL,
        created_at text NOT NULL,
        PRIMARY KEY (park_id, id)
    )""",
    "CREATE INDEX alerts_park ON alerts (park_id, created_at)",
    """CREATE TABLE release_actuations (
        edge_id text NOT NULL,
        decision_id text NOT NULL,
        park_id text NOT NULL,
        epoch bigint NOT NULL, seq bigint NOT NULL,
        logistics_code text, logistics_no text,
        occurred_at text NOT NULL,
        received_at text NOT NULL,
        actuation text,
        output text,
        detail text,
        actuated_at text,
        actuation_epoch bigint, actuation_seq bigint,
        PRIMARY KEY (edge_id, decision_id)
    )""",
    "CREATE INDEX release_actuations_state ON release_actuations (park_id, actuation, received_at)",
    "CREATE INDEX release_actuations_event ON release_actuations (edge_id, epoch, seq)",
    """CREATE TABLE guids (
        folded text PRIMARY KEY,
        guid text NOT NULL,
        kind text NOT NULL,
        digest text,
        taken_at text NOT NULL,
        doc_key text
    )""",
    """CREATE TABLE customs_receipts (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        clearance_id text NOT NULL,
        guid text NOT NULL,
        return_status text NOT NULL,
        return_time text NOT NULL,
        return_info text NOT NULL,
        state text NOT NULL,
        reason text NOT NULL,
        received_at text NOT NULL
    )""",
    "CREATE INDEX customs_receipts_clearance ON customs_receipts (clearance_id, state, return_time)",
    """CREATE TABLE tallies (
        park_id text NOT NULL, kind text NOT NULL, key text NOT NULL, n bigint NOT NULL,
        PRIMARY KEY (park_id, kind, key)
    )""",
]


# --- the maintained figures (schema.py 0011), as PL/pgSQL ------------------------------------------


def _pg(sql: str) -> str:
    """A fragment of schema.py's SQLite SQL in PostgreSQL's words: its scalar MIN is LEAST."""
    return sql.replace("MIN(", "LEAST(")


def _int(condition: str) -> str:
    return f"(({condition})::int)"


def _judgement(e: str) -> str:
    return _pg(release_judgement(e))


def _late(e: str) -> str:
    return f"(CASE WHEN {_judgement(e)} = 0 THEN {_int(_pg(_late_cancellation(e)))} ELSE 0 END)"


def _verdicts(e: str) -> str:
    return f"uncleared = {_judgement(e)}, cancelled_late = {_late(e)}"


def _released(c: str) -> str:
    return _int(_pg(_left(c)))


_UPSERT = " ON CONFLICT (park_id, kind, key) DO UPDATE SET n = tallies.n + excluded.n"
_CODES = "jsonb_path_query(bondgate_jsonb({body}), '$.codes[*] ? (@.type() == \"string\")', '{{}}', true)"


def _clearance_tally(row: str, sign: str) -> str:
    park = f"COALESCE({row}.park_id, '')"
    return (
        f"INSERT INTO tallies (park_id, kind, key, n) VALUES ({park}, 'status', {row}.status, {sign})"
        f"{_UPSERT};"
        f" INSERT INTO tallies (park_id, kind, key, n) SELECT {park}, 'cancelled', {row}.status, {sign}"
        f" WHERE {row}.cancelled <> 0{_UPSERT};"
        f" INSERT INTO tallies (park_id, kind, key, n) SELECT {park}, 'awaiting_exit', '', {sign}"
        f" WHERE {row}.status = '800' AND {row}.cancelled = 0 AND {row}.released = 0{_UPSERT};"
    )


@dataclass(frozen=True)
class Trigger:
    name: str
    timing: str  # e.g. "AFTER INSERT ON clearances"
    body: str  # PL/pgSQL statements
    when: str | None = None
    returns: str = "NULL"

    def function(self) -> str:
        return (
            f"CREATE OR REPLACE FUNCTION {self.name}() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN {self.body} RETURN {self.returns}; END $$"
        )

    def statements(self) -> list[str]:
        when = f" WHEN ({self.when})" if self.when else ""
        return [
            self.function(),
            f"CREATE TRIGGER {self.name} {self.timing} FOR EACH ROW{when} EXECUTE FUNCTION {self.name}()",
        ]


_HISTORY_PARCEL = "(SELECT {col} FROM clearances WHERE clearance_id = new.clearance_id)"
_HISTORY_PARK = "(SELECT COALESCE(park_id, '') FROM clearances WHERE clearance_id = new.clearance_id)"

TRIGGERS = [
    # a row inserted without its number gets SQLite's rowid: the largest plus one
    *(
        Trigger(
            f"{table}_numbered",
            f"BEFORE INSERT ON {table}",
            f"SELECT COALESCE(MAX(rowid), 0) + 1 INTO new.rowid FROM {table};",
            when="new.rowid IS NULL",
            returns="new",
        )
        for table in ("documents", "clearances")
    ),
    Trigger("clearances_tally_insert", "AFTER INSERT ON clearances", _clearance_tally("new", "1")),
    Trigger(
        "clearances_tally_update",
        "AFTER UPDATE OF status, cancelled, released, park_id ON clearances",
        _clearance_tally("old", "-1") + " " + _clearance_tally("new", "1"),
        when="old.status IS DISTINCT FROM new.status OR old.cancelled IS DISTINCT FROM new.cancelled"
        " OR old.released IS DISTINCT FROM new.released OR old.park_id IS DISTINCT FROM new.park_id",
    ),
    Trigger("clearances_tally_delete", "AFTER DELETE ON clearances", _clearance_tally("old", "-1")),
    Trigger(
        "clearances_released_insert",
        "AFTER INSERT ON clearances",
        f"IF {_pg(_left('new'))} THEN"
        " UPDATE clearances SET released = 1 WHERE clearance_id = new.clearance_id; END IF;",
    ),
    Trigger(
        "clearances_released_rekey",
        "AFTER UPDATE OF logistics_code, logistics_no, park_id ON clearances",
        f"UPDATE clearances SET released = {_released('new')} WHERE clearance_id = new.clearance_id;"
        f" UPDATE events SET {_verdicts('events')} WHERE kind = 'release' AND ("
        "(logistics_code = old.logistics_code AND logistics_no = old.logistics_no"
        " AND park_id = COALESCE(old.park_id, '')) OR (logistics_code = new.logistics_code"
        " AND logistics_no = new.logistics_no AND park_id = COALESCE(new.park_id, '')));",
        when="old.logistics_code IS DISTINCT FROM new.logistics_code"
        " OR old.logistics_no IS DISTINCT FROM new.logistics_no OR old.park_id IS DISTINCT FROM new.park_id",
    ),
    # a release event is judged and marked as it is inserted (the row is NEW: no self-match)
    Trigger(
        "events_release_judged",
        "BEFORE INSERT ON events",
        f"new.uncleared := {_judgement('new')}; new.cancelled_late := {_late('new')};"
        " new.repeat := (EXISTS (SELECT 1 FROM events o WHERE o.logistics_code = new.logistics_code"
        " AND o.logistics_no = new.logistics_no AND o.kind = 'release' AND o.park_id = new.park_id))::int;",
        when="new.kind = 'release'",
        returns="new",
    ),
    Trigger(
        "events_release_counted",
        "AFTER INSERT ON events",
        "UPDATE clearances SET released = 1 WHERE logistics_code = new.logistics_code"
        " AND logistics_no = new.logistics_no AND COALESCE(park_id, '') = new.park_id AND released = 0;"
        " INSERT INTO tallies (park_id, kind, key, n)"
        f" VALUES (new.park_id, 'release_hour', substr(LEAST(new.occurred_at, new.received_at), 1, 13), 1)"
        f"{_UPSERT};",
        when="new.kind = 'release'",
    ),
    Trigger(
        "actuations_withheld",
        "AFTER UPDATE OF actuation ON release_actuations",
        f"UPDATE clearances SET released = {_released('clearances')}"
        " WHERE logistics_code = new.logistics_code"
        " AND logistics_no = new.logistics_no AND COALESCE(park_id, '') = new.park_id;",
        when="(COALESCE(old.actuation, '') = 'withheld') <> (COALESCE(new.actuation, '') = 'withheld')",
    ),
    Trigger(
        "actuations_unreported_insert",
        "AFTER INSERT ON release_actuations",
        "INSERT INTO tallies (park_id, kind, key, n)"
        f" VALUES (new.park_id, 'actuation_unreported', '', 1){_UPSERT};",
        when="new.actuation IS NULL",
    ),
    Trigger(
        "actuations_unreported_update",
        "AFTER UPDATE OF actuation, park_id ON release_actuations",
        "INSERT INTO tallies (park_id, kind, key, n) SELECT old.park_id, 'actuation_unreported', '', -1"
        f" WHERE old.actuation IS NULL{_UPSERT};"
        " INSERT INTO tallies (park_id, kind, key, n) SELECT new.park_id, 'actuation_unreported', '', 1"
        f" WHERE new.actuation IS NULL{_UPSERT};",
        when="(old.actuation IS NULL) <> (new.actuation IS NULL) OR old.park_id IS DISTINCT FROM new.park_id",
    ),
    Trigger(
        "actuations_unreported_delete",
        "AFTER DELETE ON release_actuations",
        "INSERT INTO tallies (park_id, kind, key, n)"
        f" VALUES (old.park_id, 'actuation_unreported', '', -1){_UPSERT};",
        when="old.actuation IS NULL",
    ),
    Trigger(
        "events_discrepancy",
        "AFTER INSERT ON events",
        # a code listed twice counts twice, as SQLite's json_each gives it twice (one upsert per row
        # there; here one grouped row, since one statement may not update a row twice)
        "INSERT INTO tallies (park_id, kind, key, n) SELECT new.park_id, 'discrepancy', j #>> '{}', COUNT(*)"
        f" FROM {_CODES.format(body='new.body')} j GROUP BY 3{_UPSERT};",
        when="new.kind = 'discrepancy'",
    ),
    # A status change re-judges the parcel's release events. Most changes come before any release
    # (at intake), so the trigger looks first: an UPDATE of the partitioned events table opens every
    # month's partition even when it changes nothing (61 µs a history row on a new database, and
    # more every month), where the lookup reads one index entry per partition.
    Trigger(
        "history_rejudge",
        "AFTER INSERT ON clearance_history",
        "IF EXISTS (SELECT 1 FROM clearances c JOIN events e ON e.logistics_code = c.logistics_code"
        " AND e.logistics_no = c.logistics_no AND e.kind = 'release' AND e.park_id = COALESCE(c.park_id, '')"
        " WHERE c.clearance_id = new.clearance_id) THEN"
        f" UPDATE events SET {_verdicts('events')}"
        f" WHERE logistics_code = {_HISTORY_PARCEL.format(col='logistics_code')}"
        f" AND logistics_no = {_HISTORY_PARCEL.format(col='logistics_no')} AND kind = 'release'"
        f" AND park_id = {_HISTORY_PARK}; END IF;",
    ),
]
REPLACED_IN_0002 = ["history_rejudge"]

# Recomputes every maintained figure from the base tables (central/store/tallies.rebuild).
TALLIES_REBUILD = [
    f"UPDATE clearances SET released = {_released('clearances')}",
    f"UPDATE events SET {_verdicts('events')},"
    " repeat = (EXISTS (SELECT 1 FROM events o WHERE o.logistics_code = events.logistics_code"
    " AND o.logistics_no = events.logistics_no AND o.kind = 'release' AND o.park_id = events.park_id"
    " AND o.rowid < events.rowid))::int WHERE kind = 'release'",
    "DELETE FROM tallies",
    "INSERT INTO tallies (park_id, kind, key, n) SELECT COALESCE(park_id, ''), 'status', status, COUNT(*)"
    " FROM clearances GROUP BY 1, 3",
    "INSERT INTO tallies (park_id, kind, key, n) SELECT COALESCE(park_id, ''), 'cancelled', status, COUNT(*)"
    " FROM clearances WHERE cancelled <> 0 GROUP BY 1, 3",
    "INSERT INTO tallies (park_id, kind, key, n) SELECT COALESCE(park_id, ''), 'awaiting_exit', '', COUNT(*)"
    " FROM clearances WHERE status = '800' AND cancelled = 0 AND released = 0 GROUP BY 1",
    "INSERT INTO tallies (park_id, kind, key, n) SELECT park_id, 'release_hour',"
    " substr(LEAST(occurred_at, received_at), 1, 13), COUNT(*) FROM events WHERE kind = 'release'"
    " GROUP BY 1, 3",
    "INSERT INTO tallies (park_id, kind, key, n) SELECT park_id, 'actuation_unreported', '', COUNT(*)"
    " FROM release_actuations WHERE actuation IS NULL GROUP BY 1",
    "INSERT INTO tallies (park_id, kind, key, n) SELECT e.park_id, 'discrepancy', j #>> '{}', COUNT(*)"
    f" FROM events e, {_CODES.format(body='e.body')} j WHERE e.kind = 'discrepancy' GROUP BY 1, 3",
]


# --- monthly partitions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Partitioned:
    table: str
    column: str  # the partition key
    month_format: str  # how the key's text begins for a month (strftime)


PARTITIONED = [
    Partitioned("documents", "received_at", "%Y-%m"),  # ISO 8601
    Partitioned("events", "received_at", "%Y-%m"),  # ISO 8601
    Partitioned("receipts", "return_time", "%Y%m"),  # yyyyMMddHHmmssfff
]
MONTHS_AHEAD = 1


def _month(year: int, month: int) -> datetime:
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return datetime(year, month, 1, tzinfo=UTC)


def ensure_partitions(conn: Connection, now: datetime | None = None) -> list[str]:
    """Create each partitioned table's partitions for this month and `MONTHS_AHEAD` months ahead
    where missing; returns the partitions created. Few: a statement that cannot prune (intake's
    lookups by key cannot) plans every partition; the upkeep every six hours keeps a month ahead.
    A month whose rows went to the DEFAULT partition already (it had no partition of its own then)
    is left there and logged: PostgreSQL cannot attach a range the default partition holds rows of."""
    now = now or datetime.now(UTC)
    created: list[str] = []
    for spec in PARTITIONED:
        for offset in range(0, MONTHS_AHEAD + 1):
            start = _month(now.year, now.month + offset)
            end = _month(start.year, start.month + 1)
            name = f"{spec.table}_{start:%Y_%m}"
            exists = conn.execute("SELECT to_regclass(?) IS NOT NULL", (name,)).fetchone()[0]
            if exists:
                continue
            low, high = start.strftime(spec.month_format), end.strftime(spec.month_format)
            stray = conn.execute(
                f"SELECT 1 FROM {spec.table}_default WHERE {spec.column} >= ? AND {spec.column} < ? LIMIT 1",
                (low, high),
            ).fetchone()
            if stray is not None:
                log.warning("rows of a month are in the default partition", extra={"partition": name})
                continue
            conn.execute(
                f"CREATE TABLE {name} PARTITION OF {spec.table} FOR VALUES FROM ('{low}') TO ('{high}')"
            )
            created.append(name)
    return created


def _v1(conn: Connection) -> None:
    for statement in TABLES:
        conn.execute(statement)
    for spec in PARTITIONED:
        conn.execute(f"CREATE TABLE {spec.table}_default PARTITION OF {spec.table} DEFAULT")
    for trigger in TRIGGERS:
        for statement in trigger.statements():
            conn.execute(statement)


def _v2(conn: Connection) -> None:
    """history_rejudge looks for release events before it updates them (see TRIGGERS); the report's
    list of releases with no actuation report is read in its order from an index of just them (the
    state index gave them by time only, so the planner fetched and sorted every one: 32 ms for a
    park with 5,000, cold)."""
    for trigger in TRIGGERS:
        if trigger.name in REPLACED_IN_0002:
            conn.execute(trigger.function())
    conn.execute(
        "CREATE INDEX release_actuations_unreported ON release_actuations"
        " (park_id, received_at, edge_id, epoch, seq) WHERE actuation IS NULL"
    )


def _v3(conn: Connection) -> None:
    """Release notes and the vehicle registry (schema.py 0015)."""
    for statement in release_note_tables(
        identity="bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY", key=f"text {_C}"
    ):
        conn.execute(statement)


PG_MIGRATIONS: list[tuple[str, PgStep]] = [
    ("0001_initial", _v1),
    ("0002_rejudge_and_unreported", _v2),
    ("0003_release_notes", _v3),
]

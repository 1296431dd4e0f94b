"""Central lookups as the database grows: p50/p99 of each lookup an officer or a sender makes, and
the intake rate with the large database already stored (issue 11 J).

    .venv/bin/python bench/central_lookup.py                       # 10,000 / 100,000 / 1,000,000
    .venv/bin/python bench/central_lookup.py --sizes 1000,10000 --runs 1 --lookups 200

For each size (clearances in park P1, each with its four documents, 3 history rows, 3 feed records,
7 receipts and, for most, a release event, its actuation report and sometimes a discrepancy), on a
copy of a cached database:

lookups   in-process (the route functions the API calls, on the server's own Database) and over HTTP
          (one keep-alive client against a real `bondgate central serve` subprocess), each with random
          keys over the whole dataset: a first pass of --lookups keys (reported as "first pass p99"),
          then the measured pass of as many different keys. Every answer is checked (the parcel is
          found, with its four documents and its history), so a broken generator cannot look fast.
            by_logistics   GET /api/v1/clearances?logisticsNo=   (clearance, documents, history, receipts)
            by_order       GET /api/v1/clearances?orderNo=
            by_invt        GET /api/v1/clearances?invtNo=
            pending        GET /api/v1/clearances?…= of a parcel whose set is incomplete (no order)
            pending_query  central.store.documents.pending_inventories() alone (in-process only)
            receipts       GET /api/v1/documents/{guid}/receipts
            report         GET /api/v1/parks/P1/report (at most --lookups calls or --report-budget s)
intake    the same new parcels through central.intake.submit() and through POST /api/v1/documents,
          on the large database and on an empty one, in the same run; the ratio large/empty.

Goals (issue 11 J): p99 ≤ 5 ms at 1,000,000 and ≤ 1.5× the p99 at the smallest size, for each
lookup and the report; intake with the large database stored ≥ 0.8× the rate on an empty one.

How the databases are built (cached under bench/.cache/lookup-<size>-<schema>/, gitignored):
a template of 2,500 parcels (plus 25 incomplete sets) goes through the real intake
(`central.intake.submit`; half in simulate mode, half in customs mode with real CEB622 receipts
through `apply_customs_receipts`) and its edge events through the real event store
(`central.events.ingest_events`, hash-chained). Those rows are then copied with bulk SQL
(INSERT … SELECT per copy, every business key, guid, number and decision id rewritten, times
shifted so the park releases a steady 20,000 parcels a day), with the secondary indexes dropped
during the copy and recreated from their own stored SQL. Then `central.store.tallies.rebuild` runs
when that module exists, and the counts are checked (tables and the park report's totals).
Copied feed records keep their template's signature and chain, so they do not verify; this bench
does not read the feed.

--backend postgresql (or both: SQLite's tables, then PostgreSQL's, size by size in the same run) runs
the same lookups and intake with central on PostgreSQL 15, in a cluster of the benches' own
(bench/pg_server.py) with durable commits by default (--pg-fsync off for testkit's settings,
--pg-set NAME=VALUE for any other server setting). Its database of each size is loaded once from
the SQLite one (the same rows, by COPY, in the partitions of the months they span; the report's
tallies recomputed by `tallies.rebuild`; then VACUUM ANALYZE, as autovacuum would leave a table in
service) and kept in the cluster; each invocation works on a copy (CREATE DATABASE … TEMPLATE).
The same checks run against it before timing.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench import pg_server  # noqa: E402
from bench.central_process import serve  # noqa: E402
from bench.machine import machine  # noqa: E402
from central.api.routes import clearances as clearance_routes  # noqa: E402
from central.api.routes import documents as document_routes  # noqa: E402
from central.api.routes import parks as park_routes  # noqa: E402
from central.auth import Role, authenticate, create_token  # noqa: E402
from central.ceb.documents import CustomsReceipt, DocKind  # noqa: E402
from central.ceb.stamps import return_time  # noqa: E402
from central.config import CentralSettings, ClearanceMode  # noqa: E402
from central.customs_receipts import apply_customs_receipts  # noqa: E402
from central.events import ingest_events  # noqa: E402
from central.intake import submit  # noqa: E402
from central.keys import load_or_create_key  # noqa: E402
from central.platform import Platform  # noqa: E402
from central.reports import park_report  # noqa: E402
from central.store import documents as dstore  # noqa: E402
from central.store.db import Database, open_database  # noqa: E402
from central.store.parks import upsert_park  # noqa: E402
from central.store.schema import MIGRATIONS  # noqa: E402
from kernel.timefmt import iso, utc_now  # noqa: E402
from kernel.wire import GENESIS_HASH, Event, EventBody, EventKind, chain_event  # noqa: E402
from testkit import factories as decl  # noqa: E402

try:  # maintained counters for the report (migration 0011); absent before that lands
    from central.store import tallies  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the tree
    tallies = None

CACHE = ROOT / "bench" / ".cache"
GENERATOR = 2  # bump when the generated data changes, so caches are rebuilt
TEMPLATE = 2500  # parcels through the real intake; every size is a multiple of it
PER_DAY = 20_000  # parcels the park clears and releases a day (sets the time span of the data)
DT = 86_400 / PER_DAY  # seconds between parcels
PARKS = {
    "P1": ("Park One", [decl.DEFAULT_EMS_NO], [decl.DEFAULT_AREA_CODE]),
    "P2": ("Park Two", [decl.OTHER_EMS_NO], [decl.OTHER_AREA_CODE]),
}
EDGE = "edge-p1"
BIG_TABLES = (
    "documents",
    "receipts",
    "guids",
    "clearances",
    "clearance_history",
    "feed",
    "customs_receipts",
    "events",
    "release_actuations",
)
KINDS = ("by_logistics", "by_order", "by_invt", "pending", "pending_query", "receipts", "report")
HTTP_KINDS = tuple(k for k in KINDS if k != "pending_query")
GOAL_P99_MS = 5.0
GOAL_GROWTH = 1.5
GOAL_INTAKE = 0.8


# --- the parcels: which template parcel gets what ---------------------------------------------------


def released(s: int) -> bool:
    return s % 20 != 0  # 95% have left the park


def actuation_reported(s: int) -> bool:
    return released(s) and s % 20 != 1  # of those, all but 1 in 20 have their read-back reported


def discrepancy(s: int) -> bool:
    return s % 25 == 7  # 4% were held once (re-weighed), then released


def heartbeat(s: int) -> bool:
    return s % 50 == 0


def customs_mode(s: int) -> bool:
    return s % 2 == 0  # half through customs receipts (CEB622), half simulated


def pending_invt_no(n: int) -> str:
    """A sender-given invtNo on an inventory whose set is incomplete."""
    return f"64092099I{n:09d}"


def decision_id(n: int) -> str:
    return f"dec-{n:012d}"


_GUID_KINDS = {DocKind.ORDER: 311, DocKind.PAYMENT: 411, DocKind.WAYBILL: 511, DocKind.INVENTORY: 621}


def copy_guid(kind: DocKind, n: int) -> str:
    """The guid of parcel n's document in a copy: unique by (kind, n), scattered like a UUID's.
    The SQL in `_NMAP` computes the same."""
    c = _GUID_KINDS[kind]
    a = (n * 2654435761 + c * 40503) % 4294967296
    return f"{a:08X}-{c:04X}-5{n % 4096:03X}-{32768 + (n * 40503) % 16384:04X}-{n:012X}"


# --- settings, tokens, the server ------------------------------------------------------------------


def _settings(directory: Path, database: Path | str, mode: ClearanceMode = ClearanceMode.SIMULATE) -> Path:
    config = directory / "central.toml"
    config.write_text(
        f'database = "{database}"\nsigning_key = "{directory / "feed.key"}"\nlog_level = "WARNING"\n'
        f'mode = "{mode.value}"\n[risk]\nsampling_rate = 0\n',
        encoding="utf-8",
    )
    return config


def settings_for(
    database: Path | str, key: Path, mode: ClearanceMode = ClearanceMode.SIMULATE
) -> CentralSettings:
    return CentralSettings(database=database, signing_key=key, mode=mode, risk={"sampling_rate": 0})  # type: ignore[arg-type]


def seed(db: Database) -> dict[str, str]:
    """Both parks and a token of each role this bench uses (the tests' seed, without importing tests)."""
    for park_id, (name, ems, areas) in PARKS.items():
        upsert_park(db, park_id=park_id, name=name, ems_nos=ems, area_codes=areas, now=iso(utc_now()))
    return {
        "officer": create_token(db, role=Role.OFFICER, name="officer")[0],
        "enterprise": create_token(
            db, role=Role.ENTERPRISE, name="shop", enterprise_codes=list(decl.ENTERPRISE_CODES)
        )[0],
        "edge": create_token(db, role=Role.EDGE, name=EDGE, park_id="P1", edge_id=EDGE)[0],
    }


# --- the template: real intake, real customs receipts, real events ---------------------------------


@dataclass
class Shape:
    """How a database of `size` clearances is made of copies of the template."""

    size: int
    template: int  # clearances per copy (T)

    @property
    def pending(self) -> int:  # incomplete sets per copy (P)
        return max(1, self.template // 100)

    @property
    def stride(self) -> int:  # parcel numbers per copy (S = T + P)
        return self.template + self.pending

    @property
    def copies(self) -> int:  # K
        return self.size // self.template

    def parcel(self, k: int, s: int) -> int:
        return s + k * self.stride


def _at(base: datetime, s: float) -> datetime:
    return base + timedelta(seconds=s * DT)


def build_template(db: Database, key_path: Path, shape: Shape, base: datetime) -> dict[int, int]:
    """Parcels 1..T (complete sets) and T+1..S (no order: pending) through the real intake, and the
    edge's events through the real event store. Returns each template event's parcel (seq → s)."""
    key = load_or_create_key(key_path)
    sim = Platform(db=db, key=key, settings=settings_for(db.path, key_path))
    customs = Platform(db=db, key=key, settings=settings_for(db.path, key_path, ClearanceMode.CUSTOMS))
    T, S = shape.template, shape.stride
    step = 25
    for first in range(1, T + 1, step):
        now = _at(base, first)
        sets = decl.document_set(min(step, T + 1 - first), start=first)
        for platform_, group in (
            (sim, [x for x in sets if not customs_mode(int(x.order.orderNo[-10:]))]),
            (customs, [x for x in sets if customs_mode(int(x.order.orderNo[-10:]))]),
        ):
            if group:
                submit(platform_, [d for x in group for d in x.documents], actor="bench", now=now)
        _customs_receipts(customs, [x for x in sets if customs_mode(int(x.order.orderNo[-10:]))], now)
    for s in range(T + 1, S + 1):  # inventory, payment and waybill, but the order never came
        parcel = decl.document_set(1, start=s)[0]
        inventory = parcel.inventory.model_copy(update={"invtNo": pending_invt_no(s)})
        submit(sim, [parcel.payment, parcel.waybill, inventory], actor="bench", now=_at(base, s))
    return _template_events(db, shape, base)


def _customs_receipts(platform_: Platform, sets: list[decl.DocumentSet], now: datetime) -> None:
    """Customs answers each inventory: 399 after 5 minutes, 800 after 10 (CEB622, real apply)."""
    if not sets:
        return
    conn = platform_.db.reader()
    rows = {
        r["order_no"]: r
        for r in conn.execute(
            f"SELECT order_no, invt_no, pre_no, cop_no FROM clearances WHERE order_no IN"
            f" ({','.join('?' * len(sets))})",
            [x.order.orderNo for x in sets],
        )
    }
    for status, minutes, info in (("399", 5, "审核通过"), ("800", 10, "放行")):
        at = now + timedelta(minutes=minutes)
        receipts = []
        for x in sets:
            row = rows[x.order.orderNo]
            receipts.append(
                CustomsReceipt.model_validate(
                    {
                        "guid": x.inventory.guid,
                        "customsCode": decl.CUSTOMS_CODE,
                        "ebpCode": decl.EBP_CODE,
                        "ebcCode": decl.EBC_CODE,
                        "agentCode": decl.AGENT_CODE,
                        "copNo": row["cop_no"],
                        "preNo": row["pre_no"],
                        "invtNo": row["invt_no"],
                        "returnStatus": status,
                        "returnTime": return_time(at),
                        "returnInfo": info,
                    }
                )
            )
        outcomes = apply_customs_receipts(platform_, receipts, actor="customs", now=at)
        refused = [o for o in outcomes if not o.applied]
        if refused:
            raise SystemExit(f"template: customs receipt not applied: {refused[0]}")


def _template_events(db: Database, shape: Shape, base: datetime) -> dict[int, int]:
    """The park edge's chain for the template parcels, in time order, through ingest_events."""
    specs: list[tuple[datetime, int, EventKind, EventBody]] = []
    for s in range(1, shape.template + 1):
        t = _at(base, s) + timedelta(minutes=40)
        parcel = {"logisticsCode": decl.LOGISTICS_CODE, "logisticsNo": decl.logistics_no(s)}
        if discrepancy(s):
            body = EventBody(**parcel, verdict="HOLD", codes=["WEIGHT_MISMATCH"], weight_kg="0.91")
            specs.append((t - timedelta(minutes=2), s, EventKind.DISCREPANCY, body))
        if released(s):
            body = EventBody(**parcel, verdict="RELEASE", record_version=3, decision_id=decision_id(s))
            specs.append((t, s, EventKind.RELEASE, body))
        if actuation_reported(s):
            body = EventBody(
                **parcel,
                verdict="RELEASE",
                decision_id=decision_id(s),
                actuation="confirmed",
                output="diverter_left",
                detail="coil 1 read back on",
            )
            specs.append((t + timedelta(seconds=1), s, EventKind.ACTUATION, body))
        if heartbeat(s):
            specs.append((t + timedelta(seconds=2), s, EventKind.HEARTBEAT, EventBody(backlog=0)))
    specs.sort(key=lambda x: x[0])
    events: list[Event] = []
    parcel_of: dict[int, int] = {}
    prev = GENESIS_HASH
    for seq, (at, s, kind, body) in enumerate(specs, start=1):
        event = chain_event(
            prev, edge_id=EDGE, seq=seq, kind=kind, station="line-1", occurred_at=at, body=body
        )
        events.append(event)
        parcel_of[seq] = s
        prev = event.hash
    for i in range(0, len(events), 500):
        batch = events[i : i + 500]
        result = ingest_events(
            db, park_id="P1", edge_id=EDGE, events=batch, now=batch[-1].occurred_at + timedelta(seconds=2)
        )
        if result.refused or result.stored != len(batch):
            raise SystemExit(f"template events not stored: {result}")
    return parcel_of


# --- the copies: bulk SQL ----------------------------------------------------------------------------

# parcel n of copy k, from template parcel s: its new keys (SQL twin of the Python key functions).
# invtNo and preNo carry the clearance's and the inventory's rowid, as intake numbers them; copy k's
# rows are inserted in template order, so its rowids are the template's plus k × the template's rows,
# and a parcel taken after the copies gets a number no copy holds.
_NMAP = """
INSERT INTO nmap (k, s, n, shift, cid, order_no, logistics_no, pay_no, cop_no, g311, g411, g511, g621,
                  invt_no, pre_no, decision)
SELECT c.k, m.s, c.k * :stride + m.s, c.k * :shift,
       :ebp || '|' || printf('BGORDER%010d', c.k * :stride + m.s),
       printf('BGORDER%010d', c.k * :stride + m.s), printf('BGL%012d', c.k * :stride + m.s),
       printf('PAY%014d', c.k * :stride + m.s), printf('BGCOP%010d', c.k * :stride + m.s),
       {g311}, {g411}, {g511}, {g621},
       CASE WHEN m.s <= :template
            THEN substr(m.invt_no, 1, 9)
                 || printf('%09d', CAST(substr(m.invt_no, 10) AS INTEGER) + c.k * :template)
            ELSE printf('64092099I%09d', c.k * :stride + m.s) END,
       substr(m.pre_no, 1, 9) || printf('%09d', CAST(substr(m.pre_no, 10) AS INTEGER) + c.k * :documents),
       printf('dec-%012d', c.k * :stride + m.s)
FROM copies c, tpl_map m
"""


def _guid_sql(c: int) -> str:
    n = "(c.k * :stride + m.s)"
    return (
        f"printf('%08X-%04X-5%03X-%04X-%012X', ({n} * 2654435761 + {c * 40503}) % 4294967296, {c},"
        f" {n} % 4096, 32768 + ({n} * 40503) % 16384, {n})"
    )


_KEYS = ("cid", "order_no", "logistics_no", "pay_no", "cop_no", "g311", "g411", "g511", "g621")
_KEYS += ("invt_no", "pre_no", "decision")


def _rw(column: str) -> str:
    """Every key of the template parcel in `column`, replaced by the copy's."""
    expr = column
    for k in _KEYS[1:]:  # cid is ebpCode|orderNo: the orderNo replacement covers it
        expr = f"replace({expr}, m.{k}, nm.{k})"
    return expr


def _shift(column: str) -> str:
    """A stored ISO time (…THH:MM:SS.ffffffZ) moved on by the copy's whole seconds."""
    return (
        f"CASE WHEN {column} IS NULL THEN NULL ELSE strftime('%Y-%m-%dT%H:%M:%S', substr({column}, 1, 19),"
        f" '+' || nm.shift || ' seconds') || substr({column}, 20) END"
    )


# per table: how a template row finds its parcel (a join onto tpl_map m), which columns are keys or
# bodies (rewritten), times (shifted), sequence numbers (moved on by the copy), or left to SQLite
_TABLES: dict[str, dict[str, Any]] = {
    "documents": {
        "join": "JOIN tpl_map m ON m.order_no = x.order_no",
        "rewrite": {"doc_key", "guid", "order_no", "logistics_no", "body"},
        "times": {"received_at"},
    },
    "receipts": {
        "join": "JOIN tpl_guid g ON g.guid = x.guid JOIN tpl_map m ON m.s = g.s",
        "rewrite": {"doc_key", "guid", "key_fields", "return_info"},
        "auto": {"id"},
    },
    "guids": {
        "join": "JOIN tpl_guid g ON g.guid = x.guid JOIN tpl_map m ON m.s = g.s",
        "rewrite": {"guid", "folded", "doc_key"},
        "times": {"taken_at"},
    },
    "clearances": {
        "join": "JOIN tpl_map m ON m.order_no = x.order_no",
        "rewrite": {"clearance_id", "invt_no", "cop_no", "pre_no", "order_no", "logistics_no"},
        "times": {"updated_at"},
    },
    "clearance_history": {
        "join": "JOIN tpl_map m ON m.cid = x.clearance_id",
        "rewrite": {"clearance_id", "info"},
        "times": {"at"},
        "auto": {"id"},
    },
    "feed": {
        "join": "JOIN tpl_map m ON m.cid = x.clearance_id",
        "rewrite": {"clearance_id", "record"},
        "auto": {"seq"},
        "moved": {"n": ":feed"},
    },
    "customs_receipts": {
        "join": "JOIN tpl_map m ON m.cid = x.clearance_id",
        "rewrite": {"clearance_id", "guid", "reason"},
        "times": {"received_at"},
        "auto": {"id"},
    },
    "events": {
        "join": "JOIN tpl_event e ON e.seq = x.seq JOIN tpl_map m ON m.s = e.s",
        "rewrite": {"logistics_no", "body"},
        "times": {"occurred_at", "received_at"},
        "moved": {"seq": ":events"},
    },
    "release_actuations": {
        "join": "JOIN tpl_map m ON m.decision = x.decision_id",
        "rewrite": {"decision_id", "logistics_no", "detail"},
        "times": {"occurred_at", "received_at", "actuated_at"},
        "moved": {"seq": ":events", "actuation_seq": ":events"},
    },
}


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def replicate(db_path: Path, shape: Shape, parcel_of: dict[int, int]) -> dict[str, float]:
    """Copies 1..K-1 of the template, by bulk SQL, secondary indexes dropped and recreated."""
    timings: dict[str, float] = {}
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")  # 1 GB, for the index builds
    conn.execute("PRAGMA temp_store=MEMORY")
    S, K = shape.stride, shape.copies
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    conn.execute(
        "CREATE TEMP TABLE tpl_map (s INTEGER PRIMARY KEY, cid, order_no, logistics_no, pay_no, cop_no,"
        " g311, g411, g511, g621, invt_no, pre_no, decision)"
    )
    clearance_keys = {
        r[0]: (r[1], r[2]) for r in conn.execute("SELECT order_no, invt_no, pre_no FROM clearances")
    }
    pending_pre = {
        r[0]: r[1]
        for r in conn.execute(
            "SELECT order_no, json_extract(body, '$.preNo') FROM documents WHERE kind = 'CEB621'"
        )
    }
    rows = []
    for s in range(1, S + 1):
        o = decl.order_no(s)
        invt, pre = clearance_keys.get(o) or (pending_invt_no(s), pending_pre[o])
        rows.append(
            (
                s,
                f"{decl.EBP_CODE}|{o}",
                o,
                decl.logistics_no(s),
                decl.pay_transaction_id(s),
                decl.cop_no(s),
                *(decl.guid(kind, s) for kind in _GUID_KINDS),
                invt,
                pre,
                decision_id(s),
            )
        )
    conn.executemany(f"INSERT INTO tpl_map VALUES ({','.join('?' * 13)})", rows)
    for column in ("cid", "order_no", "decision"):
        conn.execute(f"CREATE INDEX temp.tpl_map_{column} ON tpl_map ({column})")
    conn.execute("CREATE TEMP TABLE tpl_guid (guid TEXT PRIMARY KEY, s INTEGER)")
    conn.executemany("INSERT INTO tpl_guid VALUES (?, ?)", [(r[6 + i], r[0]) for r in rows for i in range(4)])
    conn.execute("CREATE TEMP TABLE tpl_event (seq INTEGER PRIMARY KEY, s INTEGER)")
    conn.executemany("INSERT INTO tpl_event VALUES (?, ?)", sorted(parcel_of.items()))
    conn.execute("CREATE TEMP TABLE copies (k INTEGER PRIMARY KEY)")
    conn.executemany("INSERT INTO copies VALUES (?)", [(k,) for k in range(1, K)])
    conn.execute(
        "CREATE TEMP TABLE nmap (k INTEGER, s INTEGER, n INTEGER, shift INTEGER, cid, order_no,"
        " logistics_no, pay_no, cop_no, g311, g411, g511, g621, invt_no, pre_no, decision,"
        " PRIMARY KEY (k, s))"
    )
    shift = round(S * DT)
    docs = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    if conn.execute("SELECT MAX(rowid) FROM documents").fetchone()[0] != docs:
        raise SystemExit("template: documents are not numbered 1..n")
    if conn.execute("SELECT MAX(rowid) FROM clearances").fetchone()[0] != shape.template:
        raise SystemExit("template: clearances are not numbered 1..n")
    conn.execute(
        _NMAP.format(**{f"g{c}": _guid_sql(c) for c in _GUID_KINDS.values()}),
        {"stride": S, "shift": shift, "ebp": decl.EBP_CODE, "template": shape.template, "documents": docs},
    )
    # each table's template rows with their parcel, in stored order
    template_counts = {}
    for table, spec in _TABLES.items():
        conn.execute(
            f"CREATE TEMP TABLE tpl_{table} AS SELECT m.s AS s_, x.* FROM {table} x {spec['join']}"
            f"{_stored_order(conn, table)}"
        )
        got = conn.execute(f"SELECT COUNT(*) FROM tpl_{table}").fetchone()[0]
        total = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        if got != total:
            raise SystemExit(f"template: {total - got} of {total} rows of {table} are not tied to a parcel")
        template_counts[table] = total
    conn.execute("COMMIT")
    timings["template maps"] = time.perf_counter() - t0

    indexes = conn.execute(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        f" AND tbl_name IN ({','.join('?' * len(BIG_TABLES))})",
        BIG_TABLES,
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    # the triggers that keep the report's figures (schema 0011) would judge every copied row against
    # tables without their indexes: dropped too, recreated after, then the figures rebuilt at once
    triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
    for name, _ in triggers:
        conn.execute(f"DROP TRIGGER {name}")
    feed_n = conn.execute("SELECT COUNT(*) FROM feed").fetchone()[0]
    events_n = conn.execute("SELECT MAX(seq) FROM events WHERE edge_id = ?", (EDGE,)).fetchone()[0]
    moved = {":feed": feed_n, ":events": events_n}
    for table, spec in _TABLES.items():
        t1 = time.perf_counter()
        columns = [c for c in _columns(conn, table) if c not in spec.get("auto", set())]
        exprs = []
        for c in columns:
            if c in spec.get("rewrite", set()):
                exprs.append(_rw(f"x.{c}"))
            elif c in spec.get("times", set()):
                exprs.append(_shift(f"x.{c}"))
            elif c in spec.get("moved", {}):
                exprs.append(f"x.{c} + nm.k * {moved[spec['moved'][c]]}")
            else:
                exprs.append(f"x.{c}")
        sql = (
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(exprs)}"
            f" FROM tpl_{table} x JOIN tpl_map m ON m.s = x.s_ JOIN nmap nm ON nm.k = ? AND nm.s = x.s_"
            f" ORDER BY x.rowid"
        )
        conn.execute("BEGIN")
        for k in range(1, K):
            conn.execute(sql, (k,))
        conn.execute("COMMIT")
        timings[f"copy {table}"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    conn.execute("BEGIN")
    for _name, sql in [*indexes, *triggers]:
        conn.execute(sql)
    conn.execute("COMMIT")
    timings["recreate indexes"] = time.perf_counter() - t1
    # the heads that follow the tables: the edge's chain and the park's feed
    conn.execute("BEGIN")
    conn.execute(
        "UPDATE edges SET last_seq = (SELECT MAX(seq) FROM events WHERE edge_id = :e),"
        " last_hash = (SELECT hash FROM events WHERE edge_id = :e ORDER BY seq DESC LIMIT 1)"
        " WHERE edge_id = :e",
        {"e": EDGE},
    )
    conn.execute(
        "UPDATE feed_heads SET seq = (SELECT MAX(seq) FROM feed WHERE park_id = 'P1'),"
        " n = (SELECT COUNT(*) FROM feed WHERE park_id = 'P1'),"
        " chain = (SELECT chain FROM feed WHERE park_id = 'P1' ORDER BY seq DESC LIMIT 1)"
        " WHERE park_id = 'P1'"
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    return timings


def _stored_order(conn: sqlite3.Connection, table: str) -> str:
    """ORDER BY of a table's rows as stored: its rowid, or for a WITHOUT ROWID table none needed."""
    try:
        conn.execute(f"SELECT rowid FROM {table} LIMIT 0")
    except sqlite3.OperationalError:
        return ""
    return " ORDER BY x.rowid"


# --- the cache -------------------------------------------------------------------------------------


def schema_tag() -> str:
    """Names the cached databases: the migrations, and the schema module's text (a migration not yet
    shipped may still change, its triggers with it), the generator and the template."""
    names = ",".join(name for name, _ in MIGRATIONS)
    schema = hashlib.sha256((ROOT / "central" / "store" / "schema.py").read_bytes()).hexdigest()
    text = f"{names}|{schema}|{GENERATOR}|{TEMPLATE}|tallies={tallies is not None}"
    return hashlib.sha256(text.encode()).hexdigest()[:10]


@dataclass
class Built:
    directory: Path  # the SQLite cache's folder (its feed.key, on PostgreSQL too)
    database: Path | str  # the SQLite file, or a PostgreSQL URL
    meta: dict[str, Any]

    @property
    def shape(self) -> Shape:
        return Shape(self.meta["size"], self.meta["template"])


def database_for(size: int) -> Built:
    """The cached database of `size` clearances, built once (see the module docstring)."""
    template = min(TEMPLATE, size)
    if size % template:
        raise SystemExit(f"size {size:,} is not a multiple of the template ({template:,} parcels)")
    directory = CACHE / f"lookup-{size}-{schema_tag()}"
    done = directory / "done.json"
    if done.exists():
        return Built(directory, directory / "central.db", json.loads(done.read_text()))
    for old in CACHE.glob(f"lookup-{size}-*"):
        shutil.rmtree(old, ignore_errors=True)  # built for an older schema or generator
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    shape = Shape(size, template)
    database = directory / "central.db"
    print(f"building {size:,} clearances into {directory} (once) …", flush=True)
    started = time.perf_counter()
    base = (utc_now() - timedelta(seconds=shape.copies * shape.stride * DT + 3600)).replace(microsecond=0)
    db = open_database(database)
    tokens = seed(db)
    parcel_of = build_template(db, directory / "feed.key", shape, base)
    db.close()
    took_template = time.perf_counter() - started
    print(
        f"  template: {shape.stride:,} parcels through intake, events through the event store,"
        f" {took_template:.1f} s",
        flush=True,
    )
    timings = replicate(database, shape, parcel_of) if shape.copies > 1 else {}
    for step, seconds in timings.items():
        print(f"  {step}: {seconds:.1f} s", flush=True)
    t1 = time.perf_counter()
    db = open_database(database)
    rebuilt = False
    if tallies is not None and hasattr(tallies, "rebuild"):
        with db.write() as conn:
            tallies.rebuild(conn)
        rebuilt = True
    db._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    took = time.perf_counter() - started
    meta = {
        "size": size,
        "template": template,
        "copies": shape.copies,
        "tokens": tokens,
        "base": iso(base),
        "tallies_rebuilt": rebuilt,
        "tallies_s": round(time.perf_counter() - t1, 1),
        "template_invt": [
            r[0]
            for r in sqlite3.connect(database).execute(
                "SELECT invt_no FROM clearances WHERE order_no <= ? ORDER BY order_no",
                (decl.order_no(template),),
            )
        ],
        "build_s": round(took, 1),
        "steps_s": {"template": round(took_template, 1), **{k: round(v, 1) for k, v in timings.items()}},
    }
    meta["counts"] = check_database(database, shape, meta)
    meta["bytes"] = database.stat().st_size
    done.write_text(json.dumps(meta))
    print(f"  built in {took:.1f} s, {meta['bytes'] / 1e9:.2f} GB; counts checked", flush=True)
    return Built(directory, database, meta)


def expected_counts(shape: Shape) -> dict[str, int]:
    """What the generator must have produced, from the rules above (not from the database)."""
    T, P, K = shape.template, shape.pending, shape.copies
    s_all = range(1, T + 1)
    rel = sum(released(s) for s in s_all)
    act = sum(actuation_reported(s) for s in s_all)
    disc = sum(discrepancy(s) for s in s_all)
    hb = sum(heartbeat(s) for s in s_all)
    customs = sum(customs_mode(s) for s in s_all)
    return {
        "clearances": K * T,
        "released_800": K * T,
        "documents": K * (4 * T + 3 * P),
        "guids": K * (4 * T + 3 * P),
        "receipts": K * (7 * T + 3 * P),
        "clearance_history": K * 3 * T,
        # one feed record per clearance per transaction: a simulated parcel's one message (at 800),
        # a customs one's intake (120) and its two receipt messages (399, 800)
        "feed": K * ((T - customs) + 3 * customs),
        "customs_receipts": K * 2 * customs,
        "events": K * (rel + act + disc + hb),
        "release_events": K * rel,
        "release_actuations": K * rel,
        "actuation_confirmed": K * act,
        "discrepancy_events": K * disc,
        "pending_inventories": K * P,
    }


def check_database(database: Path | str, shape: Shape, meta: dict[str, Any]) -> dict[str, int]:
    """Counts from the database against the generator's own arithmetic, and the park report's totals
    against the same (so maintained counters, if any, agree with the base tables)."""
    want = expected_counts(shape)
    db = open_database(database)
    conn = db.reader()
    one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
    got = {t: one(f"SELECT COUNT(*) FROM {t}") for t in BIG_TABLES}
    got["released_800"] = one("SELECT COUNT(*) FROM clearances WHERE status = '800' AND park_id = 'P1'")
    got["release_events"] = one("SELECT COUNT(*) FROM events WHERE kind = 'release'")
    got["actuation_confirmed"] = one("SELECT COUNT(*) FROM release_actuations WHERE actuation = 'confirmed'")
    got["discrepancy_events"] = one("SELECT COUNT(*) FROM events WHERE kind = 'discrepancy'")
    got["pending_inventories"] = one(
        "SELECT COUNT(*) FROM documents d LEFT JOIN clearances c ON c.clearance_id = d.doc_key"
        " WHERE d.kind = 'CEB621' AND c.clearance_id IS NULL"
    )
    distinct = {
        "invt_no": one("SELECT COUNT(DISTINCT invt_no) FROM clearances"),
        "logistics_no": one("SELECT COUNT(DISTINCT logistics_no) FROM clearances"),
        "guid": one("SELECT COUNT(DISTINCT guid) FROM documents"),
    }
    got = {k: got[k] for k in want}
    if got != want:
        diff = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
        raise SystemExit(f"generated database is wrong (got, want): {diff}")
    if distinct["invt_no"] != want["clearances"] or distinct["logistics_no"] != want["clearances"]:
        raise SystemExit(f"keys are not unique: {distinct}")
    if distinct["guid"] != want["documents"]:
        raise SystemExit(f"guids are not unique: {distinct}")
    report = park_report(db, park_id="P1", now=utc_now(), limit=10, actuation_grace=timedelta(minutes=5))
    db.close()
    K, T = shape.copies, shape.template
    r = {
        "total": report.clearances.total,
        "by_status": report.clearances.by_status,
        "cleared_not_out": report.cleared_not_out.total,
        "released_without_clearance": report.released_without_clearance.total,
        "released_twice": report.released_twice.total,
        "actuation_failed": report.released_actuation_failed.total,
        "actuation_unconfirmed": report.released_actuation_unconfirmed.total,
        "discrepancies": report.discrepancies,
    }
    w = {
        "total": K * T,
        "by_status": {"800": K * T},
        "cleared_not_out": K * T - want["release_events"],
        "released_without_clearance": 0,
        "released_twice": 0,
        "actuation_failed": 0,
        "actuation_unconfirmed": want["release_events"] - want["actuation_confirmed"],
        "discrepancies": {"WEIGHT_MISMATCH": want["discrepancy_events"]},
    }
    if r != w:
        raise SystemExit(f"the park report disagrees with the generator: got {r}, want {w}")
    return got


# --- keys for the lookups --------------------------------------------------------------------------


class Keys:
    """Random parcels over the whole dataset, and their keys as the database holds them."""

    def __init__(self, built: Built, rng: random.Random) -> None:
        self.shape = built.shape
        self.tpl_invt = built.meta["template_invt"]
        self.rng = rng

    def _pick(self, pending: bool) -> tuple[int, int, int]:
        sh = self.shape
        k = self.rng.randrange(sh.copies)
        s = self.rng.randint(sh.template + 1, sh.stride) if pending else self.rng.randint(1, sh.template)
        return k, s, sh.parcel(k, s)

    def clearance(self, what: str) -> str:
        k, s, n = self._pick(False)
        if what == "logisticsNo":
            return decl.logistics_no(n)
        if what == "orderNo":
            return decl.order_no(n)
        invt = self.tpl_invt[s - 1]
        return f"{invt[:9]}{int(invt[9:]) + k * self.shape.template:09d}"

    def pending(self) -> tuple[str, str]:
        _k, _s, n = self._pick(True)
        what = self.rng.choice(("logisticsNo", "orderNo", "invtNo"))
        value = {
            "logisticsNo": decl.logistics_no(n),
            "orderNo": decl.order_no(n),
            "invtNo": pending_invt_no(n),
        }
        return what, value[what]

    def guid(self) -> str:
        k, s, n = self._pick(False)
        kind = self.rng.choice(list(_GUID_KINDS))
        return decl.guid(kind, s) if k == 0 else copy_guid(kind, n)


# --- the lookups -----------------------------------------------------------------------------------

_PARAM = {"by_logistics": "logisticsNo", "by_order": "orderNo", "by_invt": "invtNo"}
_COLUMN = {"logisticsNo": "logistics_no", "orderNo": "order_no", "invtNo": "invt_no"}


def _found_clearance(details: list[Any]) -> None:
    if len(details) != 1 or details[0].clearance is None:
        raise SystemExit(f"lookup did not find its one clearance: {details!r:.300}")
    d = details[0]
    if sum(v is not None for v in d.documents.values()) != 4 or len(d.history) != 3:
        raise SystemExit(f"clearance without its 4 documents and 3 history rows: {d!r:.300}")


def _found_pending(details: list[Any]) -> None:
    if len(details) != 1 or details[0].clearance is not None or details[0].missing != ["order"]:
        raise SystemExit(f"pending lookup did not find its inventory: {details!r:.300}")


def in_process_calls(db: Database, built: Built, keys: Keys) -> dict[str, Callable[[], Callable[[], Any]]]:
    """For each kind, a maker of one lookup (the key is drawn when made, outside the timing)."""
    settings = settings_for(built.database, built.directory / "feed.key")
    platform_ = Platform(db=db, key=load_or_create_key(settings.signing_key), settings=settings)
    officer = authenticate(db, built.meta["tokens"]["officer"])
    assert officer is not None

    def clearance(kind: str) -> Callable[[], Callable[[], Any]]:
        def make() -> Callable[[], Any]:
            param = _PARAM[kind]
            value = keys.clearance(param)
            return lambda: _found_clearance(clearance_routes.lookup(platform_, officer, **{param: value}))

        return make

    def pending() -> Callable[[], Any]:
        what, value = keys.pending()
        return lambda: _found_pending(clearance_routes.lookup(platform_, officer, **{what: value}))

    def pending_query() -> Callable[[], Any]:
        what, value = keys.pending()

        def call() -> None:
            if len(dstore.pending_inventories(db, **{_COLUMN[what]: value})) != 1:
                raise SystemExit(f"pending_inventories found nothing for {what}={value}")

        return call

    def receipts() -> Callable[[], Any]:
        guid = keys.guid()

        def call() -> None:
            if not document_routes.get_receipts(platform_, officer, guid, format="json"):
                raise SystemExit(f"no receipts for {guid}")

        return call

    def report() -> Callable[[], Any]:
        return lambda: park_routes.get_report(platform_, officer, "P1")

    return {
        "by_logistics": clearance("by_logistics"),
        "by_order": clearance("by_order"),
        "by_invt": clearance("by_invt"),
        "pending": pending,
        "pending_query": pending_query,
        "receipts": receipts,
        "report": report,
    }


def http_calls(client: httpx.Client, keys: Keys) -> dict[str, Callable[[], Callable[[], Any]]]:
    def get(path: str, params: dict[str, str] | None = None, check: Callable[[Any], bool] | None = None):
        def call() -> None:
            r = client.get(path, params=params)
            if r.status_code != 200:
                raise SystemExit(f"GET {path} {params}: {r.status_code} {r.text[:300]}")
            if check is not None and not check(r.json()):
                raise SystemExit(f"GET {path} {params}: unexpected answer {r.text[:300]}")

        return call

    def one_clearance(body: Any) -> bool:
        return len(body) == 1 and body[0]["clearance"] is not None and len(body[0]["history"]) == 3

    def one_pending(body: Any) -> bool:
        return len(body) == 1 and body[0]["clearance"] is None

    def clearance(kind: str) -> Callable[[], Callable[[], Any]]:
        def make() -> Callable[[], Any]:
            param = _PARAM[kind]
            return get("/api/v1/clearances", {param: keys.clearance(param)}, one_clearance)

        return make

    def pending() -> Callable[[], Any]:
        what, value = keys.pending()
        return get("/api/v1/clearances", {what: value}, one_pending)

    return {
        "by_logistics": clearance("by_logistics"),
        "by_order": clearance("by_order"),
        "by_invt": clearance("by_invt"),
        "pending": pending,
        "receipts": lambda: get(f"/api/v1/documents/{keys.guid()}/receipts"),
        "report": lambda: get("/api/v1/parks/P1/report"),
    }


def timed(make: Callable[[], Callable[[], Any]], n: int, budget: float | None) -> list[float]:
    """Milliseconds of n lookups (fewer if `budget` seconds run out; at least 3)."""
    out: list[float] = []
    started = time.perf_counter()
    for i in range(n):
        call = make()
        t0 = time.perf_counter()
        call()
        out.append((time.perf_counter() - t0) * 1000)
        if budget is not None and i >= 2 and time.perf_counter() - started > budget:
            break
    return out


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def measure(calls: dict[str, Callable[[], Callable[[], Any]]], n: int, budget: float) -> dict[str, dict]:
    """Per kind: a first pass over n random keys, then the measured (warm) pass over n others."""
    out = {}
    for kind, make in calls.items():
        limit = budget if kind == "report" else None
        first = timed(make, n, limit)
        warm = timed(make, n, limit)
        out[kind] = {
            "p50": statistics.median(warm),
            "p99": p99(warm),
            "first_p99": p99(first),
            "n": len(warm),
        }
    return out


# --- intake on the large database against an empty one ---------------------------------------------


class Batches:
    """New parcels (numbers past every stored one) as models for submit() and as JSON bodies."""

    def __init__(self, start: int, parcels: int, per_batch: int = 250) -> None:
        sets = decl.document_set(parcels, start=start)
        self.documents = parcels * 4
        self.models = [
            [d for x in sets[i : i + per_batch] for d in x.documents] for i in range(0, parcels, per_batch)
        ]
        self.bodies = [
            ('{"documents":[' + ",".join(d.model_dump_json(exclude_none=True) for d in docs) + "]}").encode()
            for docs in self.models
        ]


def intake_in_process(database: Path | str, key: Path, work: Batches) -> float:
    db = open_database(database)
    platform_ = Platform(db=db, key=load_or_create_key(key), settings=settings_for(database, key))
    started = time.perf_counter()
    for docs in work.models:
        result = submit(platform_, docs, actor="bench", now=utc_now())
        if sum(r.returnStatus == "800" for r in result.receipts) != len(docs) // 4:
            raise SystemExit("intake in-process: not every new parcel was released")
    elapsed = time.perf_counter() - started
    db.close()
    return work.documents / elapsed


def intake_http(url: str, token: str, work: Batches) -> float:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, headers=headers, timeout=300) as client:
        client.get("/healthz")
        started = time.perf_counter()
        for body in work.bodies:
            r = client.post("/api/v1/documents", content=body)
            if r.status_code != 200 or r.content.count(b'"returnStatus":"800"') != 250:
                raise SystemExit(f"POST /api/v1/documents: {r.status_code} {r.text[:500]}")
        elapsed = time.perf_counter() - started
    return work.documents / elapsed


# --- one size --------------------------------------------------------------------------------------


def run_size(
    built: Built, args: argparse.Namespace, work_dir: Path, pg: pg_server.PgServer | None = None
) -> dict[str, Any]:
    """Every run of one size on one copy of its cached database (in `pg`'s cluster, if given)."""
    size = built.meta["size"]
    copy_dir = work_dir / f"size-{size}{'-pg' if pg else ''}"
    copy_dir.mkdir()
    t0 = time.perf_counter()
    database: Path | str
    if pg is None:
        database = copy_dir / "central.db"
        shutil.copyfile(built.database, database)
    else:
        pg.drop_database(_work_name(size))
        database = pg.create_database(_work_name(size), template=built.meta["pg_name"])
    shutil.copyfile(built.directory / "feed.key", copy_dir / "feed.key")
    print(f"  copied the cached database in {time.perf_counter() - t0:.1f} s", flush=True)
    try:
        return _run_size(built, args, copy_dir, database, pg)
    finally:
        if pg is not None:
            pg.drop_database(_work_name(size))


def _work_name(size: int) -> str:
    return f"lookup_work_{size}_{os.getpid()}"


def _run_size(
    built: Built,
    args: argparse.Namespace,
    copy_dir: Path,
    database: Path | str,
    pg: pg_server.PgServer | None,
) -> dict[str, Any]:
    size = built.meta["size"]
    local = Built(copy_dir, database, built.meta)
    config = _settings(copy_dir, database)
    tokens = built.meta["tokens"]
    rng = random.Random(size)
    results: dict[str, Any] = {"in": [], "http": [], "intake": []}
    next_parcel = built.shape.copies * built.shape.stride + 1_000_000
    for run in range(args.runs):
        db = open_database(database)
        keys = Keys(local, rng)
        results["in"].append(measure(in_process_calls(db, local, keys), args.lookups, args.report_budget))
        db.close()
        if not args.no_http:
            with serve(config, copy_dir / "server.log") as url:
                headers = {"Authorization": f"Bearer {tokens['officer']}"}
                with httpx.Client(base_url=url, headers=headers, timeout=600) as client:
                    client.get("/healthz")
                    results["http"].append(
                        measure(http_calls(client, keys), args.lookups, args.report_budget)
                    )
        if args.intake_parcels:
            results["intake"].append(intake_run(database, copy_dir, config, tokens, next_parcel, args, pg))
            next_parcel += 2 * args.intake_parcels
        summary = ", ".join(f"{k} p99 {v['p99']:.2f}" for k, v in results["in"][-1].items())
        print(f"  run {run + 1} in-process (ms): {summary}", flush=True)
        if results["http"]:
            summary = ", ".join(f"{k} p99 {v['p99']:.2f}" for k, v in results["http"][-1].items())
            print(f"  run {run + 1} HTTP (ms): {summary}", flush=True)
        if results["intake"]:
            i = results["intake"][-1]
            print(
                f"  run {run + 1} intake docs/s: in-process {i['in_big']:,.0f} vs empty {i['in_empty']:,.0f}"
                + (f"; HTTP {i['http_big']:,.0f} vs empty {i['http_empty']:,.0f}" if "http_big" in i else ""),
                flush=True,
            )
    if args.plans:
        results["plans"] = plans(local) if pg is None else pg_plans(local)
    shutil.rmtree(copy_dir)
    return results


def intake_run(
    database: Path | str,
    copy_dir: Path,
    config: Path,
    tokens: dict[str, str],
    start: int,
    args: argparse.Namespace,
    pg: pg_server.PgServer | None = None,
) -> dict[str, float]:
    """The same new parcels on the large database and on an empty one (seeded alike), in-process
    and via HTTP (different parcels for the two, the same on both databases)."""
    n = args.intake_parcels
    a, b = Batches(start, n), Batches(start + n, n)
    gc.collect()
    out = {}
    empty_name = f"lookup_empty_{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="bench-lookup-empty-", dir=copy_dir) as tmp, ExitStack() as stack:
        empty_dir = Path(tmp)
        empty: Path | str = empty_dir / "central.db"
        if pg is not None:
            pg.drop_database(empty_name)
            empty = pg.create_database(empty_name)
            stack.callback(pg.drop_database, empty_name)
        shutil.copyfile(copy_dir / "feed.key", empty_dir / "feed.key")
        edb = open_database(empty)
        empty_tokens = seed(edb)
        edb.close()
        out["in_empty"] = intake_in_process(empty, empty_dir / "feed.key", a)
        out["in_big"] = intake_in_process(database, copy_dir / "feed.key", a)
        if not args.no_http:
            with serve(_settings(empty_dir, empty), empty_dir / "server.log") as url:
                out["http_empty"] = intake_http(url, empty_tokens["enterprise"], b)
            with serve(config, copy_dir / "server.log") as url:
                out["http_big"] = intake_http(url, tokens["enterprise"], b)
    return out


def plans(built: Built) -> dict[str, list[tuple[str, list[str]]]]:
    """EXPLAIN QUERY PLAN of every SELECT one in-process lookup of each kind runs."""
    db = open_database(built.database)
    keys = Keys(built, random.Random(1))
    calls = in_process_calls(db, built, keys)
    out: dict[str, list[tuple[str, list[str]]]] = {}
    reader = db.reader()
    for kind, make in calls.items():
        call = make()
        statements: list[str] = []
        reader.set_trace_callback(statements.append)
        try:
            call()
        finally:
            reader.set_trace_callback(None)
        seen = []
        for s in statements:
            if s.lstrip().upper().startswith("SELECT") and s not in [x for x, _ in seen]:
                seen.append((s, [r[3] for r in reader.execute(f"EXPLAIN QUERY PLAN {s}")]))
        out[kind] = seen
    db.close()
    return out


def pg_plans(built: Built) -> dict[str, list[tuple[str, list[str]]]]:
    """EXPLAIN of every SELECT one in-process lookup of each kind runs on PostgreSQL, with its own
    parameters (the statements are caught on their way through the store's PgConnection)."""
    from central.store.postgres import PgConnection

    db = open_database(built.database)
    keys = Keys(built, random.Random(1))
    calls = in_process_calls(db, built, keys)
    out: dict[str, list[tuple[str, list[str]]]] = {}
    original = PgConnection.execute
    for kind, make in calls.items():
        call = make()
        statements: list[tuple[str, Any]] = []

        def spy(self: PgConnection, sql: str, params: Any = (), _caught: list = statements) -> Any:
            _caught.append((sql, params))
            return original(self, sql, params)

        setattr(PgConnection, "execute", spy)  # noqa: B010 - a method replaced for one call
        try:
            call()
        finally:
            setattr(PgConnection, "execute", original)  # noqa: B010
        seen: list[tuple[str, list[str]]] = []
        reader = db.reader()
        assert isinstance(reader, PgConnection)
        for sql, params in statements:
            if sql.lstrip().upper().startswith("SELECT") and sql not in [x for x, _ in seen]:
                seen.append((sql, [r[0] for r in original(reader, f"EXPLAIN {sql}", params)]))
        out[kind] = seen
    db.close()
    return out


# --- PostgreSQL: the same databases, loaded from SQLite's ------------------------------------------


def pg_database_for(server: pg_server.PgServer, built: Built) -> dict[str, Any]:
    """The PostgreSQL twin of a cached SQLite database, loaded once into the benches' cluster and
    checked as the SQLite one was; returns its meta (database name, build time, size)."""
    size = built.meta["size"]
    source = (built.directory / "done.json").read_bytes() + built.directory.name.encode()
    schema = (ROOT / "central" / "store" / "pg_schema.py").read_bytes()
    tag = hashlib.sha256(source + schema + str(pg_server.LOADER).encode()).hexdigest()[:10]
    name = f"lookup_{size}_{tag}"
    meta = server.built(name)
    if meta is not None:
        return meta
    server.forget(f"lookup_{size}_")
    print(f"loading {size:,} clearances into PostgreSQL database {name} (once) …", flush=True)
    started = time.perf_counter()
    steps = pg_server.load_from_sqlite(server, name, Path(built.database))
    for step, seconds in steps.items():
        print(f"  {step}: {seconds:.1f} s", flush=True)
    took = time.perf_counter() - started
    meta = {
        "pg_name": name,
        "build_s": round(took, 1),
        "steps_s": {k: round(v, 1) for k, v in steps.items()},
        "tallies_rebuilt": True,
        "counts": check_database(server.dsn_for(name), built.shape, built.meta),
        "bytes": server.database_bytes(name),
    }
    server.mark_built(name, meta)
    print(f"  loaded in {took:.1f} s, {meta['bytes'] / 1e9:.2f} GB; counts checked", flush=True)
    return meta


# --- report ---------------------------------------------------------------------------------------


def _median(runs: list[dict[str, dict]], kind: str, field: str) -> float | None:
    values = [r[kind][field] for r in runs if kind in r]
    return statistics.median(values) if values else None


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.2f}" if v < 10 else f"{v:.1f}"


def _size(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)


def print_report(sizes: list[int], results: dict[int, dict[str, Any]], built: dict[int, Built]) -> None:
    small, large = sizes[0], sizes[-1]
    head = ["lookup", "via"]
    for n in sizes:
        head += [f"{_size(n)} p50", f"{_size(n)} p99"]
    head += [f"{_size(large)} first-pass p99", f"p99 {_size(large)}/{_size(small)}", "goal"]
    rows = []
    for mode, kinds in (("in", KINDS), ("http", HTTP_KINDS)):
        for kind in kinds:
            if not results[large][mode]:
                continue
            row = [kind, "in-process" if mode == "in" else "HTTP"]
            for n in sizes:
                row += [
                    _ms(_median(results[n][mode], kind, "p50")),
                    _ms(_median(results[n][mode], kind, "p99")),
                ]
            lo, hi = _median(results[small][mode], kind, "p99"), _median(results[large][mode], kind, "p99")
            growth = hi / lo if lo and hi is not None else None
            row += [
                _ms(_median(results[large][mode], kind, "first_p99")),
                f"{growth:.2f}×" if growth else "-",
            ]
            if large >= 1_000_000 and hi is not None and growth is not None:
                ok = hi <= GOAL_P99_MS and growth <= GOAL_GROWTH
                why = (
                    []
                    if ok
                    else [
                        w
                        for w, bad in (("p99 > 5 ms", hi > GOAL_P99_MS), (">1.5×", growth > GOAL_GROWTH))
                        if bad
                    ]
                )
                row.append("met" if ok else "NOT met (" + ", ".join(why) + ")")
            else:
                row.append("(needs 1M)")
            rows.append(row)
    _print_table(head, rows)
    n_report = [r["report"]["n"] for r in results[large]["in"]]
    print(
        f"\nlookups per kind per pass: {results[large]['in'][0]['by_order']['n']}; report calls at "
        f"{_size(large)}: {n_report} (capped by --report-budget)"
    )
    intake_rows = []
    for n in sizes:
        runs = results[n]["intake"]
        if not runs:
            continue
        for via, big, empty in (("in-process", "in_big", "in_empty"), ("HTTP", "http_big", "http_empty")):
            if big not in runs[0]:
                continue
            ratio = statistics.median(r[big] / r[empty] for r in runs)
            verdict = "met" if ratio >= GOAL_INTAKE else "NOT met"
            intake_rows.append(
                [
                    _size(n),
                    via,
                    f"{statistics.median(r[big] for r in runs):,.0f}",
                    f"{statistics.median(r[empty] for r in runs):,.0f}",
                    f"{ratio:.2f}",
                    verdict if n >= 1_000_000 else "(needs 1M)",
                ]
            )
    if intake_rows:
        print()
        _print_table(
            ["stored", "intake via", "docs/s stored", "docs/s empty", "ratio", "goal ≥ 0.8"], intake_rows
        )
    print()
    for n in sizes:
        m = built[n].meta
        print(
            f"database {_size(n)}: built in {m['build_s']:.0f} s ({m['steps_s']}), {m['bytes'] / 1e9:.2f} GB,"
            f" tallies rebuilt: {m['tallies_rebuilt']}"
        )
    for n in sizes:
        for kind, statements in results[n].get("plans", {}).items():
            print(f"\nplans at {_size(n)}, {kind}:")
            for sql, plan in statements:
                print(f"  {' '.join(sql.split())[:400]}")
                for step in plan:
                    # PostgreSQL: a month's partition with no rows yet is read by a scan of nothing
                    empty = "(cost=0.00..0.00 " in step
                    scan = (step.startswith("SCAN") and "json_each" not in step) or (
                        "Seq Scan" in step and not empty
                    )
                    flag = "  <-- scan" if scan else ""
                    print(f"      {step}{flag}")


def _print_table(head: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[c]) for r in [head, *rows]) for c in range(len(head))]

    def line(r: list[str]) -> str:
        return "  ".join(
            x.ljust(w) if c < 2 else x.rjust(w) for c, (x, w) in enumerate(zip(r, widths, strict=True))
        )

    print(line(head))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000", help="clearances, comma-separated, ascending")
    ap.add_argument("--runs", type=int, default=3, help="runs per size; tables give the median")
    ap.add_argument("--lookups", type=int, default=400, help="lookups per kind per pass (first + measured)")
    ap.add_argument("--report-budget", type=float, default=30.0, help="seconds per pass for the report")
    ap.add_argument("--intake-parcels", type=int, default=2500, help="new parcels per intake run (0: skip)")
    ap.add_argument("--no-http", action="store_true", help="in-process only")
    ap.add_argument(
        "--plans", action="store_true", help="print the plan of each lookup's SELECTs (EXPLAIN [QUERY PLAN])"
    )
    ap.add_argument(
        "--build-only", action="store_true", help="build (or check) the cached databases, then stop"
    )
    pg_server.add_arguments(ap)
    args = ap.parse_args()
    on_sqlite = args.backend in ("sqlite", "both")
    on_pg = args.backend in ("postgresql", "both")
    sizes = sorted(int(x.replace("_", "")) for x in args.sizes.split(","))
    if args.intake_parcels % 250:
        ap.error("--intake-parcels must be a multiple of 250 (one POST of 1,000 documents)")

    print(machine())
    print(
        f"sizes {', '.join(f'{n:,}' for n in sizes)}; {args.runs} runs;"
        f" {args.lookups} lookups per kind per pass;"
        f" intake {args.intake_parcels:,} parcels per run; tallies module: {tallies is not None}",
        flush=True,
    )
    built = {n: database_for(n) for n in sizes}
    pg_meta: dict[int, dict[str, Any]] = {}
    if on_pg:
        with pg_server.running(pg_server.BULK) as bulk:
            pg_meta = {n: pg_database_for(bulk, built[n]) for n in sizes}
    if args.build_only:
        return
    results: dict[str, dict[int, dict[str, Any]]] = {"sqlite": {}, "postgresql": {}}
    pg_built: dict[int, Built] = {}
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-lookup-", dir=CACHE))
        pg = None
        if on_pg:
            pg = stack.enter_context(
                pg_server.running(pg_server.settings_for(args.pg_fsync == "on", args.pg_set))
            )
            print(pg.describe(), flush=True)
            for n in sizes:
                pg_built[n] = Built(
                    built[n].directory, pg.dsn_for(pg_meta[n]["pg_name"]), {**built[n].meta, **pg_meta[n]}
                )
        for n in sizes:
            for backend, on, server, source in (
                ("sqlite", on_sqlite, None, built),
                ("postgresql", on_pg, pg, pg_built),
            ):
                if not on:
                    continue
                print(f"\n{n:,} clearances{', PostgreSQL' if server else ''}:", flush=True)
                gc.collect()
                gc.freeze()
                results[backend][n] = run_size(source[n], args, Path(tmp), server)
                gc.unfreeze()
    if on_sqlite:
        print()
        if on_pg:
            print("SQLite:\n")
        print_report(sizes, results["sqlite"], built)
    if on_pg:
        print("\nPostgreSQL:\n")
        print_report(sizes, results["postgresql"], pg_built)


if __name__ == "__main__":
    main()

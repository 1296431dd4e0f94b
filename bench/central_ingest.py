"""Central throughput: batch document intake with the comparison; paging an edge feed of 1,000,000 records.

    .venv/bin/python bench/central_ingest.py       # defaults: 5,000 parcels, 5 runs, 1,000,000 records
    .venv/bin/python bench/central_ingest.py --runs 5 --parcels 10000

Each run measures, in the same process and on the same machine:

intake
  http      POST /api/v1/documents, batches of --batch documents (250 parcels × order, payment, waybill,
            inventory), one client, keep-alive, against a real `bondgate central serve` subprocess over a
            fresh SQLite file. Every parcel is compared and goes 120 → 399 → 800 (simulate mode, sampling
            rate 0): three status changes with history rows and receipts per parcel, and one signed feed
            record of the state the message commits.
            The client reads each response body; the result is checked afterwards from the database.
  service   `central.intake.submit()` called directly on pre-validated models, fresh database: the same work
            without HTTP, JSON parsing or response encoding. Next to it, in-process and per batch, the
            route's own request-body validation and response serialisation, to show where the HTTP time goes.
  baseline  bare SQLite: the same document JSON bodies into a table shaped like `documents` (same primary
            key and indexes), one `executemany` per batch in one transaction, WAL + synchronous=NORMAL.

feed
  http      an edge pages the whole feed of park P1 (--feed-records records) with limit=5000 through
            GET /api/v1/parks/P1/feed using its edge token, parsing each page as an edge must to get
            next_after. A sample of records is then verified against the server's public key.
  service   `central.feed.page_json()` in-process over the same pages (no HTTP).
  baseline  one bare `SELECT seq, record FROM feed WHERE park_id = ? ORDER BY seq` of the same rows.

The feed database is built once and cached under bench/.cache/ (gitignored): every record is a real
clearance record signed with central.feed.signed_json (a worker process per CPU), so every signature verifies.

--backend postgresql (or both: SQLite's rows and PostgreSQL's from the same run) measures central over
PostgreSQL 15, a cluster of the benches' own (bench/pg_server.py), with durable commits by default
(fsync, synchronous_commit and full_page_writes on, as SQLite's synchronous=FULL; --pg-fsync off for
testkit's settings; --pg-set NAME=VALUE for any other server setting):

intake
  http      the same POSTs into a fresh database, through ONE central process and through TWO over the
            same database (each with its own client thread, the batches dealt out alternately). For each,
            the CPU seconds per 1,000 documents that the central processes used (summed) and that the
            PostgreSQL cluster used (the postmaster and every process it started), from /proc.
  service   `submit()` in-process on PostgreSQL.
  baseline  bare PostgreSQL: the same rows into a table shaped like `documents`, one `executemany` per
            batch in one transaction (psycopg 3, pipelined), durable commits as configured.
feed        the same pages from a PostgreSQL copy of the cached feed database (COPY of its rows, so
            the same signed records), through HTTP, in-process, and as one bare SELECT through psycopg.
With --backend both, SQLite's HTTP intake also reports its central CPU per 1,000 documents, and the
table gives PostgreSQL's one-process rate ÷ SQLite's, run by run (goal ≥ 0.5).
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from bench import pg_server  # noqa: E402
from bench.central_process import central, serve  # noqa: E402
from bench.machine import machine  # noqa: E402
from central.config import CentralSettings  # noqa: E402
from central.doc_keys import doc_key  # noqa: E402
from central.feed import append, page_json, signed_json  # noqa: E402
from central.intake import submit  # noqa: E402
from central.keys import load_or_create_key  # noqa: E402
from central.platform import Platform  # noqa: E402
from central.store.clearances import ClearanceRow  # noqa: E402
from central.store.db import open_database  # noqa: E402
from kernel.timefmt import iso, utc_now  # noqa: E402
from kernel.wire import FeedRecord, load_public_key, verify_record  # noqa: E402
from testkit import factories as f  # noqa: E402
from testkit.central_server import seed  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
PAGE = 5000  # the largest feed page an edge may ask for (feed_page_max)
RISK_OFF = "[risk]\nsampling_rate = 0\n"


# --- workload -----------------------------------------------------------------------------------


class Workload:
    """The parcels' documents, built once: models for submit(), JSON for HTTP, rows for the baseline."""

    def __init__(self, parcels: int, batch: int) -> None:
        per = batch // 4
        sets = f.document_set(parcels)
        self.documents = parcels * 4
        self.models = [[d for s in sets[i : i + per] for d in s.documents] for i in range(0, parcels, per)]
        self.bodies = [
            ('{"documents":[' + ",".join(d.model_dump_json(exclude_none=True) for d in docs) + "]}").encode()
            for docs in self.models
        ]
        now = iso(utc_now())
        self.rows = [
            [
                (
                    d.KIND.value,
                    doc_key(d),
                    d.guid,
                    getattr(d, "ebpCode", None),
                    getattr(d, "orderNo", None),
                    getattr(d, "logisticsCode", None),
                    getattr(d, "logisticsNo", None),
                    json.dumps(d.model_dump(mode="json", exclude_none=True), ensure_ascii=False),
                    now,
                )
                for d in docs
            ]
            for docs in self.models
        ]


# --- a real server ------------------------------------------------------------------------------


def _settings(
    directory: Path, database: str | None = None, key: Path | None = None, name: str = "central.toml"
) -> tuple[CentralSettings, Path]:
    """Settings and a config file for central over `directory`/central.db, or over `database` (a
    PostgreSQL URL) when given; the signing key is `directory`/feed.key unless `key` is given."""
    target = database or str(directory / "central.db")
    key = key or directory / "feed.key"
    config = directory / name
    config.write_text(
        f'database = "{target}"\nsigning_key = "{key}"\nlog_level = "WARNING"\n{RISK_OFF}',
        encoding="utf-8",
    )
    settings = CentralSettings(database=target, signing_key=key, risk={"sampling_rate": 0})
    return settings, config


# --- intake -------------------------------------------------------------------------------------


def _check_intake(target: str | Path, parcels: int) -> None:
    db = open_database(target)
    conn = db.reader()
    got = {
        "documents": conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0],
        "released": conn.execute("SELECT COUNT(*) FROM clearances WHERE status = '800'").fetchone()[0],
        "history": conn.execute("SELECT COUNT(*) FROM clearance_history").fetchone()[0],
        "feed": conn.execute("SELECT COUNT(*) FROM feed").fetchone()[0],
        "receipts": conn.execute("SELECT COUNT(*) FROM receipts").fetchone()[0],
    }
    db.close()
    want = {
        "documents": parcels * 4,
        "released": parcels,
        "history": parcels * 3,
        "feed": parcels,  # one record per parcel: the state its message committed
        "receipts": parcels * 7,
    }
    if got != want:
        raise SystemExit(f"intake check failed: got {got}, want {want}")


@dataclass
class Intake:
    seconds: float
    central_cpu: float  # CPU seconds the central processes used meanwhile, summed
    pg_cpu: float | None  # CPU seconds the PostgreSQL cluster used meanwhile (None: SQLite)


def _post(clients: list[httpx.Client], bodies: list[bytes]) -> None:
    """Every body, one after another through one client; with several, batch i through client
    i mod n, each client on its own thread (so n batches are in flight at once)."""

    def post(client: httpx.Client, mine: list[bytes]) -> None:
        for body in mine:
            r = client.post("/api/v1/documents", content=body)
            if r.status_code != 200:
                raise SystemExit(f"POST /api/v1/documents: {r.status_code} {r.text[:500]}")

    if len(clients) == 1:
        post(clients[0], bodies)
        return
    failed: list[BaseException] = []

    def run(i: int) -> None:
        try:
            post(clients[i], bodies[i :: len(clients)])
        except BaseException as exc:  # re-raised on the caller's thread
            failed.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        raise failed[0]


def intake_http_on(
    work: Workload,
    parcels: int,
    directory: Path,
    *,
    database: str | None = None,
    processes: int = 1,
    pg: pg_server.PgServer | None = None,
) -> Intake:
    """POST every batch to `processes` central processes over one database (SQLite in `directory`,
    or the PostgreSQL `database`), with the CPU the central processes and PostgreSQL used meanwhile."""
    settings, config = _settings(directory, database)
    token = seed(settings)["enterprise"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with ExitStack() as stack:
        logs = ["server.log"] + [f"server-{i + 1}.log" for i in range(1, processes)]
        servers = [stack.enter_context(central(config, directory / log)) for log in logs]
        clients = [
            stack.enter_context(httpx.Client(base_url=s.url, headers=headers, timeout=120)) for s in servers
        ]
        for client in clients:
            client.get("/healthz")  # open the keep-alive connection before the clock starts
        cpu0 = sum(s.cpu_seconds() for s in servers)
        pg0 = pg.cpu_seconds() if pg is not None else 0.0
        started = time.perf_counter()
        _post(clients, work.bodies)
        elapsed = time.perf_counter() - started
        cpu = sum(s.cpu_seconds() for s in servers) - cpu0
        pg_cpu = pg.cpu_seconds() - pg0 if pg is not None else None
    _check_intake(settings.database, parcels)
    return Intake(elapsed, cpu, pg_cpu)


def intake_http(work: Workload, parcels: int, directory: Path) -> float:
    return intake_http_on(work, parcels, directory).seconds


def intake_service(work: Workload, parcels: int, directory: Path, database: str | None = None) -> float:
    settings, _ = _settings(directory, database)
    seed(settings)
    db = open_database(settings.database)
    platform_ = Platform(db=db, key=load_or_create_key(settings.signing_key), settings=settings)
    started = time.perf_counter()
    for docs in work.models:
        submit(platform_, docs, actor="bench", now=utc_now())
    elapsed = time.perf_counter() - started
    db.close()
    _check_intake(settings.database, parcels)
    return elapsed


def intake_parts(work: Workload, directory: Path) -> tuple[float, float, float]:
    """Per batch, in-process: the route's body validation, submit(), the route's response serialisation."""
    import asyncio

    from fastapi.routing import APIRoute, serialize_response

    from central.api.routes import documents

    settings, _ = _settings(directory)
    seed(settings)
    route = next(
        r
        for r in documents.router.routes
        if isinstance(r, APIRoute) and r.path == "/api/v1/documents" and "POST" in r.methods
    )
    assert route.body_field is not None
    db = open_database(settings.database)
    platform_ = Platform(db=db, key=load_or_create_key(settings.signing_key), settings=settings)
    loop = asyncio.new_event_loop()
    parse = run = respond = 0.0
    for body in work.bodies:
        t0 = time.perf_counter()
        value, errors = route.body_field.validate(json.loads(body), {}, loc=("body",))
        assert not errors, errors
        t1 = time.perf_counter()
        result = submit(platform_, list(value.documents), actor="bench", now=utc_now())
        t2 = time.perf_counter()
        loop.run_until_complete(
            serialize_response(field=route.response_field, response_content=result, dump_json=True)
        )
        t3 = time.perf_counter()
        parse, run, respond = parse + t1 - t0, run + t2 - t1, respond + t3 - t2
    loop.close()
    db.close()
    n = len(work.bodies)
    return parse / n, run / n, respond / n


def baseline_insert(work: Workload, directory: Path) -> float:
    conn = sqlite3.connect(directory / "bare.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        """CREATE TABLE documents (
            kind TEXT NOT NULL, doc_key TEXT NOT NULL, guid TEXT NOT NULL,
            ebp_code TEXT, order_no TEXT, logistics_code TEXT, logistics_no TEXT,
            body TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1, deleted INTEGER NOT NULL DEFAULT 0,
            received_at TEXT NOT NULL, PRIMARY KEY (kind, doc_key))"""
    )
    conn.execute("CREATE INDEX documents_order ON documents (ebp_code, order_no)")
    conn.execute("CREATE INDEX documents_logistics ON documents (logistics_code, logistics_no)")
    conn.execute("CREATE INDEX documents_guid ON documents (guid)")
    sql = (
        "INSERT INTO documents (kind, doc_key, guid, ebp_code, order_no, logistics_code, logistics_no,"
        " body, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    started = time.perf_counter()
    for rows in work.rows:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def baseline_insert_pg(work: Workload, dsn: str) -> float:
    """The bare insert on PostgreSQL: the same rows, table and indexes (the received time as
    `COLLATE "C"` text, as central's), one pipelined `executemany` per batch in one transaction."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """CREATE TABLE documents (
                kind text NOT NULL, doc_key text NOT NULL, guid text NOT NULL,
                ebp_code text, order_no text, logistics_code text, logistics_no text,
                body text NOT NULL, version integer NOT NULL DEFAULT 1, deleted integer NOT NULL DEFAULT 0,
                received_at text COLLATE "C" NOT NULL, PRIMARY KEY (kind, doc_key))"""
        )
        conn.execute("CREATE INDEX documents_order ON documents (ebp_code, order_no)")
        conn.execute("CREATE INDEX documents_logistics ON documents (logistics_code, logistics_no)")
        conn.execute("CREATE INDEX documents_guid ON documents (guid)")
        sql = (
            "INSERT INTO documents (kind, doc_key, guid, ebp_code, order_no, logistics_code, logistics_no,"
            " body, received_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        )
        with conn.cursor() as cur:
            started = time.perf_counter()
            for rows in work.rows:
                with conn.transaction():
                    cur.executemany(sql, rows)
            elapsed = time.perf_counter() - started
    return elapsed


# --- the feed -----------------------------------------------------------------------------------

_KEY: Ed25519PrivateKey | None = None
_BASE = datetime(2024, 6, 1, 4, 0, tzinfo=UTC)
_STATUSES = ("120", "399", "800")  # what intake writes for a consistent set in simulate mode
_GROSS, _NET = f.weights()
_GOODS = "洗面奶 ×2; 维生素片 ×1"


def _init_worker(key_path: str) -> None:
    global _KEY
    _KEY = load_or_create_key(Path(key_path))


def _sign_range(span: tuple[int, int]) -> list[tuple[str, str, str]]:
    """Feed records start..stop-1: parcel i // 3 at its (i % 3)-th status change, signed for real."""
    assert _KEY is not None
    out = []
    for i in range(*span):
        seq, step = divmod(i, 3)
        seq += 1
        row = ClearanceRow(
            clearance_id=f"{f.EBP_CODE}|{f.order_no(seq)}",
            park_id="P1",
            invt_no=f.invt_no(seq),
            cop_no=f.cop_no(seq),
            pre_no=f.pre_no(seq),
            order_no=f.order_no(seq),
            ebp_code=f.EBP_CODE,
            ebc_code=f.EBC_CODE,
            logistics_code=f.LOGISTICS_CODE,
            logistics_no=f.logistics_no(seq),
            gross_weight=format(_GROSS, "f"),
            net_weight=format(_NET, "f"),
            declared_value="247.80",
            goods=_GOODS,
            status=_STATUSES[step],
            cancelled=False,
            comparison=None,
            risk=None,
            version=step + 1,
            updated_at=iso(_BASE + timedelta(milliseconds=seq * 10)),
        )
        out.append(("P1", row.clearance_id, signed_json(row, _KEY)))
    return out


def feed_cache(records: int) -> tuple[Path, Path, str]:
    """A central directory whose park P1 has `records` signed feed records; built once, then reused."""
    directory = CACHE / f"feed-{records}"
    done = directory / "done.json"
    if done.exists():
        meta = json.loads(done.read_text())
        _settings(directory)
        return directory, directory / "central.toml", meta["edge_token"]
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    settings, config = _settings(directory)
    tokens = seed(settings)
    load_or_create_key(settings.signing_key)
    print(f"building the feed cache: {records:,} signed records into {directory} (once) …", flush=True)
    started = time.perf_counter()
    db = open_database(settings.database)
    key = load_or_create_key(settings.signing_key)
    chunk = 10_000
    spans = [(i, min(i + chunk, records)) for i in range(0, records, chunk)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(os.cpu_count() or 2, _init_worker, (str(settings.signing_key),)) as pool:
        for rows in pool.imap(_sign_range, spans):
            with db.write() as conn:
                for park_id, clearance_id, record_json in rows:  # chained and signed as intake does
                    append(conn, key, park_id=park_id, clearance_id=clearance_id, record_json=record_json)
    db.close()
    took = time.perf_counter() - started
    done.write_text(json.dumps({"records": records, "edge_token": tokens["edge"], "build_s": round(took, 1)}))
    print(f"  built in {took:.1f} s", flush=True)
    return directory, config, tokens["edge"]


def feed_http(url: str, token: str, records: int) -> tuple[float, float, list[bytes]]:
    """Page the whole feed as an edge: seconds in all, seconds of those in the edge's json.loads, and a
    sample of raw pages for signature verification."""
    sample: list[bytes] = []
    parsing = 0.0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
        client.get("/healthz")
        after, seen = 0, 0
        started = time.perf_counter()
        while True:
            r = client.get("/api/v1/parks/P1/feed", params={"after": after, "limit": PAGE})
            if r.status_code != 200:
                raise SystemExit(f"GET feed: {r.status_code} {r.text[:500]}")
            t0 = time.perf_counter()
            page = json.loads(r.content)
            parsing += time.perf_counter() - t0
            seen += len(page["records"])
            after = page["next_after"]
            if len(sample) < 3 or random.random() < 0.02:
                sample.append(r.content)
            if not page["has_more"]:
                break
        elapsed = time.perf_counter() - started
    if seen != records:
        raise SystemExit(f"paged {seen} feed records, expected {records}")
    return elapsed, parsing, sample


def verify_sample(url: str, pages: list[bytes], n: int = 2000) -> int:
    key = load_public_key(httpx.get(f"{url}/.well-known/bondgate/feed-key.pem").text)
    records = [r for p in pages for r in json.loads(p)["records"]]
    picked = random.sample(records, min(n, len(records)))
    bad = sum(1 for r in picked if not verify_record(FeedRecord.model_validate(r), key))
    if bad:
        raise SystemExit(f"{bad} of {len(picked)} sampled feed records do not verify")
    return len(picked)


def feed_service(db_path: Path | str, records: int, key_path: Path | None = None) -> float:
    db = open_database(db_path)
    key = load_or_create_key(key_path or Path(db_path).parent / "feed.key")
    after, seen = 0, 0
    started = time.perf_counter()
    while True:
        body, count = page_json(db, key, park_id="P1", after=after, limit=PAGE)
        seen += count
        if count < PAGE:
            break
        after = int(body.rsplit('"next_after":', 1)[1].split(",", 1)[0])
    elapsed = time.perf_counter() - started
    db.close()
    if seen != records:
        raise SystemExit(f"page_json gave {seen} records, expected {records}")
    return elapsed


def pg_feed_cache(server: pg_server.PgServer, records: int, sqlite_dir: Path) -> tuple[str, dict]:
    """The cached feed database loaded into PostgreSQL (the same signed records, the same tokens);
    built once in the benches' cluster. Returns its database name and build meta."""
    built_from = (sqlite_dir / "done.json").read_bytes()  # a rebuilt SQLite cache has another key
    name = f"feed_{records}_{_pg_tag(built_from)}"
    meta = server.built(name)
    if meta is not None:
        return name, meta
    server.forget(f"feed_{records}_")
    print(f"loading the feed cache into PostgreSQL database {name} (once) …", flush=True)
    started = time.perf_counter()
    steps = pg_server.load_from_sqlite(server, name, sqlite_dir / "central.db")
    meta = {"records": records, "build_s": round(time.perf_counter() - started, 1), "steps_s": steps}
    server.mark_built(name, meta)
    print(f"  loaded in {meta['build_s']:.1f} s", flush=True)
    return name, meta


def _pg_tag(source: bytes) -> str:
    """Names a cached PostgreSQL database: its source, central's PostgreSQL schema, the loader."""
    import hashlib

    schema = (ROOT / "central" / "store" / "pg_schema.py").read_bytes()
    return hashlib.sha256(source + schema + str(pg_server.LOADER).encode()).hexdigest()[:8]


def feed_baseline_pg(dsn: str, records: int) -> float:
    """One bare SELECT of the same rows through psycopg, iterated (the result arrives whole, as a
    client-side cursor's does; rows become tuples as they are read)."""
    import psycopg

    seen = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        for _seq, _record in conn.execute(
            "SELECT seq, record FROM feed WHERE park_id = %s ORDER BY seq", ("P1",)
        ):
            seen += 1
        elapsed = time.perf_counter() - started
    if seen != records:
        raise SystemExit(f"SELECT gave {seen} rows, expected {records}")
    return elapsed


def feed_baseline(db_path: Path, records: int) -> float:
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    seen = 0
    started = time.perf_counter()
    # iterate the cursor: a fetchall() of 1M tuples mostly measures Python's cyclic GC, not SQLite
    for _seq, _record in conn.execute("SELECT seq, record FROM feed WHERE park_id = ? ORDER BY seq", ("P1",)):
        seen += 1
    elapsed = time.perf_counter() - started
    conn.close()
    if seen != records:
        raise SystemExit(f"SELECT gave {seen} rows, expected {records}")
    return elapsed


# --- report -------------------------------------------------------------------------------------


def table(rows: list[tuple[str, str, list[float]]], runs: int) -> str:
    head = ["measure", "unit", *[f"run {i + 1}" for i in range(runs)], "median"]
    body = [[name, unit, *map(_fmt, values), _fmt(statistics.median(values))] for name, unit, values in rows]
    widths = [max(len(r[c]) for r in [head, *body]) for c in range(len(head))]

    def line(r: list[str]) -> str:
        cells = (x.ljust(w) if c < 2 else x.rjust(w) for c, (x, w) in enumerate(zip(r, widths, strict=True)))
        return "  ".join(cells)

    lines = [line(r) for r in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(v: float) -> str:
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def pg_intake(
    work: Workload, parcels: int, base: Path, pg: pg_server.PgServer, put: Callable[[str, float], None]
) -> None:
    """One run's PostgreSQL intake: HTTP through one and through two central processes, in-process,
    and the bare insert, each into a fresh database."""
    docs = work.documents
    name = f"bench_ingest_{os.getpid()}"
    for processes in (1, 2):
        directory = base / f"pg-http-{processes}"
        directory.mkdir()
        pg.drop_database(name)
        result = intake_http_on(
            work, parcels, directory, database=pg.create_database(name), processes=processes, pg=pg
        )
        pg.drop_database(name)
        assert result.pg_cpu is not None
        put(f"pg_http{processes}", docs / result.seconds)
        put(f"pg_central_cpu{processes}", result.central_cpu / docs * 1000)
        put(f"pg_cpu{processes}", result.pg_cpu / docs * 1000)
        put(f"pg_cores{processes}", (result.central_cpu + result.pg_cpu) / result.seconds)
    (base / "pg-service").mkdir()
    put("pg_service", docs / intake_service(work, parcels, base / "pg-service", pg.create_database(name)))
    pg.drop_database(name)
    put("pg_bare", docs / baseline_insert_pg(work, pg.create_database(name)))
    pg.drop_database(name)


def pg_feed(pg: pg_server.PgServer, name: str, sqlite_dir: Path, token: str, records: int, base: Path) -> int:
    """One run's PostgreSQL feed figures (put by the caller): the same pages from the loaded copy."""
    _, config = _settings(base, pg.dsn_for(name), key=sqlite_dir / "feed.key", name="central-pg.toml")
    with serve(config, base / "server-pg-feed.log") as url:
        seconds, parsing, pages = feed_http(url, token, records)
        checked = verify_sample(url, pages)
    _PG_FEED.update(
        http=seconds,
        parse=parsing,
        service=feed_service(pg.dsn_for(name), records, sqlite_dir / "feed.key"),
        bare=feed_baseline_pg(pg.dsn_for(name), records),
    )
    return checked


_PG_FEED: dict[str, float] = {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parcels", type=int, default=5000, help="parcels per intake run (4 documents each)")
    ap.add_argument("--runs", type=int, default=5, help="runs; the table gives each and the median")
    ap.add_argument("--feed-records", type=int, default=1_000_000, help="feed records to page (0: skip)")
    ap.add_argument("--batch", type=int, default=1000, help="documents per POST (a multiple of 4, ≤ 1000)")
    pg_server.add_arguments(ap)
    args = ap.parse_args()
    if args.batch % 4 or not 4 <= args.batch <= 1000:
        ap.error("--batch must be a multiple of 4 between 4 and 1000")
    on_sqlite = args.backend in ("sqlite", "both")
    on_pg = args.backend in ("postgresql", "both")

    print(machine())
    print(
        f"intake: {args.parcels:,} parcels = {args.parcels * 4:,} documents, "
        f"{args.batch} documents per batch; feed: {args.feed_records:,} records, pages of {PAGE}; "
        f"{args.runs} runs",
        flush=True,
    )
    work = Workload(args.parcels, args.batch)
    feed = feed_cache(args.feed_records) if args.feed_records else None
    with ExitStack() as stack:
        pg: pg_server.PgServer | None = None
        pg_feed_name = None
        if on_pg:
            if feed is not None:
                with pg_server.running(pg_server.BULK) as bulk:
                    pg_feed_name = pg_feed_cache(bulk, args.feed_records, feed[0])[0]
            settings = pg_server.settings_for(args.pg_fsync == "on", args.pg_set)
            pg = stack.enter_context(pg_server.running(settings))
            print(pg.describe(), flush=True)
        # the workload's ~100k long-lived objects live in this process only, not in the server's; keep the
        # cyclic GC from walking them on every collection, or the in-process figures pay for the harness
        gc.collect()
        gc.freeze()
        m = _runs(args, work, feed, pg, pg_feed_name, on_sqlite)
    _report(args, m, feed is not None, on_sqlite, on_pg)


def _runs(
    args: argparse.Namespace,
    work: Workload,
    feed: tuple[Path, Path, str] | None,
    pg: pg_server.PgServer | None,
    pg_feed_name: str | None,
    on_sqlite: bool,
) -> dict[str, list[float]]:
    m: dict[str, list[float]] = {}

    def put(name: str, value: float) -> None:
        m.setdefault(name, []).append(value)

    docs = work.documents
    for run in range(args.runs):
        summary = f"run {run + 1}:"
        with tempfile.TemporaryDirectory(prefix="bench-central-") as tmp:
            base = Path(tmp)
            if on_sqlite:
                for name in ("http", "service", "parts", "bare"):
                    (base / name).mkdir()
                result = intake_http_on(work, args.parcels, base / "http")
                put("http", docs / result.seconds)
                put("http_cpu", result.central_cpu / docs * 1000)
                put("service", docs / intake_service(work, args.parcels, base / "service"))
                put("bare", docs / baseline_insert(work, base / "bare"))
                parse, run_s, respond = intake_parts(work, base / "parts")
                put("parse", parse * 1000)
                put("submit", run_s * 1000)
                put("respond", respond * 1000)
                summary += (
                    f" intake http {m['http'][-1]:,.0f} docs/s, "
                    f"service {m['service'][-1]:,.0f}, bare {m['bare'][-1]:,.0f}"
                )
            if pg is not None:
                pg_intake(work, args.parcels, base, pg, put)
                summary += (
                    f"{';' if on_sqlite else ''} PostgreSQL intake http {m['pg_http1'][-1]:,.0f} docs/s"
                    f" (2 processes {m['pg_http2'][-1]:,.0f}), service {m['pg_service'][-1]:,.0f},"
                    f" bare {m['pg_bare'][-1]:,.0f}"
                )
            if feed is not None:
                directory, config, token = feed
                if on_sqlite:
                    with serve(config, directory / "server.log") as url:
                        seconds, parsing, pages = feed_http(url, token, args.feed_records)
                        checked = verify_sample(url, pages)
                    put("feed_http", seconds)
                    put("feed_parse", parsing)
                    put("feed_service", feed_service(directory / "central.db", args.feed_records))
                    put("feed_bare", feed_baseline(directory / "central.db", args.feed_records))
                    summary += f"; feed http {m['feed_http'][-1]:.2f} s ({checked} signatures verified)"
                if pg is not None and pg_feed_name is not None:
                    checked = pg_feed(pg, pg_feed_name, directory, token, args.feed_records, base)
                    for key, value in _PG_FEED.items():
                        put(f"pg_feed_{key}", value)
                    seconds = m["pg_feed_http"][-1]
                    summary += f"; PostgreSQL feed http {seconds:.2f} s ({checked} signatures verified)"
        print(summary, flush=True)
    return m


def _report(
    args: argparse.Namespace, m: dict[str, list[float]], feed: bool, on_sqlite: bool, on_pg: bool
) -> None:
    rows: list[tuple[str, str, list[float]]] = []
    n = args.feed_records
    if on_sqlite:
        http_batch = [args.batch / v * 1000 for v in m["http"]]
        rows += [
            ("intake via HTTP (POST /api/v1/documents)", "docs/s", m["http"]),
            ("intake in-process (submit())", "docs/s", m["service"]),
            ("baseline: bare SQLite insert, same rows", "docs/s", m["bare"]),
            ("  HTTP, per batch", "ms", http_batch),
            ("  request body validation, per batch", "ms", m["parse"]),
            ("  submit(), per batch", "ms", m["submit"]),
            ("  response serialisation, per batch", "ms", m["respond"]),
        ]
        if on_pg:
            rows.append(("  central CPU per 1,000 docs, HTTP", "s", m["http_cpu"]))
    if on_pg:
        rows += [
            ("PostgreSQL: intake via HTTP, 1 central process", "docs/s", m["pg_http1"]),
            ("  central CPU per 1,000 docs", "s", m["pg_central_cpu1"]),
            ("  PostgreSQL CPU per 1,000 docs", "s", m["pg_cpu1"]),
            ("  cores busy (central + PostgreSQL)", "cores", m["pg_cores1"]),
            ("PostgreSQL: intake via HTTP, 2 central processes", "docs/s", m["pg_http2"]),
            ("  central CPU per 1,000 docs (both processes)", "s", m["pg_central_cpu2"]),
            ("  PostgreSQL CPU per 1,000 docs", "s", m["pg_cpu2"]),
            ("  cores busy (central + PostgreSQL)", "cores", m["pg_cores2"]),
            ("PostgreSQL: intake in-process (submit())", "docs/s", m["pg_service"]),
            ("baseline: bare PostgreSQL insert, same rows", "docs/s", m["pg_bare"]),
        ]
        if on_sqlite:
            ratio = [p / q for p, q in zip(m["pg_http1"], m["http"], strict=True)]
            rows.append(("PostgreSQL 1 process ÷ SQLite, via HTTP", "×", ratio))
    if feed and on_sqlite:
        rows += [
            (f"feed via HTTP, {n:,} records", "s", m["feed_http"]),
            ("feed via HTTP", "records/s", [n / s for s in m["feed_http"]]),
            ("  of which the edge's json.loads", "s", m["feed_parse"]),
            ("feed in-process (page_json)", "s", m["feed_service"]),
            ("baseline: bare SELECT, same rows", "s", m["feed_bare"]),
        ]
    if feed and on_pg:
        rows += [
            (f"PostgreSQL: feed via HTTP, {n:,} records", "s", m["pg_feed_http"]),
            ("PostgreSQL: feed via HTTP", "records/s", [n / s for s in m["pg_feed_http"]]),
            ("  of which the edge's json.loads", "s", m["pg_feed_parse"]),
            ("PostgreSQL: feed in-process (page_json)", "s", m["pg_feed_service"]),
            ("baseline: bare PostgreSQL SELECT, same rows", "s", m["pg_feed_bare"]),
        ]
    print()
    print(table(rows, args.runs))
    if on_sqlite:
        goal = statistics.median(m["http"])
        verdict = "met" if goal >= 3000 else "NOT met"
        print(f"\nintake goal ≥ 3,000 docs/s via HTTP: {verdict} (median {goal:,.0f})")
    if on_pg:
        med = statistics.median
        for p in (1, 2):
            central_s, pg_s = med(m[f"pg_central_cpu{p}"]), med(m[f"pg_cpu{p}"])
            print(
                f"PostgreSQL, {p} central process{'es' if p > 1 else ''}: {central_s:.3f} s central +"
                f" {pg_s:.3f} s PostgreSQL = {central_s + pg_s:.3f} CPU s per 1,000 documents"
                f" (≈ {1000 / (central_s + pg_s):,.0f} documents per CPU second)"
            )
    if on_pg and on_sqlite:
        median_ratio = statistics.median(p / q for p, q in zip(m["pg_http1"], m["http"], strict=True))
        verdict = "met" if median_ratio >= 0.5 else "NOT met"
        print(
            f"PostgreSQL goal ≥ 0.5 × SQLite via HTTP, one process: {verdict}"
            f" (median of the runs' ratios {median_ratio:.2f})"
        )


if __name__ == "__main__":
    main()

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
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from bench.central_process import serve  # noqa: E402
from bench.machine import machine  # noqa: E402
from central.config import CentralSettings  # noqa: E402
from central.doc_keys import doc_key  # noqa: E402
from central.feed import append, page_json, signed_json  # noqa: E402
from central.intake import submit  # noqa: E402
from central.keys import load_or_create_key  # noqa: E402
from central.platform import Platform  # noqa: E402
from central.store.clearances import ClearanceRow  # noqa: E402
from central.store.db import Database  # noqa: E402
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


def _settings(directory: Path) -> tuple[CentralSettings, Path]:
    config = directory / "central.toml"
    config.write_text(
        f'database = "{directory / "central.db"}"\nsigning_key = "{directory / "feed.key"}"\n'
        f'log_level = "WARNING"\n{RISK_OFF}',
        encoding="utf-8",
    )
    settings = CentralSettings(
        database=directory / "central.db", signing_key=directory / "feed.key", risk={"sampling_rate": 0}
    )  # type: ignore[arg-type]
    return settings, config


# --- intake -------------------------------------------------------------------------------------


def _check_intake(db_path: Path, parcels: int) -> None:
    conn = sqlite3.connect(db_path)
    got = {
        "documents": conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0],
        "released": conn.execute("SELECT COUNT(*) FROM clearances WHERE status = '800'").fetchone()[0],
        "history": conn.execute("SELECT COUNT(*) FROM clearance_history").fetchone()[0],
        "feed": conn.execute("SELECT COUNT(*) FROM feed").fetchone()[0],
        "receipts": conn.execute("SELECT COUNT(*) FROM receipts").fetchone()[0],
    }
    conn.close()
    want = {
        "documents": parcels * 4,
        "released": parcels,
        "history": parcels * 3,
        "feed": parcels,  # one record per parcel: the state its message committed
        "receipts": parcels * 7,
    }
    if got != want:
        raise SystemExit(f"intake check failed: got {got}, want {want}")


def intake_http(work: Workload, parcels: int, directory: Path) -> float:
    settings, config = _settings(directory)
    token = seed(settings)["enterprise"]
    with serve(config, directory / "server.log") as url:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
            client.get("/healthz")  # open the keep-alive connection before the clock starts
            started = time.perf_counter()
            for body in work.bodies:
                r = client.post("/api/v1/documents", content=body)
                if r.status_code != 200:
                    raise SystemExit(f"POST /api/v1/documents: {r.status_code} {r.text[:500]}")
            elapsed = time.perf_counter() - started
    _check_intake(settings.database, parcels)
    return elapsed


def intake_service(work: Workload, parcels: int, directory: Path) -> float:
    settings, _ = _settings(directory)
    seed(settings)
    db = Database(settings.database)
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
    db = Database(settings.database)
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
    db = Database(settings.database)
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


def feed_service(db_path: Path, records: int) -> float:
    db = Database(db_path)
    key = load_or_create_key(db_path.parent / "feed.key")
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parcels", type=int, default=5000, help="parcels per intake run (4 documents each)")
    ap.add_argument("--runs", type=int, default=5, help="runs; the table gives each and the median")
    ap.add_argument("--feed-records", type=int, default=1_000_000, help="feed records to page (0: skip)")
    ap.add_argument("--batch", type=int, default=1000, help="documents per POST (a multiple of 4, ≤ 1000)")
    args = ap.parse_args()
    if args.batch % 4 or not 4 <= args.batch <= 1000:
        ap.error("--batch must be a multiple of 4 between 4 and 1000")

    print(machine())
    print(
        f"intake: {args.parcels:,} parcels = {args.parcels * 4:,} documents, "
        f"{args.batch} documents per batch; feed: {args.feed_records:,} records, pages of {PAGE}; "
        f"{args.runs} runs",
        flush=True,
    )
    work = Workload(args.parcels, args.batch)
    feed = feed_cache(args.feed_records) if args.feed_records else None
    # the workload's ~100k long-lived objects live in this process only, not in the server's; keep the
    # cyclic GC from walking them on every collection, or the in-process figures pay for the harness
    gc.collect()
    gc.freeze()

    m: dict[str, list[float]] = {}

    def put(name: str, value: float) -> None:
        m.setdefault(name, []).append(value)

    docs = work.documents
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-central-") as tmp:
            base = Path(tmp)
            for name in ("http", "service", "parts", "bare"):
                (base / name).mkdir()
            put("http", docs / intake_http(work, args.parcels, base / "http"))
            put("service", docs / intake_service(work, args.parcels, base / "service"))
            put("bare", docs / baseline_insert(work, base / "bare"))
            parse, run_s, respond = intake_parts(work, base / "parts")
            put("parse", parse * 1000)
            put("submit", run_s * 1000)
            put("respond", respond * 1000)
        if feed is not None:
            directory, config, token = feed
            with serve(config, directory / "server.log") as url:
                seconds, parsing, pages = feed_http(url, token, args.feed_records)
                checked = verify_sample(url, pages)
            put("feed_http", seconds)
            put("feed_parse", parsing)
            put("feed_service", feed_service(directory / "central.db", args.feed_records))
            put("feed_bare", feed_baseline(directory / "central.db", args.feed_records))
        summary = (
            f"run {run + 1}: intake http {m['http'][-1]:,.0f} docs/s, "
            f"service {m['service'][-1]:,.0f}, bare {m['bare'][-1]:,.0f}"
        )
        if feed is not None:
            summary += f"; feed http {m['feed_http'][-1]:.2f} s ({checked} signatures verified)"
        print(summary, flush=True)

    http_batch = [args.batch / v * 1000 for v in m["http"]]
    rows = [
        ("intake via HTTP (POST /api/v1/documents)", "docs/s", m["http"]),
        ("intake in-process (submit())", "docs/s", m["service"]),
        ("baseline: bare SQLite insert, same rows", "docs/s", m["bare"]),
        ("  HTTP, per batch", "ms", http_batch),
        ("  request body validation, per batch", "ms", m["parse"]),
        ("  submit(), per batch", "ms", m["submit"]),
        ("  response serialisation, per batch", "ms", m["respond"]),
    ]
    if feed is not None:
        n = args.feed_records
        rows += [
            (f"feed via HTTP, {n:,} records", "s", m["feed_http"]),
            ("feed via HTTP", "records/s", [n / s for s in m["feed_http"]]),
            ("  of which the edge's json.loads", "s", m["feed_parse"]),
            ("feed in-process (page_json)", "s", m["feed_service"]),
            ("baseline: bare SELECT, same rows", "s", m["feed_bare"]),
        ]
    print()
    print(table(rows, args.runs))
    goal = statistics.median(m["http"])
    verdict = "met" if goal >= 3000 else "NOT met"
    print(f"\nintake goal ≥ 3,000 docs/s via HTTP: {verdict} (median {goal:,.0f})")


if __name__ == "__main__":
    main()

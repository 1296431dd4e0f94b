"""Central on PostgreSQL (issue 13): what a statement costs through each way of talking to it.

    .venv/bin/pip install 'sqlalchemy>=2'          # only this bench needs it
    .venv/bin/python bench/pg_driver_choice.py     # 5 runs × 3,000 transactions each way

Central's store speaks plain SQL strings. The choice is between psycopg 3 with that SQL (placeholders
translated, rows as dicts) and SQLAlchemy Core (with Alembic for migrations). The work measured is the
shape of one document's intake: a transaction of one point SELECT by key, one INSERT of a 12-column
row and one UPDATE by key, against a table of 10 columns plus an index, on a PostgreSQL of the bench's
own (testkit/postgres.py: a new cluster, loopback TCP; fsync off, as in the tests). Each way runs the
same statements with the same values:

    psycopg            conn.execute(sql, params) in `with conn.transaction()`; psycopg prepares a
                       statement server-side after 5 executions (its default)
    sqlalchemy text    the same SQL as `text()` with named parameters, on a Core connection
    sqlalchemy core    Table objects: select(), insert(), update() built per call, as a store would
    sqlite3 (baseline) the same transaction on a SQLite file (WAL, synchronous=NORMAL, no fsync either)

Prints µs per transaction (median of the runs) and each way's ratio to psycopg.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from kernel import sqlite  # noqa: E402
from testkit.postgres import running_postgres  # noqa: E402

COLUMNS = ["doc_key", "kind", "guid", "order_no", "logistics_no", "park_id", "status", "body", "version", "n"]
DDL = (
    "CREATE TABLE documents (doc_key TEXT PRIMARY KEY, kind TEXT NOT NULL, guid TEXT NOT NULL,"
    " order_no TEXT, logistics_no TEXT, park_id TEXT, status TEXT, body TEXT NOT NULL,"
    " version INTEGER NOT NULL, n INTEGER NOT NULL)"
)
INDEX = "CREATE INDEX documents_order ON documents (order_no)"
BODY = '{"orderNo":"BGORDER0000000001","goods":"洗面奶 ×2","amount":"247.80"}' * 4


def row(i: int) -> dict[str, object]:
    return {
        "doc_key": f"K{i:012d}",
        "kind": "CEB621",
        "guid": f"G-{i:032d}",
        "order_no": f"BGORDER{i:010d}",
        "logistics_no": f"BGL{i:012d}",
        "park_id": "P1",
        "status": "120",
        "body": BODY,
        "version": 1,
        "n": i,
    }


def psycopg_way(dsn: str) -> Callable[[int], None]:
    conn = psycopg.connect(dsn, autocommit=True, row_factory=dict_row)
    insert = f"INSERT INTO documents ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"

    def one(i: int) -> None:
        with conn.transaction():
            conn.execute("SELECT doc_key, version FROM documents WHERE doc_key = %s", (f"K{i - 1:012d}",))
            conn.execute(insert, list(row(i).values()))
            conn.execute(
                "UPDATE documents SET status = %s, version = version + 1 WHERE doc_key = %s",
                ("399", f"K{i:012d}"),
            )

    return one


def sqlalchemy_text_way(dsn: str) -> Callable[[int], None]:
    from sqlalchemy import create_engine, text

    engine = create_engine(dsn.replace("postgresql://", "postgresql+psycopg://"))
    conn = engine.connect()
    select = text("SELECT doc_key, version FROM documents WHERE doc_key = :k")
    insert = text(
        f"INSERT INTO documents ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)})"
    )
    update = text("UPDATE documents SET status = :s, version = version + 1 WHERE doc_key = :k")

    def one(i: int) -> None:
        with conn.begin():
            conn.execute(select, {"k": f"K{i - 1:012d}"}).mappings().first()
            conn.execute(insert, row(i))
            conn.execute(update, {"s": "399", "k": f"K{i:012d}"})

    return one


def sqlalchemy_core_way(dsn: str) -> Callable[[int], None]:
    from sqlalchemy import Column, Integer, MetaData, Table, Text, create_engine, insert, select, update

    engine = create_engine(dsn.replace("postgresql://", "postgresql+psycopg://"))
    conn = engine.connect()
    meta = MetaData()
    docs = Table(
        "documents",
        meta,
        *(Column(c, Integer if c in ("version", "n") else Text, primary_key=c == "doc_key") for c in COLUMNS),
    )

    def one(i: int) -> None:
        with conn.begin():
            key = f"K{i - 1:012d}"
            conn.execute(
                select(docs.c.doc_key, docs.c.version).where(docs.c.doc_key == key)
            ).mappings().first()
            conn.execute(insert(docs).values(**row(i)))
            conn.execute(
                update(docs)
                .where(docs.c.doc_key == f"K{i:012d}")
                .values(status="399", version=docs.c.version + 1)
            )

    return one


def sqlite_way(path: Path) -> Callable[[int], None]:
    conn = sqlite.connect(path, sqlite.Pragmas(synchronous="NORMAL"))
    conn.execute(DDL)
    conn.execute(INDEX)
    insert = f"INSERT INTO documents ({', '.join(COLUMNS)}) VALUES ({', '.join(['?'] * len(COLUMNS))})"

    def one(i: int) -> None:
        with sqlite.transaction(conn):
            conn.execute(
                "SELECT doc_key, version FROM documents WHERE doc_key = ?", (f"K{i - 1:012d}",)
            ).fetchone()
            conn.execute(insert, list(row(i).values()))
            conn.execute(
                "UPDATE documents SET status = ?, version = version + 1 WHERE doc_key = ?",
                ("399", f"K{i:012d}"),
            )

    return one


def timed(one: Callable[[int], None], start: int, n: int) -> float:
    for i in range(start, start + 50):  # warm: connections, prepared statements, caches
        one(i)
    t0 = time.perf_counter()
    for i in range(start + 50, start + 50 + n):
        one(i)
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--transactions", type=int, default=3000)
    args = ap.parse_args()
    try:
        import sqlalchemy
    except ImportError:
        raise SystemExit("this bench needs SQLAlchemy: .venv/bin/pip install 'sqlalchemy>=2'") from None
    print(
        f"psycopg {psycopg.__version__}, SQLAlchemy {sqlalchemy.__version__};"
        f" {args.runs} runs × {args.transactions:,}"
    )
    results: dict[str, list[float]] = {}
    with running_postgres() as pg, tempfile.TemporaryDirectory() as tmp:
        print(f"PostgreSQL {pg.psql('SHOW server_version')}")
        for run in range(args.runs):
            ways: dict[str, Callable[[str], Callable[[int], None]]] = {
                "psycopg": psycopg_way,
                "sqlalchemy text": sqlalchemy_text_way,
                "sqlalchemy core": sqlalchemy_core_way,
            }
            for name, make in ways.items():
                dsn = pg.create_database(f"r{run}_{name.replace(' ', '_')}")
                with psycopg.connect(dsn, autocommit=True) as setup:
                    setup.execute(DDL)
                    setup.execute(INDEX)
                results.setdefault(name, []).append(timed(make(dsn), 1, args.transactions))
            path = Path(tmp) / f"r{run}.db"
            results.setdefault("sqlite3 (baseline)", []).append(timed(sqlite_way(path), 1, args.transactions))
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in results.items()), flush=True)
    base = statistics.median(results["psycopg"])
    print(f"\n{'way':<20} {'µs / transaction':>17} {'× psycopg':>10}")
    for name, values in results.items():
        m = statistics.median(values)
        print(f"{name:<20} {m:>17.0f} {m / base:>10.2f}")


if __name__ == "__main__":
    main()

"""The store's SQL on a real PostgreSQL (central/store/postgres.py): `?` placeholders, `%` and quotes
pass through as SQLite reads them, and rows are read by name and by position (issue 13, first step)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.store.postgres import PgConnection, translate
from testkit.postgres import Postgres

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def pg(postgres: Postgres) -> Iterator[PgConnection]:
    dsn = postgres.create_database("store_connection")
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield PgConnection(conn)


# one selected expression: a placeholder with its value, or a quoted literal with its text
literal_text = st.text(alphabet=st.sampled_from(list("ab ?%'\"海;")), max_size=8)
expression = st.one_of(
    st.tuples(st.just("param"), st.text(alphabet=st.sampled_from(list("xy?%'海")), max_size=6)),
    st.tuples(st.just("literal"), literal_text),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(expression, min_size=1, max_size=6))
def test_placeholders_percents_and_quotes_mean_what_sqlite_reads(
    pg: PgConnection, parts: list[tuple[str, str]]
) -> None:
    selected, params, expected = [], [], []
    for kind, value in parts:
        if kind == "param":
            selected.append("CAST(? AS text)")
            params.append(value)
        else:
            selected.append("'" + value.replace("'", "''") + "'")
        expected.append(value)
    row = pg.execute("SELECT " + ", ".join(selected), params).fetchone()
    assert row is not None and list(row) == expected


def test_translation_leaves_quoted_text_alone() -> None:
    assert translate("SELECT ? WHERE a = '?%' AND \"b?\" = ? AND c LIKE 'x%'") == (
        "SELECT %s WHERE a = '?%%' AND \"b?\" = %s AND c LIKE 'x%%'"
    )
    assert translate("SELECT 'it''s ?', ?") == "SELECT 'it''s ?', %s"
    assert translate("SELECT 10 % 3") == "SELECT 10 %% 3"


def test_rows_are_read_by_name_by_position_and_as_a_dict(pg: PgConnection) -> None:
    pg.execute("CREATE TABLE parks (park_id text PRIMARY KEY, name text NOT NULL, n integer)")
    pg.executemany("INSERT INTO parks VALUES (?, ?, ?)", [("P1", "Park One", 1), ("P2", "海口综保区", 2)])
    rows = pg.execute("SELECT park_id, name, n FROM parks WHERE n >= ? ORDER BY n", (1,)).fetchall()
    assert [r["park_id"] for r in rows] == ["P1", "P2"]
    assert rows[1][1] == "海口综保区" and rows[1]["n"] == 2
    assert dict(rows[0]) == {"park_id": "P1", "name": "Park One", "n": 1}
    assert list(rows[0].keys()) == ["park_id", "name", "n"]
    [count] = pg.execute("SELECT COUNT(*) FROM parks").fetchone() or [None]
    assert count == 2


MIGRATING = """
import json, sys
import psycopg
from central.store.postgres import migrate

def first(c):
    c.execute("SELECT pg_sleep(0.3)")  # long enough for the other processes to arrive meanwhile
    c.execute("CREATE TABLE a (x integer)")  # not IF NOT EXISTS: a second run would fail

def second(c):
    c.execute("CREATE TABLE b (y integer)")
    c.execute("INSERT INTO a VALUES (1)")

with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    print(json.dumps(migrate(conn, [("0001_a", first), ("0002_b", second)])))
"""


def test_three_processes_starting_together_apply_each_migration_once(postgres: Postgres) -> None:
    dsn = postgres.create_database("migrate_race")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATING, dsn], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        for _ in range(3)
    ]
    outcomes = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err.decode() for _, err in outcomes]
    applied = [name for out, _ in outcomes for name in json.loads(out)]
    assert sorted(applied) == ["0001_a", "0002_b"]  # each by one process, none twice
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall() == [
            ("0001_a",),
            ("0002_b",),
        ]
        assert conn.execute("SELECT COUNT(*) FROM a").fetchone() == (1,)


OPENING = """
import sys
from central.store.db import open_database

open_database(sys.argv[1]).close()
"""


def test_central_processes_opening_a_new_database_together_all_start(postgres: Postgres) -> None:
    """Three centrals started at once over an empty database: one migrates and creates the months'
    partitions, the others wait for it and find them there (racing to create a month, all but one
    failed with 'relation already exists' and did not start)."""
    dsn = postgres.create_database("open_race")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(3):  # the race is lost by chance: a few rounds, each over a new database
        postgres.drop_database("open_race")
        dsn = postgres.create_database("open_race")
        procs = [
            subprocess.Popen([sys.executable, "-c", OPENING, dsn], stderr=subprocess.PIPE, env=env)
            for _ in range(3)
        ]
        errors = [p.communicate(timeout=120)[1].decode() for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], errors
    with psycopg.connect(dsn) as conn:
        months = conn.execute(
            "SELECT COUNT(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent"
            " WHERE c.relname = 'documents'"
        ).fetchone()
        assert months is not None and months[0] >= 3  # this month, the next, and the default

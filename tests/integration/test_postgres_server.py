"""The tests' PostgreSQL (testkit/postgres.py) is a real server of the tests' own: a new cluster on a
free port, usable by a driver and by several connections at once, and gone after. Central's store on
PostgreSQL (issue 13) is tested against it."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from testkit.postgres import Postgres, running_postgres


def test_a_fresh_database_is_reachable_with_the_driver(postgres: Postgres) -> None:
    dsn = postgres.create_database("fixture_check")
    with psycopg.connect(dsn, autocommit=True) as one, psycopg.connect(dsn, autocommit=True) as two:
        version = one.execute("SHOW server_version_num").fetchone()
        assert version is not None and int(version[0]) >= 150000
        one.execute("CREATE TABLE t (id bigint PRIMARY KEY, v text NOT NULL)")
        one.execute("INSERT INTO t VALUES (1, '海口')")
        assert two.execute("SELECT v FROM t WHERE id = 1").fetchone() == ("海口",)  # UTF-8, committed
        user = one.execute("SELECT current_user").fetchone()
        assert user == ("postgres",)


def test_the_cluster_is_removed_and_its_server_stopped_after(tmp_path: Path) -> None:
    with running_postgres() as pg:
        folder, dsn = pg.folder, pg.dsn
        assert (folder / "data" / "PG_VERSION").exists()
    assert not folder.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=2)

"""The `database` setting from outside: what an operator sees when it is wrong, and how central on
PostgreSQL answers when the database goes away under it (an outside test found tracebacks, a
password in the log, and 500s)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from testkit import factories
from testkit.central_server import run_central

ROOT = Path(__file__).resolve().parents[2]


def _central_cli(tmp_path: Path, database: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BONDGATE_CENTRAL_DATABASE": database}
    env["BONDGATE_CENTRAL_SIGNING_KEY"] = str(tmp_path / "k.pem")
    return subprocess.run(
        [sys.executable, "-m", "bondgate.cli", "central", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "database",
    [
        "postgresql://bondgate:hunter2@127.0.0.1:1/bondgate",  # nothing listens on port 1
        "postgresql://bondgate:hunter2@[::1/bondgate",  # malformed
        "postgresql://bondgate@127.0.0.1:1/bondgate?password=hunter2",
        "host=127.0.0.1 dbname=bondgate password=hunter2",  # a libpq keyword string, not a file name
    ],
)
def test_a_database_central_cannot_open_is_one_line_naming_the_key_without_the_password(
    tmp_path: Path, database: str
) -> None:
    done = _central_cli(tmp_path, database, "park", "add", "P9", "--name", "nine")
    assert done.returncode == 2, done.stderr
    assert "database" in done.stderr and "Traceback" not in done.stderr
    assert "hunter2" not in done.stderr + done.stdout
    assert not any(tmp_path.glob("host=*"))  # no SQLite file named after the keyword string


@pytest.mark.postgresql
def test_connections_cut_under_central_answer_503_then_serve_again(tmp_path: Path, central_pg: Any) -> None:
    """Every connection of central's is ended by the server (a restart, a failover, an operator's
    pg_terminate_backend): the requests that meet a dead connection answer 503 with Retry-After —
    nothing was stored, send again — never 500, and the next ones are served on new connections."""
    database = central_pg.for_folder(tmp_path)
    [one, two] = factories.document_set(2, start=730)
    with run_central(tmp_path, database=database) as central:
        shop, officer = central.client("enterprise"), central.client("officer")
        for doc in one.documents:
            shop.post("/api/v1/documents", json=doc.model_dump(mode="json")).raise_for_status()
        assert officer.get("/healthz").status_code == 200
        name = database.rsplit("/", 1)[1]
        central_pg.server.psql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )

        def until_served(send: Any) -> httpx.Response:
            for _ in range(5):
                answer: httpx.Response = send()
                assert answer.status_code != 500, answer.text
                if answer.status_code != 503:
                    return answer
                assert answer.headers.get("Retry-After") and answer.json()["error"] == "database_unavailable"
            raise AssertionError("still 503 after five tries")

        assert until_served(lambda: officer.get("/healthz")).status_code == 200
        for doc in two.documents:
            body = doc.model_dump(mode="json")
            assert (
                until_served(lambda body=body: shop.post("/api/v1/documents", json=body)).status_code == 200
            )
        params = {"logisticsNo": two.waybill.logisticsNo}
        [detail] = until_served(lambda: officer.get("/api/v1/clearances", params=params)).json()
        assert [h["to_status"] for h in detail["history"]][-1] == "800"

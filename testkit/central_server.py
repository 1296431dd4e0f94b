"""A real central: uvicorn on a free loopback port in a background thread, over a real SQLite file
or a real PostgreSQL database.

`default_database(folder)` is where a central started over `folder` keeps its data: `folder`/central.db,
unless a test suite points it at PostgreSQL (tests/central/conftest.py runs the central suite over
both); the same folder gives the same database, so a restart finds its data."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from central.api.app import create_app
from central.auth import Role, create_token
from central.config import CentralSettings
from central.store.db import open_database
from central.store.parks import upsert_park
from firmware_sim import declarations
from kernel.timefmt import iso_now


@dataclass
class RunningCentral:
    url: str
    settings: CentralSettings
    tokens: dict[str, str]  # name -> secret

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens.get(token, token)}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def write(self, sql: str, params: tuple[object, ...] = ()) -> None:
        """Run one statement in a write transaction on central's database, around the API (a test
        making the state an older version or an outage would have left)."""
        db = open_database(self.settings.database)
        try:
            with db.write() as conn:
                conn.execute(sql, params)
        finally:
            db.close()


PARKS = {
    "P1": ("Park One", ["T6409W000001"], ["4601W60001"]),
    "P2": ("Park Two", ["T6409W000002"], ["4601W60002"]),
}


# the tests' one enterprise token acts for every enterprise the simulated declarations and the
# official samples name (a transfer enterprise declaring for several, as on a single window)
SIMULATED_ENTERPRISES = declarations.ENTERPRISE_CODES
SAMPLE_ENTERPRISES = ["1105910158", "1105910159", "1101110323", "1101110325", "1101180326"]


def seed(settings: CentralSettings) -> dict[str, str]:
    """Two parks and a token of every role (edge tokens for both parks)."""
    db = open_database(settings.database)
    for park_id, (name, ems, areas) in PARKS.items():
        upsert_park(db, park_id=park_id, name=name, ems_nos=ems, area_codes=areas, now=iso_now())
    tokens = {
        "admin": create_token(db, role=Role.ADMIN, name="admin")[0],
        "enterprise": create_token(
            db,
            role=Role.ENTERPRISE,
            name="shop",
            enterprise_codes=[*SIMULATED_ENTERPRISES, *SAMPLE_ENTERPRISES],
        )[0],
        "officer": create_token(db, role=Role.OFFICER, name="officer")[0],
        "edge": create_token(db, role=Role.EDGE, name="edge-p1", park_id="P1", edge_id="edge-p1")[0],
        "edge_p2": create_token(db, role=Role.EDGE, name="edge-p2", park_id="P2", edge_id="edge-p2")[0],
    }
    db.close()
    return tokens


def sqlite_database(folder: Path) -> str:
    return str(folder / "central.db")


default_database: Callable[[Path], str] = sqlite_database


@contextmanager
def run_central(
    tmp: Path,
    *,
    reseed: bool = True,
    port: int = 0,
    tls: tuple[Path, Path] | None = None,
    **overrides: object,
) -> Iterator[RunningCentral]:
    """Start central over `tmp`/central.db; `reseed=False` restarts over an existing database.
    `port=0` takes a free port; give the previous run's port to restart where edges expect it.
    `tls` = (certificate chain PEM, key PEM) serves https (`client()` then trusts nothing: tests
    that use it build their own client)."""
    overrides.setdefault("risk", {"sampling_rate": 0})  # deterministic unless a test asks otherwise
    tmp.mkdir(parents=True, exist_ok=True)
    overrides.setdefault("database", default_database(tmp))
    settings = CentralSettings(signing_key=tmp / "feed.key", port=0, **overrides)  # type: ignore[arg-type]
    saved = tmp / "tokens.json"
    if reseed or not saved.exists():
        tokens = seed(settings)
        saved.write_text(json.dumps(tokens))
    else:
        tokens = json.loads(saved.read_text())
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("central failed to start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        scheme = "https" if tls else "http"
        yield RunningCentral(url=f"{scheme}://127.0.0.1:{port}", settings=settings, tokens=tokens)
    finally:
        server.should_exit = True
        thread.join(timeout=10)

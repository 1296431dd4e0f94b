"""A real PostgreSQL server for one test session: a new cluster in a temporary folder, on a free
loopback port, removed after.

PostgreSQL refuses to run as root, and CI runs as root: then the cluster's folder is given to the
`postgres` system user and `initdb` and the server run as that user (`runuser`); as any other user
they run as that user. Authentication is `trust` on loopback and the folder's socket only — a test
server, never a deployment. `fsync` is off: these servers test what several processes do to one
database, not what a power cut does to it (SQLite's durability tests stay on SQLite's files).

    with running_postgres() as pg:
        pg.dsn            # postgresql://postgres@127.0.0.1:<port>/postgres
        pg.create_database("t1")  # a fresh database, its DSN returned
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from bondgate.processes import free_port


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's programs (Debian keeps them under /usr/lib/postgresql/N/bin)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    if versions:
        return versions[-1].parent
    found = shutil.which("postgres")
    return Path(found).parent if found else None


@dataclass
class Postgres:
    port: int
    folder: Path
    bin: Path
    as_user: list[str]

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run `sql` with psql (no driver needed) and return its unaligned output."""
        done = subprocess.run(
            [
                *self.as_user,
                *(str(self.bin / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"),
                *("-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database, "-c", sql),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database (a copy of `template` when given: no one may be connected to it)."""
        copy = f' TEMPLATE "{template}"' if template else ""
        self.psql(f'CREATE DATABASE "{name}"{copy}')
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        """Drop `name`, ending any session still connected to it."""
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def running_postgres(*, start_s: float = 60) -> Iterator[Postgres]:
    """A new PostgreSQL cluster, running until the block ends; then stopped and its folder removed."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (scripts/system-packages.sh installs it)")
    folder = Path(tempfile.mkdtemp(prefix="bondgate-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL will not run as root
        shutil.chown(folder, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = folder / "data"
    log = folder / "server.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [
                *as_user,
                *(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"),
                *("-E", "UTF8", "--locale=C.UTF-8", "--no-sync"),
            ],
            capture_output=True,
            timeout=120,
            check=True,
        )
        settings = {"unix_socket_directories": str(folder), "fsync": "off", "full_page_writes": "off"}
        proc, port = start_server(bin_dir, data, as_user, settings, log, start_s)
        pg = Postgres(port=port, folder=folder, bin=bin_dir, as_user=as_user)
        yield pg
    finally:
        if proc is not None and proc.poll() is None:
            stop_server(data, proc)
        shutil.rmtree(folder, ignore_errors=True)


def start_server(
    bin_dir: Path, data: Path, as_user: list[str], settings: dict[str, str], log: Path, start_s: float
) -> tuple[subprocess.Popen[bytes], int]:
    """Start the cluster in `data` on a free loopback port with `settings` over the defaults, and
    wait until it answers; (the process, its port). Raises RuntimeError with the log's end if it
    does not start."""
    port = free_port()
    base = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "max_connections": "200",
        "logging_collector": "off",
    }
    args = [arg for key, value in {**base, **settings}.items() for arg in ("-c", f"{key}={value}")]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*as_user, str(bin_dir / "postgres"), "-D", str(data), *args], stdout=out, stderr=out
        )
    deadline = time.monotonic() + start_s
    while True:
        ready = subprocess.run(
            [str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)], timeout=10, check=False
        )
        if ready.returncode == 0:
            return proc, port
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                stop_server(data, proc)
            raise RuntimeError(f"PostgreSQL did not start:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)


def stop_server(data: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """A fast shutdown (SIGINT: sessions end, a checkpoint is written), killed after `timeout` s."""
    _signal_postmaster(data, proc)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _signal_postmaster(data: Path, proc: subprocess.Popen[bytes]) -> None:
    """SIGINT to the postmaster itself (its pid is the first line of postmaster.pid): `proc` may be
    `runuser`, which need not pass a signal on."""
    try:
        pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        pid = proc.pid
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)

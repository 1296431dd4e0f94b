"""Several real central processes over one PostgreSQL database, as an operator runs them behind a
load balancer: each `bondgate central serve` in its own process, on its own free port, sharing the
database and the feed-signing key.

    with run_central_cluster(tmp, dsn, processes=3) as cluster:
        cluster.urls              # one base URL per process
        cluster.client(i, "enterprise")
        cluster.kill(i)           # SIGKILL, mid-whatever it was doing
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import STDOUT, Popen

import httpx

from bondgate.processes import free_port, http_ready, stop
from central.config import CentralSettings
from central.keys import load_or_create_key
from kernel.config import toml_dumps
from testkit.central_server import seed

START_S = 60  # for every process to answer /healthz


@dataclass
class CentralCluster:
    urls: list[str]
    settings: CentralSettings
    tokens: dict[str, str]
    procs: list[Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def client(self, index: int, token: str | None = None, timeout: float = 60) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens.get(token, token)}"} if token else {}
        return httpx.Client(base_url=self.urls[index], headers=headers, timeout=timeout)

    def kill(self, index: int) -> None:
        """SIGKILL one process (its group): no shutdown, whatever it was in the middle of."""
        os.killpg(self.procs[index].pid, signal.SIGKILL)
        self.procs[index].wait()

    def log(self, index: int) -> str:
        return self.logs[index].read_text(errors="replace")


@contextmanager
def run_central_cluster(
    tmp: Path, database: str, *, processes: int = 3, **overrides: object
) -> Iterator[CentralCluster]:
    """Seed `database` (two parks, a token of every role) and start `processes` centrals over it."""
    overrides.setdefault("risk", {"sampling_rate": 0})
    tmp.mkdir(parents=True, exist_ok=True)
    settings = CentralSettings(database=database, signing_key=tmp / "feed.key", port=0, **overrides)  # type: ignore[arg-type]
    tokens = seed(settings)  # migrates before any process starts
    load_or_create_key(settings.signing_key)  # the one key every process signs the feed with
    cluster = CentralCluster(urls=[], settings=settings, tokens=tokens)
    with ExitStack() as stack:
        starting = []
        for index in range(processes):  # all started at once, then each waited for
            port = free_port()
            config = tmp / f"central-{index}.toml"
            values = settings.model_dump(mode="json", exclude_none=True)
            values.update(host="127.0.0.1", port=port, log_level="INFO")
            config.write_text(toml_dumps(values))
            log = tmp / f"central-{index}.log"
            out = stack.enter_context(log.open("wb"))
            proc = Popen(
                [sys.executable, "-m", "bondgate.cli", "central", "serve", "--config", str(config)],
                stdout=out,
                stderr=STDOUT,
                start_new_session=True,
            )
            stack.callback(stop, proc)
            starting.append((f"http://127.0.0.1:{port}", proc, log))
        deadline = time.monotonic() + START_S
        for url, proc, log in starting:
            ready = http_ready(f"{url}/healthz")
            while not ready():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"a central process did not start; see {log}")
                time.sleep(0.05)
            cluster.urls.append(url)
            cluster.procs.append(proc)
            cluster.logs.append(log)
        yield cluster

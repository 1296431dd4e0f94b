"""The edge agent as a real operating-system process, the way an operator runs it:
`python -m bondgate.cli edge run --config edge.toml`, so a test can SIGKILL it for real.

- `toml_dumps` writes the small subset of TOML a configuration needs (tables, arrays of tables,
  strings, numbers, booleans, lists of those); `None` values are left out, as TOML has no null.
- `edge_config` builds an edge.toml's content for a test park (central link, devices, stations);
  `write_edge_config` writes it and loads it back through the CLI's own loader, so a file the agent
  would refuse fails here, in the test process, with the key named.
- `AgentProcess` starts the agent in its own session (its own process group), logs to a file, can
  wait for a log message, SIGKILL or SIGTERM it, and restart it over the same database; the
  `agent_process` context manager kills the whole group on the way out, so nothing is orphaned.
- `edge_cli` runs another `bondgate edge …` command (e.g. `db check`) to completion.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from kernel.config import toml_dumps
from testkit.central_server import RunningCentral

ROOT = Path(__file__).resolve().parents[2]
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


# --- edge.toml ------------------------------------------------------------------------------------


def edge_config(
    tmp: Path,
    central: RunningCentral,
    *,
    devices: Mapping[str, Any],
    stations: list[Mapping[str, Any]],
    **overrides: Any,
) -> dict[str, Any]:
    """An edge.toml's content for park P1 / edge-p1 over `tmp`/edge.db, linked to `central`."""
    key = tmp / "central-feed.pem"
    if not key.exists():
        with central.client() as client:
            key.write_text(client.get("/.well-known/bondgate/feed-key.pem").raise_for_status().text)
    data: dict[str, Any] = {
        "park_id": "P1",
        "edge_id": "edge-p1",
        "database": tmp / "edge.db",
        "evidence_dir": tmp / "evidence",
        "heartbeat_s": 3600,
        "log_level": "INFO",
        "central": {
            "url": central.url,
            "token": central.tokens["edge"],
            "public_key": key,
            "long_poll_s": 1,
        },
        "api": {"host": "127.0.0.1", "port": 0},
        "devices": dict(devices),
        "stations": list(stations),
    }
    data.update(overrides)
    return data


def write_edge_config(path: Path, data: Mapping[str, Any]) -> Path:
    """Write `data` as TOML and check that the agent's own loader accepts it."""
    from edge.config import EdgeSettings
    from kernel.config import load_settings

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(toml_dumps(data), encoding="utf-8")
    load_settings(EdgeSettings, path)  # raises ConfigError naming the key
    return path


def _clean_env() -> dict[str, str]:
    """This environment without BONDGATE_EDGE_* (they would override the file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BONDGATE_EDGE_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def edge_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `bondgate edge <args>` to completion, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "bondgate.cli", "edge", *args],
        cwd=ROOT,
        env=_clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --- the agent process -----------------------------------------------------------------------------


class AgentProcess:
    """`bondgate edge run --config <config>` in its own process group; restartable.

    Every run appends to `log` (the agent writes JSON lines to stderr when it is not a terminal).
    """

    def __init__(self, config: Path, log: Path, *, wrap: Sequence[str] = ()) -> None:
        self.config = config
        self.log = log
        self.wrap = list(wrap)  # a command the agent runs under (e.g. testkit/tiny_disk.py)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0
        self._log_file: IO[bytes] | None = None
        self._log_offset = 0  # where the current run's output starts

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        if self.running:
            raise RuntimeError("agent already running")
        self._close_log()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log.open("ab")
        self._log_offset = self._log_file.tell()
        self.proc = subprocess.Popen(
            [*self.wrap, sys.executable, "-m", "bondgate.cli", "edge", "run", "--config", str(self.config)],
            cwd=ROOT,
            env=_clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killpg reaches it and any child
        )
        self.starts += 1

    def _signal_group(self, sig: int) -> None:
        # only while our child has not been reaped: its pid (= process group id) is still ours
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def kill(self) -> int:
        """SIGKILL the agent's process group (no cleanup, no last commit) and reap it."""
        assert self.proc is not None, "agent never started"
        self._signal_group(signal.SIGKILL)
        code = self.proc.wait(timeout=10)
        self.kills += 1
        self._close_log()
        return code

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM (a clean stop); SIGKILL if it does not end within `timeout`."""
        assert self.proc is not None, "agent never started"
        self._signal_group(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            code = self.proc.wait(timeout=10)
        self._close_log()
        return code

    def close(self) -> None:
        """Teardown: nothing of ours survives the test."""
        if self.proc is not None:
            self._signal_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    # --- the log ---------------------------------------------------------------------------------
    def records(self, *, current_run: bool = True) -> list[dict[str, Any]]:
        """The JSON log records written so far (of the current run by default); other lines skipped."""
        if not self.log.exists():
            return []
        with self.log.open("rb") as f:
            if current_run:
                f.seek(self._log_offset)
            lines = f.read().decode("utf-8", "replace").splitlines()
        out = []
        for line in lines:
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    out.append(entry)
        return out

    def tail(self, n: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text("utf-8", "replace").splitlines()[-n:])

    def find(self, msg: str, **fields: Any) -> dict[str, Any] | None:
        for entry in self.records():
            if entry.get("msg") == msg and all(entry.get(k) == v for k, v in fields.items()):
                return entry
        return None

    async def wait_for_log(self, msg: str, *, timeout: float = 30, **fields: Any) -> dict[str, Any]:
        """Wait (upper bound `timeout`) for a log record of the current run; fail fast if it died."""
        deadline = time.monotonic() + timeout
        while True:
            entry = self.find(msg, **fields)
            if entry is not None:
                return entry
            if not self.running:
                raise AssertionError(
                    f"agent exited ({self.proc and self.proc.returncode}) before logging {msg!r}:\n"
                    + self.tail()
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"agent did not log {msg!r} within {timeout} s:\n" + self.tail())
            await asyncio.sleep(0.02)

    async def started(self, timeout: float = 30) -> None:
        await self.wait_for_log("edge agent started", timeout=timeout)


@contextlib.contextmanager
def agent_process(config: Path, log: Path, *, wrap: Sequence[str] = ()) -> Iterator[AgentProcess]:
    """An `AgentProcess` (not yet started) whose process group is SIGKILLed on the way out."""
    agent = AgentProcess(config, log, wrap=wrap)
    try:
        yield agent
    finally:
        agent.close()

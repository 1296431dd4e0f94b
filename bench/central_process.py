"""A real `bondgate central serve` in its own process, for the benches that measure through HTTP;
and the CPU time a process (and the processes it started) used, read from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bondgate.processes import free_port

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Central:
    url: str
    pid: int

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid)


@contextmanager
def central(config: Path, log: Path, *, start_s: float = 120) -> Iterator[Central]:
    """`bondgate central serve` in its own process (its own GIL, as in production); yields its URL
    and pid once /healthz answers, stops it after. A large database takes a while to open (migrations)."""
    port = free_port()
    exe = Path(sys.executable).with_name("bondgate")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(exe), "central", "serve", "--config", str(config), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_s
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"central did not start; see {log}:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield Central(url, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def serve(config: Path, log: Path, *, start_s: float = 120) -> Iterator[str]:
    """`central()`, yielding only its URL."""
    with central(config, log, start_s=start_s) as running:
        yield running.url


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (field 3, the state, first)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _cpu(fields: list[str]) -> int:
    """utime + stime + cutime + cstime in ticks: the process's own and its reaped children's."""
    return sum(int(x) for x in fields[11:15])


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) so far of `pid` and of every process whose parent it is, each
    with the children it reaped. A process reaped between two readings has its whole time in its
    parent's reaped total by the second, and its time up to the first in the first reading's sum:
    the difference of two readings is what the tree used in between."""
    own = _stat(pid)
    if own is None:
        raise RuntimeError(f"no process {pid}")
    ticks = _cpu(own)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == pid:
            continue
        fields = _stat(int(entry.name))
        if fields is not None and int(fields[1]) == pid:
            ticks += _cpu(fields)
    return ticks / _TICK

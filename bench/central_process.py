"""A real `bondgate central serve` in its own process, for the benches that measure through HTTP."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bondgate.processes import free_port


@contextmanager
def serve(config: Path, log: Path, *, start_s: float = 120) -> Iterator[str]:
    """`bondgate central serve` in its own process (its own GIL, as in production); yields its URL
    once /healthz answers, stops it after. A large database takes a while to open (migrations)."""
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
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

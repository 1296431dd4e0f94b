"""Edge local API: does a login's answer time tell whether the name exists?

    .venv/bin/python bench/login_timing.py                   # 5 runs × 100 attempts of each kind
    .venv/bin/python bench/login_timing.py --runs 3 --attempts 50

Starts the agent as the operator does (`bondgate edge run`, its own process; no central, no
devices, one user `olga`), then times `POST /api/login` from a keep-alive client on loopback,
three kinds of attempt in a shuffled order each round: a name that is no user, `olga` with a wrong
password, `olga` with her password. The right password comes last in its round's accounting but at a
random place in the order, and its success clears the failures the round made, so the throttling of
failed logins never answers for the password check (no 429 is counted; the script stops if one
comes). Baselines from the same run: `GET /healthz` (the HTTP round trip without any password
work) and one bare `hashlib.scrypt` with the agent's parameters in this process.

Prints per run the median (and p10 / p90) of each kind, and the difference unknown − known-wrong
of the medians; BENCHMARKS.md keeps the figures. It finds the API by polling /healthz on a port it
picked, so it also runs on code older than the agent's "local API listening" log line.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before bench/ (the script's own directory): bench/devices.py is not devices/

import httpx  # noqa: E402

from bench.central_ingest import machine  # noqa: E402
from bondgate.processes import free_port  # noqa: E402
from edge.auth import SCRYPT  # noqa: E402
from kernel.config import toml_dumps  # noqa: E402
from testkit.standalone_edge import offline_central, standalone_config  # noqa: E402

KINDS = ["unknown name", "known name, wrong password", "known name, right password", "GET /healthz"]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_run(base: str, attempts: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in KINDS}
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for _ in range(10):  # warm up the connection and the server's code paths
            await http.get("/healthz")
            await http.post("/api/login", json={"name": "olga", "password": "olga-pass"})
        for _ in range(attempts):
            order = KINDS[:]
            random.shuffle(order)
            for kind in order:
                t0 = time.perf_counter()
                if kind == "GET /healthz":
                    got = await http.get("/healthz")
                    want = 200
                elif kind == "unknown name":
                    got = await http.post(
                        "/api/login", json={"name": f"nobody-{secrets.token_hex(4)}", "password": "guess"}
                    )
                    want = 401
                elif kind == "known name, wrong password":
                    got = await http.post("/api/login", json={"name": "olga", "password": "guess"})
                    want = 401
                else:
                    got = await http.post("/api/login", json={"name": "olga", "password": "olga-pass"})
                    want = 200
                elapsed = time.perf_counter() - t0
                if got.status_code != want:
                    raise SystemExit(f"{kind}: {got.status_code} {got.text} (expected {want})")
                times[kind].append(elapsed * 1000)
            # the round's two failures are cleared by olga's success wherever it fell in the order;
            # if it came first, one more success clears them now (not timed)
            if order.index("known name, right password") < max(
                order.index("unknown name"), order.index("known name, wrong password")
            ):
                await http.post("/api/login", json={"name": "olga", "password": "olga-pass"})
    return times


async def wait_up(base: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the agent exited ({proc.returncode})")
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the agent's API did not come up")


def bare_scrypt(n: int = 50) -> float:
    salt = os.urandom(16)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        hashlib.scrypt(b"guess", salt=salt, dklen=32, **SCRYPT)
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--attempts", type=int, default=100, help="attempts of each kind per run")
    args = parser.parse_args()
    print(f"# {machine()}")
    print(f"# code: {ROOT}, {args.runs} runs × {args.attempts} attempts of each kind; times in ms")
    with tempfile.TemporaryDirectory() as tmp_name, offline_central() as central:
        tmp = Path(tmp_name)
        port = free_port()
        data = standalone_config(tmp, central, api={"port": port}, log_level="WARNING")
        config = tmp / "edge.toml"
        config.write_text(toml_dumps(data), encoding="utf-8")
        log = (tmp / "agent.log").open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("BONDGATE_EDGE_")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "bondgate.cli", "edge", "run", "--config", str(config)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            asyncio.run(wait_up(base, proc))
            header = " | ".join(f"{k} p50 (p10–p90)" for k in KINDS)
            print(f"run | {header} | unknown − known-wrong | bare scrypt")
            for run in range(1, args.runs + 1):
                times = asyncio.run(one_run(base, args.attempts))
                cells = [
                    f"{statistics.median(times[k]):.2f} ({pct(times[k], 0.1):.2f}–{pct(times[k], 0.9):.2f})"
                    for k in KINDS
                ]
                diff = statistics.median(times[KINDS[0]]) - statistics.median(times[KINDS[1]])
                print(f"{run} | {' | '.join(cells)} | {diff:+.2f} | {bare_scrypt():.2f}", flush=True)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            log.close()


if __name__ == "__main__":
    main()

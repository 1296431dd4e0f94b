"""Modbus write-and-confirm round trip: the gate I/O driver next to bare pymodbus, same run.

    .venv/bin/python bench/dev_modbus.py            # 1000 iterations each
    .venv/bin/python bench/dev_modbus.py -n 5000

driver    `GateIODriver.set_output()` alternating True/False on one coil: write coil (function 5),
          read it back (function 1), compare; through our bus lock, while the driver keeps polling
          the DIs at 50 Hz on the same connection (the real load).
baseline  a bare `AsyncModbusTcpClient` on its own connection: `write_coil` then `read_coils`, the
          same two requests, against the same simulator in the same process while the driver polls.

The simulator (pymodbus's own server under firmware_sim/gateio.py) runs in a child process by
default, as a module is a separate box; `--in-process` puts it in the same event loop, which shows
pure Python cost without process switches. `measure()` returns (name, value, unit) rows for
bench/devices.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pymodbus.client import AsyncModbusTcpClient  # noqa: E402

from devices.drivers.gateio import GateIOConfig, GateIODriver  # noqa: E402
from devices.health import State  # noqa: E402
from devices.transports.modbus import TcpEndpoint  # noqa: E402
from firmware_sim.gateio import GateIOSim, gate_map  # noqa: E402

Row = tuple[str, float, str]


def _summary(name: str, samples: list[float]) -> list[Row]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return [(f"{name} median", statistics.median(ordered) * 1000, "ms"), (f"{name} p99", p99 * 1000, "ms")]


@contextlib.asynccontextmanager
async def _simulator(in_process: bool) -> AsyncIterator[int]:
    """The simulator's port; in a child process unless `in_process`."""
    if in_process:
        async with GateIOSim("e1212") as sim:
            yield sim.port
        return
    code = "from firmware_sim.gateio import command; command(port=0)"  # -c puts cwd (ROOT) on sys.path
    child = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert child.stdout is not None
        banner = await asyncio.to_thread(child.stdout.readline)  # "... on 127.0.0.1:PORT"
        yield int(banner.rsplit(":", 1)[1])
    finally:
        child.terminate()
        child.wait(5)


async def _measure(n: int, in_process: bool) -> list[Row]:
    async with _simulator(in_process) as port:
        config = GateIOConfig(endpoint=TcpEndpoint(host="127.0.0.1", port=port), io=gate_map("e1212"))
        async with GateIODriver("bench", config) as driver:
            await driver.supervisor.wait_for(State.UP, 5)
            coil = config.io.coil("light_green")
            driver_times: list[float] = []
            for i in range(n):
                start = time.perf_counter()
                await driver.set_output("light_green", i % 2 == 0)
                driver_times.append(time.perf_counter() - start)

            bare_times: list[float] = []
            async with AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0) as client:
                for i in range(n):
                    start = time.perf_counter()
                    await client.write_coil(coil, i % 2 == 0, device_id=1)
                    bits = (await client.read_coils(coil, count=1, device_id=1)).bits
                    bare_times.append(time.perf_counter() - start)
                    assert bits[0] == (i % 2 == 0)
            polls = driver.polls
    return [
        *_summary("modbus write+confirm, driver set_output", driver_times),
        *_summary("modbus write+confirm, bare pymodbus write_coil+read_coils", bare_times),
        ("modbus DI polls during the run", float(polls), "polls"),
    ]


def measure(n: int = 1000, *, in_process: bool = False) -> list[Row]:
    return asyncio.run(_measure(n, in_process))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="iterations per measurement")
    parser.add_argument("--in-process", action="store_true", help="simulator in this event loop")
    args = parser.parse_args()
    for name, value, unit in measure(args.n, in_process=args.in_process):
        print(f"{name:<62} {value:>9.3f} {unit}")


if __name__ == "__main__":
    main()

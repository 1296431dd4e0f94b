"""Gate I/O on a noisy RS-485 line: share of time DOWN and failed diverter commands, before and after.

    .venv/bin/python bench/modbus_noisy_line.py                  # retries as configured (default 2)
    .venv/bin/python bench/modbus_noisy_line.py --retries 0      # the old behaviour: no second try
    .venv/bin/python bench/modbus_noisy_line.py --code /tmp/old  # another checkout's devices/, e.g.
                                           # from `git archive <commit> | tar -x -C /tmp/old`

An ADAM-6050 written from Advantech's Modbus table (testkit/vendor_modbus.py, not firmware_sim)
answers Modbus RTU on a pty pair; the line corrupts the CRC of 1 answer in 100 (`--corrupt`) and can
lose answers outright (`--drop`), decided by a seeded generator in request order. The driver polls
the DIs at 50 Hz with its default 0.25 s timeout, as in a park; meanwhile a parcel reaches the
diverter every 1/`--rate` s and gets a diverter command as the conveyor gives it: the other lane
off, then this lane on, each written and read back. A command fails if either write raises (no
answer, or the module DOWN and refusing) or is confirmed only after its parcel's deadline
(`--deadline`, 0.5 s after it was given: the parcel is at the diverter).

Printed per run and as the median of `--runs` runs: share of time DOWN (from the first UP to the
end), failed commands / commands, requests asked again, answers that failed their CRC (counted by
the driver, where it counts them, and by the line), and state changes.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from testkit.vendor_modbus import LineNoise, RtuModule, adam6050  # noqa: E402

POINTS = {
    "inputs": {"photo_eye": 0, "barrier_open": 1},
    "outputs": {
        "release": {"channel": 0},
        "inspect": {"channel": 1},
        "light_red": {"channel": 3, "safe": True},
    },
}


@dataclass
class Result:
    seconds: float
    down_s: float
    commands: int
    failed: int
    late: int
    retried: int
    crc_seen: int  # by the driver (-1: this code does not count them)
    crc_sent: int  # by the line
    dropped: int
    changes: int
    polls: int

    @property
    def down_share(self) -> float:
        return self.down_s / self.seconds


async def one_run(args: argparse.Namespace, seed: int) -> Result:
    from devices.drivers.gateio import GateIOConfig, GateIODriver
    from devices.health import DeviceError, Health, State
    from devices.protocols.io_profiles import IOMap
    from devices.transports.modbus import RtuEndpoint

    noise = LineNoise(seed=seed, corrupt=args.corrupt, drop_answer=args.drop)
    module = RtuModule(adam6050(), units=(1,), noise=noise)
    await module.start()
    extra: dict[str, Any] = {}
    if args.retries is not None:
        if "retries" not in GateIOConfig.model_fields:
            raise SystemExit("this code has no retries setting (run without --retries)")
        extra["retries"] = args.retries
    config = GateIOConfig(
        endpoint=RtuEndpoint(port=module.path, baudrate=115200),
        io=IOMap(profile="adam6050", **POINTS),  # type: ignore[arg-type]
        poll_hz=args.poll_hz,
        timeout_s=args.timeout,
        **extra,
    )
    takes_deadline = "deadline" in inspect.signature(GateIODriver.set_output).parameters
    driver = GateIODriver("io", config)
    down_s, down_since, changes = 0.0, None, 0
    started: float | None = None

    def listener(health: Health) -> None:
        nonlocal down_s, down_since, changes
        if started is None:
            return
        changes += 1
        now = time.monotonic()
        if health.state == State.DOWN and down_since is None:
            down_since = now
        elif health.state in (State.UP, State.DEGRADED) and down_since is not None:
            down_s += now - down_since
            down_since = None

    driver.supervisor.subscribe(listener)
    commands = failed = late = 0
    try:
        async with driver:
            await driver.supervisor.wait_for(State.UP, 10)
            started = time.monotonic()
            end = started + args.seconds
            next_at = started
            lanes = ("release", "inspect")
            while next_at < end:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                given = time.monotonic()
                deadline = given + args.deadline
                target, other = lanes[commands % 2], lanes[(commands + 1) % 2]
                commands += 1
                kw = {"deadline": deadline} if takes_deadline else {}
                try:
                    await driver.set_output(other, False)
                    await driver.set_output(target, True, **kw)
                except DeviceError as exc:
                    failed += 1
                    if args.verbose:
                        print(f"  command {commands} at {time.monotonic() - started:.3f} s failed: {exc}")
                else:
                    if time.monotonic() > deadline:
                        failed += 1
                        late += 1
                next_at = max(next_at + 1 / args.rate, time.monotonic())  # late: no burst after
            finished = time.monotonic()
            if down_since is not None:
                down_s += finished - down_since
            buses = {id(b): b for b in (driver.bus, driver.command_bus)}.values()
            retried = sum(getattr(b, "retried", 0) for b in buses) + getattr(driver, "polls_asked_again", 0)
            crc_seen = sum(getattr(b, "corrupt", 0) for b in buses) if hasattr(driver.bus, "corrupt") else -1
            return Result(
                seconds=finished - started,
                down_s=down_s,
                commands=commands,
                failed=failed,
                late=late,
                retried=retried,
                crc_seen=crc_seen,
                crc_sent=noise.fates["corrupt"],
                dropped=noise.fates["drop_answer"],
                changes=changes,
                polls=driver.polls,
            )
    finally:
        await module.close()


async def bounded(run: Coroutine[Any, Any, Result], limit: float) -> Result:
    """A run that hangs says where (every task's stack) instead of hanging the bench."""
    task = asyncio.ensure_future(run)
    done, _ = await asyncio.wait({task}, timeout=limit)
    if not done:
        for each in asyncio.all_tasks():
            each.print_stack(file=sys.stderr)
        task.cancel()
        raise SystemExit(f"a run did not end within {limit:g} s")
    return task.result()


def describe(r: Result) -> str:
    crc = "not counted" if r.crc_seen < 0 else str(r.crc_seen)
    return (
        f"DOWN {r.down_share * 100:5.2f} % of {r.seconds:.0f} s · failed commands {r.failed}/{r.commands}"
        f" (late {r.late}) · asked again {r.retried} · bad CRC seen {crc} / sent {r.crc_sent}"
        f" · answers lost {r.dropped} · state changes {r.changes} · polls {r.polls}"
    )


def machine() -> str:
    model = platform.processor() or "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next(
            (line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line), model
        )
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs, {model}, Python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--retries", type=int, default=None, help="the driver's retries (default: its own)")
    ap.add_argument("--code", type=Path, help="import devices/ from this checkout instead (a before run)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=6.0, help="diverter commands per second")
    ap.add_argument("--deadline", type=float, default=0.5, help="seconds from command to diverter")
    ap.add_argument("--corrupt", type=float, default=0.01, help="share of answers with a bad CRC")
    ap.add_argument("--drop", type=float, default=0.0, help="share of answers lost")
    ap.add_argument("--poll-hz", type=float, default=50.0)
    ap.add_argument("--timeout", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=1, help="run i uses seed + i")
    ap.add_argument("--verbose", action="store_true", help="say why each failed command failed")
    args = ap.parse_args()
    logging.disable(logging.CRITICAL)  # the driver's and pymodbus's own lines: the figures say it
    if args.code is not None:
        sys.path.insert(0, str(args.code.resolve()))  # before devices/ is first imported
    import devices

    print(f"machine: {machine()}")
    print(
        f"code: {Path(devices.__file__).parent.parent}; retries: "
        f"{'default' if args.retries is None else args.retries}; line: {args.corrupt:.0%} bad CRC,"
        f" {args.drop:.0%} lost; {args.rate:g} commands/s, deadline {args.deadline:g} s; polls"
        f" {args.poll_hz:g} Hz, timeout {args.timeout:g} s"
    )
    results = []
    for i in range(args.runs):
        result = asyncio.run(bounded(one_run(args, args.seed + i), args.seconds + 60))
        results.append(result)
        print(f"run {i + 1}: {describe(result)}", flush=True)
    med = Result(
        seconds=statistics.median(r.seconds for r in results),
        down_s=statistics.median(r.down_share for r in results)
        * statistics.median(r.seconds for r in results),
        commands=int(statistics.median(r.commands for r in results)),
        failed=int(statistics.median(r.failed for r in results)),
        late=int(statistics.median(r.late for r in results)),
        retried=int(statistics.median(r.retried for r in results)),
        crc_seen=int(statistics.median(r.crc_seen for r in results)),
        crc_sent=int(statistics.median(r.crc_sent for r in results)),
        dropped=int(statistics.median(r.dropped for r in results)),
        changes=int(statistics.median(r.changes for r in results)),
        polls=int(statistics.median(r.polls for r in results)),
    )
    print(f"median of {args.runs}: {describe(med)}")


if __name__ == "__main__":
    main()

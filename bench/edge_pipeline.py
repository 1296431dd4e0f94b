"""Edge: decision latency on a 4-line conveyor park next to the bare I/O floor; first sync of 1M feed records.

    .venv/bin/python bench/edge_pipeline.py                 # 3 runs: 4 lines × 20 parcels/s × 30 s, then 1M
    .venv/bin/python bench/edge_pipeline.py --wait-quiet    # each measurement waits for an idle machine
    .venv/bin/python bench/edge_pipeline.py --shared-io --feed-records 0    # the 4 lines on one I/O module

Each run measures, on the same machine, three things: `pipeline` (decision latency of the real agent on
a park of conveyor lines, each with a ScannerSim and an MT-SICS ScaleSim on ptys and a GateIOSim on
Modbus TCP, the simulators in a child process, central a real subprocess), `floor` (the same
simulators and rate with a bare serial read and a bare coil write-and-read-back, half before the agent
starts and half after it stopped, plus a "loaded floor" on the agent's loop) and `sync` (a fresh edge
store's first sync of the cached 1M-record feed of bench/central_ingest.py, against a client that only
pages through it). What each figure includes, where its clock starts and stops, and the results are in
BENCHMARKS.md, sections "edge_pipeline" and "The first sync". Each run reports the CPU cores other
processes used meanwhile ("others"); --wait-quiet waits for < 0.15 before each measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import dataclasses
import faulthandler
import gc
import json
import logging
import math
import multiprocessing
import os
import random
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import astuple, dataclass, field
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before bench/ (the script's own directory): bench/devices.py is not devices/

import httpx  # noqa: E402
from pymodbus.client import AsyncModbusTcpClient  # noqa: E402

from bench import central_ingest as ci  # noqa: E402
from devices.protocols.io_profiles import IOMap  # noqa: E402
from devices.transports.serial_port import SerialPort  # noqa: E402
from edge.agent import Agent  # noqa: E402
from edge.config import EdgeSettings  # noqa: E402
from edge.store import Store  # noqa: E402
from edge.sync import FeedSync  # noqa: E402
from firmware_sim.gateio import GateIOSim  # noqa: E402
from firmware_sim.scale import ScaleSim  # noqa: E402
from firmware_sim.scanner import ScannerSim  # noqa: E402
from kernel.wire import load_public_key  # noqa: E402
from testkit import factories as f  # noqa: E402

GROSS = Decimal("0.800")  # the factories' parcel: goods 0.6 kg + packaging 0.2 kg
PAGE = 5000
SCALE_POLL_S = 0.02  # MT-SICS SI every 20 ms (what 9600 baud allows is about 40 polls/s)
IO_POLL_HZ = 100  # photo-eye polled every 10 ms
DEVICE_ID = 1
# The line in seconds, as the schedule below plays it (a parcel is half a period at the photo-eye,
# 25 ms at 20 parcels/s, and scanned 0.6 of a period after its leading edge, 5 ms after its trailing
# edge): the scanner sees a parcel from its leading edge until 12 ms after its trailing edge, the
# scale while it is at the photo-eye, the diverter is 0.2 s down the belt. The margin is the
# photo-eye's poll period (10 ms): an edge is seen up to that late.
TRACKING: dict[str, Any] = {
    "scanner": {"from_s": 0.0, "to_s": 0.012},
    "scale": {"from_s": 0.0, "to_s": 0.0},
    "diverter": {"from_s": 0.2, "to_s": 0.2},
    "switch_s": 0.0,
    "dwell_s": 0.05,
    "margin_s": 0.01,
    "settle_s": 0.003,
    "max_parcel_s": 0.2,
    "min_parcel_s": 0.02,  # a stall shorter than a parcel's 25 ms at the photo-eye cannot hide one
    "repeat_s": 30.0,
}
SCAN_AT = 0.6  # of a period after the leading edge
LATE_MAX_S = 0.004  # an injected late read comes up to this much after the usual moment: in its window


# --- CPU used by others -------------------------------------------------------------------------


class CpuMeter:
    """CPU cores used by processes other than this one and its children, between start() and stop()."""

    def __init__(self) -> None:
        self._tick = os.sysconf("SC_CLK_TCK")
        self._t0 = self._busy0 = self._own0 = 0.0

    def _busy(self) -> float:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return (sum(fields[:8]) - idle) / self._tick

    def _own(self) -> float:
        pids = [os.getpid()]
        for task in Path("/proc/self/task").iterdir():
            with contextlib.suppress(OSError):
                pids += [int(p) for p in (task / "children").read_text().split()]
        total = 0.0
        for pid in pids:
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(stat[11]) + int(stat[12])) / self._tick  # utime, stime
        return total

    def start(self) -> None:
        self._t0, self._busy0, self._own0 = time.monotonic(), self._busy(), self._own()

    def stop(self) -> float:
        wall = time.monotonic() - self._t0
        return max(0.0, (self._busy() - self._busy0) - (self._own() - self._own0)) / wall


def wait_quiet(limit: float = 0.15, window: float = 5.0, patience: float = 900.0) -> float:
    """Wait (at most `patience` s) until the whole machine has used < `limit` cores for one `window`; this
    process is idle meanwhile. Returns the last window's figure."""
    meter = CpuMeter()
    deadline = time.monotonic() + patience
    while True:
        meter.start()
        time.sleep(window)
        used = meter.stop()
        if used < limit or time.monotonic() > deadline:
            return used
        print(f"  waiting for a quiet machine: others use {used:.2f} cores", flush=True)


# --- statistics ---------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered), math.ceil(p / 100 * len(ordered))) - 1)]


def ms(values: list[float], p: float) -> float:
    return pct(values, p) * 1000


# --- the park -----------------------------------------------------------------------------------


@dataclass
class Line:
    index: int
    scanner: ScannerSim
    scale: ScaleSim
    io: GateIOSim
    eye: str  # input point name on its module
    release: str  # output point names
    inspect: str

    def spec(self) -> LineSpec:
        return LineSpec(
            self.index,
            self.scanner.url,
            self.scale.path,
            self.io.port,
            self.io.io.coil(self.release),
            self.eye,
            self.release,
            self.inspect,
        )


@dataclass(frozen=True)
class LineSpec:
    """What the agent's process knows of a line: where its devices are."""

    index: int
    scanner_url: str
    scale_path: str
    io_port: int
    release_coil: int
    eye: str
    release: str
    inspect: str

    @property
    def name(self) -> str:
        return f"line-{self.index + 1}"


@dataclass(frozen=True)
class PlantSpec:
    lines: list[LineSpec]
    modules: list[tuple[int, dict[str, Any]]]  # the agent's I/O modules: (port, IOMap)
    spare: LineSpec  # a scanner and a module of its own that the agent does not know: the loaded floor's


@dataclass
class Plant:
    lines: list[Line]
    modules: list[GateIOSim]  # the agent's
    spare: Line

    def spec(self) -> PlantSpec:
        return PlantSpec(
            [line.spec() for line in self.lines],
            [(m.port, m.io.model_dump()) for m in self.modules],
            self.spare.spec(),
        )

    async def close(self) -> None:
        for line in [*self.lines, self.spare]:
            await line.scanner.stop()
            await line.scale.stop()
        for module in [*self.modules, self.spare.io]:
            await module.close()


async def build_plant(directory: Path, lines: int, shared_io: bool) -> Plant:
    """Simulators for `lines` conveyor lines: a scanner, a scale and (per line or shared) an I/O module."""
    modules: list[GateIOSim] = []
    if shared_io:  # one ioLogik E1212: DI i = line i's photo-eye, DO 2i / 2i+1 = its lanes (8 DOs: 4 lines)
        iomap = IOMap(
            profile="e1212",
            inputs={f"photo_eye_{i}": i for i in range(lines)},
            outputs={
                **{f"release_{i}": {"channel": 2 * i, "safe": False} for i in range(lines)},
                **{f"inspect_{i}": {"channel": 2 * i + 1, "safe": False} for i in range(lines)},
            },
        )
        modules.append(GateIOSim(iomap))
    else:
        modules += [GateIOSim(_line_module()) for _ in range(lines)]
    spare_module = GateIOSim(_line_module())
    for module in [*modules, spare_module]:
        await module.start()
    out = []
    for i in range(lines + 1):
        scanner = ScannerSim(link=directory / f"scanner{i}")
        scale = ScaleSim("mt-sics", link=directory / f"scale{i}")
        await scanner.start()
        await scale.start()
        scale.set_load(GROSS, settle_after=0)  # on the platform and stable: every SI answers a stable weight
        if i == lines:
            spare = Line(i, scanner, scale, spare_module, "photo_eye", "release", "inspect")
        elif shared_io:
            out.append(Line(i, scanner, scale, modules[0], f"photo_eye_{i}", f"release_{i}", f"inspect_{i}"))
        else:
            out.append(Line(i, scanner, scale, modules[i], "photo_eye", "release", "inspect"))
    return Plant(out, modules, spare)


@dataclass(frozen=True)
class Group:
    """Parcels for some lines (by index; the spare is index `lines`): codes[k] go down lines[k].
    `weights[k][j]` (kg as text): the scale's load while parcel j is at the photo-eye (None: the
    load stays as it is). `faults[k][j]`: what goes wrong with its scan (see `drive`)."""

    lines: list[int]
    codes: list[list[str]]
    eyes: bool
    jitter: bool = False
    weights: list[list[str]] | None = None
    faults: list[list[str]] | None = None


def plant_process(conn: Connection, directory: Path, lines: int, shared_io: bool) -> None:
    """The child process: the simulated devices, and the conveyor that feeds them parcels on command.

    In a park the scanners, scales and I/O modules are hardware of their own; here they get a process
    (and a GIL) of their own, so their side of every Modbus request and SI poll is not on the loop
    that is being measured. Commands on `conn`: ("drive", groups, start, rate) → {code: written};
    ("stop",)."""

    async def serve() -> None:
        plant = await build_plant(directory, lines, shared_io)
        every = [*plant.lines, plant.spare]
        spec = plant.spec()  # as plain tuples: the child's classes live in __mp_main__, not __main__
        conn.send(([astuple(x) for x in spec.lines], spec.modules, astuple(spec.spare)))
        try:
            while True:
                command = await asyncio.to_thread(conn.recv)
                if command[0] != "drive":
                    return
                _, groups, start, rate = command
                written: dict[str, float] = {}
                await asyncio.gather(
                    *(
                        drive(
                            [every[i] for i in g.lines],
                            g.codes,
                            start=start,
                            rate=rate,
                            eyes=g.eyes,
                            written=written,
                            jitter=g.jitter,
                            weights=g.weights,
                            faults=g.faults,
                        )
                        for g in groups
                    )
                )
                conn.send(written)
        finally:
            await plant.close()

    gc.disable()  # the simulators' pauses are not the agent's
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # the agent's connections closing at its stop
    asyncio.run(serve())


class PlantProcess:
    """The parent's handle on `plant_process`."""

    def __init__(self, directory: Path, lines: int, shared_io: bool) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(
            target=plant_process, args=(child, directory, lines, shared_io), name="bench-plant", daemon=True
        )
        self._process.start()
        child.close()
        if not self._conn.poll(30):
            raise RuntimeError("the simulated plant did not start within 30 s")
        lines, modules, spare = self._conn.recv()
        self.spec = PlantSpec([LineSpec(*x) for x in lines], modules, LineSpec(*spare))

    async def drive(self, groups: list[Group], *, start: float, rate: float) -> dict[str, float]:
        """Run `groups` on the conveyor from the monotonic time `start` (CLOCK_MONOTONIC is one clock
        for every process on the machine); returns each code's frame-written time."""
        self._conn.send(("drive", groups, start, rate))
        return await asyncio.to_thread(self._conn.recv)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(("stop",))
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


def _line_module() -> IOMap:
    """One line's ioLogik E1212: DI0 its photo-eye, DO0 the release lane, DO1 the inspection lane."""
    return IOMap(
        profile="e1212",
        inputs={"photo_eye": 0},
        outputs={"release": {"channel": 0, "safe": False}, "inspect": {"channel": 1, "safe": False}},
    )


def edge_settings(
    directory: Path, plant: PlantSpec, *, url: str, token: str, key: Path, shared_io: bool
) -> EdgeSettings:
    devices: dict[str, Any] = {}
    stations = []
    for m, (port, iomap) in enumerate(plant.modules):
        devices[f"io{m}"] = {
            "driver": "gateio",
            "endpoint": {"kind": "tcp", "host": "127.0.0.1", "port": port},
            "device_id": DEVICE_ID,
            "poll_hz": IO_POLL_HZ,
            "io": iomap,
        }
    for line in plant.lines:
        i = line.index
        devices[f"scanner{i}"] = {"driver": "scanner", "url": line.scanner_url, "dedupe_window_s": 0.0}
        devices[f"scale{i}"] = {
            "driver": "scale",
            "protocol": "mt-sics",
            "url": line.scale_path,
            "poll_interval_s": SCALE_POLL_S,
        }
        stations.append(
            {
                "name": line.name,
                "kind": "conveyor",
                "io": "io0" if shared_io else f"io{i}",
                "photo_eye": line.eye,
                "diverter": {"release": line.release, "inspect": line.inspect},
                "scanner": f"scanner{i}",
                "scale": f"scale{i}",
                "tracking": TRACKING,
            }
        )
    return EdgeSettings(
        park_id="P1",
        edge_id="edge-p1",  # the seeded edge token is bound to it
        database=directory / "edge.db",
        evidence_dir=directory / "evidence",
        central={"url": url, "token": token, "public_key": key, "long_poll_s": 10},  # type: ignore[arg-type]
        heartbeat_s=30,
        devices=devices,  # type: ignore[arg-type]
        stations=stations,  # type: ignore[arg-type]
        log_level="WARNING",
    )


# --- probes: what the agent saw of each parcel, without changing what it does ----------------------

PROBE: ContextVar[dict[str, Any] | None] = ContextVar("probe", default=None)


class StampedList(list):  # type: ignore[type-arg]
    """`Conveyor.latencies`, also noting the monotonic time of each append (= diverter confirmed)."""

    def __init__(self) -> None:
        super().__init__()
        self.stamps: list[float] = []

    def append(self, value: float) -> None:
        self.stamps.append(time.monotonic())
        super().append(value)


def instrument(agent: Agent, parcels: list[dict[str, Any]]) -> None:
    """Wrap each conveyor's parcel() (and the checker's and store's steps inside it) to record, per
    tracked parcel: its photo-eye edge, when its windows closed (parcel() starts), the reads placed in
    it, the decision and when its lane was confirmed. The probe dict travels in a context variable:
    the parcel task's children inherit it; the writer thread gets it through a thread-local."""
    cache_state, write, decide = agent.checker.cache_state, agent.store.write, agent.checker.decide
    in_txn = threading.local()  # the probe of the parcel whose transaction the writer thread runs

    async def decide_probe(*a: Any, **k: Any) -> Any:
        probe = PROBE.get()
        if probe is not None:
            probe["decide_from"] = time.monotonic()
        return await decide(*a, **k)

    def cache_state_probe(code: str | None, conn: Any) -> Any:
        try:
            return cache_state(code, conn)
        finally:
            probe = getattr(in_txn, "probe", None)
            if probe is not None:
                probe["cache_done"] = time.monotonic()

    async def write_probe(work: Any, **options: Any) -> Any:
        probe = PROBE.get()
        if probe is None or "write_done" in probe:  # the sync, the uplink, the actuation record
            return await write(work, **options)

        def timed(conn: sqlite3.Connection) -> Any:
            probe["txn_from"] = time.monotonic()
            in_txn.probe = probe
            try:
                return work(conn)
            finally:
                in_txn.probe = None

        probe["write_from"] = time.monotonic()
        out = await write(timed, **options)
        probe["write_done"] = time.monotonic()
        return out

    agent.checker.cache_state = cache_state_probe  # type: ignore[method-assign]
    agent.checker.decide = decide_probe  # type: ignore[method-assign]
    agent.store.write = write_probe  # type: ignore[method-assign]
    for station in agent.stations.values():
        station.decision_latencies = StampedList()
        parcel, set_lane = station.parcel, station._set_lane

        async def parcel_probe(turn: Any, previous: Any, station=station, parcel=parcel) -> Any:  # type: ignore[no-untyped-def]
            probe: dict[str, Any] = {"station": station.name, "eye_at": turn.parcel.rise}
            probe["closed"] = time.monotonic()
            PROBE.set(probe)
            parcels.append(probe)
            stamps = len(station.decision_latencies.stamps)
            record = await parcel(turn, previous)
            probe["verdict"] = record.verdict.value if record else None
            probe["code"] = record.code if record else None
            probe["codes"] = record.codes if record else ()
            probe["reads"] = [(r.code, r.at) for r in turn.parcel.reads]
            probe["weights"] = [w.kg for w in turn.parcel.weights]
            if len(station.decision_latencies.stamps) > stamps:
                probe["end"] = station.decision_latencies.stamps[-1]
            return record

        async def set_lane_probe(target: Any, set_lane=set_lane, **kwargs: Any) -> Any:  # type: ignore[no-untyped-def]
            probe = PROBE.get()
            if probe is not None and "divert_from" not in probe:
                probe["divert_from"] = time.monotonic()
            return await set_lane(target, **kwargs)

        station.parcel = parcel_probe  # type: ignore[method-assign]
        station._set_lane = set_lane_probe  # type: ignore[method-assign]


# --- the schedule -------------------------------------------------------------------------------


async def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def drive(
    lines: list[Line],
    codes: list[list[str]],
    *,
    start: float,
    rate: float,
    eyes: bool,
    written: dict[str, float],
    jitter: bool = False,
    weights: list[list[str]] | None = None,
    faults: list[list[str]] | None = None,
) -> None:
    """Line i's parcel j at start + j/rate + i/(rate × lines) (the lines spread over one period): the
    scale's load set (with `weights`), photo-eye on, off after half a period (and the load back to
    zero), the scan at 0.8 of the period. `jitter`: a random phase for each parcel instead.
    `written[code]` = the monotonic time the frame was written. `faults[i][j]`:
      "missed"    no scan;
      "late"      the scan up to LATE_MAX_S later than usual (still within its window);
      "reread"    an extra read of its own label, later in its window;
      "previous"  an extra read of the previous parcel's label in its window (that label read again,
                  outside any dedupe window);
      "foreign"   an extra read of a label no parcel carries (one lying on the belt) in its window."""
    period = 1.0 / rate
    rng = random.Random(4)

    async def one(i: int, line: Line) -> None:
        previous = None
        for j, code in enumerate(codes[i]):
            phase = rng.random() * period if jitter else i * period / len(lines)
            t = start + j * period + phase
            fault = faults[i][j] if faults else ""
            if eyes:
                await _sleep_until(t)
                if weights:
                    line.scale.set_load(Decimal(weights[i][j]), settle_after=0)
                await line.io.set_input(line.eye, True)
                written[f"on:{code}"] = time.monotonic()
                await _sleep_until(t + 0.5 * period)
                await line.io.set_input(line.eye, False)
                written[f"off:{code}"] = time.monotonic()
                if weights:
                    line.scale.set_load(Decimal(0), settle_after=0)
            scan_at = t + SCAN_AT * period + (rng.random() * LATE_MAX_S if fault == "late" else 0.0)
            await _sleep_until(scan_at)
            if fault != "missed":
                written[code] = time.monotonic()
                line.scanner.scan(code)
            extra = {"reread": code, "previous": previous, "foreign": f"LOOSE{i}{j:08d}"}.get(fault)
            if extra:
                await _sleep_until(scan_at + 0.002)
                line.scanner.scan(extra)
            previous = code

    await asyncio.gather(*(one(i, line) for i, line in enumerate(lines)))


# --- the floor ----------------------------------------------------------------------------------


async def floor_reader(line: LineSpec, frames: int, samples: list[tuple[str, float, float]]) -> None:
    """The bare path: read a frame from the pty and, at its terminator, write the release coil on the
    line's module and read it back. Appends (code, frame reached the loop, coil confirmed) per frame."""
    port = SerialPort(line.scanner_url)
    await port.open()
    client = AsyncModbusTcpClient("127.0.0.1", port=line.io_port, timeout=1, retries=0)
    await client.connect()
    coil = line.release_coil
    buf = b""
    try:
        got = 0
        while got < frames:
            buf += await port.read()
            at = time.monotonic()
            while b"\r" in buf:
                frame, _, buf = buf.partition(b"\r")
                await client.write_coil(coil, True, device_id=DEVICE_ID)
                rr = await client.read_coils(coil, count=1, device_id=DEVICE_ID)
                if rr.isError() or not rr.bits[0]:
                    raise RuntimeError(f"floor: coil {coil} not confirmed: {rr}")
                samples.append((frame.decode()[3:], at, time.monotonic()))  # strip the AIM id ]C0
                got += 1
    finally:
        client.close()
        await port.close()


def floor_group(lines: list[LineSpec], seconds: float, rate: float, *, jitter: bool = False) -> Group:
    per_line = int(seconds * rate)
    codes = [[f"FLOOR{line.index}{j:09d}" for j in range(per_line)] for line in lines]
    return Group([line.index for line in lines], codes, eyes=False, jitter=jitter)


async def floor_readers(
    group: Group, plant: PlantSpec
) -> tuple[asyncio.Future[Any], list[tuple[str, float, float]]]:
    """Bare readers for the group's lines, their ports open; the future ends when each has read its frames."""
    every = [*plant.lines, plant.spare]
    samples: list[tuple[str, float, float]] = []
    readers = asyncio.gather(
        *(floor_reader(every[i], len(c), samples) for i, c in zip(group.lines, group.codes, strict=True))
    )
    await asyncio.sleep(0.3)  # ports open
    return readers, samples


async def floor_phase(
    plant: PlantProcess, lines: list[LineSpec], seconds: float, rate: float
) -> list[tuple[float, float, float]]:
    """(written, read, confirmed) per frame on `lines` at `rate` frames/s each."""
    group = floor_group(lines, seconds, rate)
    readers, samples = await floor_readers(group, plant.spec)
    written = await plant.drive([group], start=time.monotonic() + 0.1, rate=rate)
    async with asyncio.timeout(5):
        await readers
    return [(written[code], read, done) for code, read, done in samples]


def commit_floor(directory: Path, n: int = 300) -> list[float]:
    """A bare durable commit of one small row (WAL, synchronous=FULL), as the Store's writer does it."""
    conn = sqlite3.connect(directory / "commit-floor.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    out = []
    for i in range(n):
        t = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (id, body) VALUES (?, ?)", (i, "x" * 300))
        conn.execute("COMMIT")
        out.append(time.perf_counter() - t)
    conn.close()
    return out


# --- one pipeline run ---------------------------------------------------------------------------


def declare(url: str, token: str, parcels: int, *, mixed: bool = False) -> tuple[list[str], list[str]]:
    """Declare `parcels` parcels (order, payment, waybill, inventory each); returns their waybill numbers
    and declared gross weights. `mixed`: each parcel's goods (and so its weight) differ, 0.65–1.85 kg."""

    def items(seq: int) -> tuple[f.Item, ...]:
        a, b = f.DEFAULT_ITEMS
        return (
            dataclasses.replace(a, qty=Decimal(1 + seq % 5)),
            dataclasses.replace(b, qty=Decimal(1 + (seq // 5) % 3)),
        )

    sets = (
        [s for seq in range(1, parcels + 1) for s in f.document_set(1, start=seq, items=items(seq))]
        if mixed
        else f.document_set(parcels)
    )
    per = 250
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        for i in range(0, parcels, per):
            docs = [d for s in sets[i : i + per] for d in s.documents]
            body = '{"documents":[' + ",".join(d.model_dump_json(exclude_none=True) for d in docs) + "]}"
            r = client.post("/api/v1/documents", content=body.encode())
            if r.status_code != 200:
                raise SystemExit(f"POST /api/v1/documents: {r.status_code} {r.text[:500]}")
    return [s.waybill.logisticsNo for s in sets], [format(s.inventory.grossWeight, "f") for s in sets]


async def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# marks on a parcel's path from BarcodeRead.at to the diverter confirmed, and the segments between them
# marks on a parcel's path from its windows' close to the diverter confirmed, and the segments between them
SEGMENTS = [
    "closed",
    "decide_from",
    "write_from",
    "txn_from",
    "cache_done",
    "write_done",
    "divert_from",
]
SEGMENT_NAMES = [
    "windows closed → Checker.decide",
    "decision id → Store.write",
    "to the writer thread (+ BEGIN IMMEDIATE)",
    "in the transaction: lookup + verify + released? + sync age",
    "rules + rows + durable COMMIT + back to the loop",
    "DecisionRecord, on_commit → the lane's turn",
    "diverter: coil write + read-back",
]


@dataclass
class PipelineResult:
    decided: list[float] = field(default_factory=list)  # the parcel's windows closed → lane confirmed
    waited: list[float] = field(default_factory=list)  # lane changes: waiting for the parcel before to pass
    e2e: list[float] = field(default_factory=list)  # the scan's write → confirmed
    station: list[float] = field(default_factory=list)  # BarcodeRead.at → confirmed
    hop: list[float] = field(default_factory=list)  # write → BarcodeRead.at
    mispaired: int = 0  # decisions made on a code that was not the parcel's
    outcomes: dict[str, int] = field(default_factory=dict)  # decisions by verdict and codes
    injected: dict[str, int] = field(default_factory=dict)  # scan faults played, counted parcels only
    tracking: dict[str, int] = field(default_factory=dict)  # the stations' tracking counters
    actuations: dict[str, int] = field(default_factory=dict)  # decisions by what their outputs did
    floor_e2e: list[float] = field(default_factory=list)
    floor_loop: list[float] = field(default_factory=list)
    floor_pty: list[float] = field(default_factory=list)
    loaded_e2e: list[float] = field(default_factory=list)  # the floor's path while the agent runs
    loaded_loop: list[float] = field(default_factory=list)
    commit: list[float] = field(default_factory=list)
    segments: dict[str, list[float]] = field(default_factory=dict)  # the station's path, in order
    problems: dict[str, int] = field(default_factory=dict)
    devices: dict[str, int] = field(default_factory=dict)  # device_trouble()
    mismatched: int = 0  # Conveyor.latencies ≠ read.at → confirmed by more than 0.5 ms
    decisions: int = 0
    others: float = 0.0


def device_trouble(agent: Agent) -> dict[str, int]:
    """What went wrong at the devices during the run (all zero in a clean run)."""
    out: dict[str, int] = {}
    for name, driver in agent.hub.drivers.items():
        kind = name.rstrip("0123456789")
        counts = dict(getattr(driver, "counters", {}))
        if kind == "scanner":
            counts = {k: counts[k] for k in ("noise", "overlong", "partial", "disconnects")}
        buses = {id(b): b for b in (getattr(driver, "bus", None), getattr(driver, "command_bus", None)) if b}
        if buses:
            counts["modbus failures"] = sum(b.failures for b in buses.values())
        counts["events dropped"] = driver.events.dropped
        for key, value in counts.items():
            if value:
                out[f"{kind} {key}"] = out.get(f"{kind} {key}", 0) + value
    return out


def _dump_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Every task and the chain of coroutines it waits in (Task.print_stack shows only the outermost)."""
    for task in asyncio.all_tasks(loop):
        print(f"{task.get_name()} ({'cancelling' if task.cancelling() else 'pending'}):", file=sys.stderr)
        coro: Any = task.get_coro()
        while coro is not None:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is not None:
                print(
                    f"    {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}", file=sys.stderr
                )
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)


def scan_faults(lines: int, per_line: int, rate: float, *, seed: int) -> list[list[str]]:
    """Per line and parcel, the scan fault to play: `rate` of parcels each get a missed read, a late
    read, and an extra read (its own label again, the previous parcel's label, or a loose label)."""
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        row = []
        for _ in range(per_line):
            x = rng.random()
            if x < rate:
                row.append("missed")
            elif x < 2 * rate:
                row.append("late")
            elif x < 3 * rate:
                row.append(rng.choice(["reread", "previous", "foreign"]))
            else:
                row.append("")
        out.append(row)
    return out


async def pipeline_async(
    directory: Path,
    url: str,
    token: str,
    key: Path,
    codes: list[str],
    weights: list[str],
    args: argparse.Namespace,
) -> PipelineResult:
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR2, _dump_tasks, loop)  # `kill -USR2 <pid>`: where each task waits
    result = PipelineResult()
    result.commit = await asyncio.to_thread(commit_floor, directory)
    plant = await asyncio.to_thread(PlantProcess, directory, args.lines, args.shared_io)
    try:

        async def floor(seconds: float) -> None:
            for written, read, done in await floor_phase(plant, plant.spec.lines, seconds, args.rate):
                result.floor_e2e.append(done - written)
                result.floor_loop.append(done - read)
                result.floor_pty.append(read - written)

        # the floor: half before the agent starts and half after it stopped, so a machine that changes
        # speed during the run (a VM's neighbours) moves the floor as it moves the pipeline
        await floor(args.floor_seconds / 2)

        settings = edge_settings(
            directory, plant.spec, url=url, token=token, key=key, shared_io=args.shared_io
        )
        agent = Agent(settings)
        parcels: list[dict[str, Any]] = []
        instrument(agent, parcels)
        await agent.start()
        try:
            await wait_for(
                lambda: all(h.state.value == "UP" for h in agent.hub.all_health().values()), 20, "devices UP"
            )
            await wait_for(
                lambda: agent.sync.status.caught_up and agent.store.count_clearances() == len(codes),
                60,
                "the first sync of the declared parcels",
            )
            lines = args.lines
            per_line = len(codes) // lines
            by_line = [codes[i * per_line : (i + 1) * per_line] for i in range(lines)]
            # the scale holds each parcel while it is at the photo-eye, and nothing between parcels
            loads = [weights[i * per_line : (i + 1) * per_line] for i in range(lines)]
            faults = scan_faults(lines, per_line, args.inject, seed=7) if args.inject else None
            # meanwhile the bare path once more, on the spare line, at one line's rate and random phases
            loaded = floor_group([plant.spec.spare], args.seconds + args.warmup, args.rate, jitter=True)
            loaded_readers, loaded_samples = await floor_readers(loaded, plant.spec)
            parcels_group = Group(
                [line.index for line in plant.spec.lines], by_line, eyes=True, weights=loads, faults=faults
            )
            gc.collect()
            start = time.monotonic() + 0.2
            counted_from = start + args.warmup
            written = await plant.drive([parcels_group, loaded], start=start, rate=args.rate)
            async with asyncio.timeout(5):
                await loaded_readers
            for code, read, done in loaded_samples:
                if read >= counted_from:
                    result.loaded_e2e.append(done - written[code])
                    result.loaded_loop.append(done - read)
            with contextlib.suppress(TimeoutError):  # a parcel the agent never saw is reported below
                await wait_for(lambda: sum("verdict" in p for p in parcels) >= len(codes), 5, "decisions")
            await wait_for(lambda: agent.store.backlog()["size"] == 0, 30, "the outbox to drain")
            result.devices = device_trouble(agent)
            for outcome, n in agent.store.reader().execute(
                "SELECT COALESCE(actuation, 'none'), COUNT(*) FROM decisions GROUP BY 1"
            ):
                result.actuations[str(outcome)] = int(n)
            for station in agent.stations.values():
                for name, value in dataclasses.asdict(station.tracker.stats).items():
                    if isinstance(value, int):
                        result.tracking[name] = result.tracking.get(name, 0) + value
        finally:
            async with asyncio.timeout(30):
                await agent.stop()
        await floor(args.floor_seconds / 2)
    finally:
        await asyncio.to_thread(plant.close)

    problems: dict[str, int] = {}

    def problem(kind: str) -> None:
        problems[kind] = problems.get(kind, 0) + 1

    def count(into: dict[str, int], key: str) -> None:
        into[key] = into.get(key, 0) + 1

    # each decided parcel is the one that was in front of the photo-eye when the agent saw its edge
    period = 1.0 / args.rate
    phases = [i * period / args.lines for i in range(args.lines)]
    eyes = [
        sorted(
            (written[f"on:{c}"], written[f"off:{c}"], j) for j, c in enumerate(line) if f"on:{c}" in written
        )
        for line in by_line
    ]
    mapped: set[tuple[int, int]] = set()
    for p in parcels:
        if p["eye_at"] < counted_from:
            continue
        result.decisions += 1
        i = int(p["station"].rsplit("-", 1)[1]) - 1
        k = bisect.bisect_right(eyes[i], (p["eye_at"], math.inf, 0)) - 1
        if k < 0 or p["eye_at"] > eyes[i][k][1] + 0.02 or (i, eyes[i][k][2]) in mapped:
            problem("a decision that matches no parcel in front of the photo-eye")
            continue
        j = eyes[i][k][2]
        mapped.add((i, j))
        truth = by_line[i][j]
        fault = faults[i][j] if faults else ""
        if fault:
            count(result.injected, fault)
        if p.get("verdict") is None:
            problem("no decision recorded")
            continue
        count(result.outcomes, f"{p['verdict']} {'+'.join(p['codes']) or '-'}")
        if p["code"] is not None and p["code"] != truth:
            result.mispaired += 1
            problem("MIS-PAIRED: decided on another parcel's code")
            continue
        end = p.get("end")
        if end is None:
            continue
        # the edge's own work: deciding, then setting the lane; not the wait, when the lane changes,
        # for the parcel before to pass the diverter (physics: its own row below)
        turn_from, write_done = p.get("divert_from"), p.get("write_done")
        waited = (turn_from - write_done) if turn_from is not None and write_done is not None else 0.0
        result.decided.append(end - p["closed"] - max(0.0, waited))
        if waited > 0.005:
            result.waited.append(waited)
        marks = [*(p.get(k) for k in SEGMENTS), end]
        if all(m is not None for m in marks):
            for name, a, b in zip(SEGMENT_NAMES, marks[:-1], marks[1:], strict=True):
                result.segments.setdefault(name, []).append(b - a)
        read_at = next((at for code, at in p["reads"] if code == truth), None)
        if p["verdict"] == "RELEASE" and read_at is not None and truth in written and not fault:
            result.e2e.append(end - written[truth])
            result.station.append(end - read_at)
            result.hop.append(read_at - written[truth])
    for i, line_codes in enumerate(by_line):
        for j in range(len(line_codes)):
            if start + j * period + phases[i] >= counted_from + 0.1 and (i, j) not in mapped:
                problem("a parcel the agent did not decide (its photo-eye edge not seen)")
    result.problems = problems
    return result


def pipeline_run(args: argparse.Namespace) -> PipelineResult:
    parcels = args.lines * int(args.rate * (args.seconds + args.warmup))
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp:
        base = Path(tmp)
        settings, config = ci._settings(base)
        tokens = ci.seed(settings)
        with ci.serve(config, base / "server.log") as url:
            codes, weights = declare(url, tokens["enterprise"], parcels, mixed=args.mixed)
            key = base / "feed-key.pem"
            key.write_text(httpx.get(f"{url}/.well-known/bondgate/feed-key.pem").text)
            meter = CpuMeter()
            meter.start()
            result = asyncio.run(pipeline_async(base, url, tokens["edge"], key, codes, weights, args))
            result.others = meter.stop()
    return result


# --- the first sync -----------------------------------------------------------------------------


@dataclass
class SyncResult:
    seconds: float = 0.0
    get_s: float = 0.0  # inside the sync: awaiting GET responses
    verify_s: float = 0.0  # FeedSync._verify, wall
    write_s: float = 0.0  # Store.write of each page, wall
    baseline_s: float = 0.0
    others: float = 0.0
    applied: int = 0  # verified and stored (the newest valid version of a clearance in its page)
    superseded: int = 0  # not checked: a newer valid version in the same page replaced them


async def get_all_pages(url: str, token: str, records: int) -> float:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=httpx.Timeout(30, connect=5)
    ) as client:
        await client.get("/healthz")
        after, seen = 0, 0
        started = time.perf_counter()
        while True:
            r = await client.get("/api/v1/parks/P1/feed", params={"after": after, "limit": PAGE, "wait": 0})
            r.raise_for_status()
            body = r.content
            seen += body.count(b'"seq":')
            tail = body[body.rindex(b'"next_after":') :]
            after = int(tail[13 : tail.index(b",")])
            if b'"has_more":false' in tail:
                break
        elapsed = time.perf_counter() - started
    if seen != records:
        raise SystemExit(f"paged {seen} records, expected {records}")
    return elapsed


async def first_sync(url: str, token: str, records: int, directory: Path, result: SyncResult) -> None:
    key = load_public_key(httpx.get(f"{url}/.well-known/bondgate/feed-key.pem").text)
    store = Store(directory / "edge.db")
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=httpx.Timeout(30, connect=5)
    ) as client:
        await client.get("/healthz")
        sync = FeedSync(store=store, client=client, park_id="P1", public_key=key, page_size=PAGE)
        get, verify, write = client.get, sync._verify, store.write

        async def timed_get(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return await get(*a, **k)
            finally:
                result.get_s += time.perf_counter() - t

        async def timed_verify(items: Any) -> Any:
            t = time.perf_counter()
            try:
                return await verify(items)
            finally:
                result.verify_s += time.perf_counter() - t

        async def timed_write(work: Any) -> Any:
            t = time.perf_counter()
            try:
                return await write(work)
            finally:
                result.write_s += time.perf_counter() - t

        client.get = timed_get  # type: ignore[method-assign]
        sync._verify = timed_verify  # type: ignore[method-assign]
        store.write = timed_write  # type: ignore[method-assign]
        started = time.perf_counter()
        await sync.catch_up()
        result.seconds = time.perf_counter() - started
        sync.close()
    status = sync.status
    applied, skipped = status.records_applied, status.superseded_unchecked
    rejected = status.rejected_signatures
    stored = store.count_clearances()
    store.close()
    result.applied, result.superseded = applied, skipped
    if applied + skipped != records or rejected or stored != -(-records // 3):
        raise SystemExit(
            f"sync: {applied} applied + {skipped} superseded unchecked, {rejected} rejected, {stored} stored;"
            f" expected {records} records, none rejected, {-(-records // 3)} stored"
        )


def sync_run(feed: tuple[Path, Path, str], records: int) -> SyncResult:
    directory, config, token = feed
    result = SyncResult()
    with ci.serve(config, directory / "server.log") as url:
        meter = CpuMeter()
        meter.start()
        result.baseline_s = asyncio.run(get_all_pages(url, token, records))
        with tempfile.TemporaryDirectory(prefix="bench-edge-sync-") as tmp:
            asyncio.run(first_sync(url, token, records, Path(tmp), result))
        result.others = meter.stop()
    return result


def sync_stages(feed: tuple[Path, Path, str]) -> list[tuple[str, float]]:
    """Single-threaded cost per record of each step of verifying and storing one 5000-record page."""
    import base64

    from central.feed import page_json
    from central.keys import load_or_create_key
    from central.store.db import open_database
    from kernel.wire import GENESIS_HASH, FeedRecord, feed_chain, verify_record

    directory, _, _ = feed
    private = load_or_create_key(directory / "feed.key")
    key = private.public_key()
    db = open_database(directory / "central.db")
    raw = page_json(db, private, park_id="P1", after=0, limit=PAGE)[0].encode()
    db.close()

    def best(fn: Callable[[], Any], reps: int = 5) -> float:
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times) / PAGE * 1e6

    items = json.loads(raw)["records"]
    recs = [FeedRecord.model_validate(i) for i in items]
    pairs = [(base64.b64decode(r.signature), r.signed_bytes()) for r in recs]
    good = [(r, r.model_dump_json()) for r in recs]
    out = [
        ("json.loads of the page", best(lambda: json.loads(raw))),
        ("FeedRecord.model_validate", best(lambda: [FeedRecord.model_validate(i) for i in items])),
        (
            "FeedRecord.signed_bytes (model_dump + canonical_json)",
            best(lambda: [r.signed_bytes() for r in recs]),
        ),
        ("Ed25519 verify (OpenSSL, releases the GIL)", best(lambda: [key.verify(s, m) for s, m in pairs])),
        ("verify_record (signed_bytes + b64 + verify)", best(lambda: [verify_record(r, key) for r in recs])),
        ("feed_chain (every record hashed, in order)", best(lambda: feed_chain(GENESIS_HASH, items))),
        ("model_dump_json (the stored text)", best(lambda: [r.model_dump_json() for r in recs])),
    ]
    with tempfile.TemporaryDirectory(prefix="bench-edge-stages-") as tmp:
        store = Store(Path(tmp) / "edge.db")
        out.append(
            (
                "Store.apply_feed, first insert + durable commit",
                best(lambda: store.write_sync(lambda c: Store.apply_feed(c, good, 1, "now")), reps=1),
            )
        )
        store.close()
    return out


# --- report -------------------------------------------------------------------------------------


def _with(outcomes: dict[str, int], word: str) -> int:
    return sum(n for key, n in outcomes.items() if word in key)


def main() -> None:
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>`: every thread's stack, if a run hangs
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs; the table gives each and the median")
    ap.add_argument("--lines", type=int, default=4, help="conveyor lines (≤ 4 with --shared-io)")
    ap.add_argument("--rate", type=float, default=20.0, help="parcels per second per line")
    ap.add_argument("--seconds", type=float, default=30.0, help="measured seconds of parcels")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of parcels before, not counted")
    ap.add_argument("--floor-seconds", type=float, default=30.0, help="seconds of floor samples, same rate")
    ap.add_argument("--shared-io", action="store_true", help="one I/O module for every line")
    ap.add_argument("--feed-records", type=int, default=1_000_000, help="first-sync records (0: skip)")
    ap.add_argument("--skip-pipeline", action="store_true")
    ap.add_argument("--switch-interval", type=float, default=0.0, help="sys.setswitchinterval for the agent")
    ap.add_argument(
        "--wait-quiet", action="store_true", help="before each measurement, wait until others idle"
    )
    ap.add_argument("--stages", action="store_true", help="also time each step of the sync on one page")
    ap.add_argument("--mixed", action="store_true", help="parcels of different weights (0.65–1.85 kg)")
    ap.add_argument(
        "--inject", type=float, default=0.0, help="share of parcels with each scan fault: missed, late, extra"
    )
    ap.add_argument(
        "--soak",
        action="store_true",
        help="the tracking soak: 1 run of 300 s, mixed weights, 1 %% of each scan fault, no first sync",
    )
    args = ap.parse_args()
    if args.soak:
        args.runs, args.mixed, args.feed_records = 1, True, 0
        args.inject = args.inject or 0.01
        args.seconds = max(args.seconds, 300.0) if args.seconds != 30.0 else 300.0
    if args.shared_io and args.lines > 4:
        ap.error("--shared-io: an E1212 has 8 DOs, two per line")

    print(ci.machine())
    print(f"load average at start: {Path('/proc/loadavg').read_text().split()[:3]}")
    feed = ci.feed_cache(args.feed_records) if args.feed_records else None
    pipes: list[PipelineResult] = []
    syncs: list[SyncResult] = []
    for run in range(args.runs):
        line = f"run {run + 1}:"
        if args.wait_quiet:
            wait_quiet()
        if not args.skip_pipeline:
            r = pipeline_run(args)
            pipes.append(r)
            line += (
                f" {r.decisions} decisions, {r.mispaired} mis-paired; windows closed → confirmed p50/p99"
                f" {ms(r.decided, 50):.2f}/{ms(r.decided, 99):.2f} ms (floor {ms(r.floor_loop, 50):.2f}/"
                f"{ms(r.floor_loop, 99):.2f}), others {r.others:.2f} cores"
            )
            if r.injected:
                line += f", injected {r.injected}"
            line += f", outcomes {r.outcomes}, actuations {r.actuations}, tracking {r.tracking}"
            if r.problems:
                line += f", not counted: {r.problems}"
            if r.devices:
                line += f", device trouble: {r.devices}"
            if r.mismatched:
                line += f", {r.mismatched} station latencies off read.at → confirmed by > 0.5 ms"
        if feed is not None:
            if args.wait_quiet:
                wait_quiet()
            s = sync_run(feed, args.feed_records)
            syncs.append(s)
            line += (
                f"; first sync {s.seconds:.1f} s (GET only {s.baseline_s:.1f} s), others {s.others:.2f} cores"
            )
        print(line, flush=True)

    rows: list[tuple[str, str, list[float]]] = []
    if pipes:
        io = "one shared I/O module" if args.shared_io else "an I/O module per line"
        print(f"\npipeline: {args.lines} lines × {args.rate:g} parcels/s, {args.seconds:g} s measured, {io}")
        rows += [
            ("decisions", "", [float(r.decisions) for r in pipes]),
            ("MIS-PAIRED (decided on a code not the parcel's)", "", [float(r.mispaired) for r in pipes]),
            (
                "scan faults injected (missed, late, extra)",
                "",
                [float(sum(r.injected.values())) for r in pipes],
            ),
            ("held AMBIGUOUS_READ", "", [float(_with(r.outcomes, "AMBIGUOUS_READ")) for r in pipes]),
            ("held NO_READ", "", [float(_with(r.outcomes, "NO_READ")) for r in pipes]),
            ("released", "", [float(_with(r.outcomes, "RELEASE")) for r in pipes]),
            ("stray reads (in no parcel's window)", "", [float(r.tracking.get("strays", 0)) for r in pipes]),
            ("problems (see the run lines)", "", [float(sum(r.problems.values())) for r in pipes]),
            ("lane changes that waited for the parcel before", "", [float(len(r.waited)) for r in pipes]),
            ("windows closed → lane confirmed, p50", "ms", [ms(r.decided, 50) for r in pipes]),
            ("windows closed → lane confirmed, p99", "ms", [ms(r.decided, 99) for r in pipes]),
            ("windows closed → lane confirmed, p99.9", "ms", [ms(r.decided, 99.9) for r in pipes]),
            (
                "ratio p99 / floor p99 (windows closed vs loop → confirmed)",
                "×",
                [pct(r.decided, 99) / pct(r.floor_loop, 99) for r in pipes],
            ),
            ("latency from the scanner's write, p50", "ms", [ms(r.e2e, 50) for r in pipes]),
            ("latency from the scanner's write, p99", "ms", [ms(r.e2e, 99) for r in pipes]),
            ("latency from the scanner's write, p99.9", "ms", [ms(r.e2e, 99.9) for r in pipes]),
            ("latency from the scanner's write, max", "ms", [ms(r.e2e, 100) for r in pipes]),
            ("station's own (BarcodeRead.at), p50", "ms", [ms(r.station, 50) for r in pipes]),
            ("station's own (BarcodeRead.at), p99", "ms", [ms(r.station, 99) for r in pipes]),
            ("  pty → loop hop in the pipeline, p50", "ms", [ms(r.hop, 50) for r in pipes]),
            ("  pty → loop hop in the pipeline, p99", "ms", [ms(r.hop, 99) for r in pipes]),
            ("floor: write → confirmed, p50", "ms", [ms(r.floor_e2e, 50) for r in pipes]),
            ("floor: write → confirmed, p99", "ms", [ms(r.floor_e2e, 99) for r in pipes]),
            ("floor: write → confirmed, max", "ms", [ms(r.floor_e2e, 100) for r in pipes]),
            ("floor: loop → confirmed, p50", "ms", [ms(r.floor_loop, 50) for r in pipes]),
            ("floor: loop → confirmed, p99", "ms", [ms(r.floor_loop, 99) for r in pipes]),
            ("  floor's pty hop, p50", "ms", [ms(r.floor_pty, 50) for r in pipes]),
            ("  floor's pty hop, p99", "ms", [ms(r.floor_pty, 99) for r in pipes]),
            ("loaded floor (spare line, agent running), p50", "ms", [ms(r.loaded_e2e, 50) for r in pipes]),
            ("loaded floor (spare line, agent running), p99", "ms", [ms(r.loaded_e2e, 99) for r in pipes]),
            (
                "ratio p99 / floor p99 (from the write)",
                "×",
                [pct(r.e2e, 99) / pct(r.floor_e2e, 99) for r in pipes],
            ),
            (
                "ratio p99 / floor p99 (station's own)",
                "×",
                [pct(r.station, 99) / pct(r.floor_loop, 99) for r in pipes],
            ),
            ("ratio p99 / loaded floor p99", "×", [pct(r.e2e, 99) / pct(r.loaded_e2e, 99) for r in pipes]),
            *(
                row
                for name in SEGMENT_NAMES
                for row in (
                    (f"  {name}, p50", "ms", [ms(r.segments[name], 50) for r in pipes]),
                    (f"  {name}, p99", "ms", [ms(r.segments[name], 99) for r in pipes]),
                )
            ),
            ("bare durable commit (1 row, FULL), p50", "ms", [ms(r.commit, 50) for r in pipes]),
            ("bare durable commit (1 row, FULL), p99", "ms", [ms(r.commit, 99) for r in pipes]),
            ("others' CPU during the run", "cores", [r.others for r in pipes]),
        ]
    if syncs:
        n = args.feed_records
        rows += [
            (f"first sync, {n:,} records (catch_up)", "s", [s.seconds for s in syncs]),
            ("first sync", "records/s", [n / s.seconds for s in syncs]),
            ("  records verified and applied", "", [float(s.applied) for s in syncs]),
            ("  superseded in their page, not checked", "", [float(s.superseded) for s in syncs]),
            ("  awaiting GET responses", "s", [s.get_s for s in syncs]),
            ("  FeedSync._verify (wall)", "s", [s.verify_s for s in syncs]),
            ("  Store.write of the pages (wall)", "s", [s.write_s for s in syncs]),
            ("baseline: GET every page, no parse/verify/store", "s", [s.baseline_s for s in syncs]),
            ("others' CPU during the sync runs", "cores", [s.others for s in syncs]),
        ]
    print()
    print(ci.table(rows, args.runs))
    if pipes:
        p99 = statistics.median(pct(r.decided, 99) for r in pipes) * 1000
        ratio = statistics.median(pct(r.decided, 99) / pct(r.floor_loop, 99) for r in pipes)
        verdict = "met" if p99 <= 10 and ratio <= 3 else "NOT met"
        print(
            f"\nlatency goal p99 ≤ 10 ms and ≤ 3× the floor, from the moment the parcel can be decided"
            f" (its windows closed) to its lane confirmed: {verdict}"
            f" (median p99 {p99:.2f} ms, {ratio:.2f}× the floor's loop → confirmed)"
        )
        mispaired = sum(r.mispaired for r in pipes)
        print(
            f"mis-paired decisions: {mispaired} {'(goal 0: met)' if not mispaired else '(goal 0: NOT met)'}"
        )
    if syncs:
        median = statistics.median(s.seconds for s in syncs)
        print(f"first-sync goal ≤ 60 s: {'met' if median <= 60 else 'NOT met'} (median {median:.1f} s)")
    if args.stages and feed is not None:
        print("\nper record, single-threaded, one 5000-record page (best of 5):")
        for name, us in sync_stages(feed):
            print(f"  {name:55s} {us:6.1f} µs   ({us:.1f} s per million)")


if __name__ == "__main__":
    main()

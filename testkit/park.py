"""A simulated park in one event loop: central (real uvicorn), simulators on real ptys and Modbus
TCP, and the edge agent configured the way an operator would configure it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.agent import Agent
from edge.auth import hash_password
from edge.config import EdgeSettings
from firmware_sim.gateio import GateIOSim
from firmware_sim.scale import ScaleSim
from firmware_sim.scanner import ScannerSim
from testkit.central_server import RunningCentral


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll `predicate` until it is truthy; an upper bound, never a measured duration."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


# The test line in seconds: the scanner and the scale see a parcel from its leading edge at the
# photo-eye until 0.3 s after its trailing edge; the diverter is 1 s down the belt. The dwell is
# long, so a test can look at the lane a decision set; tests of the dwell set their own.
LINE_TRACKING: dict[str, Any] = {
    "scanner": {"from_s": 0.0, "to_s": 0.3},
    "scale": {"from_s": 0.0, "to_s": 0.3},
    "diverter": {"from_s": 0.6, "to_s": 0.6},
    "margin_s": 0.05,
    "settle_s": 0.01,
    "dwell_s": 30.0,
    "max_parcel_s": 0.2,
    "min_parcel_s": 0.1,
}


async def belt_clear(agent: Agent) -> None:
    """Until what may have been on the belt before the agent read its photo-eyes has passed the
    diverters: their lanes are held meanwhile (README, "Conveyor tracking")."""
    for station in agent.stations.values():
        if hasattr(station, "lanes_held_until"):
            until = station.lanes_held_until()
            if until is not None:
                await wait_until(lambda until=until: time.monotonic() > until, what="the belt clear")


@dataclass
class Park:
    agent: Agent
    line_scanner: ScannerSim
    line_scale: ScaleSim
    hand_scanner: ScannerSim
    bench_scale: ScaleSim
    gate_scanner: ScannerSim
    io: GateIOSim
    settings: EdgeSettings


def edge_settings(
    tmp: Path,
    central: RunningCentral,
    *,
    io_port: int,
    line_scanner: str,
    line_scale: str,
    hand_scanner: str,
    bench_scale: str,
    gate_scanner: str,
    line_tracking: dict[str, Any] | None = None,
    gate_pulse_s: float = 0.3,
    adjust: Callable[[dict[str, Any]], None] | None = None,
    **overrides: Any,
) -> EdgeSettings:
    key = tmp / "central-feed.pem"
    key.write_text(central.client().get("/.well-known/bondgate/feed-key.pem").text)
    io = {
        "driver": "gateio",
        "endpoint": {"kind": "tcp", "host": "127.0.0.1", "port": io_port},
        "timeout_s": 0.2,
        "io": {
            "profile": "e1212",
            "inputs": {"photo_eye_1": 0, "photo_eye_2": 1, "loop": 2, "barrier_open": 3, "barrier_closed": 4},
            "outputs": {
                "barrier": {"channel": 0, "safe": False},
                "diverter_left": {"channel": 1, "safe": False},
                "diverter_right": {"channel": 2, "safe": False},
            },
        },
    }
    data: dict[str, Any] = {
        "park_id": "P1",
        "edge_id": "edge-p1",
        "database": tmp / "edge.db",
        "evidence_dir": tmp / "evidence",
        "central": {"url": central.url, "token": central.tokens["edge"], "public_key": key, "long_poll_s": 1},
        "heartbeat_s": 3600,
        "api": {
            "port": 0,
            "users": [
                {"name": "olga", "role": "operator", "password_hash": hash_password("olga-pass")},
                {"name": "sam", "role": "supervisor", "password_hash": hash_password("sam-pass")},
            ],
        },
        "devices": {
            "io1": io,
            "line_scanner": {"driver": "scanner", "url": line_scanner, "dedupe_window_s": 0.0},
            "line_scale": {
                "driver": "scale",
                "protocol": "mt-sics",
                "url": line_scale,
                "poll_interval_s": 0.05,
            },
            "hand_scanner": {"driver": "scanner", "url": hand_scanner},
            "bench_scale": {
                "driver": "scale",
                "protocol": "mt-sics",
                "url": bench_scale,
                "poll_interval_s": 0.05,
            },
            "gate_scanner": {"driver": "scanner", "url": gate_scanner},
        },
        "stations": [
            {
                "name": "line-1",
                "kind": "conveyor",
                "io": "io1",
                "photo_eye": "photo_eye_1",
                "diverter": {"release": "diverter_left", "inspect": "diverter_right"},
                "scanner": "line_scanner",
                "scale": "line_scale",
                "tracking": line_tracking or LINE_TRACKING,
            },
            {
                "name": "bench-1",
                "kind": "manual",
                "scanner": "hand_scanner",
                "scale": "bench_scale",
                "weight_deadline_s": 2.0,
            },
            {
                "name": "gate-1",
                "kind": "gate",
                "trigger": {"device": "io1", "point": "loop"},
                "scanner": "gate_scanner",
                "io": "io1",
                "barrier": "barrier",
                "barrier_open": "barrier_open",
                "pulse_s": gate_pulse_s,
                "window_s": 0.5,
                "confirm_timeout_s": 2.0,
            },
        ],
    }
    data.update(overrides)
    if adjust is not None:  # a test's own devices or stations, edited into the park's config
        adjust(data)
    return EdgeSettings(**data)


async def put_on_bench(park: Park, kg: Any) -> None:
    """The parcel before taken off the bench scale (the agent sees it empty), this one put on (and
    seen): the bench takes a weight only once its platform has changed since the last one."""
    scale = park.agent.hub.drivers["bench_scale"]
    for load in (0, kg):
        park.bench_scale.set_load(load, settle_after=0)
        asked = time.monotonic()
        await wait_until(
            lambda load=load, asked=asked: (
                scale.latest is not None and scale.latest.kg == load and (scale.latest.since or 0) > asked
            ),
            what=f"the bench scale reading {load}",
        )


async def through_line(park: Park, code: str | None, kg: Any = None) -> Any:
    """One parcel on the conveyor, as the line sees it: on the scale, the photo-eye blocked (and
    seen blocked by the agent), the scan (or NOREAD), the photo-eye clear; returns the decision the
    station then shows (once the parcel's windows have closed)."""
    line = park.agent.stations["line-1"]
    io = park.agent.hub.drivers["io1"]
    shown = line.view.last
    if kg is not None:  # the parcel before it has left the platform: the scale reads this one
        park.line_scale.set_load(kg, settle_after=0)
        scale = park.agent.hub.drivers["line_scale"]
        asked = time.monotonic()
        await wait_until(
            lambda: scale.latest is not None and scale.latest.kg == kg and (scale.latest.since or 0) > asked,
            what="the scale reads the parcel",
        )
    await park.io.set_input("photo_eye_1", True)
    await wait_until(lambda: io.inputs.get("photo_eye_1") is True, what="photo-eye seen blocked")
    if code is None:
        park.line_scanner.noread()
    else:
        park.line_scanner.scan(code)
    await asyncio.sleep(0.05)  # the parcel rides on past the scanner
    await park.io.set_input("photo_eye_1", False)
    await wait_until(lambda: io.inputs.get("photo_eye_1") is False, what="photo-eye seen clear")
    await wait_until(lambda: line.view.last is not shown, what="line decision shown")
    return line.view.last


@asynccontextmanager
async def running_park(
    tmp: Path,
    central: RunningCentral,
    *,
    line_tracking: dict[str, Any] | None = None,
    gate_pulse_s: float = 0.3,
    adjust: Callable[[dict[str, Any]], None] | None = None,
    **overrides: Any,
) -> AsyncIterator[Park]:
    io = GateIOSim("e1212")
    sims = {name: ScannerSim(link=tmp / name) for name in ("line_scanner", "hand_scanner", "gate_scanner")}
    scales = {name: ScaleSim("mt-sics", link=tmp / name) for name in ("line_scale", "bench_scale")}
    await io.start()
    for sim in [*sims.values(), *scales.values()]:
        await sim.start()
    settings = edge_settings(
        tmp,
        central,
        io_port=io.port,
        line_scanner=sims["line_scanner"].url,
        line_scale=scales["line_scale"].path,
        hand_scanner=sims["hand_scanner"].url,
        bench_scale=scales["bench_scale"].path,
        gate_scanner=sims["gate_scanner"].url,
        line_tracking=line_tracking,
        gate_pulse_s=gate_pulse_s,
        adjust=adjust,
        **overrides,
    )
    agent = Agent(settings)
    await agent.start()
    try:
        await wait_until(
            lambda: all(h.state.value == "UP" for h in agent.hub.all_health().values()),
            what="every device UP",
        )
        await belt_clear(agent)
        yield Park(
            agent,
            sims["line_scanner"],
            scales["line_scale"],
            sims["hand_scanner"],
            scales["bench_scale"],
            sims["gate_scanner"],
            io,
            settings,
        )
    finally:
        async with asyncio.timeout(60):  # a hang in stop() fails here, with its stack, not at 300 s
            await agent.stop()
        for sim in [*sims.values(), *scales.values()]:
            await sim.stop()
        await io.close()

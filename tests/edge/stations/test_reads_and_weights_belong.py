"""A read or a weight belongs to the parcel it was taken from (issue 9 A), at every station kind:
the bench takes a weight measured after its scan, never a reply already on its way; the gate never
takes the previous vehicle's label and records a second arrival while its barrier is open; nothing a
scanner sent before the agent (re)started is read as a new scan — tested with the agent as a real
process, killed and restarted over the same devices."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

from edge.rules import Verdict
from firmware_sim.gateio import GateIOSim
from firmware_sim.scanner import ScannerSim
from testkit import factories
from testkit.central_server import RunningCentral, run_central
from testkit.park import LINE_TRACKING, put_on_bench, running_park, wait_until
from testkit.processes import agent_process, edge_config, write_edge_config

GROSS = Decimal("0.800")
# from the photo-eye read again until what it may have missed has passed the diverter (lanes held)
BELT_CLEAR_S = LINE_TRACKING["diverter"]["to_s"] + LINE_TRACKING["max_parcel_s"] + 0.2


def declare(central: RunningCentral, n: int) -> list[str]:
    sets = factories.document_set(n)
    documents = [d.model_dump(mode="json") for s in sets for d in s.documents]
    with central.client("enterprise") as shop:
        shop.post("/api/v1/documents", json={"documents": documents}).raise_for_status()
    return [s.waybill.logisticsNo for s in sets]


def test_the_bench_never_takes_a_weight_that_was_on_its_way_before_the_scan(tmp_path: Path) -> None:
    """The scale weighs when asked and answers late; the worker swaps the parcel and scans at once.
    The answer that arrives after the scan still weighs the parcel before: it must not count."""
    with run_central(tmp_path / "central") as central:
        [code] = declare(central, 1)

        async def scenario() -> Any:
            async with running_park(tmp_path, central) as park:
                agent = park.agent
                await wait_until(lambda: agent.store.count_clearances() == 1, what="first sync")
                bench = agent.stations["bench-1"]
                sim = park.bench_scale
                sim.set_load(GROSS, settle_after=0)  # the parcel before, of exactly this weight
                sim.reply_delay_s = 0.3  # each answer leaves 0.3 s after the request arrived
                asked = len(sim.received)
                await wait_until(lambda: len(sim.received) > asked, what="a request in flight")
                sim.set_load(Decimal("5.000"), settle_after=0)  # this parcel: far too heavy
                shown = bench.view.last
                park.hand_scanner.scan(code)
                await wait_until(lambda: bench.view.last is not shown, what="bench decision")
                return bench.view.last

        decided = asyncio.run(scenario())
    assert (decided.verdict, decided.codes) == (Verdict.HOLD, ("WEIGHT_MISMATCH",))
    assert decided.weight_kg == Decimal("5.000")


def test_a_scan_made_while_the_parcel_before_is_still_on_the_scale_waits_for_its_own_weight(
    tmp_path: Path,
) -> None:
    """A weighed and left on the bench, B scanned at once, then A swapped for B: B's weight is the
    one after the platform changed (here 3 kg: held), never A's 0.8 measured after B's scan."""
    with run_central(tmp_path / "central") as central:
        first, second = declare(central, 2)

        async def scenario() -> Any:
            async with running_park(tmp_path, central) as park:
                agent = park.agent
                await wait_until(lambda: agent.store.count_clearances() == 2, what="first sync")
                bench = agent.stations["bench-1"]
                await put_on_bench(park, GROSS)
                park.hand_scanner.scan(first)
                await wait_until(lambda: bench.decisions == 1, what="A decided")
                assert bench.view.last.verdict == Verdict.RELEASE
                park.hand_scanner.scan(second)  # A still on the scale, reading 0.800 stable
                await asyncio.sleep(0.3)  # several polls of A's weight after B's scan
                park.bench_scale.set_load(Decimal("3.000"), settle_after=2)  # swapped: motion, then B
                await wait_until(lambda: bench.decisions == 2, what="B decided")
                return bench.view.last

        decided = asyncio.run(scenario())
    assert (decided.verdict, decided.codes) == (Verdict.HOLD, ("WEIGHT_MISMATCH",))
    assert decided.weight_kg == Decimal("3.000")


def test_a_second_arrival_while_the_barrier_is_open_is_recorded_and_closes_it(tmp_path: Path) -> None:
    with run_central(tmp_path / "central") as central:
        [code] = declare(central, 1)

        async def scenario() -> list[Any]:
            async with running_park(tmp_path, central, gate_pulse_s=5.0) as park:
                agent = park.agent
                await wait_until(lambda: agent.store.count_clearances() == 1, what="first sync")
                gate = agent.stations["gate-1"]
                io = agent.hub.drivers["io1"]
                await park.io.set_input("loop", True)
                park.gate_scanner.scan(code)
                await wait_until(lambda: park.io.output("barrier"), what="barrier opening")
                await park.io.set_input("loop", False)  # the vehicle drives through…
                await wait_until(lambda: io.inputs.get("loop") is False, what="loop clear")
                await park.io.set_input("loop", True)  # …and another follows it in
                await wait_until(lambda: gate.decisions == 2, what="the second arrival recorded")
                await wait_until(lambda: park.io.output("barrier") is False, what="barrier closed")
                await wait_until(lambda: agent.store.backlog()["size"] == 0, what="outbox drained")
                return [gate.view.last]

        [last] = asyncio.run(scenario())
    assert last.verdict == Verdict.HOLD and "TAILGATING" in last.codes
    with sqlite3.connect(tmp_path / "edge.db") as conn:
        rows = conn.execute(
            "SELECT verdict, codes, actuation, actuation_detail FROM decisions WHERE station = 'gate-1'"
            " ORDER BY id"
        ).fetchall()
    assert [r[:3] for r in rows] == [
        ("RELEASE", "[]", "confirmed"),
        ("HOLD", '["NO_READ","TAILGATING"]', "confirmed"),
    ]
    assert "closed early" in rows[0][3]


def test_another_label_read_while_the_barrier_is_open_closes_it(tmp_path: Path) -> None:
    """The loop stays occupied (the second vehicle follows close), but its label is read while the
    barrier is open for the first: recorded, and the barrier closes."""
    with run_central(tmp_path / "central") as central:
        first, second = declare(central, 2)

        async def scenario() -> Any:
            async with running_park(tmp_path, central, gate_pulse_s=5.0) as park:
                agent = park.agent
                await wait_until(lambda: agent.store.count_clearances() == 2, what="first sync")
                gate = agent.stations["gate-1"]
                await park.io.set_input("loop", True)
                park.gate_scanner.scan(first)
                await wait_until(lambda: park.io.output("barrier"), what="barrier opening")
                park.gate_scanner.scan(second)  # the one behind it, under the scanner already
                await wait_until(lambda: gate.decisions == 2, what="the second label recorded")
                await wait_until(lambda: park.io.output("barrier") is False, what="barrier closed")
                return gate.view.last

        last = asyncio.run(scenario())
    assert (last.code, last.verdict) == (second, Verdict.HOLD)
    assert "TAILGATING" in last.codes


def test_a_scan_sent_while_the_agent_was_down_is_never_read_as_new(tmp_path: Path) -> None:
    """SIGKILL the agent, let the scanner send a label into the serial line while nobody reads it,
    start the agent again: the parcels after it get their own reads (or none), never that one."""
    with run_central(tmp_path / "central") as central:
        codes = declare(central, 3)

        async def scenario() -> list[tuple[Any, ...]]:
            io = GateIOSim("e1212")
            await io.start()
            try:
                async with ScannerSim(link=tmp_path / "line_scanner") as scanner:
                    data = edge_config(
                        tmp_path,
                        central,
                        devices={
                            "io1": {
                                "driver": "gateio",
                                "endpoint": {"kind": "tcp", "host": "127.0.0.1", "port": io.port},
                                "io": {
                                    "profile": "e1212",
                                    "inputs": {"photo_eye_1": 0},
                                    "outputs": {"diverter_left": {"channel": 1, "safe": False}},
                                },
                            },
                            "line_scanner": {"driver": "scanner", "url": scanner.url, "dedupe_window_s": 0},
                        },
                        stations=[
                            {
                                "name": "line-1",
                                "kind": "conveyor",
                                "io": "io1",
                                "photo_eye": "photo_eye_1",
                                "diverter": {"release": "diverter_left"},
                                "scanner": "line_scanner",
                                "tracking": {k: v for k, v in LINE_TRACKING.items() if k != "scale"},
                            }
                        ],
                    )
                    config = write_edge_config(tmp_path / "edge.toml", data)
                    with agent_process(config, tmp_path / "agent.log") as agent:
                        agent.start()
                        await agent.started()
                        await agent.wait_for_log("device up", device="line_scanner", timeout=30)
                        await agent.wait_for_log("device up", device="io1", timeout=30)
                        await wait_until(lambda: synced(tmp_path) == 3, timeout=30, what="first sync")
                        await asyncio.sleep(BELT_CLEAR_S)  # what was on the belt at start has passed
                        await line_parcel(io, scanner, tmp_path, codes[0], decided=1)
                        agent.kill()
                        scanner.scan(codes[1])  # into the line while the agent is dead
                        await asyncio.sleep(0.2)
                        agent.start()
                        await agent.started()
                        await agent.wait_for_log("device up", device="line_scanner", timeout=30)
                        await agent.wait_for_log("device up", device="io1", timeout=30)
                        await line_parcel(io, scanner, tmp_path, None, decided=2)  # label unreadable
                        await line_parcel(io, scanner, tmp_path, codes[2], decided=3)
                        assert agent.terminate() == 0, agent.tail()
            finally:
                await io.close()
            with sqlite3.connect(tmp_path / "edge.db") as conn:
                return conn.execute("SELECT code, verdict, codes FROM decisions ORDER BY id").fetchall()

        rows = asyncio.run(scenario())
    assert rows == [
        (codes[0], "RELEASE", "[]"),
        (None, "HOLD", '["NO_READ"]'),
        (codes[2], "RELEASE", "[]"),
    ]


def synced(tmp: Path) -> int:
    with contextlib.suppress(sqlite3.OperationalError), sqlite3.connect(tmp / "edge.db") as conn:
        return int(conn.execute("SELECT COUNT(*) FROM clearances").fetchone()[0])
    return 0


async def line_parcel(
    io: GateIOSim, scanner: ScannerSim, tmp: Path, code: str | None, *, decided: int
) -> None:
    """One parcel past the photo-eye of an agent in another process; waits for its decision row."""
    await io.set_input("photo_eye_1", True)
    await asyncio.sleep(0.04)  # the agent polls the module at 50 Hz: it has seen the edge by now
    if code is not None:
        scanner.scan(code)
    await asyncio.sleep(0.04)
    await io.set_input("photo_eye_1", False)

    def count() -> int:
        with contextlib.suppress(sqlite3.OperationalError), sqlite3.connect(tmp / "edge.db") as conn:
            return int(conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])
        return 0

    await wait_until(lambda: count() >= decided, timeout=30, what=f"decision {decided}")
    await asyncio.sleep(2 * LINE_TRACKING["margin_s"] + 0.05)

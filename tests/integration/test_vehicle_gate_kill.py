"""The vehicle gate's agent SIGKILLed mid-passage (a real process, `bondgate edge run`), against the
lane's simulators and a real central: no barrier left open, and every passage reported exactly once.

Two moments: with the truck under the open barrier (its pass was decided, reported and carried out;
the I/O module's communication watchdog drops the open command, and the barrier, like a real one,
waits for the safety loop before it comes down); and just after the decision was committed, before
the barrier was confirmed open (the truck still stands on the weighbridge: the restarted agent takes
the pass up again for it, and makes no second passage)."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge import rules
from edge.checker import Checker
from edge.store import Store
from edge.sync import FeedSync
from firmware_sim.truck import Pace, VehicleLane, drive
from kernel.wire import load_public_key
from testkit.central_server import run_central
from testkit.mosquitto import Broker
from testkit.park import wait_until
from testkit.processes import AgentProcess, write_edge_config
from testkit.vehicle_lane import (
    FAST_BRIDGE,
    declare_note,
    lane_config,
    truck_for,
)

pytestmark = pytest.mark.slow

DEVICES = ("bridge", "lane_io", "lane_mqtt", "e_plate")


def _passages(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return [tuple(r) for r in conn.execute("SELECT decision_id, verdict FROM passages ORDER BY rowid")]


async def _ready(agent: AgentProcess) -> None:
    await agent.wait_for_log("edge agent started", timeout=30)
    for device in DEVICES:
        await agent.wait_for_log("device up", timeout=30, device=device)


@pytest.mark.parametrize("moment", ["under_the_barrier", "after_the_decision"])
def test_sigkill_mid_passage_leaves_no_barrier_open_and_no_passage_lost_or_doubled(
    tmp_path: Path, mosquitto: Broker, moment: str
) -> None:
    with run_central(tmp_path / "c") as central:
        truck = truck_for(Decimal("1.6"))
        details, _ = declare_note(central, "K-1", 121, 2, truck)

        async def scenario() -> Any:
            async with VehicleLane.running(
                tmp_path / "lane",
                broker_port=mosquitto.port,
                travel_s=0.3,
                bridge=FAST_BRIDGE,
                watchdog_s=0.5,
            ) as sims:
                config = lane_config(tmp_path, central, sims, mosquitto.port)
                # the park's line released the parcels (this edge's database, before the agent runs)
                await release_offline(tmp_path / "edge.db", central, details)
                agent = AgentProcess(
                    write_edge_config(tmp_path / "edge.toml", config), tmp_path / "agent.log"
                )
                try:
                    agent.start()
                    await _ready(agent)
                    killed: list[str] = []
                    rereading: list[asyncio.Task[None]] = []

                    async def kill_at(step: str) -> None:
                        if killed:
                            return
                        if moment == "under_the_barrier" and step == "in_safety_loop":
                            await asyncio.to_thread(agent.kill)
                            killed.append(step)
                        elif moment == "after_the_decision" and step == "presented":
                            await wait_until(
                                lambda: _passages(tmp_path / "edge.db"), timeout=15, what="the decision"
                            )
                            await asyncio.to_thread(agent.kill)
                            killed.append(step)
                            agent.start()  # back while the truck waits on the bridge
                            await _ready(agent)
                            # the plate camera reads the truck standing there again (as ANPR does
                            # while a vehicle is in view): the lane takes the pass up only for it
                            rereading.append(asyncio.create_task(_reread(sims, truck)))

                    passage = await drive(
                        sims,
                        truck,
                        pace=Pace(step_s=0.2, settle_timeout_s=15, barrier_timeout_s=30),
                        on_step=kill_at,
                    )
                    if moment == "under_the_barrier":
                        await sims.io.wait_barrier("closed", 10)  # the watchdog dropped the command
                        assert sims.io.watchdog_trips >= 1 and not sims.io.output("barrier")
                        agent.start()
                        await _ready(agent)
                    await sims.io.wait_barrier("closed", 10)
                    await wait_until(
                        lambda: (
                            central.client("officer").get("/api/v1/release-notes/K-1").json()["status"] == "2"
                        ),
                        timeout=20,
                        what="central told",
                    )
                    await wait_until(
                        lambda: _gone(tmp_path / "edge.db"), timeout=20, what="the pass closed at the edge"
                    )
                    return passage, killed, sims.io.refused_closes
                finally:
                    for task in rereading:
                        task.cancel()
                    agent.close()

        passage, killed, refused_closes = asyncio.run(scenario())
        if moment == "after_the_decision":
            assert refused_closes == 0  # nothing commanded the arm down onto the truck
        # under the barrier, the module's watchdog dropped the command with the truck in the safety
        # loop: the barrier held the close until the loop was clear (counted as a refused close)
        assert killed and passage.barrier_opened and passage.left
        assert [v for _, v in _passages(tmp_path / "edge.db")] == ["PASS"]  # one passage, not two
        with central.client("officer") as officer:
            events = officer.get("/api/v1/parks/P1/edges/edge-p1/events", params={"limit": 500}).json()
            note = officer.get("/api/v1/release-notes/K-1").json()
        listed = events["events"] if isinstance(events, dict) else events
        assert [e["kind"] for e in listed].count("passage") == 1
        assert [h["to_status"] for h in note["history"]] == ["0", "1", "2"]


async def release_offline(db: Path, central: Any, details: list[dict[str, Any]]) -> None:
    """The edge database's feed synced and the parcels released by a line station's check."""
    key = load_public_key(central.client().get("/.well-known/bondgate/feed-key.pem").text)
    store = Store(db)
    try:
        checker = Checker(
            store=store,
            public_key=key,
            tolerance=rules.Tolerance(absolute_kg=Decimal("0.05"), percent=Decimal(5)),
            edge_id="edge-p1",
            staleness_limit_s=3600,
            park_id="P1",
        )
        await checker.verify_release_history()
        headers = {"Authorization": f"Bearer {central.tokens['edge']}"}
        async with httpx.AsyncClient(base_url=central.url, headers=headers) as client:
            await FeedSync(store=store, client=client, park_id="P1", public_key=key).catch_up()
        for d in details:
            c = d["clearance"]
            obs = rules.Observation(scanned_code=c["logisticsNo"], weight_kg=Decimal(c["grossWeight"]))
            assert (await checker.decide("line-1", obs)).verdict == rules.Verdict.RELEASE
    finally:
        store.close()


async def _reread(sims: VehicleLane, truck: Any) -> None:
    while sims.io.barrier != "open":
        await sims.sensors.plate(truck.plate, lane=sims.name, confidence=0.97)
        await asyncio.sleep(0.5)


def _gone(db: Path) -> bool:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT gone_at FROM passages ORDER BY rowid DESC LIMIT 1").fetchone()
    return row is not None and row[0] is not None

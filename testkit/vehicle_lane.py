"""A vehicle gate lane for tests and benches: the lane's simulators (firmware_sim/truck.py), an edge
agent configured with the lane as an operator would configure it, and a central holding the release
note of the truck and the parcels it carries, released by the park's line."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from edge import rules
from edge.agent import Agent
from edge.auth import hash_password
from edge.config import EdgeSettings
from firmware_sim import release_notes as notes
from firmware_sim.truck import Truck, VehicleLane, lane_edge_config
from testkit import factories
from testkit.central_server import RunningCentral
from testkit.park import wait_until

FAST_BRIDGE = {"rate_hz": 50.0, "axle_s": 0.03, "oscillation_s": 0.1, "settle_s": 0.1, "division_kg": 20}
CONTAINER_KG = Decimal(2200)


@dataclass
class Lane:
    agent: Agent
    sims: VehicleLane
    settings: EdgeSettings

    @property
    def station(self) -> Any:
        return self.agent.stations["lane-1"]


def lane_settings(
    tmp: Path, central: RunningCentral, sims: VehicleLane, broker_port: int, **station: Any
) -> EdgeSettings:
    return EdgeSettings(**lane_config(tmp, central, sims, broker_port, **station))


def lane_config(
    tmp: Path, central: RunningCentral, sims: VehicleLane, broker_port: int, **station: Any
) -> dict[str, Any]:
    """An edge.toml's content: park P1's agent with the lane `lane-1` on the simulators `sims`."""
    key = tmp / "central-feed.pem"
    key.write_text(central.client().get("/.well-known/bondgate/feed-key.pem").text)
    extra_sensors = station.pop("extra_sensors", [])
    devices, lane = lane_edge_config(
        sims, {"port": broker_port}, collect_s=2.0, confirm_timeout_s=3.0, **station
    )
    devices["lane_mqtt"]["sensors"] = [*devices["lane_mqtt"]["sensors"], *extra_sensors]
    return {
        "park_id": "P1",
        "edge_id": "edge-p1",
        "database": tmp / "edge.db",
        "evidence_dir": tmp / "evidence",
        "central": {"url": central.url, "token": central.tokens["edge"], "public_key": key, "long_poll_s": 1},
        "heartbeat_s": 3600,
        "api": {
            "port": 0,
            "users": [{"name": "sam", "role": "supervisor", "password_hash": hash_password("sam-pass")}],
        },
        "devices": devices,
        "stations": [lane],
    }


@contextlib.asynccontextmanager
async def running_lane(
    tmp: Path, central: RunningCentral, broker_port: int, **station: Any
) -> AsyncIterator[Lane]:
    async with VehicleLane.running(
        tmp / "lane", broker_port=broker_port, travel_s=0.05, bridge=FAST_BRIDGE, watchdog_s=1.0
    ) as sims:
        settings = lane_settings(tmp, central, sims, broker_port, **station)
        agent = Agent(settings)
        await agent.start()
        try:
            await wait_until(
                lambda: all(h.state.value == "UP" for h in agent.hub.all_health().values()),
                what="every device UP",
            )
            yield Lane(agent, sims, settings)
        finally:
            async with asyncio.timeout(60):
                await agent.stop()


def truck_for(goods_kg: Decimal, *, tare_kg: Decimal = Decimal(15000), **kw: Any) -> Truck:
    """A truck whose bridge reads tare + container + goods (rounded to the bridge's division)."""
    values: dict[str, Any] = {
        "plate": "琼A12345",
        "gross_kg": tare_kg + CONTAINER_KG + goods_kg,
        "e_plate": "E2801160600002046F3B2F41",
        "ic_card": None,
        "containers": ("CSQU3054383",),
        "seals": ("ES001", "ES002"),
    }
    values.update(kw)
    return Truck(**values)


def declare_note(
    central: RunningCentral, note_no: str, start: int, n: int, truck: Truck, tare_kg: Decimal = Decimal(15000)
) -> tuple[list[dict[str, Any]], Decimal]:
    """`n` parcels cleared at central, the truck registered and its note approved; the parcels'
    clearance details and their gross weight."""
    shop, officer = central.client("enterprise"), central.client("officer")
    sets = factories.document_set(n, start=start)
    for s in sets:
        for doc in s.documents:
            shop.post("/api/v1/documents", json=doc.model_dump(mode="json")).raise_for_status()
    details = [
        officer.get("/api/v1/clearances", params={"logisticsNo": s.waybill.logisticsNo}).json()[0]
        for s in sets
    ]
    goods = sum((Decimal(d["clearance"]["grossWeight"]) for d in details), Decimal(0))
    notes.register_vehicle(shop, officer, truck.plate, card=truck.e_plate, tare_kg=tare_kg)
    body = notes.note(
        note_no,
        [d["clearance"]["invtNo"] for d in details],
        goods_kg=goods,
        plate=truck.plate,
        card=truck.e_plate,
        tare_kg=tare_kg,
        container_no=truck.containers[0] if truck.containers else None,
        container_kg=CONTAINER_KG,
        seal="|".join(truck.seals) or None,
    )
    shop.post("/api/v1/release-notes", json=body).raise_for_status()
    return details, goods


async def release_on_line(agent: Agent, details: list[dict[str, Any]]) -> None:
    """The park's line releases each parcel (its check, as a line station makes it)."""
    for d in details:
        c = d["clearance"]
        obs = rules.Observation(scanned_code=c["logisticsNo"], weight_kg=Decimal(c["grossWeight"]))
        record = await agent.checker.decide("line-1", obs)
        assert record.verdict == rules.Verdict.RELEASE, record.reason


async def note_ready(
    lane: Lane, central: RunningCentral, note_no: str, start: int, truck: Truck | None = None
) -> Truck:
    """A truck whose approved note (two parcels, from number `start`) the lane's edge has synced, its
    parcels released by the park's line: what every lane test starts from."""
    truck = truck or truck_for(Decimal("1.6"))
    details, _ = declare_note(central, note_no, start, 2, truck)
    await wait_until(lambda: lane.agent.store.count_notes() >= 1, what="the note synced")
    await wait_until(
        lambda: (
            lane.agent.store.reader()
            .execute("SELECT 1 FROM release_notes WHERE note_no = ?", (note_no,))
            .fetchone()
        ),
        what=f"note {note_no} synced",
    )
    await release_on_line(lane.agent, details)
    return truck

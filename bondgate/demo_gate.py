"""The demo's vehicle gate: once the line has released its parcels, trucks take them out of the park.

Each truck is registered at central (its tare and electronic plate), gets a release note (核放单)
listing the released parcels it carries, approved by central's simulated customs, and drives through
a simulated lane (firmware_sim/truck.py) that the edge agent's `vehicle_gate` station runs. Most
trucks are compliant; one of each fault the lane must stop is among them: overweight, a swapped
plate, a missing seal, a reader unplugged (released by the supervisor: a reader down is an
operational stop when the plate matched) and a tailgater behind a compliant truck.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from firmware_sim import release_notes as notes
from firmware_sim.truck import Faults, Pace, Truck, VehicleLane, drive, reverse_out
from kernel import containers

TARE = Decimal(15000)
CONTAINER_KG = Decimal(2200)
FAULTS: list[tuple[str, Faults]] = [
    ("compliant", Faults()),
    ("overweight", Faults(overweight_kg=Decimal(900))),
    ("compliant", Faults()),
    ("swapped plate", Faults(swapped_plate="琼B99999")),
    ("missing seal", Faults(missing_seal=True)),
    ("tailgater behind", Faults(tailgating=True)),
    ("reader unplugged", Faults(unplugged_reader="e_plate")),
    ("compliant", Faults()),
]


@dataclass
class Load:
    """A truck, what it carries and what is wrong with it."""

    name: str
    truck: Truck
    faults: Faults
    invts: list[str]
    goods_kg: Decimal
    note: str


def container_no(n: int) -> str:
    first = f"BGDU{n:06d}"
    return f"{first}{containers.check_digit(first)}"


def released_parcels(edge_db: Path) -> list[tuple[str, Decimal]]:
    """(invtNo, gross kg) of every parcel the park's stations released, in release order."""
    conn = sqlite3.connect(f"file:{edge_db}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute(
            "SELECT c.invt_no, c.record FROM decisions d JOIN clearances c"
            " ON c.logistics_no = d.code AND c.logistics_code = d.logistics_code"
            " WHERE d.verdict = 'RELEASE' AND (d.actuation IS NULL OR d.actuation = 'confirmed')"
            " AND c.invt_no IS NOT NULL AND c.status = '800' AND c.cancelled = 0 ORDER BY d.id"
        ).fetchall()
    finally:
        conn.close()
    return [(invt, Decimal(json.loads(record)["grossWeight"])) for invt, record in rows]


def plan(parcels: list[tuple[str, Decimal]]) -> list[Load]:
    """Spread the released parcels over the trucks, one fault kind each (FAULTS' order)."""
    count = len(FAULTS)
    loads = []
    for i, (name, faults) in enumerate(FAULTS):
        mine = parcels[i::count]
        if not mine:
            continue
        goods = sum((kg for _, kg in mine), Decimal(0))
        truck = Truck(
            plate=f"琼A{10001 + i}",
            gross_kg=TARE + CONTAINER_KG + goods,
            e_plate=f"E28011606000020{i:09X}",
            ic_card=None,
            containers=(container_no(3054 + i),),
            seals=(f"ES{i:02d}01", f"ES{i:02d}02"),
        )
        loads.append(Load(name, truck, faults, [invt for invt, _ in mine], goods, f"DEMO-NOTE-{i + 1:03d}"))
    return loads


def declare(shop: httpx.Client, officer: httpx.Client, loads: list[Load], ems_no: str) -> None:
    """Register each truck (an officer confirms its weighed tare) and apply for its note (central's
    simulated customs approves it)."""
    for load in loads:
        t = load.truck
        notes.register_vehicle(shop, officer, t.plate, card=t.e_plate, tare_kg=TARE)
        body = notes.note(
            load.note,
            load.invts,
            goods_kg=load.goods_kg,
            plate=t.plate,
            card=t.e_plate,
            tare_kg=TARE,
            container_no=t.containers[0],
            container_kg=CONTAINER_KG,
            seal="|".join(t.seals),
            ems_no=ems_no,
        )
        shop.post("/api/v1/release-notes", json=body).raise_for_status()


async def run_trucks(
    lane: VehicleLane, loads: list[Load], api: httpx.AsyncClient, auth: dict[str, str], pace: Pace
) -> list[str]:
    """Drive the trucks through one after the other; returns a line per truck."""
    lines = []
    for load in loads:

        async def supervisor(step: str, load: Load = load) -> None:
            if step != "presented" or load.faults.unplugged_reader is None:
                return
            decision = await _stop_of(api, auth, load.truck.plate)
            if decision is not None:
                await api.post(
                    "/api/stations/lane-1/override",
                    json={
                        "decision_id": decision["decision_id"],
                        "reason": "plate matched; reader cable out",
                    },
                    headers=auth,
                )

        passage = await drive(lane, load.truck, load.faults, pace=pace, on_step=supervisor)
        if not passage.left:
            await reverse_out(lane, load.truck)
        await asyncio.sleep(1.0)  # the lane back to idle
        outcome = "left" if passage.left else "stopped, backed out"
        lines.append(f"{load.truck.plate} ({load.name}, {len(load.invts)} parcels): {outcome}")
    return lines


async def _stop_of(api: httpx.AsyncClient, auth: dict[str, str], plate: str) -> dict[str, Any] | None:
    """The lane's stop of the truck `plate`, once it is decided (None: it was not stopped)."""
    for _ in range(100):
        for d in (await api.get("/api/decisions", headers=auth)).json():
            if d["station"] == "lane-1" and d["code"] == plate:
                return d if d["verdict"] == "STOP" else None
        await asyncio.sleep(0.1)
    return None


def gate_counts(edge_db: Path) -> tuple[Counter[str], Counter[str]]:
    """Passages by verdict (overrides apart) and the codes of the stops, from the edge's database."""
    if not edge_db.exists():
        return Counter(), Counter()
    conn = sqlite3.connect(f"file:{edge_db}?mode=ro", uri=True, timeout=5)
    try:
        verdicts: Counter[str] = Counter()
        codes: Counter[str] = Counter()
        for verdict, overridden, raw in conn.execute(
            "SELECT p.verdict, p.overridden, d.codes FROM passages p JOIN decisions d USING (decision_id)"
        ):
            verdicts["PASS (supervisor)" if overridden else verdict] += 1
            if verdict == "STOP":
                codes.update(json.loads(raw))
    except sqlite3.Error:
        return Counter(), Counter()
    finally:
        conn.close()
    return verdicts, codes

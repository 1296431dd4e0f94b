"""Drive parcels through a simulated park's hardware at a rate, with faults on demand.

Each parcel goes to the conveyor (most), the manual bench or the gate. On the conveyor: the scale
gets the parcel's weight, the camera shows its label (or another one: a label swap), the photo-eye
rises, the scanner sends the code (or NOREAD, or noise first), the photo-eye falls. The edge agent
watching these devices decides; the scenario only plays the physical world.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import typer

from firmware_sim.park import SimulatedPark

FAULTS = ("noread", "noise", "swap")


@dataclass(frozen=True)
class Parcel:
    code: str
    kg: Decimal
    station: str = "line-1"  # line-1, bench-1 or gate-1
    shown: str | None = None  # the code on the label the camera sees, if not `code`


def parse_faults(text: str, known: tuple[str, ...] = FAULTS) -> dict[str, float]:
    """`noread=0.02,noise=0.01` → {"noread": 0.02, "noise": 0.01}; names are checked against `known`
    (a scenario's own faults by default; the truck scenario passes its own)."""
    faults: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in known:
            raise ValueError(f"unknown fault {name!r}: use {', '.join(known)}")
        faults[name] = float(value or "1")
        if not 0 <= faults[name] <= 1:
            raise ValueError(f"fault {name}: a probability between 0 and 1")
    return faults


@dataclass
class Scenario:
    park: SimulatedPark
    rate: float = 5.0  # parcels per second
    faults: dict[str, float] = field(default_factory=dict)
    seed: int = 1
    played: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def _chance(self, fault: str) -> bool:
        return self._random.random() < self.faults.get(fault, 0.0)

    async def play(self, parcels: list[Parcel]) -> None:
        """Parcels arrive at `rate`; each station handles its own one at a time (a conveyor is a
        queue), while the line, the bench and the gate work side by side."""
        interval = 1.0 / self.rate
        loop = asyncio.get_running_loop()
        locks: dict[str, asyncio.Lock] = {}
        tasks = []

        async def one(p: Parcel) -> None:
            async with locks.setdefault(p.station, asyncio.Lock()):
                await self.parcel(p)

        next_at = loop.time()
        for parcel in parcels:
            tasks.append(asyncio.create_task(one(parcel)))
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))
        await asyncio.gather(*tasks)

    async def parcel(self, p: Parcel) -> None:
        park = self.park
        self.played[p.station] += 1
        if p.station == "bench-1":
            park.bench_scale.set_load(p.kg, settle_after=1)
            await asyncio.sleep(0.3)
            park.bench_scanner.scan(p.code)
            return
        if p.station == "gate-1":
            await park.io.set_input("loop", True)
            park.gate_scanner.scan(p.code)
            await asyncio.sleep(0.2)
            await park.io.set_input("loop", False)
            return
        park.line_scale.set_load(p.kg, settle_after=0)
        shown = p.shown
        if shown is None and self._chance("swap"):
            shown, self.played["swap"] = p.code[:-4] + "9999", self.played["swap"] + 1
        park.camera.set_code(p.code)
        if shown:
            park.camera.swap_label(shown)
        await asyncio.sleep(0.2)  # the parcel rides into the camera's view (and its stream catches up)
        await park.io.set_input("photo_eye_1", True)
        await asyncio.sleep(0.06)  # the parcel travels from the photo-eye into the scan field
        if self._chance("noise"):
            park.line_scanner.noise(12)
            self.played["noise"] += 1
        if self._chance("noread"):
            park.line_scanner.noread()
            self.played["noread"] += 1
        else:
            park.line_scanner.scan(p.code)
        await asyncio.sleep(0.06)
        await park.io.set_input("photo_eye_1", False)
        park.line_scale.set_load(0, settle_after=0)
        await asyncio.sleep(0.08)  # a gap between parcels the photo-eye can see


def command(
    folder: Path = typer.Option(Path("var/sim-park"), help="where the device links and edge-devices.toml go"),
    codes: Path | None = typer.Option(None, help="file of parcels, one per line: CODE KG [STATION]"),
    rate: float = typer.Option(5.0, help="parcels per second"),
    faults: str = typer.Option("", help="noread=P,noise=P,swap=P"),
    seed: int = typer.Option(1, help="makes the faults reproducible"),
) -> None:
    """Start a simulated park's devices, write the [devices]/[[stations]] for an edge.toml, then play
    parcels through them at a rate — any running edge configured with that file is driven."""
    from kernel.config import toml_dumps

    parcels = [_line(line) for line in codes.read_text().splitlines() if line.strip()] if codes else []

    async def main() -> None:
        park = SimulatedPark(folder)
        await park.start()
        try:
            fragment = folder / "edge-devices.toml"
            fragment.write_text(toml_dumps(park.edge_devices_and_stations()))
            typer.echo(f"devices running; add {fragment} to your edge.toml and start the agent")
            if parcels:
                typer.echo("press Enter to start playing parcels")
                await asyncio.to_thread(input)
                scenario = Scenario(park, rate=rate, faults=parse_faults(faults), seed=seed)
                await scenario.play(parcels)
                typer.echo(f"played {dict(scenario.played)}")
            await asyncio.Event().wait()
        finally:
            await park.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def _line(line: str) -> Parcel:
    parts = line.split()
    return Parcel(code=parts[0], kg=Decimal(parts[1]), station=parts[2] if len(parts) > 2 else "line-1")

"""A truck through a simulated vehicle gate (卡口) lane: the physical world that a lane's logic, and
its tests, run against.

`VehicleLane` is one lane's devices, each speaking its real protocol: a weighbridge indicator
(Toledo continuous output on a pty), the lane's I/O module (Modbus TCP: loops, platform beams,
safety loop, barrier), an electronic-plate reader and an IC-card reader (serial lines on ptys), and
the plate camera, container-number recognition and seal reader (MQTT). `drive()` takes one truck
through it:

1. the entry loop, the platform's back beam as the truck rolls on (the weight rising axle by axle,
   in motion), the beam clear once the truck is wholly on the platform; it stops and the weight
   settles to its gross, stable;
2. it presents itself: the plate camera's result, the e-plate and the driver's IC card read, the
   container numbers recognised, the seals read;
3. it waits for the barrier to open (as the barrier's own state says — whoever commands it: the
   lane under test, or the test itself);
4. it drives off: the front beam, the safety loop under the barrier, off the platform, the exit
   loop, the safety loop clear, the exit loop clear.

Faults are options (`Faults`): overweight (the bridge reads more than the truck's gross), a swapped
plate (the camera reads another one), a missing seal, tailgating (a second vehicle follows through
close behind, into the safety loop before the barrier has closed), a reader unplugged as the truck
presents its id (the read is lost; the reader is plugged back at the end of the passage). A truck
whose barrier does not open in `Pace.barrier_timeout_s` stays on the platform (`Passage.left` is
False). `on_step` is awaited after each step with the step's name, so a test can act at an exact
point of the passage (drop the barrier command while the truck is under it) and check what the
devices say there.

Without a CLI subcommand of its own (`bondgate sim` lists only what the README documents), it runs
as `python -m firmware_sim.truck --help`: it starts a lane, prints where its devices are, and
sends trucks through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import typer

from firmware_sim import scenario
from firmware_sim.gateio import VehicleLaneSim
from firmware_sim.id_reader import IdReaderSim
from firmware_sim.mqtt_sensor import MqttSensorSim
from firmware_sim.weighbridge import WeighbridgeSim

log = logging.getLogger(__name__)

Reader = Literal["e_plate", "ic_card"]
Step = Literal[
    "entry_loop",
    "driving_on",
    "on_platform",
    "weighed",
    "presented",
    "no_barrier",
    "barrier_open",
    "driving_off",
    "in_safety_loop",
    "off_platform",
    "in_exit_loop",
    "cleared_safety_loop",
    "tailgater_in_safety_loop",
    "left",
    "tailgater_left",
]
OnStep = Callable[[Step], Awaitable[None]]


@dataclass(frozen=True)
class Truck:
    """One vehicle and what it carries, as the lane's devices would see it."""

    plate: str = "粤B12345"
    gross_kg: Decimal = Decimal(49020)
    e_plate: str | None = "E2801160600002046F3B2F41"  # the electronic plate's EPC
    ic_card: str | None = "3A5F0C21"  # the driver's IC card UID
    containers: tuple[str, ...] = ("CSQU3054383",)
    seals: tuple[str, ...] = ("GS00012345",)
    axles: int = 5


@dataclass(frozen=True)
class Faults:
    overweight_kg: Decimal = Decimal(0)  # the bridge reads this much more than the truck's gross
    swapped_plate: str | None = None  # the camera reads this plate instead of the truck's
    missing_seal: bool = False  # the last of the truck's seals is not read
    tailgating: bool = False  # a second vehicle follows close behind through the barrier
    tailgater_kg: Decimal = Decimal(15000)
    unplugged_reader: Reader | None = None  # pulled as the truck presents its id


@dataclass(frozen=True)
class Pace:
    step_s: float = 0.5  # between the physical steps of a passage
    settle_timeout_s: float = 60.0  # for the weighbridge to settle
    barrier_timeout_s: float = 60.0  # how long a truck waits for the barrier before it gives up


@dataclass
class Passage:
    """What happened to one truck."""

    truck: Truck
    faults: Faults
    steps: list[Step] = field(default_factory=list)
    weighed_kg: Decimal | None = None  # what the bridge showed once settled (over range: None)
    plate_sent: str | None = None
    seals_sent: tuple[str, ...] = ()
    ids_sent: dict[str, str] = field(default_factory=dict)  # reader → id presented (even if lost)
    unplugged: list[Reader] = field(default_factory=list)
    barrier_opened: bool = False
    left: bool = False
    refused_closes: int = 0  # the barrier's counters when the truck had left (or given up)
    reversals: int = 0


@dataclass
class VehicleLane:
    """One lane's simulated devices. Use `async with VehicleLane.running(folder, broker_port=…)`."""

    name: str  # the lane id in MQTT payloads and topics, e.g. "in-1"
    bridge: WeighbridgeSim
    io: VehicleLaneSim
    sensors: MqttSensorSim
    e_plate: IdReaderSim | None
    ic_card: IdReaderSim | None

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls,
        folder: Path,
        *,
        broker_host: str = "127.0.0.1",
        broker_port: int = 1883,
        broker_username: str | None = None,
        broker_password: str | None = None,
        lane: str = "in-1",
        prefix: str = "bondgate/sim",
        modbus_port: int = 0,
        travel_s: float = 1.0,
        watchdog_s: float | None = None,
        bridge: dict[str, Any] | None = None,
        readers: tuple[Reader, ...] = ("e_plate", "ic_card"),
    ) -> AsyncIterator[VehicleLane]:
        """Start every device of the lane (pty links in `folder`), stop them all on the way out.
        `bridge` are WeighbridgeSim options (division_kg, capacity_kg, rate_hz, settle_s, …)."""
        folder.mkdir(parents=True, exist_ok=True)
        the_bridge = WeighbridgeSim(link=folder / f"{lane}-bridge", **(bridge or {}))
        io = VehicleLaneSim(port=modbus_port, travel_s=travel_s, watchdog_s=watchdog_s)
        sensors = MqttSensorSim(
            broker_host, broker_port, username=broker_username, password=broker_password, prefix=prefix
        )
        sims = {reader: IdReaderSim(link=folder / f"{lane}-{reader}") for reader in readers}
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(the_bridge)
            await stack.enter_async_context(io)
            await stack.enter_async_context(sensors)
            for sim in sims.values():
                await stack.enter_async_context(sim)
            yield cls(lane, the_bridge, io, sensors, sims.get("e_plate"), sims.get("ic_card"))

    def reader(self, which: Reader) -> IdReaderSim | None:
        return self.e_plate if which == "e_plate" else self.ic_card

    def device_configs(self) -> dict[str, dict[str, Any]]:
        """Where the devices are, as the drivers' configurations (ScaleConfig, GateIOConfig,
        IdReaderConfig, MqttSensorsConfig without the broker) take it."""
        configs: dict[str, dict[str, Any]] = {
            "weighbridge": {"protocol": "toledo-continuous", "url": self.bridge.path},
            "io": {
                "endpoint": {"kind": "tcp", "host": self.io.host, "port": self.io.port},
                "io": self.io.io.model_dump(),
            },
            "sensors": {
                "sensors": [
                    {"name": "plate", "type": "plate", "topic": self.sensors.plate_topic(self.name)},
                    {
                        "name": "container",
                        "type": "container",
                        "topic": self.sensors.container_topic(self.name),
                    },
                    {"name": "seal", "type": "seal", "topic": self.sensors.seal_topic(self.name)},
                ]
            },
        }
        if self.e_plate is not None:
            configs["e_plate"] = {"url": self.e_plate.url, "lengths": [24]}
        if self.ic_card is not None:
            configs["ic_card"] = {"url": self.ic_card.url, "lengths": [8, 14, 20]}
        return configs


def lane_edge_config(
    lane: VehicleLane, broker: dict[str, Any], *, name: str = "lane-1", **station: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The [devices] (named bridge, lane_io, lane_mqtt, e_plate) and the [[stations]] entry of an
    edge.toml for this lane, the electronic plate as the card the notes name; `broker` is the MQTT
    sensors device's broker table, `station` overrides fields of the station."""
    cfg = lane.device_configs()
    devices: dict[str, Any] = {
        "bridge": {"driver": "scale", **cfg["weighbridge"], "reply_timeout_s": 0.5},
        "lane_io": {"driver": "gateio", **cfg["io"], "poll_hz": 100, "timeout_s": 0.3},
        "lane_mqtt": {"driver": "mqtt-sensors", "broker": broker, "connect_timeout_s": 2, **cfg["sensors"]},
    }
    if "e_plate" in cfg:
        devices["e_plate"] = {"driver": "id-reader", **cfg["e_plate"], "backoff_max_s": 0.5}
    if "ic_card" in cfg and station.get("seal_reader") == "seal_serial":
        # the lane's second serial reader, reading electronic seals (ids like ES001)
        devices["seal_serial"] = {
            "driver": "id-reader",
            "url": cfg["ic_card"]["url"],
            "charset": "alnum",
            "backoff_max_s": 0.5,
        }
    points = (
        "entry_loop",
        "platform_back",
        "platform_front",
        "safety_loop",
        "exit_loop",
        "barrier",
        "barrier_open",
        "barrier_closed",
    )
    lane_station: dict[str, Any] = {
        "name": name,
        "kind": "vehicle_gate",
        "io": "lane_io",
        "points": {p: p for p in points},
        "scale": "bridge",
        "lane_id": lane.name,
        "card": "e_plate" if "e_plate" in devices else None,
        "plate": {"device": "lane_mqtt", "sensor": "plate"},
        "container": {"device": "lane_mqtt", "sensor": "container"},
        "seal": {"device": "lane_mqtt", "sensor": "seal"},
        **station,
    }
    return devices, {k: v for k, v in lane_station.items() if v is not None}


async def reverse_out(lane: VehicleLane, truck: Truck) -> None:
    """A stopped truck backs off the weighbridge and out over the entry loop."""
    await lane.io.set_input("platform_back", True)
    lane.bridge.drive_off(axles=truck.axles)
    await lane.io.set_input("entry_loop", True)
    await asyncio.sleep(0.2)
    await lane.io.set_input("platform_back", False)
    await lane.io.set_input("entry_loop", False)


async def drive(
    lane: VehicleLane,
    truck: Truck | None = None,
    faults: Faults | None = None,
    *,
    pace: Pace | None = None,
    on_step: OnStep | None = None,
) -> Passage:
    """Take one truck through the lane (see the module's docstring); returns what happened."""
    truck = truck or Truck()
    faults = faults or Faults()
    pace = pace or Pace()
    passage = Passage(truck, faults)
    io, bridge, sensors = lane.io, lane.bridge, lane.sensors

    async def step(name: Step) -> None:
        passage.steps.append(name)
        log.info("truck", extra={"lane": lane.name, "plate": truck.plate, "step": name})
        if on_step is not None:
            await on_step(name)
        await asyncio.sleep(pace.step_s)

    # 1. onto the weighbridge
    await io.set_input("entry_loop", True)
    await step("entry_loop")
    await io.set_input("platform_back", True)  # the front axle crosses the platform's back edge
    bridge.drive_on(truck.gross_kg + faults.overweight_kg, axles=truck.axles)
    await step("driving_on")
    await io.set_input("entry_loop", False)
    await io.set_input("platform_back", False)  # the tail is past the edge: wholly on the platform
    await step("on_platform")
    await bridge.wait_settled(pace.settle_timeout_s)
    shown = bridge.shown(bridge.load_kg)
    passage.weighed_kg = shown if shown <= bridge.capacity_kg + 9 * bridge.division_kg else None
    await step("weighed")

    # 2. what the lane's readers see
    passage.plate_sent = faults.swapped_plate or truck.plate
    await sensors.plate(passage.plate_sent, lane=lane.name, confidence=0.95)
    ids: tuple[tuple[Reader, str | None], ...] = (("e_plate", truck.e_plate), ("ic_card", truck.ic_card))
    for which, id_ in ids:
        reader = lane.reader(which)
        if reader is None or id_ is None:
            continue
        if faults.unplugged_reader == which:
            reader.unplug()  # the read below is lost, as on a reader whose cable is out
            passage.unplugged.append(which)
        reader.present(id_, times=3)  # a tag or card in the field is read a few times
        passage.ids_sent[which] = id_
    await sensors.container(truck.containers, lane=lane.name)
    passage.seals_sent = truck.seals[:-1] if faults.missing_seal else truck.seals
    await sensors.seal(passage.seals_sent, lane=lane.name)
    await step("presented")

    # 3. the lane decides
    try:
        await io.wait_barrier("open", pace.barrier_timeout_s)
    except TimeoutError:
        await step("no_barrier")  # the truck stays on the platform
        return _done(passage, lane)
    passage.barrier_opened = True
    await step("barrier_open")

    # 4. through the barrier
    await io.set_input("platform_front", True)  # the cab crosses the platform's front edge
    bridge.drive_off(axles=truck.axles)
    await step("driving_off")
    await io.set_input("safety_loop", True)  # the cab under the barrier arm
    await step("in_safety_loop")
    await io.set_input("platform_front", False)  # the tail leaves the platform
    if faults.tailgating:  # bumper to bumper: the follower rolls over the platform at once
        await io.set_input("platform_back", True)
        bridge.add_load(faults.tailgater_kg, settle_s=0)
        await io.set_input("platform_back", False)
        await io.set_input("platform_front", True)
    await step("off_platform")
    await io.set_input("exit_loop", True)
    await step("in_exit_loop")
    await io.set_input("safety_loop", False)  # the tail is past the arm
    await step("cleared_safety_loop")
    if faults.tailgating:  # the follower's cab, under the arm before it has closed
        await io.set_input("safety_loop", True)
        bridge.add_load(-faults.tailgater_kg, settle_s=0)
        await io.set_input("platform_front", False)
        await step("tailgater_in_safety_loop")
    await io.set_input("exit_loop", False)
    passage.left = True
    await step("left")
    if faults.tailgating:
        await io.set_input("exit_loop", True)
        await io.set_input("safety_loop", False)
        await io.set_input("exit_loop", False)
        await step("tailgater_left")
    return _done(passage, lane)


def _done(passage: Passage, lane: VehicleLane) -> Passage:
    for which in passage.unplugged:  # plugged back for the next truck
        reader = lane.reader(which)
        if reader is not None:
            reader.replug()
    passage.refused_closes = lane.io.refused_closes
    passage.reversals = lane.io.reversals
    return passage


# --- python -m firmware_sim.truck -----------------------------------------------------------------

FAULTS = ("overweight", "swap", "missing_seal", "tailgating", "unplug")


def parse_faults(text: str) -> dict[str, float]:
    """`overweight=0.1,swap=0.05` → {"overweight": 0.1, "swap": 0.05}; names are checked."""
    return scenario.parse_faults(text, FAULTS)


def pick_faults(chances: dict[str, float], rng: random.Random) -> Faults:
    """One truck's faults, drawn from the chances."""

    def hit(name: str) -> bool:
        return rng.random() < chances.get(name, 0.0)

    return Faults(
        overweight_kg=Decimal(2000) if hit("overweight") else Decimal(0),
        swapped_plate="粤B99999" if hit("swap") else None,
        missing_seal=hit("missing_seal"),
        tailgating=hit("tailgating"),
        unplugged_reader="e_plate" if hit("unplug") else None,
    )


async def operate_barrier(lane: VehicleLane, step: Step) -> None:
    """Stands in for the lane's logic in a demo without one: open once the truck has presented
    itself, and drop the command once it is in the exit loop (the barrier itself holds it open while
    anything is in the safety loop). Through Modbus, as a lane would."""
    from pymodbus.client import AsyncModbusTcpClient

    value = {"presented": True, "in_exit_loop": False}.get(step)
    if value is None:
        return
    client = AsyncModbusTcpClient(lane.io.host, port=lane.io.port)
    await client.connect()
    try:
        await client.write_coil(lane.io.io.coil("barrier"), value, device_id=1)
    finally:
        client.close()


def command(
    folder: Path = typer.Option(Path("var/sim-lane"), help="where the pty links go"),
    broker: str = typer.Option("127.0.0.1:1883", help="MQTT broker host:port"),
    username: str | None = typer.Option(None, help="broker username"),
    password: str | None = typer.Option(None, help="broker password", envvar="BONDGATE_SIM_MQTT_PASSWORD"),
    lane: str = typer.Option("in-1", help="the lane id in MQTT topics and payloads"),
    prefix: str = typer.Option("bondgate/sim", help="MQTT topic prefix"),
    modbus_port: int = typer.Option(5021, help="the lane I/O module's Modbus TCP port (0: a free one)"),
    plate: str = typer.Option("粤B12345", help="the truck's plate"),
    gross: str = typer.Option("49020", help="the truck's gross weight, kg"),
    count: int = typer.Option(1, min=0, help="trucks to send (0: until interrupted)"),
    every: float = typer.Option(5.0, help="seconds between trucks"),
    step: float = typer.Option(0.5, help="seconds between the steps of a passage"),
    faults: str = typer.Option("", help="overweight=P,swap=P,missing_seal=P,tailgating=P,unplug=P"),
    seed: int = typer.Option(1, help="makes the faults reproducible"),
    operate: bool = typer.Option(False, help="open and close the barrier ourselves (no lane logic running)"),
    barrier_timeout: float = typer.Option(60.0, help="seconds a truck waits for the barrier"),
    travel: float = typer.Option(1.0, help="seconds the barrier arm takes to open or close"),
    bridge_rate: float = typer.Option(10.0, help="weighbridge frames per second"),
    axle_s: float = typer.Option(0.6, help="seconds each axle takes to roll onto the weighbridge"),
    oscillation_s: float = typer.Option(0.8, help="seconds the weight swings as the truck brakes"),
    settle_s: float = typer.Option(1.0, help="seconds the motion bit stays on once the weight is still"),
) -> None:
    """Start a simulated vehicle gate lane, print where its devices are (JSON), and send trucks."""
    host, _, port = broker.rpartition(":")
    chances = parse_faults(faults)
    rng = random.Random(seed)

    async def main() -> None:
        async with VehicleLane.running(
            folder,
            broker_host=host or "127.0.0.1",
            broker_port=int(port),
            broker_username=username,
            broker_password=password,
            lane=lane,
            prefix=prefix,
            modbus_port=modbus_port,
            travel_s=travel,
            bridge={
                "rate_hz": bridge_rate,
                "axle_s": axle_s,
                "oscillation_s": oscillation_s,
                "settle_s": settle_s,
            },
        ) as the_lane:
            typer.echo(json.dumps(the_lane.device_configs(), ensure_ascii=False))

            async def on_step(name: Step) -> None:
                if operate:
                    await operate_barrier(the_lane, name)

            sent = 0
            while not count or sent < count:
                passage = await drive(
                    the_lane,
                    Truck(plate=plate, gross_kg=Decimal(gross)),
                    pick_faults(chances, rng),
                    pace=Pace(step_s=step, barrier_timeout_s=barrier_timeout),
                    on_step=on_step,
                )
                sent += 1
                typer.echo(
                    json.dumps(
                        {
                            "truck": sent,
                            "steps": passage.steps,
                            "weighed_kg": None if passage.weighed_kg is None else str(passage.weighed_kg),
                            "left": passage.left,
                        },
                        ensure_ascii=False,
                    )
                )
                if not passage.left:
                    break  # a truck still on the platform: the next cannot drive on
                if not count or sent < count:
                    await asyncio.sleep(every)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


if __name__ == "__main__":
    typer.run(command)

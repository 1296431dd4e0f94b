"""A simulated truck through a simulated vehicle gate lane, end to end against the simulators only
(no lane logic exists yet: the test plays it). Every device is watched through its real driver —
the weighbridge through the scale driver over a pty, the lane's I/O module through the gate I/O
driver over Modbus TCP, the e-plate and IC-card readers through the id reader driver over ptys, the
plate, container and seal messages through the MQTT sensor driver on a real Mosquitto — so what
is asserted is what a lane would see. The test acts at exact points of the passage (`on_step`);
nothing asserts a duration."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from devices.drivers.gateio import GateIOConfig, GateIODriver
from devices.drivers.id_reader import IdReaderConfig, IdReaderDriver
from devices.drivers.mqtt_sensors import MqttSensorsConfig, MqttSensorsDriver
from devices.drivers.scale import ScaleConfig, ScaleDriver
from devices.events import IdRead, InputChanged, SensorMessage
from devices.health import State
from devices.protocols.sensor_payloads import ContainerResult, PlateResult, SealRead
from devices.transports.mqtt import BrokerConfig
from firmware_sim.truck import Faults, Pace, Step, Truck, VehicleLane, drive
from firmware_sim.truck import command as truck_command
from testkit.mosquitto import Broker
from testkit.waiting import eventually

BOUND = 5.0  # an upper bound for anything to happen; never a measured duration
FAST_BRIDGE = {"rate_hz": 100.0, "axle_s": 0.03, "oscillation_s": 0.1, "settle_s": 0.1}
FAST = Pace(step_s=0.01, settle_timeout_s=BOUND, barrier_timeout_s=BOUND)
TRUCK = Truck(
    plate="粤B12345",
    gross_kg=Decimal(49020),
    e_plate="E2801160600002046F3B2F41",
    ic_card="3A5F0C21",
    containers=("CSQU3054383", "TGHU1234560"),
    seals=("GS00012345", "GS00012346"),
)


def aio(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 30))

    return run


@dataclass
class Watched:
    """The lane's devices and the drivers a lane would watch them with."""

    lane: VehicleLane
    scale: ScaleDriver
    io: GateIODriver
    e_plate: IdReaderDriver
    ic_card: IdReaderDriver
    sensors: MqttSensorsDriver

    async def messages(self, n: int) -> dict[str, SensorMessage]:
        """The next `n` sensor messages, by sensor name."""
        got: dict[str, SensorMessage] = {}
        while len(got) < n:
            event = await self.sensors.events.get(BOUND)
            assert isinstance(event, SensorMessage) and event.live
            got[event.device] = event
        return got

    async def id_read(self, driver: IdReaderDriver) -> str:
        event = await driver.events.get(BOUND)
        assert isinstance(event, IdRead)
        return event.id

    async def io_changes(self) -> list[tuple[str, bool]]:
        """The input changes the I/O driver has reported so far."""
        changes = []
        while not self.io.events.empty():
            event = await self.io.events.get(BOUND)
            if isinstance(event, InputChanged):
                changes.append((event.point, event.value))
        return changes


@contextlib.asynccontextmanager
async def watched_lane(tmp_path: Path, broker: Broker, *, travel_s: float = 0.05) -> AsyncIterator[Watched]:
    async with VehicleLane.running(
        tmp_path / "lane", broker_port=broker.port, travel_s=travel_s, bridge=FAST_BRIDGE
    ) as lane:
        cfg = lane.device_configs()
        drivers = Watched(
            lane,
            ScaleDriver("bridge", ScaleConfig(**cfg["weighbridge"], reply_timeout_s=0.5)),
            GateIODriver("lane-io", GateIOConfig(**cfg["io"], poll_hz=200)),
            IdReaderDriver("e-plate", IdReaderConfig(**cfg["e_plate"], backoff_max_s=0.2)),
            IdReaderDriver("ic-card", IdReaderConfig(**cfg["ic_card"], backoff_max_s=0.2)),
            MqttSensorsDriver(
                "lane-mqtt",
                MqttSensorsConfig(
                    broker=BrokerConfig(port=broker.port), connect_timeout_s=2, **cfg["sensors"]
                ),
            ),
        )
        async with contextlib.AsyncExitStack() as stack:
            for driver in (drivers.scale, drivers.io, drivers.e_plate, drivers.ic_card, drivers.sensors):
                await stack.enter_async_context(driver)
            for driver in (drivers.scale, drivers.io, drivers.e_plate, drivers.ic_card, drivers.sensors):
                await driver.supervisor.wait_for(State.UP, BOUND)
            yield drivers


@aio
async def test_a_truck_through_the_lane_as_its_devices_report_it(tmp_path: Path, mosquitto: Broker) -> None:
    async with watched_lane(tmp_path, mosquitto) as w:
        io = w.io

        async def lane_logic(step: Step) -> None:
            if step == "driving_on":  # at the entry loop, crossing the platform's back edge
                await eventually(lambda: io.inputs["entry_loop"] and io.inputs["platform_back"], BOUND)
                assert not w.lane.bridge.settled  # the weight in motion
            elif step == "weighed":  # wholly on the platform (both beams clear), the weight stable
                reading = await w.scale.wait_stable(BOUND)
                assert reading is not None and reading.kg == TRUCK.gross_kg
                await eventually(
                    lambda: not io.inputs["platform_back"] and not io.inputs["entry_loop"], BOUND
                )
                changes = await w.io_changes()
                for point in ("entry_loop", "platform_back"):
                    assert changes.index((point, True)) < changes.index((point, False))
                assert not io.inputs["platform_front"] and not io.inputs["safety_loop"]
            elif step == "presented":
                messages = await w.messages(3)
                plate, container, seal = (messages[n].payload for n in ("plate", "container", "seal"))
                assert isinstance(plate, PlateResult) and plate.plate == TRUCK.plate and plate.lane == "in-1"
                assert isinstance(container, ContainerResult) and container.numbers == TRUCK.containers
                assert isinstance(seal, SealRead) and seal.ids == TRUCK.seals
                assert await w.id_read(w.e_plate) == TRUCK.e_plate  # read three times, reported once
                assert await w.id_read(w.ic_card) == TRUCK.ic_card
                await io.set_output("barrier", True)  # the lane passes the truck
            elif step == "in_safety_loop":
                await io.set_output("barrier", False)  # and drops the command while it is under the arm
                await eventually(lambda: io.inputs["safety_loop"], BOUND)
                assert w.lane.io.barrier == "open" and w.lane.io.refused_closes == 1
                assert io.inputs["barrier_open"] and not io.inputs["barrier_closed"]
            elif step == "cleared_safety_loop":
                await w.lane.io.wait_barrier("closed", BOUND)  # only now does the arm come down

        passage = await drive(w.lane, TRUCK, pace=FAST, on_step=lane_logic)
        await eventually(lambda: io.inputs["barrier_closed"] and not io.inputs["exit_loop"], BOUND)
        assert w.e_plate.counters["duplicates"] == 2 and w.e_plate.events.empty()
        departed = await w.scale.wait_stable(BOUND)
        assert departed is not None and departed.kg == 0

    assert passage.steps == [
        "entry_loop",
        "driving_on",
        "on_platform",
        "weighed",
        "presented",
        "barrier_open",
        "driving_off",
        "in_safety_loop",
        "off_platform",
        "in_exit_loop",
        "cleared_safety_loop",
        "left",
    ]
    assert passage.weighed_kg == TRUCK.gross_kg and passage.left and passage.barrier_opened
    assert (passage.refused_closes, passage.reversals) == (1, 0)
    assert w.lane.io.states == ["closed", "opening", "open", "closing", "closed"]


@aio
async def test_faults_overweight_swapped_plate_missing_seal_and_an_unplugged_reader(
    tmp_path: Path, mosquitto: Broker
) -> None:
    faults = Faults(
        overweight_kg=Decimal(2000), swapped_plate="粤B99999", missing_seal=True, unplugged_reader="e_plate"
    )
    pace = Pace(step_s=0.01, settle_timeout_s=BOUND, barrier_timeout_s=0.2)  # nobody opens the barrier
    async with watched_lane(tmp_path, mosquitto) as w:

        async def watch(step: Step) -> None:
            if step == "presented":
                await w.e_plate.supervisor.wait_for(State.DOWN, BOUND)

        passage = await drive(w.lane, TRUCK, faults, pace=pace, on_step=watch)
        reading = await w.scale.wait_stable(BOUND)
        assert reading is not None and reading.kg == TRUCK.gross_kg + 2000  # the bridge reads what it carries
        messages = await w.messages(3)
        plate, seal = messages["plate"].payload, messages["seal"].payload
        assert isinstance(plate, PlateResult) and plate.plate == "粤B99999"
        assert isinstance(seal, SealRead) and seal.ids == TRUCK.seals[:1]
        assert await w.id_read(w.ic_card) == TRUCK.ic_card
        await w.e_plate.supervisor.wait_for(State.UP, BOUND)  # plugged back after the passage
        assert w.e_plate.events.empty() and w.e_plate.counters["frames"] == 0  # its read was lost
        assert w.lane.io.barrier == "closed" and w.io.inputs["barrier_closed"]

    assert passage.steps[-2:] == ["presented", "no_barrier"]
    assert not passage.left and not passage.barrier_opened
    assert passage.weighed_kg == TRUCK.gross_kg + 2000 and passage.unplugged == ["e_plate"]


@aio
async def test_a_tailgater_drives_into_the_safety_loop_before_the_barrier_has_closed(
    tmp_path: Path, mosquitto: Broker
) -> None:
    async with watched_lane(tmp_path, mosquitto, travel_s=0.0) as w:
        barrier = w.lane.io

        frames_before_off = 0

        async def lane_logic(step: Step) -> None:
            nonlocal frames_before_off
            if step == "presented":
                await w.io.set_output("barrier", True)
            elif step == "barrier_open":
                barrier.travel_s = 5.0  # a slow arm from here on: the follower is under it mid-travel
                frames_before_off = len(w.lane.bridge.sent_frames)
            elif step == "cleared_safety_loop":
                await w.io.set_output("barrier", False)  # the truck has cleared the arm: close
                assert barrier.barrier == "closing"
            elif step == "tailgater_in_safety_loop":
                assert barrier.reversals == 1 and barrier.barrier in ("opening", "open")

        passage = await drive(w.lane, TRUCK, Faults(tailgating=True), pace=FAST, on_step=lane_logic)
        assert passage.steps[-4:] == [
            "cleared_safety_loop",
            "tailgater_in_safety_loop",
            "left",
            "tailgater_left",
        ]
        assert passage.reversals == 1 and barrier.barrier == "closing"  # all clear: down it comes
        await w.lane.bridge.wait_settled(BOUND)
        after = w.lane.bridge.sent_frames[frames_before_off:]
        assert (Decimal(15000), True) in after  # the follower rolled over the platform, behind the truck
        assert after[-1] == (Decimal(0), False)


def test_the_command_line_sends_a_truck_and_can_operate_the_barrier(
    tmp_path: Path, mosquitto: Broker
) -> None:
    app = typer.Typer()
    app.command()(truck_command)
    result = CliRunner().invoke(
        app,
        [
            "--folder", str(tmp_path / "lane"), "--broker", f"127.0.0.1:{mosquitto.port}",
            "--modbus-port", "0", "--count", "1", "--step", "0.01", "--operate", "--travel", "0.02",
            "--bridge-rate", "100", "--axle-s", "0.02", "--oscillation-s", "0.05", "--settle-s", "0.05",
            "--barrier-timeout", str(BOUND),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    devices, passage = (json.loads(line) for line in result.stdout.splitlines())
    assert set(devices) == {"weighbridge", "io", "sensors", "e_plate", "ic_card"}
    assert passage["left"] is True and passage["weighed_kg"] == "49020"
    assert passage["steps"][-1] == "left"

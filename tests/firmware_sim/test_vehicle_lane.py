"""The vehicle-lane I/O simulator over real Modbus TCP on loopback: its address map as pymodbus's own
client reads it, and its barrier as the gate I/O driver commands and watches it — opening and
closing by itself, refusing to lower onto a vehicle in the safety loop, going back up when one
drives in while it closes, and the faults (an arm that jams, a limit switch that fails). States are
awaited with upper bounds; nothing asserts a duration."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from devices.drivers.gateio import GateIOConfig, GateIODriver
from devices.health import State
from devices.transports.modbus import TcpEndpoint
from firmware_sim.gateio import LANE_INPUTS, LANE_OUTPUTS, VehicleLaneSim, vehicle_lane_map
from testkit.waiting import eventually

WAIT = 5.0  # an upper bound; never a measured duration


def aio(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 30))

    return run


@contextlib.asynccontextmanager
async def lane(
    travel_s: float = 0.05, profile: str = "e1212"
) -> AsyncIterator[tuple[VehicleLaneSim, GateIODriver]]:
    async with VehicleLaneSim(profile, travel_s=travel_s) as sim:
        config = GateIOConfig(
            endpoint=TcpEndpoint(host="127.0.0.1", port=sim.port), io=vehicle_lane_map(profile), poll_hz=200
        )
        async with GateIODriver("lane1", config) as driver:
            await driver.supervisor.wait_for(State.UP, WAIT)
            yield sim, driver


async def seen(driver: GateIODriver, point: str, value: bool) -> None:
    """The driver polled `point` at `value` (now or by a later poll)."""
    await eventually(lambda: driver.inputs.get(point) == value, WAIT)


# --- the address map -------------------------------------------------------------------------------


@pytest.mark.parametrize(("profile", "coil_base"), [("e1212", 0), ("adam6050", 16)])
@aio
async def test_the_address_map_as_a_plain_modbus_client_reads_it(profile: str, coil_base: int) -> None:
    async with VehicleLaneSim(profile, travel_s=0) as sim:
        client = AsyncModbusTcpClient("127.0.0.1", port=sim.port)
        await client.connect()
        try:
            for name, address in LANE_INPUTS.items():
                if name.startswith("barrier"):
                    continue
                await sim.set_input(name, True)
                bits = (await client.read_discrete_inputs(0, count=7, device_id=1)).bits[:7]
                assert bits == [i == address for i in range(5)] + [False, True], name
                await sim.set_input(name, False)
            barrier = vehicle_lane_map(profile).coil("barrier")
            assert barrier == coil_base + LANE_OUTPUTS["barrier"]["channel"]  # type: ignore[operator]
            await client.write_coil(barrier, True, device_id=1)
            await sim.wait_barrier("open", WAIT)
            bits = (await client.read_discrete_inputs(0, count=7, device_id=1)).bits[:7]
            assert bits[LANE_INPUTS["barrier_open"]] and not bits[LANE_INPUTS["barrier_closed"]]
            coils = (await client.read_coils(coil_base, count=3, device_id=1)).bits[:3]
            assert coils == [True, False, False]
        finally:
            client.close()


# --- the barrier -----------------------------------------------------------------------------------


@aio
async def test_the_barrier_opens_on_the_command_and_closes_when_it_drops() -> None:
    async with lane() as (sim, driver):
        assert driver.inputs["barrier_closed"] and not driver.inputs["barrier_open"]
        assert sim.output("light_red") is True  # the driver's safe state: red
        await driver.set_output("barrier", True)
        await seen(driver, "barrier_open", True)
        assert not driver.inputs["barrier_closed"]
        await driver.set_output("barrier", False)
        await seen(driver, "barrier_closed", True)
        assert sim.states == ["closed", "opening", "open", "closing", "closed"]


@aio
async def test_the_barrier_is_never_lowered_onto_a_vehicle_in_the_safety_loop() -> None:
    async with lane() as (sim, driver):
        await driver.set_output("barrier", True)
        await sim.wait_barrier("open", WAIT)
        await sim.set_input("safety_loop", True)  # the truck under the arm
        await driver.set_output("barrier", False)  # the lane drops the command too early
        await seen(driver, "safety_loop", True)
        assert sim.barrier == "open" and sim.refused_closes == 1
        assert driver.inputs["barrier_open"] and not driver.inputs["barrier_closed"]
        await sim.set_input("exit_loop", True)
        await sim.set_input("exit_loop", False)
        assert sim.barrier == "open"  # the exit loop is not the safety loop: still held
        await sim.set_input("safety_loop", False)  # the truck has cleared the arm: now it closes
        await sim.wait_barrier("closed", WAIT)
        await seen(driver, "barrier_closed", True)
        assert sim.states == ["closed", "opening", "open", "closing", "closed"] and sim.reversals == 0


@aio
async def test_a_closing_barrier_goes_back_up_when_a_vehicle_drives_into_the_loop() -> None:
    async with lane(travel_s=5.0) as (sim, driver):  # a slow arm: the loop is occupied mid-travel
        sim.travel_s = 0.0
        await driver.set_output("barrier", True)
        await sim.wait_barrier("open", WAIT)
        sim.travel_s = 5.0
        await driver.set_output("barrier", False)
        assert sim.barrier == "closing"
        await sim.set_input("safety_loop", True)  # a tailgater under the descending arm
        await sim.wait_barrier("open", WAIT)
        assert sim.reversals == 1 and sim.states[-3:] == ["closing", "opening", "open"]
        await seen(driver, "barrier_open", True)
        await sim.set_input("safety_loop", False)
        assert sim.barrier == "closing"  # clear again and the command still off: down it goes


@aio
async def test_a_closed_barrier_stays_closed_with_a_vehicle_in_the_loop() -> None:
    async with lane() as (sim, _driver):
        await sim.set_input("safety_loop", True)  # a vehicle waiting at the closed arm
        assert sim.barrier == "closed" and sim.refused_closes == 0
        await sim.set_input("safety_loop", False)
        assert sim.states == ["closed"]


@aio
async def test_a_jammed_arm_never_reaches_open_and_still_closes() -> None:
    async with lane() as (sim, driver):
        sim.jam(0.4)
        await driver.set_output("barrier", True)
        await sim.wait_barrier("stuck", WAIT)
        await seen(driver, "barrier_closed", False)
        assert not driver.inputs["barrier_open"] and sim.position == pytest.approx(0.4)
        await driver.set_output("barrier", False)
        await seen(driver, "barrier_closed", True)
        sim.jam(None)
        await driver.set_output("barrier", True)
        await seen(driver, "barrier_open", True)


@aio
async def test_a_failed_limit_switch_reads_what_it_is_stuck_at() -> None:
    async with lane() as (sim, driver):
        await sim.fail_switch("barrier_open", False)  # a broken open switch
        await driver.set_output("barrier", True)
        await sim.wait_barrier("open", WAIT)
        await seen(driver, "barrier_closed", False)
        assert driver.inputs["barrier_open"] is False  # open, but the lane cannot know it
        await sim.fail_switch("barrier_open", None)
        await seen(driver, "barrier_open", True)
        await sim.fail_switch("barrier_closed", True)  # welded: reads closed while the arm is up
        await seen(driver, "barrier_closed", True)
        assert driver.inputs["barrier_open"] and sim.barrier == "open"

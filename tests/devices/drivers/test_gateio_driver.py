"""Gate I/O over real Modbus on loopback: our driver against our simulator, pymodbus's own client
against our simulator, our driver against a plain pymodbus server, faults, and RTU over a pty pair.

Time bounds are generous (supervisor.wait_for(…, timeout=5)); no test asserts a duration.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from devices.drivers.gateio import GateIOConfig, GateIODriver, OutputMismatch
from devices.events import InputChanged
from devices.health import DeviceError, State
from devices.protocols.io_profiles import IOMap, adam6050
from devices.transports.modbus import BusPool, ModbusExceptionResponse, RtuEndpoint, TcpEndpoint
from firmware_sim.gateio import GateIOSim, gate_map
from testkit.single_connection import Policy, SingleConnectionFront
from testkit.waiting import eventually, states_of

WAIT = 5.0


def run(coro: Coroutine[Any, Any, None], timeout: float = 30) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


def config(port: int, profile: str = "e1212", **kw: Any) -> GateIOConfig:
    return GateIOConfig(endpoint=TcpEndpoint(host="127.0.0.1", port=port), io=gate_map(profile), **kw)


async def next_event(driver: GateIODriver, point: str, value: bool | None = None) -> InputChanged:
    """The next InputChanged for `point` (to `value`, if given), skipping others."""
    while True:
        event = await driver.events.get(WAIT)
        if isinstance(event, InputChanged) and event.point == point and value in (None, event.value):
            return event


# --- our driver, our simulator -------------------------------------------------------------------------
@pytest.mark.parametrize("profile", ["e1212", "adam6050"])
def test_inputs_become_timestamped_edges_and_outputs_are_confirmed(profile: str) -> None:
    async def scenario() -> None:
        async with GateIOSim(profile) as sim, GateIODriver("gate1", config(sim.port, profile)) as driver:
            await driver.supervisor.wait_for(State.UP, WAIT)
            assert driver.inputs == {
                "photo_eye_1": False,
                "photo_eye_2": False,
                "loop": False,
                "barrier_open": False,
                "barrier_closed": True,
            }
            assert sim.output("light_red") is True  # safe state driven when the session started
            assert driver.outputs["barrier"] is False

            before = asyncio.get_running_loop().time()
            await sim.set_input("photo_eye_1", True)
            event = await next_event(driver, "photo_eye_1")
            assert (event.device, event.value) == ("gate1", True)
            assert before <= event.at <= asyncio.get_running_loop().time()

            await driver.set_output("barrier", True)
            assert sim.output("barrier") is True and driver.outputs["barrier"] is True
            assert (await next_event(driver, "barrier_open")).value is True
            await driver.set_output("diverter_left", True)
            assert sim.output("diverter_left") is True

            await driver.safe_state()
            assert [sim.output(n) for n in ("barrier", "diverter_left", "light_red")] == [False, False, True]
            await next_event(driver, "barrier_closed", True)

    run(scenario())


def test_outputs_have_a_tcp_connection_of_their_own_that_comes_back_after_a_drop() -> None:
    """A command never queues behind a DI poll in flight: on TCP it has its own connection. If that
    connection drops, the next command reconnects; polling (and the module's health) go on."""

    async def scenario() -> None:
        async with GateIOSim() as sim, GateIODriver("gate1", config(sim.port, poll_hz=200)) as driver:
            await driver.supervisor.wait_for(State.UP, WAIT)
            assert driver.command_bus is not driver.bus
            polls, commands = driver.bus.requests, driver.command_bus.requests
            await driver.set_output("barrier", True)
            assert driver.command_bus.requests == commands + 2  # the write and its read-back
            assert sim.output("barrier") is True
            await eventually(lambda: driver.bus.requests > polls)  # the polling connection polls
            seen = driver.supervisor.health.last_seen
            assert seen is not None
            await eventually(lambda: (driver.supervisor.health.last_seen or 0) > seen)  # each poll counts

            driver.command_bus.close()  # the module drops the command connection
            await driver.set_output("barrier", False)
            assert sim.output("barrier") is False and driver.command_bus.connected
            assert driver.supervisor.health.state == State.UP

        single = GateIODriver("gate2", config(sim.port, command_connection=False))
        assert single.command_bus is single.bus and single._command_connection is None

    run(scenario())


@pytest.mark.parametrize("policy", ["refuse", "silent", "evict"])
def test_a_module_that_takes_one_connection_gets_commands_on_the_polling_one(
    policy: Policy, caplog: pytest.LogCaptureFixture
) -> None:
    """However a single-connection module turns the command connection away — closing it, never
    answering on it, or dropping the polling connection for it — the driver notices at the start
    of the session, says so once, and runs outputs and polling over one connection."""

    async def scenario() -> None:
        async with (
            GateIOSim() as sim,
            SingleConnectionFront(sim.port, policy) as front,
            GateIODriver("gate1", config(front.port)) as driver,
        ):
            await driver.supervisor.wait_for(State.UP, WAIT)
            await eventually(lambda: driver.command_bus is driver.bus)
            assert front.turned_away >= 1
            assert sim.output("light_red") is True  # the safe state was still driven
            await driver.set_output("barrier", True)
            assert sim.output("barrier") is True
            await sim.set_input("photo_eye_1", True)
            assert (await next_event(driver, "photo_eye_1", True)).value is True
            assert driver.supervisor.health.state == State.UP

    with caplog.at_level("WARNING", logger="devices.drivers.gateio"):
        run(scenario())
    refused = [r for r in caplog.records if "took only one connection" in r.getMessage()]
    assert len(refused) == 1


def test_a_module_that_once_took_one_connection_gets_two_again_at_the_next_session() -> None:
    """Sharing the polling connection lasts one session: a module that turned the second
    connection away in a bad moment has it back after its next reconnect."""

    async def scenario() -> None:
        async with (
            GateIOSim() as sim,
            SingleConnectionFront(sim.port, "refuse") as front,
            GateIODriver("gate1", config(front.port)) as driver,
        ):
            await driver.supervisor.wait_for(State.UP, WAIT)
            await eventually(lambda: driver.command_bus is driver.bus)
            front.policy = "any"
            await sim.stop()
            await driver.supervisor.wait_for(State.DOWN, WAIT)
            await sim.start()
            await driver.supervisor.wait_for(State.UP, WAIT)
            assert driver.command_bus is not driver.bus
            await driver.set_output("barrier", True)
            assert sim.output("barrier") is True

    run(scenario())


def test_pulse_turns_off_even_when_cancelled() -> None:
    async def scenario() -> None:
        async with GateIOSim() as sim, GateIODriver("gate1", config(sim.port)) as driver:
            await driver.supervisor.wait_for(State.UP, WAIT)
            await driver.pulse("barrier", 0.05)
            assert sim.output("barrier") is False
            assert (await next_event(driver, "barrier_open")).value is True
            assert (await next_event(driver, "barrier_open")).value is False

            pulse = asyncio.create_task(driver.pulse("barrier", 30))
            await eventually(lambda: sim.output("barrier"))
            pulse.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pulse
            await eventually(lambda: not sim.output("barrier"))

    run(scenario())


def test_barrier_travels_between_its_switches() -> None:
    async def scenario() -> None:
        async with GateIOSim(barrier_delay_s=0.1) as sim, GateIODriver("gate1", config(sim.port)) as driver:
            await driver.supervisor.wait_for(State.UP, WAIT)
            await driver.set_output("barrier", True)
            left = await next_event(driver, "barrier_closed")
            assert left.value is False and sim.input("barrier_open") is False  # moving: neither switch
            arrived = await next_event(driver, "barrier_open")
            assert arrived.value is True and arrived.at > left.at

    run(scenario())


def test_unknown_output_and_commands_before_up() -> None:
    async def scenario() -> None:
        async with GateIOSim() as sim:
            driver = GateIODriver("gate1", config(sim.port))
            with pytest.raises(DeviceError, match="STARTING"):
                await driver.set_output("barrier", True)  # not started: refused at once
            async with driver:
                await driver.supervisor.wait_for(State.UP, WAIT)
                with pytest.raises(KeyError, match="boom"):
                    await driver.set_output("boom", True)

    run(scenario())


# --- pymodbus's own client against our simulator ----------------------------------------------------
def test_pymodbus_client_sees_the_documented_layouts() -> None:
    async def scenario() -> None:
        async with GateIOSim("e1212") as e, GateIOSim(gate_map(adam6050())) as a:
            async with AsyncModbusTcpClient("127.0.0.1", port=e.port, timeout=2) as client:
                di = await client.read_discrete_inputs(0, count=16, device_id=1)
                assert di.bits[:16] == [False] * 4 + [True] + [False] * 11  # barrier_closed on DI4
                assert not (await client.write_coil(0, True, device_id=1)).isError()
                assert (await client.read_coils(0, count=8, device_id=1)).bits[:8] == [True] + [False] * 7
                assert e.input("barrier_open") is True  # the barrier moved
                await e.set_input("photo_eye_2", True)
                di = await client.read_discrete_inputs(0, count=16, device_id=1)
                assert di.bits[1] is True and di.bits[3] is True and di.bits[4] is False

            async with AsyncModbusTcpClient("127.0.0.1", port=a.port, timeout=2) as client:
                assert not (await client.write_coil(16 + 3, True, device_id=1)).isError()  # DO3 = coil 16+3
                assert a.output("light_red") is True
                coils = await client.read_coils(16, count=6, device_id=1)
                assert coils.bits[:6] == [False, False, False, True, False, False]
                await a.set_input("loop", True)
                word = await client.read_holding_registers(300, count=1, device_id=1)  # 40301
                assert word.registers == [0b10100]  # DI2 (loop) and DI4 (barrier_closed)
                refused = await client.write_coil(0, True, device_id=1)  # no DO at coil 0 on an ADAM
                assert refused.isError() and refused.exception_code == ExcCodes.ILLEGAL_ADDRESS

                a.fail(ExcCodes.DEVICE_FAILURE, on="read")
                failed = await client.read_discrete_inputs(0, count=12, device_id=1)
                assert failed.isError() and failed.exception_code == ExcCodes.DEVICE_FAILURE
                assert not (await client.write_coil(16, True, device_id=1)).isError()  # writes still work

    run(scenario())


# --- our driver against a plain pymodbus server ------------------------------------------------------
def test_driver_against_a_plain_pymodbus_server() -> None:
    """No simulator code of ours: pymodbus's SimDevice with 8 coils and 16 DIs, as an E1212."""

    async def scenario() -> None:
        device = SimDevice(
            id=0,
            simdata=(
                [SimData(0, values=[False] * 8, datatype=DataType.BITS)],
                [SimData(0, values=[True, False, True] + [False] * 13, datatype=DataType.BITS)],
                [SimData(0, datatype=DataType.INVALID)],
                [SimData(0, datatype=DataType.INVALID)],
            ),
        )
        server = ModbusTcpServer(device, address=("127.0.0.1", 0))
        await server.serve_forever(background=True)
        port = server.transport.sockets[0].getsockname()[1]
        io = IOMap(profile="e1212", inputs={"eye": 0, "loop": 2, "switch": 5}, outputs={"horn": 6, "lamp": 7})
        cfg = GateIOConfig(endpoint=TcpEndpoint(host="127.0.0.1", port=port), io=io)
        try:
            async with GateIODriver("plain", cfg) as driver:
                await driver.supervisor.wait_for(State.UP, WAIT)
                assert driver.inputs == {"eye": True, "loop": True, "switch": False}
                await driver.set_output("lamp", True)
                assert (await server.async_getValues(1, 1, 7, 1))[0] is True
                await server.async_setValues(1, 2, 5, [True])
                assert (await next_event(driver, "switch")).value is True
        finally:
            await server.shutdown()

    run(scenario())


# --- faults --------------------------------------------------------------------------------------------
def test_server_down_is_down_and_recovers_by_itself_in_safe_state() -> None:
    async def scenario() -> None:
        async with GateIOSim() as sim, GateIODriver("gate1", config(sim.port)) as driver:
            await driver.supervisor.wait_for(State.UP, WAIT)
            await driver.set_output("barrier", True)
            await sim.stop()
            await driver.supervisor.wait_for(State.DOWN, WAIT)
            with pytest.raises(DeviceError, match="DOWN"):
                await driver.set_output("light_green", True)  # refused at once, no hang
            assert sim.output("barrier") is True  # state kept while the module is away

            await sim.set_input("loop", True)  # changed while the module was unreachable
            await sim.start()
            await driver.supervisor.wait_for(State.UP, WAIT)
            assert sim.output("barrier") is False  # every new session starts in safe state
            assert (await next_event(driver, "loop")).value is True  # reported (late) on reconnect
            await driver.set_output("light_green", True)

    run(scenario())


def test_module_that_stops_answering_is_down_then_up() -> None:
    async def scenario() -> None:
        async with GateIOSim() as sim, GateIODriver("gate1", config(sim.port, timeout_s=0.2)) as driver:
            await driver.supervisor.wait_for(State.UP, WAIT)
            sim.mute()
            health = await driver.supervisor.wait_for(State.DOWN, WAIT)
            assert "no answer" in health.reason and "read discrete inputs" in health.reason
            with pytest.raises(DeviceError):
                await driver.pulse("barrier", 0.1)
            sim.mute(False)
            await driver.supervisor.wait_for(State.UP, WAIT)

    run(scenario())


def test_exception_responses_degrade_and_fail_commands() -> None:
    async def scenario() -> None:
        async with GateIOSim() as sim, GateIODriver("gate1", config(sim.port)) as driver:
            await driver.supervisor.wait_for(State.UP, WAIT)
            sim.fail(ExcCodes.DEVICE_FAILURE, on="read")
            health = await driver.supervisor.wait_for(State.DEGRADED, WAIT)
            assert "DEVICE_FAILURE" in health.reason
            sim.fail(None)
            await driver.supervisor.wait_for(State.UP, WAIT)

            sim.fail(ExcCodes.ILLEGAL_ADDRESS, on="write")
            errors = driver.supervisor.health.errors
            with pytest.raises(
                ModbusExceptionResponse, match="write coil at 0: exception 2 ILLEGAL_ADDRESS"
            ) as e:
                await driver.set_output("barrier", True)
            assert isinstance(e.value, DeviceError) and e.value.code == ExcCodes.ILLEGAL_ADDRESS
            assert driver.supervisor.health.errors > errors
            assert sim.output("barrier") is False

    run(scenario())


def test_read_back_mismatch_is_detected() -> None:
    async def scenario() -> None:
        async with GateIOSim() as sim, GateIODriver("gate1", config(sim.port)) as driver:
            await driver.supervisor.wait_for(State.UP, WAIT)
            seen = states_of(driver)
            sim.stick_output("diverter_right", False)  # welded relay: acknowledges, stays off
            with pytest.raises(
                OutputMismatch, match="'diverter_right' \\(coil 2\\) reads False after writing True"
            ):
                await driver.set_output("diverter_right", True)
            assert State.DEGRADED in seen
            assert driver.outputs["diverter_right"] is False
            sim.stick_output("diverter_right", True)
            with pytest.raises(DeviceError, match=r"safe state not reached.*diverter_right"):
                await driver.safe_state()
            assert sim.output("barrier") is False and sim.output("light_red") is True  # the rest made safe

    run(scenario())


def test_one_dead_module_does_not_stall_another() -> None:
    async def scenario() -> None:
        async with GateIOSim() as a, GateIOSim() as b:
            dead = GateIODriver("gate-a", config(a.port, timeout_s=0.3))
            alive = GateIODriver("gate-b", config(b.port, timeout_s=0.3))
            async with dead, alive:
                await dead.supervisor.wait_for(State.UP, WAIT)
                await alive.supervisor.wait_for(State.UP, WAIT)
                a.mute()  # hangs: every request to it waits out its timeout
                await dead.supervisor.wait_for(State.DOWN, WAIT)
                polls = alive.polls
                await asyncio.sleep(0.5)
                assert alive.polls > polls + 5  # kept polling through a's timeouts
                await b.set_input("photo_eye_1", True)
                assert (await next_event(alive, "photo_eye_1")).value is True
                await alive.set_output("barrier", True)
                assert alive.supervisor.health.state == State.UP
                await a.stop()  # now refusing connections outright
                await asyncio.sleep(0.3)
                assert dead.supervisor.health.state == State.DOWN
                assert alive.supervisor.health.state == State.UP

    run(scenario())


def test_two_units_share_one_bus() -> None:
    """Two unit ids behind one endpoint (an RS-485 line behind a gateway): one bus, one lock."""

    async def scenario() -> None:
        async with GateIOSim() as sim:
            pool = BusPool(timeout=0.5)
            endpoint = TcpEndpoint(host="127.0.0.1", port=sim.port)
            bus = pool.get(endpoint)
            assert pool.get(endpoint) is bus
            one = GateIODriver("unit1", config(sim.port, device_id=1), bus=bus)
            two = GateIODriver("unit2", config(sim.port, device_id=2), bus=bus)
            async with one, two:
                await one.supervisor.wait_for(State.UP, WAIT)
                await two.supervisor.wait_for(State.UP, WAIT)
                await asyncio.gather(
                    *(d.set_output(n, True) for d in (one, two) for n in ("light_amber", "light_green"))
                )
                polls = one.polls, two.polls
                await eventually(lambda: one.polls > polls[0] + 3 and two.polls > polls[1] + 3)
            assert bus.failures == 0
            pool.close()

    run(scenario())


# --- RTU -----------------------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("socat") is None, reason="needs socat for a pty pair")
def test_rtu_over_a_pty_pair(tmp_path: Path) -> None:
    a, b = tmp_path / "module", tmp_path / "host"
    socat = subprocess.Popen(["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"])

    async def scenario() -> None:
        await eventually(lambda: a.exists() and b.exists())
        async with GateIOSim("adam6050", rtu_port=str(a)) as sim:
            cfg = GateIOConfig(
                endpoint=RtuEndpoint(port=str(b), baudrate=115200), device_id=5, io=gate_map("adam6050")
            )
            async with GateIODriver("gate-rtu", cfg) as driver:
                await driver.supervisor.wait_for(State.UP, WAIT)
                await sim.set_input("photo_eye_2", True)
                assert (await next_event(driver, "photo_eye_2")).value is True
                await driver.set_output("barrier", True)
                assert (await next_event(driver, "barrier_open")).value is True
                sim.mute()
                await driver.supervisor.wait_for(State.DOWN, WAIT)
                sim.mute(False)
                await driver.supervisor.wait_for(State.UP, WAIT)

    try:
        run(scenario())
    finally:
        socat.terminate()
        socat.wait(5)
        assert not os.path.exists(a) or socat.returncode is not None

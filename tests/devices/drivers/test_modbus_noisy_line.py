"""Gate I/O on a noisy line, against modules written from the vendors' documents
(testkit/vendor_modbus.py, not firmware_sim): a corrupt or lost answer is asked again within a
bounded budget, never taken as the module being gone; a write asked again is an absolute value, so a
pulse fires once; a module that is really gone is still DOWN, and back in its safe state.

Waits are bounded (WAIT); nothing asserts a duration.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest

from devices.drivers.gateio import GateIOConfig, GateIODriver
from devices.health import DeviceError, Health, State
from devices.protocols.io_profiles import IOMap
from devices.transports.modbus import (
    ModbusBus,
    ModbusExceptionResponse,
    ModbusTimeout,
    RtuEndpoint,
    TcpEndpoint,
)
from testkit.vendor_modbus import LineNoise, RtuModule, TcpModule, adam6050, e1212
from testkit.waiting import eventually, states_of

WAIT = 10.0
POINTS = {
    "inputs": {"photo_eye": 0, "barrier_open": 1},
    "outputs": {
        "diverter_left": {"channel": 0},
        "diverter_right": {"channel": 1},
        "barrier": {"channel": 2},
        "light_red": {"channel": 3, "safe": True},
    },
}
LEFT, RIGHT, BARRIER, RED = 0, 1, 2, 3  # DO channels (light_red's safe value is on)


def run(coro: Coroutine[Any, Any, None], timeout: float = 90) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


@asynccontextmanager
async def on_line(
    kind: str, noise: LineNoise | None = None, **kw: Any
) -> AsyncIterator[tuple[RtuModule | TcpModule, GateIODriver, list[State]]]:
    """A module on RTU (a pty pair) or TCP, and a driver that is UP on it."""
    module: RtuModule | TcpModule
    if kind == "rtu":
        module = RtuModule(adam6050(), units=(1,), noise=noise)
        await module.start()
        endpoint: RtuEndpoint | TcpEndpoint = RtuEndpoint(port=module.path, baudrate=115200)
        profile = "adam6050"
    else:
        module = TcpModule(e1212(), units=(1,), noise=noise)
        await module.start()
        endpoint = TcpEndpoint(host="127.0.0.1", port=module.port)
        profile = "e1212"
    kw = {"timeout_s": 0.1, "poll_hz": 100.0} | kw
    config = GateIOConfig(endpoint=endpoint, io=IOMap(profile=profile, **POINTS), **kw)  # type: ignore[arg-type]
    driver = GateIODriver("io", config)
    try:
        async with driver:
            await driver.supervisor.wait_for(State.UP, WAIT)
            yield module, driver, states_of(driver)
    finally:
        await module.close()


async def polls_go_on(driver: GateIODriver, n: int = 5) -> None:
    polls = driver.polls
    await eventually(lambda: driver.polls >= polls + n)


# --- one bad answer -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "fate"),
    [
        ("rtu", "corrupt"),
        ("rtu", "drop_answer"),
        ("tcp", "drop_answer"),
        ("rtu", "malformed"),  # outside finding: one short DI answer made the module DOWN at once
        ("tcp", "malformed"),
    ],
)
def test_one_bad_answer_to_a_poll_is_a_counted_fault_not_a_lost_module(kind: str, fate: str) -> None:
    async def scenario() -> None:
        noise = LineNoise()
        async with on_line(kind, noise) as (module, driver, states):
            errors = driver.supervisor.health.errors
            noise.then(fate, function=2)  # type: ignore[arg-type]
            await eventually(lambda: noise.scripted == 0)
            await polls_go_on(driver)
            assert State.DOWN not in states, states
            assert driver.supervisor.health.errors > errors  # counted (DEGRADED for the moment)
            assert State.DEGRADED in states
            # UP again once DEGRADED's hysteresis has seen a quiet spell, and never DOWN meanwhile
            assert (await driver.supervisor.wait_for(State.UP, WAIT)).state == State.UP
            assert State.DOWN not in states, states
            assert driver.bus.corrupt == (1 if fate == "corrupt" else 0)  # told apart, counted
            assert driver.bus.malformed == (1 if fate == "malformed" else 0)
            module.module.di[0] = True
            await eventually(lambda: driver.inputs.get("photo_eye") is True)

    run(scenario())


@pytest.mark.parametrize("fate", ["corrupt", "drop_answer", "drop_request", "malformed"])
@pytest.mark.parametrize("function", [5, 1], ids=["write", "read-back"])
def test_a_command_whose_answer_is_lost_is_asked_again_and_confirmed(fate: str, function: int) -> None:
    """On RTU, the one line: the write (or its read-back) is hit once; the command still succeeds,
    confirmed by a read-back, and the output is known. A malformed answer (a read-back one byte
    short, an echo for another coil) is asked again like a lost one, never taken."""

    async def scenario() -> None:
        noise = LineNoise()
        async with on_line("rtu", noise) as (module, driver, states):
            noise.then(fate, function=function)  # type: ignore[arg-type]
            await driver.set_output("diverter_left", True)
            assert noise.scripted == 0  # the command was the one hit
            assert module.module.do[LEFT] is True and driver.outputs["diverter_left"] is True
            assert module.module.rises[LEFT] == 1
            await polls_go_on(driver)
            assert State.DOWN not in states, states
            assert driver.bus.retried >= 1
            assert driver.bus.corrupt == (1 if fate == "corrupt" else 0)

    run(scenario())


def test_a_retried_pulse_fires_once_and_ends_off() -> None:
    """The barrier's "on" and "off" writes both lose their answer once: each is asked again with the
    same absolute value, so the coil rises once and ends off; nothing double-fires."""

    async def scenario() -> None:
        noise = LineNoise()
        async with on_line("rtu", noise) as (module, driver, states):
            noise.then("drop_answer", "corrupt", function=5)
            await driver.pulse("barrier", 0.05)
            assert noise.scripted == 0
            assert module.module.rises[BARRIER] == 1
            assert module.module.do[BARRIER] is False and driver.outputs["barrier"] is False
            noise.then("drop_request", function=5)  # the "on" never arrives the first time
            await driver.pulse("barrier", 0.05)
            assert module.module.rises[BARRIER] == 2 and module.module.do[BARRIER] is False
            assert State.DOWN not in states

    run(scenario())


def test_a_fault_at_the_start_of_a_session_does_not_open_the_module_before_its_safe_state() -> None:
    """A lost answer while a session starts is counted, but the module is usable (UP or DEGRADED)
    only once every output has been driven to its safe value: a station command taken earlier
    would be overwritten by the safe state after it was confirmed."""

    async def scenario() -> None:
        noise = LineNoise()
        noise.then("corrupt", function=2)  # the session's first request
        noise.then("drop_answer", function=5)  # a write of the safe state
        module = RtuModule(adam6050(), units=(1,), noise=noise)
        await module.start()
        config = GateIOConfig(
            endpoint=RtuEndpoint(port=module.path, baudrate=115200),
            io=IOMap(profile="adam6050", **POINTS),  # type: ignore[arg-type]
            timeout_s=0.1,
        )
        driver = GateIODriver("io", config)
        usable_with: list[tuple[State, bool]] = []

        def listener(health: Health) -> None:
            if health.state in (State.UP, State.DEGRADED):
                usable_with.append((health.state, module.module.do[3]))  # light_red: safe is on

        driver.supervisor.subscribe(listener)
        try:
            async with driver:
                await driver.supervisor.wait_for(State.UP, WAIT)
                assert noise.scripted == 0
                assert usable_with and all(safe for _state, safe in usable_with), usable_with
                assert driver.supervisor.health.errors >= 2  # both counted
        finally:
            await module.close()

    run(scenario())


# --- a late answer, a refused read-back, a module that restarts (outside findings) -------------------------
def test_a_late_answer_on_rtu_never_answers_the_next_request() -> None:
    """RTU has no transaction id: an answer that comes after its request's timeout would be taken as
    the answer to the next request of the same shape (here: one coil, DO0 ON read as DO1). The bus
    lets the line go quiet and drops what arrived before it sends anything else."""

    async def scenario() -> None:
        noise = LineNoise(late_s=0.15)
        module = RtuModule(adam6050(), units=(1,), noise=noise)
        await module.start()
        bus = ModbusBus(RtuEndpoint(port=module.path, baudrate=115200), timeout=0.1)
        try:
            module.module.do[LEFT] = True
            noise.then("late", function=1)
            with pytest.raises(ModbusTimeout):
                await bus.read_coils(1, 16 + LEFT, 1, retries=0)  # ADAM-6050: DO0 is coil 16
            assert await bus.read_coils(1, 16 + RIGHT, 1, retries=0) == [False]  # DO1's own answer
            assert bus.stray >= 1 and bus.resyncs == 1  # the late answer came, and was dropped
            assert await bus.read_coils(1, 16 + LEFT, 1, retries=0) == [True]
        finally:
            bus.close()
            await module.close()

    run(scenario())


def test_after_a_lost_answer_only_a_request_it_could_pass_for_waits_for_the_line() -> None:
    """A lost read-back answer does not hold up a DI poll (its answer has another size: a late
    read-back answer cannot pass for it), and the poll's own answer, in order, shows the line back
    in step. Only a request of the same shape waits for the line to go quiet."""

    async def scenario() -> None:
        noise = LineNoise()
        module = RtuModule(adam6050(), units=(1,), noise=noise)
        await module.start()
        bus = ModbusBus(RtuEndpoint(port=module.path, baudrate=115200), timeout=0.1)
        try:
            noise.then("drop_answer", function=1)
            with pytest.raises(ModbusTimeout):
                await bus.read_coils(1, 16 + LEFT, 1, retries=0)
            assert await bus.read_discrete_inputs(1, 0, 12, retries=0) == [False] * 12
            assert await bus.read_coils(1, 16 + RIGHT, 1, retries=0) == [False]
            assert bus.resyncs == 0  # neither waited
            noise.then("drop_answer", function=1)
            with pytest.raises(ModbusTimeout):
                await bus.read_coils(1, 16 + LEFT, 1, retries=0)
            assert await bus.read_coils(1, 16 + RIGHT, 1, retries=0) == [False]
            assert bus.resyncs == 1  # the same shape: it waited for the line
        finally:
            bus.close()
            await module.close()

    run(scenario())


@pytest.mark.parametrize("kind", ["tcp", "rtu"])
def test_a_write_whose_read_back_is_refused_ends_the_session_and_the_output_is_driven_safe(kind: str) -> None:
    """The module carries out the ON and acknowledges it, then answers the read-back with exception
    06 (busy): the output is on, unconfirmed. The command fails, and — as for a lost answer — the
    session ends and the next one drives every output safe, confirmed."""

    async def scenario() -> None:
        noise = LineNoise()
        async with on_line(kind, noise, output_check_s=30.0) as (module, driver, states):
            noise.then("busy", function=1)  # polls are function 2: this is the read-back
            with pytest.raises(ModbusExceptionResponse, match="exception 6 DEVICE_BUSY"):
                await driver.set_output("diverter_left", True)
            assert noise.scripted == 0 and module.module.rises[LEFT] == 1  # it was carried out
            assert "diverter_left" not in driver.outputs  # not known
            await eventually(lambda: module.module.do[LEFT] is False)  # driven safe by a new session
            await driver.supervisor.wait_for(State.UP, WAIT)
            assert State.DOWN in states, states
            assert driver.outputs["diverter_left"] is False and driver.outputs["light_red"] is True

    run(scenario())


@pytest.mark.parametrize("kind", ["tcp", "rtu"])
def test_a_module_that_restarts_mid_pulse_cuts_the_pulse_short_and_is_driven_safe(kind: str) -> None:
    """The module restarts while the barrier's pulse is on (every coil back to off; on TCP every
    connection dropped too). The pulse is not reported whole: it fails as cut short, so the
    actuation record says so, and the session ends so that the next one drives every output safe
    (light_red, safe on, is on again)."""

    async def scenario() -> None:
        async with on_line(kind) as (module, driver, states):
            pulse = asyncio.create_task(driver.pulse("barrier", 5.0))
            await eventually(lambda: module.module.do[BARRIER] and driver.outputs.get("barrier") is True)
            module.reboot()
            assert module.module.do[RED] is False
            with pytest.raises(DeviceError, match=r"cut short.*barrier read back False"):
                async with asyncio.timeout(WAIT):
                    await pulse
            await eventually(lambda: State.DOWN in states)
            await driver.supervisor.wait_for(State.UP, WAIT)
            assert module.module.do[RED] is True and module.module.do[BARRIER] is False
            assert driver.outputs["light_red"] is True and driver.outputs["barrier"] is False

    run(scenario())


def test_outputs_reset_behind_the_drivers_back_end_the_session_and_are_driven_safe() -> None:
    """On RTU a module that restarts drops no connection: only reading the outputs back shows it. A
    lane confirmed on reads off: the session ends and the next drives every output safe."""

    async def scenario() -> None:
        async with on_line("rtu") as (module, driver, states):
            await driver.set_output("diverter_left", True)
            module.reboot()
            await eventually(lambda: State.DOWN in states)
            await driver.supervisor.wait_for(State.UP, WAIT)
            assert module.module.do[RED] is True and driver.outputs["diverter_left"] is False

    run(scenario())


# --- the noisy line ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["rtu", "tcp"])
def test_a_line_with_one_bad_answer_in_a_hundred(kind: str) -> None:
    """1 corrupt and 1 lost answer in 100 (seeded) while the diverter is driven as a conveyor drives
    it (the other lane off, then this one on, each confirmed) and the DIs are polled at 100 Hz: no
    command fails, the module is never DOWN, and every lane change rises once."""

    async def scenario() -> None:
        noise = LineNoise(seed=10, corrupt=0.01, drop_answer=0.01)
        async with on_line(kind, noise) as (module, driver, states):
            failed = 0
            for i in range(150):
                target, other = ("diverter_left", "diverter_right")[:: 1 if i % 2 else -1]
                try:
                    await driver.set_output(other, False)
                    await driver.set_output(target, True)
                except DeviceError:
                    failed += 1
            await polls_go_on(driver)
            assert failed == 0
            assert State.DOWN not in states, states
            hits = noise.fates["corrupt"] + noise.fates["drop_answer"]
            assert hits >= 3, noise.fates  # the line was noisy
            assert module.module.rises[LEFT] == 75 and module.module.rises[RIGHT] == 75
            assert driver.bus.retried + driver.command_bus.retried >= 1

    run(scenario())


# --- budget and deadline ---------------------------------------------------------------------------------
def test_a_command_is_never_retried_past_its_deadline() -> None:
    """A diverter command has until the parcel reaches the diverter: the retry budget fits inside
    it (an attempt that may be asked again leaves time for one more). Unconfirmed by then, the
    command fails (the station's safe path), its output is not taken as known, and the module's
    next session drives every output safe."""

    async def scenario() -> None:
        noise = LineNoise()
        async with on_line("rtu", noise, timeout_s=5.0) as (module, driver, _states):
            noise.then(*["drop_answer"] * 3, function=5)  # carried out: the lane is open, unconfirmed
            writes = module.module.writes
            with pytest.raises(DeviceError, match="within its deadline"):
                await driver.set_output("diverter_left", True, deadline=time.monotonic() + 0.2)
            assert 1 <= module.module.writes - writes <= 3  # within the budget: asked again twice at most
            assert "diverter_left" not in driver.outputs
            await eventually(lambda: module.module.do[LEFT] is False)  # and then driven safe, confirmed
            await driver.supervisor.wait_for(State.UP, WAIT)
            assert driver.outputs["diverter_left"] is False and driver.outputs["light_red"] is True

    run(scenario())


def test_a_command_whose_deadline_has_passed_is_not_sent() -> None:
    async def scenario() -> None:
        async with on_line("rtu") as (module, driver, states):
            writes = module.module.writes
            with pytest.raises(DeviceError, match="deadline"):
                await driver.set_output("diverter_left", True, deadline=time.monotonic() - 1)
            assert module.module.writes == writes
            assert driver.outputs["diverter_left"] is False  # nothing sent: still known
            await polls_go_on(driver)
            assert State.DOWN not in states

    run(scenario())


# --- really gone -------------------------------------------------------------------------------------------
def test_a_silent_module_is_down_within_its_budget_and_safe_when_back() -> None:
    async def scenario() -> None:
        async with on_line("rtu") as (module, driver, _states):
            await driver.set_output("diverter_left", True)
            module.mute()
            health = await driver.supervisor.wait_for(State.DOWN, WAIT)
            assert "no answer" in health.reason and "in a row" in health.reason
            with pytest.raises(DeviceError, match="DOWN"):
                await driver.set_output("diverter_right", True)  # refused at once
            module.mute(False)
            await driver.supervisor.wait_for(State.UP, WAIT)
            assert module.module.do[LEFT] is False and module.module.do[3] is True  # safe, driven

    run(scenario())


def test_a_stopped_tcp_module_is_down_and_its_watchdog_makes_it_safe() -> None:
    async def scenario() -> None:
        module = TcpModule(e1212(), units=(1,), watchdog_s=0.3)
        await module.start()
        config = GateIOConfig(
            endpoint=TcpEndpoint(host="127.0.0.1", port=module.port),
            io=IOMap(profile="e1212", **POINTS),  # type: ignore[arg-type]
            timeout_s=0.1,
        )
        try:
            async with GateIODriver("io", config) as driver:
                await driver.supervisor.wait_for(State.UP, WAIT)
                await driver.set_output("diverter_left", True)
                await module.stop()
                health = await driver.supervisor.wait_for(State.DOWN, WAIT)
                assert "refused" in health.reason or "closed" in health.reason or "lost" in health.reason
                with pytest.raises(DeviceError, match="DOWN"):
                    await driver.set_output("diverter_left", False)
                await eventually(lambda: module.module.do[LEFT] is False)  # the module's own fail-safe
                await module.start()  # back on the same port
                await driver.supervisor.wait_for(State.UP, WAIT)
                assert module.module.do[3] is True  # the agent's session drove the safe state
        finally:
            await module.close()

    run(scenario())

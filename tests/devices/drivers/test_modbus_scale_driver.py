"""The Modbus weight indicator driver against the simulator over real Modbus TCP on loopback, and
against an indicator written from the Modbus specifications (testkit/vendor_modbus.py) on a
line that answers late or garbles an answer, over RTU (a pty pair) and TCP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from devices.drivers.modbus_scale import ModbusScaleConfig, ModbusScaleDriver
from devices.events import WeightReading
from devices.health import DeviceError, Health, State
from devices.protocols.modbus_weight import GENERIC_INT32, WeightMap, encode
from devices.transports.modbus import RtuEndpoint, TcpEndpoint
from firmware_sim.modbus_scale import ModbusScaleSim
from testkit.vendor_modbus import LineNoise, RtuModule, TcpModule, indicator

WAIT = 5.0


def run(coro: Coroutine[Any, Any, None], timeout: float = 30) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


def config(port: int, weight_map: WeightMap = GENERIC_INT32, **kw: Any) -> ModbusScaleConfig:
    return ModbusScaleConfig(
        endpoint=TcpEndpoint(host="127.0.0.1", port=port), weight_map=weight_map, poll_hz=50, **kw
    )


async def reading_where(driver: ModbusScaleDriver, **want: object) -> WeightReading:
    while True:
        event = await driver.events.get(WAIT)
        if isinstance(event, WeightReading) and all(getattr(event, k) == v for k, v in want.items()):
            return event


def test_readings_flags_and_change_only_events() -> None:
    async def scenario() -> None:
        async with ModbusScaleSim() as sim, ModbusScaleDriver("scale1", config(sim.port)) as driver:
            await driver.supervisor.wait_for(State.UP, WAIT)
            first = await driver.events.get(WAIT)
            assert isinstance(first, WeightReading) and first.kg == Decimal("0.000") and first.stable

            await sim.set_load("12.3456", motion=True)  # the indicator rounds to its 1 g division
            moving = await reading_where(driver, kg=Decimal("12.346"))
            assert not moving.stable and moving.device == "scale1"
            await asyncio.sleep(0.1)
            assert driver.events.empty()  # a steady scale is not re-reported every poll
            assert driver.latest is not None and driver.latest.at > moving.at

            await sim.set_overload()
            over = await reading_where(driver, overload=True)
            assert over.kg is None
            await sim.set_overload(False)
            await sim.set_underload()
            assert (await reading_where(driver, underload=True)).kg is None

    run(scenario())


def test_wait_stable_wants_a_fresh_stable_weight() -> None:
    async def scenario() -> None:
        async with ModbusScaleSim() as sim, ModbusScaleDriver("scale1", config(sim.port)) as driver:
            await driver.supervisor.wait_for(State.UP, WAIT)
            await sim.set_load("3.2", motion=True)
            assert await driver.wait_stable(0.2) is None  # still moving at the deadline

            async def settle() -> None:
                await asyncio.sleep(0.1)
                await sim.set_motion(False)

            settling = asyncio.create_task(settle())
            called = asyncio.get_running_loop().time()
            reading = await driver.wait_stable(WAIT)
            await settling
            assert reading is not None and reading.kg == Decimal("3.200") and reading.stable
            assert reading.at > called

    run(scenario())


def test_float_map_on_input_registers_low_word_first() -> None:
    float_map = WeightMap(
        table="input",
        weight_address=100,
        weight_type="float32",
        word_order="low_first",
        resolution=Decimal("0.01"),
        status_address=99,
        motion_bit=7,
        net_bit=6,
    )

    async def scenario() -> None:
        async with (
            ModbusScaleSim(float_map) as sim,
            ModbusScaleDriver("scale-f", config(sim.port, float_map)) as d,
        ):
            await d.supervisor.wait_for(State.UP, WAIT)
            await sim.set_load("-1234.56")
            assert (await reading_where(d, kg=Decimal("-1234.56"))).stable
            async with AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=2) as client:
                regs = (await client.read_input_registers(99, count=3, device_id=1)).registers
                assert regs[0] == 0  # status: stable
                assert d.bus.requests > 0

    run(scenario())


def test_down_up_and_exception_responses() -> None:
    async def scenario() -> None:
        async with (
            ModbusScaleSim() as sim,
            ModbusScaleDriver("scale1", config(sim.port, timeout_s=0.2)) as driver,
        ):
            await driver.supervisor.wait_for(State.UP, WAIT)
            sim.fail(ExcCodes.DEVICE_BUSY)
            health = await driver.supervisor.wait_for(State.DEGRADED, WAIT)
            assert "DEVICE_BUSY" in health.reason and "read holding registers at 0" in health.reason
            sim.fail(None)
            await driver.supervisor.wait_for(State.UP, WAIT)

            await sim.set_motion(True)
            waiting = asyncio.create_task(driver.wait_stable(WAIT))
            await asyncio.sleep(0.05)
            await sim.stop()
            with pytest.raises(DeviceError):
                await waiting  # the indicator went away during the wait: not "no stable weight"
            await driver.supervisor.wait_for(State.DOWN, WAIT)
            with pytest.raises(DeviceError, match="DOWN"):
                await driver.wait_stable(1)  # refused at once
            await sim.set_load("7.5", motion=False)
            await sim.start()
            await driver.supervisor.wait_for(State.UP, WAIT)
            reading = await driver.wait_stable(WAIT)
            assert reading is not None and reading.kg == Decimal("7.500")

            sim.mute()
            await driver.supervisor.wait_for(State.DOWN, WAIT)
            sim.mute(False)
            await driver.supervisor.wait_for(State.UP, WAIT)

    run(scenario())


def test_overload_and_underload_are_never_stable_weights() -> None:
    """One meaning with the serial driver: an indicator over or under range has no weight, so its
    reading is not stable (stable means "a weight to take"), and a steady overload is one event, not
    one per poll. Against a plain pymodbus server laid out as GENERIC_INT32 (status bit 1 overload,
    bit 2 underload)."""

    async def scenario() -> None:
        device = SimDevice(
            id=0,
            simdata=(
                [SimData(0, values=[False] * 8, datatype=DataType.BITS)],
                [SimData(0, values=[False] * 8, datatype=DataType.BITS)],
                [SimData(0, values=[0, 1234, 0b010], datatype=DataType.REGISTERS)],
                [SimData(0, datatype=DataType.INVALID)],
            ),
        )
        server = ModbusTcpServer(device, address=("127.0.0.1", 0))
        await server.serve_forever(background=True)
        port = server.transport.sockets[0].getsockname()[1]
        try:
            async with ModbusScaleDriver("scale1", config(port)) as driver:
                await driver.supervisor.wait_for(State.UP, WAIT)
                over = await reading_where(driver, overload=True)
                assert over.kg is None and over.stable is False
                assert await driver.wait_stable(0.2) is None
                await asyncio.sleep(0.2)  # ten polls of the same overload
                assert driver.events.empty()
                await server.async_setValues(1, 3, 2, [0b100])
                under = await reading_where(driver, underload=True)
                assert under.kg is None and under.stable is False
                await server.async_setValues(1, 3, 2, [0])
                weighed = await reading_where(driver, kg=Decimal("1.234"))
                assert weighed.stable
        finally:
            await server.shutdown()

    run(scenario())


# --- an indicator from the specifications, on a line that answers late or garbles (outside findings) ---
KG = Decimal("12.345")


def int_map(weight_type: str, weight_address: int, status_address: int) -> WeightMap:
    return WeightMap(
        weight_address=weight_address,
        weight_type=weight_type,  # type: ignore[arg-type]
        scale=Decimal("0.001"),
        status_address=status_address,
        motion_bit=0,
        overload_bit=1,
        underload_bit=2,
        net_bit=3,
    )


async def eventually(check: Callable[[], bool], timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)


@asynccontextmanager
async def indicator_on(
    kind: str, weight_map: WeightMap, noise: LineNoise | None = None, *, gaps_readable: bool = True
) -> AsyncIterator[tuple[RtuModule | TcpModule, ModbusScaleDriver, list[State]]]:
    """An indicator showing 12.345 kg, stable, net, on RTU or TCP; a driver on it with its first
    stable reading taken, and the health states it goes through from then on."""
    module: RtuModule | TcpModule
    if kind == "rtu":
        module = RtuModule(indicator(gaps_readable=gaps_readable), units=(1,), noise=noise)
        await module.start()
        endpoint: RtuEndpoint | TcpEndpoint = RtuEndpoint(port=module.path, baudrate=115200)
    else:
        module = TcpModule(indicator(gaps_readable=gaps_readable), units=(1,), noise=noise)
        await module.start()
        endpoint = TcpEndpoint(host="127.0.0.1", port=module.port)
    module.module.holding.update(encode(weight_map, KG, net=True))
    cfg = ModbusScaleConfig(endpoint=endpoint, weight_map=weight_map, poll_hz=20, timeout_s=0.1, retries=2)
    states: list[State] = []
    try:
        async with ModbusScaleDriver("scale-v", cfg) as driver:
            await driver.supervisor.wait_for(State.UP, WAIT)
            first = await driver.wait_stable(WAIT)
            assert first is not None and first.kg == KG and first.net

            def listener(health: Health) -> None:
                states.append(health.state)

            driver.supervisor.subscribe(listener)
            yield module, driver, states
    finally:
        await module.close()


async def readings(driver: ModbusScaleDriver) -> list[WeightReading]:
    """Every reading the driver has put out since the last call."""
    out = []
    while not driver.events.empty():
        event = await driver.events.get(WAIT)
        if isinstance(event, WeightReading):
            out.append(event)
    return out


@pytest.mark.parametrize(
    ("weight_type", "weight_at", "status_at", "skip", "late_s"),
    [
        ("int16", 20, 0, 0, 0.13),  # the outside tester's map: status word read as 0.008 kg, stable
        ("int16", 0, 20, 0, 0.13),
        ("int32", 0, 20, 0, 0.13),  # a late answer of another size: the indicator made DOWN
        ("int16", 100, 0, 0, 0.13),  # too far apart for one request: read apart
        ("int16", 100, 0, 1, 0.13),
        ("int16", 100, 0, 2, 0.13),
        ("int32", 0, 100, 0, 0.25),  # later than the line's late window
        ("int32", 0, 100, 1, 0.25),
        ("int16", 100, 0, 1, 0.25),
    ],
)
def test_a_late_answer_on_rtu_never_passes_for_another_registers_value(
    weight_type: str, weight_at: int, status_at: int, skip: int, late_s: float
) -> None:
    """RTU has no transaction id: the indicator, busy for a moment, answers one request after its
    timeout (and the ones queued behind it after that). No reading is ever built from an answer to
    another request: every weight reported is 12.345 kg, and the indicator is never DOWN."""

    async def scenario() -> None:
        noise = LineNoise(late_s=late_s)
        wmap = int_map(weight_type, weight_at, status_at)
        async with indicator_on("rtu", wmap, noise) as (_module, driver, states):
            await readings(driver)
            noise.then(*["ok"] * skip, "late", function=3)
            await eventually(lambda: noise.scripted == 0)
            requests = driver.bus.requests
            await eventually(lambda: driver.bus.requests >= requests + 20)  # the polls go on
            after = await driver.wait_stable(WAIT, since=time.monotonic())
            assert after is not None and after.kg == KG
            seen = await readings(driver)
            assert seen and {r.kg for r in seen} == {KG}, [(r.kg, r.stable) for r in seen]
            assert State.DOWN not in states, states
            assert driver.bus.resyncs >= 1  # the line was let go quiet before the next request

    run(scenario())


@pytest.mark.parametrize("kind", ["tcp", "rtu"])
def test_one_malformed_answer_is_asked_again_not_the_indicator_lost(kind: str) -> None:
    """One answer with a register too few (its byte count saying so): a counted fault, like a bad
    CRC, never DOWN at once and never a reading."""

    async def scenario() -> None:
        noise = LineNoise()
        async with indicator_on(kind, GENERIC_INT32, noise) as (_module, driver, states):
            await readings(driver)
            noise.then("malformed", function=3)
            await eventually(lambda: noise.scripted == 0)
            after = await driver.wait_stable(WAIT, since=time.monotonic())
            assert after is not None and after.kg == KG
            assert driver.bus.malformed == 1
            assert State.DEGRADED in states and State.DOWN not in states, states
            assert {r.kg for r in await readings(driver)} == {KG}

    run(scenario())


def test_an_indicator_that_refuses_the_span_is_read_apart(caplog: pytest.LogCaptureFixture) -> None:
    """Weight and status 20 registers apart are read in one request — unless the indicator refuses
    the registers in between (illegal address): then apart, with a warning, and still right."""

    async def scenario() -> None:
        wmap = int_map("int16", 20, 0)
        async with indicator_on("tcp", wmap, gaps_readable=False) as (module, driver, states):
            assert module.module.handled[3] >= 3  # status, weight, status again
            reading = await driver.wait_stable(WAIT, since=time.monotonic())
            assert reading is not None and reading.kg == KG
            assert State.DOWN not in states

    caplog.set_level("WARNING")
    run(scenario())
    assert "reading them apart" in caplog.text

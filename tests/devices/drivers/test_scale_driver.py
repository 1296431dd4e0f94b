"""ScaleDriver against the simulator over real ptys, for all three protocols, and once against a
hand-answered socat pair. No sleeps to wait for things and no duration asserts: the simulator
settles after counted readings, and health is awaited with generous upper bounds."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import ValidationError
from typer.testing import CliRunner

from devices.drivers.scale import ScaleCommandError, ScaleConfig, ScaleDriver
from devices.events import WeightReading
from devices.health import State
from firmware_sim.scale import ScaleSim, command

PROTOCOLS = ["mt-sics", "toledo-8217", "toledo-continuous"]
BOUND = 10.0  # generous upper bound for anything to happen; never a measured duration


def aio(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 30))

    return run


def fast_config(protocol: str, url: str, **overrides: Any) -> ScaleConfig:
    settings: dict[str, Any] = {
        "protocol": protocol,
        "url": url,
        "poll_interval_s": 0.01,
        "reply_timeout_s": 0.2,
        "backoff_max_s": 0.2,
    }
    return ScaleConfig(**(settings | overrides))


@contextlib.asynccontextmanager
async def running(
    protocol: str, tmp_path: Path, *, sim_args: dict[str, Any] | None = None, **config: Any
) -> AsyncIterator[tuple[ScaleSim, ScaleDriver]]:
    async with ScaleSim(protocol, link=tmp_path / "scale0", rate_hz=50, **(sim_args or {})) as sim:  # type: ignore[arg-type]
        driver = ScaleDriver("scale0", fast_config(protocol, sim.path, **config))
        task = asyncio.create_task(driver.run())
        try:
            await driver.supervisor.wait_for(State.UP, BOUND)
            yield sim, driver
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def next_reading(driver: ScaleDriver, accept: Callable[[WeightReading], bool]) -> WeightReading:
    async with asyncio.timeout(BOUND):
        while True:
            event = await driver.events.get()
            if isinstance(event, WeightReading) and accept(event):
                return event


async def drain(driver: ScaleDriver) -> None:
    while not driver.events.empty():
        await driver.events.get(BOUND)


# --- weighing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@aio
async def test_motion_then_stable(protocol: str, tmp_path: Path) -> None:
    async with running(protocol, tmp_path) as (sim, driver):
        await drain(driver)
        sim.set_load(Decimal("12.345"), settle_after=3)
        reading = await driver.wait_stable(BOUND)
        assert reading is not None
        assert reading.kg == Decimal("12.345") and isinstance(reading.kg, Decimal)
        assert reading.stable and not reading.overload and not reading.underload
        assert driver.latest is not None and driver.latest.stable
        seen = []
        while (event := await driver.events.get(BOUND)) != reading:
            seen.append(event)
        assert any(isinstance(e, WeightReading) and not e.stable for e in seen)  # motion came first


@pytest.mark.parametrize("protocol", PROTOCOLS)
@aio
async def test_wait_stable_gives_none_within_its_deadline_then_the_weight(
    protocol: str, tmp_path: Path
) -> None:
    async with running(protocol, tmp_path) as (sim, driver):
        sim.set_load(Decimal("5.5"), settle_after=None)  # in motion until settle()
        assert await driver.wait_stable(0.3) is None
        await next_reading(driver, lambda r: not r.stable)
        sim.settle()
        reading = await driver.wait_stable(BOUND)
        assert reading is not None and reading.kg == Decimal("5.5")


@pytest.mark.parametrize("protocol", PROTOCOLS)
@aio
async def test_overload_and_underload(protocol: str, tmp_path: Path) -> None:
    async with running(protocol, tmp_path, sim_args={"capacity_kg": Decimal(60)}) as (sim, driver):
        sim.set_load(Decimal(75), settle_after=0)
        over = await next_reading(driver, lambda r: r.overload)
        assert over.kg is None and not over.stable and not over.underload
        sim.set_load(Decimal(-5), settle_after=0)
        under = await next_reading(driver, lambda r: r.underload)
        assert under.kg is None and not under.stable and not under.overload
        assert await driver.wait_stable(0.2) is None
        sim.set_load(Decimal(1), settle_after=0)
        back = await driver.wait_stable(BOUND)
        assert back is not None and back.kg == 1


@pytest.mark.parametrize(
    ("protocol", "unit", "load", "kg"),
    [
        ("mt-sics", "g", "1.5", "1.500"),
        ("mt-sics", "lb", "0.45359237", "0.45359237"),  # 1.000 lb, exactly
        ("mt-sics", "oz", "0.45359237", "0.45359237"),  # 16.000 oz
        ("toledo-continuous", "lb", "0.45359237", "0.45359237"),
        ("toledo-8217", "lb", "0.45359237", "0.45359237"),  # the driver is told the unit
    ],
)
@aio
async def test_units_become_exact_kg(protocol: str, unit: str, load: str, kg: str, tmp_path: Path) -> None:
    config = {"unit": unit} if protocol == "toledo-8217" else {}
    async with running(protocol, tmp_path, sim_args={"unit": unit}, **config) as (sim, driver):
        sim.set_load(Decimal(load), settle_after=0)
        reading = await next_reading(driver, lambda r: r.stable and r.kg != 0)
        assert reading.kg == Decimal(kg)


# --- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["ES", "ET", "EL"])
@aio
async def test_error_replies_are_counted_and_degrade(code: str, tmp_path: Path) -> None:
    async with running("mt-sics", tmp_path) as (sim, driver):
        sim.fault = code  # type: ignore[assignment]
        health = await driver.supervisor.wait_for(State.DEGRADED, BOUND)
        assert health.reason == f"{code} reply"
        assert driver.counters[code] >= 1
        sim.fault = None
        await driver.supervisor.wait_for(State.UP, BOUND)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@aio
async def test_noise_degrades_without_losing_readings(protocol: str, tmp_path: Path) -> None:
    async with running(protocol, tmp_path) as (sim, driver):
        sim.fault = "noise"
        await driver.supervisor.wait_for(State.DEGRADED, BOUND)
        sim.set_load(Decimal(3), settle_after=1)
        reading = await driver.wait_stable(BOUND)
        assert reading is not None and reading.kg == 3
        assert driver.health.state == State.DEGRADED  # stays degraded while noisy: no flapping
        assert driver.counters["noise"] >= 1
        sim.fault = None
        await driver.supervisor.wait_for(State.UP, BOUND)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@aio
async def test_silence_is_down_then_recovers_by_itself(protocol: str, tmp_path: Path) -> None:
    # 8N1 here for the 8217: a Linux pty refuses a second 7-bit/parity open when the speed does not
    # change (termios EINVAL), and this test reopens the same pty. Real UARTs take 7E1 every time.
    config = {"bytesize": 8, "parity": "N"}
    async with running(protocol, tmp_path, **config) as (sim, driver):
        sim.fault = "silent"
        health = await driver.supervisor.wait_for(State.DOWN, BOUND)
        assert "silent" in health.reason
        assert driver.counters["no_reply"] >= driver.config.silent_after
        sim.fault = None
        await driver.supervisor.wait_for(State.UP, BOUND)
        sim.set_load(Decimal(2), settle_after=0)
        assert await driver.wait_stable(BOUND) is not None


@pytest.mark.parametrize("protocol", PROTOCOLS)
@aio
async def test_unplug_is_down_and_replug_is_up_by_itself(protocol: str, tmp_path: Path) -> None:
    async with running(protocol, tmp_path) as (sim, driver):
        sim.unplug()
        assert not os.path.exists(sim.path)  # the by-id link goes with the device
        await driver.supervisor.wait_for(State.DOWN, BOUND)
        with pytest.raises(ScaleCommandError, match="not connected"):
            await driver.zero()
        sim.replug()
        await driver.supervisor.wait_for(State.UP, BOUND)
        sim.set_load(Decimal("7.25"), settle_after=2)
        reading = await driver.wait_stable(BOUND)
        assert reading is not None and reading.kg == Decimal("7.25")


# --- commands -------------------------------------------------------------------------------------


@aio
async def test_mt_sics_tare_zero_and_refusals(tmp_path: Path) -> None:
    async with running("mt-sics", tmp_path) as (sim, driver):
        sim.set_load(Decimal("10.5"), settle_after=0)
        assert await driver.tare() == Decimal("10.500")
        net = await next_reading(driver, lambda r: r.net)
        assert net.kg == 0 and net.stable
        await driver.clear_tare()
        gross = await next_reading(driver, lambda r: not r.net and r.stable)
        assert gross.kg == Decimal("10.5")
        await driver.zero()
        assert (await next_reading(driver, lambda r: r.stable)).kg == 0

        sim.set_load(Decimal(20), settle_after=None)
        with pytest.raises(ScaleCommandError, match="busy or not stable"):
            await driver.tare()
        sim.set_load(Decimal(500), settle_after=0)
        with pytest.raises(ScaleCommandError, match="overload"):
            await driver.zero()
        sim.fault = "ES"
        with pytest.raises(ScaleCommandError, match="ES reply"):
            await driver.clear_tare()
        assert driver.counters["refused"] == 3


@aio
async def test_mt_sics_commands_never_pipeline_with_polls(tmp_path: Path) -> None:
    async with running("mt-sics", tmp_path, poll_interval_s=0.001) as (sim, driver):
        sim.set_load(Decimal(4), settle_after=0)
        results = await asyncio.gather(
            *(driver.tare() for _ in range(5)), *(driver.clear_tare() for _ in range(5))
        )
        assert results[:5] == [Decimal("4.000")] * 5
        assert driver.counters["noise"] == 0 and driver.counters["no_reply"] == 0
        assert {"T", "TAC", "SI"} <= set(sim.received)


@pytest.mark.parametrize("protocol", ["toledo-8217", "toledo-continuous"])
@aio
async def test_toledo_tare_and_zero_are_sent(protocol: str, tmp_path: Path) -> None:
    async with running(protocol, tmp_path) as (sim, driver):
        sim.set_load(Decimal(8), settle_after=0)
        await driver.wait_stable(BOUND)
        assert await driver.tare() is None  # Toledo indicators do not answer Z/T/C
        net = await next_reading(driver, lambda r: r.net and r.stable)
        assert net.kg == 0
        await driver.clear_tare()
        await driver.zero()
        zeroed = await next_reading(driver, lambda r: not r.net and r.stable and r.kg == 0)
        assert zeroed.kg == 0
        assert [c for c in sim.received if c != "W"][-3:] == ["T", "C", "Z"]


@aio
async def test_commands_need_a_connection(tmp_path: Path) -> None:
    driver = ScaleDriver("idle", fast_config("mt-sics", str(tmp_path / "nothing")))
    with pytest.raises(ScaleCommandError, match="not connected"):
        await driver.tare()


@aio
async def test_checksummed_continuous_stream(tmp_path: Path) -> None:
    async with running("toledo-continuous", tmp_path, sim_args={"checksum": True}, checksum=True) as (sim, d):
        sim.set_load(Decimal("1.5"), settle_after=2)
        reading = await d.wait_stable(BOUND)
        assert reading is not None and reading.kg == Decimal("1.5") and d.counters["checksum"] == 0


# --- an independent peer: socat, answered by hand -------------------------------------------------


@pytest.mark.skipif(shutil.which("socat") is None, reason="needs socat")
@aio
async def test_mt_sics_against_a_hand_answered_socat_pair(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    proc = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + BOUND
        while not (a.exists() and b.exists()):
            assert time.monotonic() < deadline, "socat did not create its links"
            await asyncio.sleep(0.01)
        peer = os.open(b, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        answers = iter([b"S D      3.100 kg\r\n", b"S S      3.105 kg\r\n"])
        asked: list[bytes] = []

        def answer() -> None:  # a person at a terminal: read a command, type a reply
            with contextlib.suppress(BlockingIOError):
                for line in os.read(peer, 256).split(b"\r\n")[:-1]:
                    asked.append(line)
                    if line == b"I4":  # the serial number: what the driver asks to find its place
                        os.write(peer, b'I4 A "B021234567"\r\n')
                    else:
                        os.write(peer, next(answers, b"S S      3.105 kg\r\n"))

        asyncio.get_running_loop().add_reader(peer, answer)
        driver = ScaleDriver("hand", fast_config("mt-sics", str(a)))
        task = asyncio.create_task(driver.run())
        try:
            reading = await driver.wait_stable(BOUND)
            assert reading is not None and reading.kg == Decimal("3.105") and reading.stable
            # a session starts by finding its place; each reading is proven by the I4 after it
            assert asked[:4] == [b"I4", b"SI", b"I4", b"SI"]
            assert driver.health.state == State.UP
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            asyncio.get_running_loop().remove_reader(peer)
            os.close(peer)
    finally:
        proc.terminate()
        proc.wait(BOUND)


# --- configuration, simulator bytes, CLI ----------------------------------------------------------


def test_config_defaults_follow_the_protocol() -> None:
    assert ScaleConfig(protocol="mt-sics", url="/dev/ttyUSB0").serial_settings() == {
        "baudrate": 9600,
        "bytesize": 8,
        "parity": "N",
        "stopbits": 1,
    }
    toledo = ScaleConfig(protocol="toledo-8217", url="socket://10.0.0.5:4001").serial_settings()
    assert (toledo["bytesize"], toledo["parity"]) == (7, "E")
    with pytest.raises(ValidationError):
        ScaleConfig(protocol="mt-sics", url="x", pool_interval_s=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        ScaleConfig(protocol="dibal", url="x")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ScaleConfig(protocol="mt-sics", url="x", reply_timeout_s=0)


def test_simulator_sends_the_documented_continuous_example() -> None:
    sim = ScaleSim("toledo-continuous", decimals=2)
    sim.set_load(Decimal("12.34"), settle_after=0)
    assert sim.continuous_frame() == b"\x02,0 001234000000\r"


def test_sim_command_is_typer_compatible() -> None:
    app = typer.Typer()
    app.command()(command)
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for option in ("--protocol", "--load", "--link"):
        assert option in result.output


@aio
async def test_a_late_reply_never_answers_the_next_request(tmp_path: Path) -> None:
    """PROTOCOLS.md: a reply that comes after its timeout must never answer the next command. The
    balance weighs parcel A, answers that request late; parcel B is on it by the next request."""
    async with running("mt-sics", tmp_path, reply_timeout_s=0.2, poll_interval_s=0.02) as (sim, driver):
        sim.set_load(Decimal("0.800"), settle_after=0)
        await next_reading(driver, lambda r: r.kg == Decimal("0.800"))
        asked = len(sim.received)
        sim.delay_next_reply_s = 0.35  # A's weight, weighed now, answered after the timeout
        async with asyncio.timeout(BOUND):
            while len(sim.received) <= asked:
                await asyncio.sleep(0.001)
        sim.set_load(Decimal("5.000"), settle_after=0)  # B from the next request on
        swapped = time.monotonic()
        seen: list[WeightReading] = []
        while sum(r.kg == Decimal("5.000") for r in seen) < 3:  # well past the late answer
            seen.append(await next_reading(driver, lambda r: r.stable))
        # a reading that says it was asked for after the swap is B's, never A's late answer
        assert [r.kg for r in seen if r.since is not None and r.since >= swapped] == [Decimal("5.000")] * 3
        assert driver.counters["late_reply"] == 1

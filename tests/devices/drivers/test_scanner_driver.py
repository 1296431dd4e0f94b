"""ScannerDriver against the simulator over a real pty and over socket:// TCP loopback, and against
socat as an independent peer written to with plain os.write. No sleeps to wait for things and no
duration asserts: events and health are awaited with generous upper bounds."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import ValidationError
from typer.testing import CliRunner

from devices.drivers.scanner import ScannerConfig, ScannerDriver, ScannerRead
from devices.events import BarcodeRead, DeviceEvent, NoRead
from devices.health import State
from devices.protocols.scanner import ScannerProtocolConfig
from firmware_sim.scanner import ScannerSim, command

BOUND = 5.0  # generous upper bound for anything to happen; never a measured duration
JD = "JD014600006123456789"
SSCC = "00376123450000000016"
CARRIERS = {"jd": r"JD\d{18}", "sscc": r"00\d{18}"}
TRANSPORTS = ["pty", "tcp"]


def aio(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 30))

    return run


def sim_args(transport: str, tmp_path: Path) -> dict[str, Any]:
    return {"link": tmp_path / "scanner0"} if transport == "pty" else {"tcp": 0}


@contextlib.asynccontextmanager
async def driving(url: str, **config: Any) -> AsyncIterator[ScannerDriver]:
    driver = ScannerDriver("scanner0", ScannerConfig(**({"url": url, "backoff_max_s": 0.2} | config)))
    task = asyncio.create_task(driver.run())
    try:
        yield driver
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def running(
    transport: str, tmp_path: Path, *, sim: dict[str, Any] | None = None, **config: Any
) -> AsyncIterator[tuple[ScannerSim, ScannerDriver]]:
    scanner = ScannerSim(**(sim_args(transport, tmp_path) | (sim or {})))
    async with scanner, driving(scanner.url, **config) as driver:  # the url once plugged in
        await driver.supervisor.wait_for(State.UP, BOUND)
        yield scanner, driver


async def next_event(driver: ScannerDriver) -> DeviceEvent:
    return await driver.events.get(BOUND)


async def next_read(driver: ScannerDriver) -> ScannerRead:
    event = await next_event(driver)
    assert isinstance(event, ScannerRead), event
    return event


# --- reads ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@aio
async def test_scans_become_reads_with_aim_symbology_and_carrier(transport: str, tmp_path: Path) -> None:
    async with running(transport, tmp_path, carriers=CARRIERS) as (sim, driver):
        before = time.monotonic()
        sim.scan(JD)
        read = await next_read(driver)
        assert before <= read.at <= time.monotonic()  # stamped when its last byte came in
        assert isinstance(read, BarcodeRead)
        assert (read.device, read.code, read.aim, read.symbology, read.carrier) == (
            "scanner0",
            JD,
            "]C0",
            "Code 128",
            "jd",
        )
        sim.scan(SSCC, aim="]C1", terminator=b"\r\n")
        sim.scan("4006381333931", aim="]E0", terminator=b"\n")
        sim.scan("SF1234567", aim="")
        reads = [await next_read(driver) for _ in range(3)]
        assert [(r.code, r.symbology, r.carrier) for r in reads] == [
            (SSCC, "GS1-128", "sscc"),
            ("4006381333931", "EAN-13", None),
            ("SF1234567", None, None),
        ]
        assert reads[0].at <= reads[1].at <= reads[2].at
        c = driver.counters
        assert (c["frames"], c["reads"], c["unmatched"], c["noise"]) == (4, 4, 2, 0)
        assert driver.health.state == State.UP


@pytest.mark.parametrize("transport", TRANSPORTS)
@aio
async def test_prefix_and_suffix_are_stripped(transport: str, tmp_path: Path) -> None:
    affixes = {"prefix": b"\x02", "suffix": b"\x03"}
    async with running(transport, tmp_path, sim=affixes, **affixes) as (sim, driver):
        sim.scan(JD)
        sim.noread()
        assert (await next_read(driver)).code == JD
        assert isinstance(await next_event(driver), NoRead)


@pytest.mark.parametrize("transport", TRANSPORTS)
@aio
async def test_split_frames_are_joined(transport: str, tmp_path: Path) -> None:
    # the partial timeout far above split_scan's gaps: a stalled CI machine must not split the frame
    async with running(transport, tmp_path, partial_timeout_s=BOUND) as (sim, driver):
        await sim.split_scan(JD, parts=5)
        await sim.split_scan("A1", parts=4, aim="]A0")
        reads = [await next_read(driver), await next_read(driver)]
        assert [(r.code, r.aim, r.terminated) for r in reads] == [(JD, "]C0", True), ("A1", "]A0", True)]
        assert driver.counters["partial"] == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
@aio
async def test_noread_is_reported(transport: str, tmp_path: Path) -> None:
    async with running(transport, tmp_path) as (sim, driver):
        before = time.monotonic()
        sim.noread()
        event = await next_event(driver)
        assert isinstance(event, NoRead) and event.device == "scanner0" and event.at >= before
        assert driver.counters["noreads"] == 1
        assert driver.health.state == State.UP


@pytest.mark.parametrize("transport", TRANSPORTS)
@aio
async def test_double_read_is_reported_once(transport: str, tmp_path: Path) -> None:
    async with running(transport, tmp_path, dedupe_window_s=60) as (sim, driver):
        sim.double_read(JD)
        sim.scan("OTHER1")
        sim.scan(JD)  # still within the window: the parcel has not left
        sim.noread()  # a marker: everything before it has been handled
        assert (await next_read(driver)).code == JD
        assert (await next_read(driver)).code == "OTHER1"
        assert isinstance(await next_event(driver), NoRead)
        c = driver.counters
        assert (c["frames"], c["duplicates"], c["reads"]) == (4, 2, 2)


@aio
async def test_dedupe_off_reports_every_read(tmp_path: Path) -> None:
    async with running("pty", tmp_path, dedupe_window_s=0) as (sim, driver):
        sim.double_read(JD)
        assert [(await next_read(driver)).code for _ in range(2)] == [JD, JD]


# --- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@aio
async def test_noise_degrades_and_clean_frames_bring_it_back(transport: str, tmp_path: Path) -> None:
    async with running(transport, tmp_path) as (sim, driver):
        sim.noise(24)
        health = await driver.supervisor.wait_for(State.DEGRADED, BOUND)
        assert health.reason == "noise on the line"
        sim.scan("AFTER1")
        assert (await next_read(driver)).code == "AFTER1"
        assert driver.health.state == State.DEGRADED  # the first frame after noise: not yet
        sim.scan("AFTER2")
        assert (await next_read(driver)).code == "AFTER2"
        # a clean frame-to-frame interval, and the quiet spell that ends DEGRADED's hysteresis
        assert (await driver.supervisor.wait_for(State.UP, BOUND)).state == State.UP
        assert driver.counters["noise"] == 1


@aio
async def test_noise_glued_to_a_frame_costs_that_frame_only(tmp_path: Path) -> None:
    async with running("pty", tmp_path) as (sim, driver):
        sim.noise(8, terminate=False)
        sim.scan("LOST1")
        sim.scan("KEPT1")
        assert (await next_read(driver)).code == "KEPT1"
        assert driver.counters["noise"] == 1 and driver.counters["frames"] == 1


@aio
async def test_over_long_lines_are_discarded_and_counted(tmp_path: Path) -> None:
    async with running("pty", tmp_path, max_length=32) as (sim, driver):
        sim.send(b"]C0" + b"9" * 500 + b"\r")
        sim.scan("SHORT1")
        assert (await next_read(driver)).code == "SHORT1"
        assert driver.counters["overlong"] == 1
        assert driver.health.state == State.DEGRADED and driver.health.reason == "over-long line"


@aio
async def test_partial_frame_is_flushed_after_the_timeout(tmp_path: Path) -> None:
    async with running("pty", tmp_path, partial_timeout_s=0.1) as (sim, driver):
        sim.send(b"]C0NOTERM1")  # a scanner set up without a terminator
        read = await next_read(driver)
        assert (read.code, read.terminated) == ("NOTERM1", False)
        sim.send(b"\r\n")  # a late terminator is an empty line, not a frame
        sim.scan("NEXT1")
        assert (await next_read(driver)).code == "NEXT1"
        assert driver.counters["partial"] == 1 and driver.counters["frames"] == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
@aio
async def test_unplug_is_down_and_replug_is_up_by_itself(transport: str, tmp_path: Path) -> None:
    async with running(transport, tmp_path) as (sim, driver):
        sim.send(b"]C0HALF")  # half a frame when the cable goes
        sim.unplug()
        health = await driver.supervisor.wait_for(State.DOWN, BOUND)
        assert health.reason
        if transport == "pty":
            assert not os.path.exists(sim.url)  # the by-id link goes with the device
        sim.replug()
        await driver.supervisor.wait_for(State.UP, BOUND)
        sim.scan("BACK1")
        read = await next_read(driver)
        assert read.code == "BACK1"  # not "HALFBACK1" or a half frame: the old line was forgotten
        assert driver.counters["disconnects"] >= 1 and driver.counters["frames"] == 1


@aio
async def test_a_scanner_that_is_not_there_yet_is_down_then_up_when_it_appears(tmp_path: Path) -> None:
    link = tmp_path / "scanner0"
    async with driving(str(link)) as driver:
        health = await driver.supervisor.wait_for(State.DOWN, BOUND)
        assert "cannot open" in health.reason
        async with ScannerSim(link=link) as sim:
            await driver.supervisor.wait_for(State.UP, BOUND)
            sim.scan(JD)
            assert (await next_read(driver)).code == JD


# --- an independent peer: socat, written to with os.write ------------------------------------------


@contextlib.asynccontextmanager
async def socat_pair(a: Path, b: Path) -> AsyncIterator[None]:
    """A named pty pair joined by socat; leaving the block ends socat, closing both (an unplug)."""
    proc = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(BOUND):
            while not (a.exists() and b.exists()):
                await asyncio.sleep(0.01)
        yield
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, BOUND)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


needs_socat = pytest.mark.skipif(shutil.which("socat") is None, reason="needs socat")


@needs_socat
@aio
async def test_against_socat_with_7_data_bits_space_parity_2_stop_bits(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    async with socat_pair(a, b):
        peer = os.open(b, os.O_RDWR | os.O_NOCTTY)
        try:
            config = {"bytesize": 7, "parity": "S", "stopbits": 2, "carriers": CARRIERS}
            async with driving(str(a), **config) as driver:
                await driver.supervisor.wait_for(State.UP, BOUND)
                write_all(peer, b"]C0JD014600006123456789\r")
                write_all(peer, b"\x00\x13\x11garbage\r\n")
                write_all(peer, b"]C1003761234500")
                write_all(peer, b"00000016\r\nNOREAD\r\n")
                read = await next_read(driver)
                assert (read.code, read.aim, read.carrier) == (JD, "]C0", "jd")
                read = await next_read(driver)
                assert (read.code, read.aim, read.carrier) == (SSCC, "]C1", "sscc")
                assert isinstance(await next_event(driver), NoRead)
                assert driver.counters["noise"] == 1
        finally:
            os.close(peer)


@needs_socat
@aio
async def test_socat_going_away_is_down_and_coming_back_is_up(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    async with driving(str(a)) as driver:
        async with socat_pair(a, b):
            await driver.supervisor.wait_for(State.UP, BOUND)
        await driver.supervisor.wait_for(State.DOWN, BOUND)  # socat exited: both ptys closed
        async with socat_pair(a, b):
            await driver.supervisor.wait_for(State.UP, BOUND)
            peer = os.open(b, os.O_RDWR | os.O_NOCTTY)
            try:
                write_all(peer, b"]C0AGAIN1\r\n")
                assert (await next_read(driver)).code == "AGAIN1"
            finally:
                os.close(peer)


# --- configuration, simulator bytes, CLI ----------------------------------------------------------


def test_config_defaults_and_flat_protocol_fields() -> None:
    config = ScannerConfig(url="/dev/ttyUSB0")
    assert config.serial_settings() == {"baudrate": 9600, "bytesize": 8, "parity": "N", "stopbits": 1}
    assert isinstance(config, ScannerProtocolConfig)
    old = ScannerConfig(url="socket://10.0.0.5:4001", bytesize=7, parity="S", stopbits=2, prefix=b"\x02")
    assert old.serial_settings() == {"baudrate": 9600, "bytesize": 7, "parity": "S", "stopbits": 2}
    assert old.prefix == b"\x02" and old.dedupe_window_s == 1.0 and old.backoff_max_s <= 1.0
    for bad in (
        {"bytesize": 6},
        {"parity": "X"},
        {"stopbits": 3},
        {"dedupe_window_s": -1},
        {"baudrate": 0},
        {"buadrate": 9600},
        {"suffix": b"\r"},
    ):
        with pytest.raises(ValidationError):
            ScannerConfig(url="x", **bad)
    with pytest.raises(ValidationError):
        ScannerConfig()  # type: ignore[call-arg]


def test_simulator_sends_the_documented_bytes() -> None:
    sim = ScannerSim()
    assert sim.frame(JD) == b"]C0JD014600006123456789\r"
    assert sim.frame(SSCC, aim="]C1") == b"]C100376123450000000016\r"
    assert sim.frame("X1", aim="", prefix=b"\x02", terminator=b"\r\n") == b"\x02X1\r\n"
    with pytest.raises(ValueError):
        ScannerSim(link="x", tcp=0)


def test_sim_command_is_typer_compatible(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(command)
    runner = CliRunner()
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for option in ("--tcp", "--link", "--codes", "--every", "--count", "--aim", "--terminator"):
        assert option in result.output
    codes = tmp_path / "codes.txt"
    codes.write_text("JD014600006123456789\n\nSF1\n")
    result = runner.invoke(app, ["--tcp", "0", "--codes", str(codes), "--every", "0.01", "--count", "3"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("socket://127.0.0.1:")
    result = runner.invoke(app, ["--link", str(tmp_path / "s0"), "--every", "0.01", "--count", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(tmp_path / "s0")


# --- a session starts clean -----------------------------------------------------------------------


@aio
async def test_frames_sent_before_the_session_are_never_read_as_new(tmp_path: Path) -> None:
    """A frame still in the serial line when the driver (re)opens it was scanned before: read now, it
    would be stamped now and given to whatever parcel is in front of the scanner; and a frame whose
    first bytes went before the port opened must not be read as a shorter code. A scanner sends
    frames byte by byte (as at 9600 baud) all through the open: every read reported is a whole
    frame whose first byte was sent after the port opened."""
    codes = [f"JD0146000061234500{i:02d}" for i in range(40)]
    started: dict[str, float] = {}
    async with ScannerSim(link=tmp_path / "scanner0") as scanner:

        async def stream() -> None:
            for code in codes:
                started[code] = time.monotonic()
                for byte in scanner.frame(code):
                    scanner.send(bytes([byte]))
                    await asyncio.sleep(0.002)

        sending = asyncio.create_task(stream())
        await asyncio.sleep(0.15)  # a few frames into the line before anyone reads it
        opened = time.monotonic()
        reads: list[ScannerRead] = []
        async with driving(scanner.url) as driver:
            await driver.supervisor.wait_for(State.UP, BOUND)
            await sending
            with contextlib.suppress(TimeoutError):
                while True:
                    reads.append(
                        await next_read(driver)
                        if not driver.events.empty()
                        else await asyncio.wait_for(next_read(driver), 0.5)
                    )
    assert reads, "nothing read after the settle"
    for read in reads:
        assert read.code in codes, read.code  # never a fragment
        assert started[read.code] >= opened, read.code  # never a frame begun before the open
    assert driver.counters["stale_bytes"] > 0

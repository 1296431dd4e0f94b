"""IdReaderDriver against the reader simulator over a real pty (and once over socket:// TCP): reads,
a tag held in the field, STX/ETX frames with a check byte, noise, a read cut off, stale bytes at
the start of a session, and the reader unplugged and plugged back. Events and health are awaited
with generous upper bounds; no test asserts a duration."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from devices.drivers.id_reader import IdReaderConfig, IdReaderDriver
from devices.events import DeviceEvent, IdRead
from devices.health import State
from devices.ports import Driver
from firmware_sim.id_reader import IdReaderSim
from testkit.waiting import eventually, states_of

BOUND = 5.0  # an upper bound for anything to happen; never a measured duration
EPC = "E2801160600002046F3B2F41"
UID = "3A5F0C21"


def aio(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 30))

    return run


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, *, sim: dict[str, Any] | None = None, **config: Any
) -> AsyncIterator[tuple[IdReaderSim, IdReaderDriver]]:
    reader = IdReaderSim(**({"link": tmp_path / "eplate0"} | (sim or {})))
    async with reader:
        settings = {"url": reader.url, "backoff_max_s": 0.2} | config
        async with IdReaderDriver("eplate0", IdReaderConfig(**settings)) as driver:
            await driver.supervisor.wait_for(State.UP, BOUND)
            yield reader, driver


async def next_event(driver: IdReaderDriver) -> DeviceEvent:
    return await driver.events.get(BOUND)


async def next_id(driver: IdReaderDriver) -> str:
    event = await next_event(driver)
    assert isinstance(event, IdRead) and event.device == "eplate0", event
    return event.id


@aio
async def test_reads_become_id_events_stamped_when_their_last_byte_came(tmp_path: Path) -> None:
    async with running(tmp_path) as (sim, driver):
        assert isinstance(driver, Driver)
        before = time.monotonic()
        sim.present(EPC)
        event = await next_event(driver)
        assert isinstance(event, IdRead) and event.id == EPC
        assert before <= event.at <= time.monotonic()
        sim.present("3a5f0c21")  # readers differ in case: one id
        sim.send(b"E2 80 11 60\r\n")  # separators not configured: noise, not an id
        assert await next_id(driver) == UID
        c = driver.counters
        assert (c["frames"], c["reads"], c["duplicates"]) == (2, 2, 0)
        await eventually(lambda: driver.counters["noise"] == 1, BOUND)


@aio
async def test_a_tag_in_the_field_is_one_read_until_it_has_been_gone_a_window(tmp_path: Path) -> None:
    async with running(tmp_path, dedupe_window_s=60) as (sim, driver):
        sim.present(EPC, times=5)  # a UHF reader repeats a tag while the truck stands
        sim.present(UID)
        sim.present(EPC)
        assert [await next_id(driver), await next_id(driver)] == [EPC, UID]
        await eventually(lambda: driver.counters["frames"] == 7, BOUND)
        assert driver.counters["duplicates"] == 5 and driver.events.empty()
    async with running(tmp_path, dedupe_window_s=0) as (sim, driver):
        sim.present(EPC, times=2)
        assert [await next_id(driver), await next_id(driver)] == [EPC, EPC]


@pytest.mark.parametrize("transport", ["pty", "tcp"])
@aio
async def test_stx_etx_frames_with_a_check_byte(transport: str, tmp_path: Path) -> None:
    sim_args: dict[str, Any] = {"framing": "stx-etx", "terminator": b"", "lrc": True}
    if transport == "tcp":
        sim_args |= {"link": None, "tcp": 0}
    async with running(tmp_path, sim=sim_args, framing="stx-etx", lrc=True, lengths=(8,)) as (sim, driver):
        sim.present(UID)
        sim.send(b"\x02" + b"3A5F0C22" + b"\x03\x00")  # a corrupted check byte: never an id
        sim.present("3A5F0C23")
        assert [await next_id(driver), await next_id(driver)] == [UID, "3A5F0C23"]
        assert driver.counters["bad_lrc"] == 1
        assert (await driver.supervisor.wait_for(State.DEGRADED, BOUND)).reason == "noise on the line"


@aio
async def test_noise_degrades_and_reads_go_on(tmp_path: Path) -> None:
    async with running(tmp_path) as (sim, driver):
        sim.noise(24)
        health = await driver.supervisor.wait_for(State.DEGRADED, BOUND)
        assert health.reason == "noise on the line"
        sim.noise(8, terminate=False)  # glued to the next read: costs that read only
        sim.present(UID)
        sim.present(EPC)
        assert await next_id(driver) == EPC
        c = driver.counters
        assert (c["noise"], c["reads"]) == (2, 1)


@aio
async def test_a_read_cut_off_is_never_an_id(tmp_path: Path) -> None:
    async with running(tmp_path, partial_timeout_s=0.05) as (sim, driver):
        sim.cut(EPC, keep=12)  # "E2801160600" + "0": a valid-looking hex id, unterminated
        await eventually(lambda: driver.counters["partial"] == 1, BOUND)
        sim.present(UID)
        assert await next_id(driver) == UID
        assert driver.counters["frames"] == 1


@aio
async def test_unplugged_reader_is_down_and_back_by_itself(tmp_path: Path) -> None:
    async with running(tmp_path) as (sim, driver):
        seen = states_of(driver)
        sim.cut(EPC)  # half a read on the wire as the cable comes out
        sim.unplug()
        health = await driver.supervisor.wait_for(State.DOWN, BOUND)
        assert health.reason
        sim.present("DEADBEEF")  # presented while unplugged: lost, as on a real reader
        sim.replug()
        await driver.supervisor.wait_for(State.UP, BOUND)
        sim.present(UID)
        assert await next_id(driver) == UID  # not the half read, not the lost one
        assert driver.counters["disconnects"] >= 1 and driver.counters["frames"] == 1
        assert seen[:1] == [State.DOWN] and seen[-1] == State.UP


@aio
async def test_a_read_begun_before_the_session_is_never_taken_in_part(tmp_path: Path) -> None:
    """The agent (re)opens the port while the reader is sending: the part of a read that arrives
    after the open is a valid-looking hex id of its own (no `lengths` configured here), and would be
    another card's. Reads are sent byte by byte, as at 9600 baud, all through the open: every id
    reported is a whole one whose first byte was sent after the port opened."""
    ids = [f"E280116060000204{i:08X}" for i in range(40)]
    started: dict[str, float] = {}
    async with IdReaderSim(link=tmp_path / "card0") as sim:

        async def stream() -> None:
            for id_ in ids:
                started[id_] = time.monotonic()
                for byte in sim.frame(id_):
                    sim.send(bytes([byte]))
                    await asyncio.sleep(0.001)

        sending = asyncio.create_task(stream())
        await asyncio.sleep(0.08)  # a few reads into the line before anyone reads it
        opened = time.monotonic()
        reads: list[IdRead] = []
        async with IdReaderDriver("card0", IdReaderConfig(url=sim.url, dedupe_window_s=0)) as driver:
            await driver.supervisor.wait_for(State.UP, BOUND)
            await sending
            await eventually(lambda: driver.parser.deadline is None, BOUND)  # the last read is in
            while not driver.events.empty():
                event = await driver.events.get(BOUND)
                assert isinstance(event, IdRead)
                reads.append(event)
    assert reads, "nothing read after the settle"
    for read in reads:
        assert read.id in ids, read.id  # never a fragment
        assert started[read.id] >= opened, read.id  # never a read begun before the open
    assert driver.counters["stale_bytes"] > 0

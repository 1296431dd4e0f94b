"""SerialPort over a real pty: a short write goes straight into the kernel buffer from the event loop,
a write larger than that buffer finishes in a worker thread, and either way every byte arrives once and
in order. An unplugged device is a DeviceError, on read and on write."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from devices.health import DeviceError
from devices.transports.serial_port import SerialPort
from firmware_sim.pty_pair import PtyPair


async def _read_master(master: int, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        try:
            got += os.read(master, 65536)
        except BlockingIOError:
            await asyncio.sleep(0.001)
    return bytes(got)


def test_short_and_oversized_writes_arrive_whole_and_in_order() -> None:
    async def scenario() -> None:
        pair = PtyPair.open()
        os.set_blocking(pair.master, False)
        try:
            async with SerialPort(pair.path) as port:
                assert port._fd is not None  # the pty was opened non-blocking: the direct path is taken
                await port.write(b"SI\r\n")
                assert await _read_master(pair.master, 4) == b"SI\r\n"
                big = bytes(range(256)) * 1024  # 256 KiB: far more than a pty's buffer
                writing = asyncio.create_task(port.write(big))
                await asyncio.sleep(0)  # the big write is under way, its remainder in the thread
                after = asyncio.create_task(port.write(b"SI\r\n"))  # must not overtake it
                assert await _read_master(pair.master, len(big) + 4) == big + b"SI\r\n"
                await asyncio.gather(writing, after)
                pair.write(b"S S      0.800 kg\r\n")
                got = b""
                while not got.endswith(b"\n"):
                    got += await port.read(5)  # chunks, as the bytes come
                assert got == b"S S      0.800 kg\r\n"
        finally:
            pair.close()

    asyncio.run(scenario())


def test_a_cancelled_write_still_goes_out_whole_before_the_next() -> None:
    """A caller cancelled while its large write is in the thread (a timeout, a stopping session) does
    not let the next command overtake the bytes still going out."""

    async def scenario() -> None:
        pair = PtyPair.open()
        os.set_blocking(pair.master, False)
        try:
            async with SerialPort(pair.path) as port:
                first = b"A" * 100_000
                writing = asyncio.create_task(port.write(first))
                await asyncio.sleep(0.05)  # part in the kernel's buffer, the rest waiting in the thread
                writing.cancel()
                await asyncio.gather(writing, return_exceptions=True)
                reading = asyncio.create_task(_read_master(pair.master, len(first) + 4))
                await port.write(b"BBBB")
                assert await reading == first + b"BBBB"
        finally:
            pair.close()

    asyncio.run(scenario())


def test_unplugged_port_fails_reads_and_writes_with_device_error() -> None:
    async def scenario() -> None:
        pair = PtyPair.open()
        async with SerialPort(pair.path) as port:
            pair.close()
            with pytest.raises(DeviceError):
                await port.read(5)
        with pytest.raises(DeviceError, match="not open"):
            await port.write(b"SI\r\n")

    asyncio.run(scenario())


def test_read_pending_takes_what_came_without_waiting_and_leaves_a_loss_for_the_next_read() -> None:
    """What a polled driver reads before its next request: every byte queued so far, at once (b""
    when none); an unplugged device behind those bytes still fails the next read."""

    async def scenario() -> None:
        pair = PtyPair.open()
        async with SerialPort(pair.path) as port:
            assert port.read_pending() == b""
            pair.write(b"S S      5.000 kg\r\n")
            async with asyncio.timeout(5):  # the loop has read it into the port's queue
                while port._queue.empty():
                    await asyncio.sleep(0.001)
            got = port.read_pending()
            while not got.endswith(b"\n"):  # a pty may hand it over in more than one chunk
                got += await port.read(5)
            assert got == b"S S      5.000 kg\r\n"
            assert port.read_pending() == b""
            pair.close()
            async with asyncio.timeout(5):
                while port._queue.empty():
                    await asyncio.sleep(0.001)
            assert port.read_pending() == b""
            with pytest.raises(DeviceError):
                await port.read(5)

    asyncio.run(scenario())


# --- a port that cannot be opened or configured is named, with what failed -------------------------


def test_a_port_that_cannot_be_configured_is_named() -> None:
    """A Linux pty refuses a second 7E1 configuration: pyserial's tcsetattr raises termios.error
    (EINVAL), which pyserial does not wrap. The error names the port, what failed and what was
    asked, as a DeviceError (the supervisor's reason)."""

    async def scenario() -> None:
        pair = PtyPair.open()
        try:
            async with SerialPort(pair.path, bytesize=7, parity="E"):
                pass
            with pytest.raises(DeviceError, match=rf"^cannot configure {pair.path}: .*Invalid argument.*7E1"):
                await SerialPort(pair.path, bytesize=7, parity="E").open()
        finally:
            pair.close()

    asyncio.run(scenario())


def test_a_baud_rate_the_port_cannot_take_is_named() -> None:
    async def scenario() -> None:
        pair = PtyPair.open()
        try:
            with pytest.raises(DeviceError, match=rf"^cannot configure {pair.path}: .*2147483648 baud"):
                await SerialPort(pair.path, baudrate=2**31).open()  # pyserial: OverflowError
        finally:
            pair.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", ["regular file", "fifo", "directory"])
def test_a_path_that_is_not_a_serial_port_is_named(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "scale0"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"")
    with pytest.raises(DeviceError, match=rf"^cannot (open|configure) {path}: not a serial port \({kind}\)"):
        asyncio.run(SerialPort(str(path)).open())


def test_a_missing_device_is_named(tmp_path: Path) -> None:
    path = tmp_path / "ttyUSB9"
    with pytest.raises(DeviceError, match=rf"^cannot open {path}: .*No such file"):
        asyncio.run(SerialPort(str(path)).open())

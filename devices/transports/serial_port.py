"""A serial port for asyncio.

Takes a device path (`/dev/ttyUSB0`, a pty) or any pyserial URL (`socket://host:port`,
`rfc2217://…`); pyserial opens and configures it. A local port (pyserial opens it O_NONBLOCK) is then
read by the event loop itself, as pyserial-asyncio does: the loop watches the file descriptor and reads
what has arrived, with no thread and no GIL hand-over per chunk. Any other kind of port is read by one
worker thread, `in_waiting or 1` bytes at a time with a short timeout, never line by line (pyserial's
readline reads one byte at a time). A lost device (USB unplugged, pty closed, socket dropped)
surfaces as `DeviceError` from `read()`. This module is a pipe only: no framing.

A port that cannot be opened or configured is a `DeviceError` naming the port and what failed —
whatever pyserial raised (it lets termios.error from tcsetattr, and OverflowError for a baud rate
the kernel cannot take, through unwrapped), and "not a serial port (regular file)" when the path is
not a character device, which is what pyserial's "Inappropriate ioctl" means.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import stat
import termios
import threading
from typing import Annotated, Final, Literal, TypedDict

import serial
from pydantic import AfterValidator

from devices.health import DeviceError

Parity = Literal["N", "E", "O", "S", "M"]
STOP_BITS: Final = (1, 1.5, 2)  # pyserial's values


def _stop_bits(value: float) -> float:
    if value not in STOP_BITS:
        raise ValueError(f"stop bits must be 1, 1.5 or 2, not {value:g}")
    return value


StopBits = Annotated[float, AfterValidator(_stop_bits)]
"""A configured number of stop bits: a float (1.5 is one), validated to be 1, 1.5 or 2."""


class SerialSettings(TypedDict):
    """What a device's configuration asks of its port: `SerialPort(url, **settings)`."""

    baudrate: int
    bytesize: int
    parity: Parity
    stopbits: float


def _nonblocking_fd(port: serial.SerialBase) -> int | None:
    """The file descriptor of a local port that pyserial opened O_NONBLOCK, else None."""
    fd = getattr(port, "fd", None)
    if not isinstance(fd, int):
        return None
    try:
        return fd if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK else None
    except OSError:
        return None


_NOT_CHARACTER_DEVICES = (
    (stat.S_ISREG, "regular file"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISDIR, "directory"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISBLK, "block device"),
)


def _not_a_serial_port(url: str, exc: BaseException) -> str | None:
    """What `url` is instead, if it is a local path to something that cannot be a serial port."""
    if "://" in url:
        return None
    try:
        mode = os.stat(url).st_mode
    except OSError:
        return None
    for test, kind in _NOT_CHARACTER_DEVICES:
        if test(mode):
            return kind
    text = str(exc)
    if "Inappropriate ioctl" in text or "(25," in text:  # ENOTTY: a character device, not a tty
        return "not a tty"
    return None


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _write_all(port: serial.SerialBase, data: bytes) -> None:
    port.write(data)
    port.flush()


class SerialPort:
    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 9600,
        bytesize: int = 8,
        parity: Parity = "N",
        stopbits: float = 1,
        read_timeout: float = 0.05,
    ) -> None:
        self.url = url
        self._settings = {"baudrate": baudrate, "bytesize": bytesize, "parity": parity, "stopbits": stopbits}
        self._read_timeout = read_timeout
        self._port: serial.SerialBase | None = None
        self._queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._fd: int | None = None  # a local port's fd, if non-blocking: read by the loop, written directly
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writing = asyncio.Lock()
        self._tail: asyncio.Future[None] | None = None  # the last write handed to a thread

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._port = await asyncio.to_thread(
                serial.serial_for_url, self.url, timeout=self._read_timeout, **self._settings
            )
        except Exception as exc:  # termios.error and OverflowError too: pyserial lets them through
            raise DeviceError(self._cannot(exc)) from exc
        self._fd = _nonblocking_fd(self._port)
        if self._fd is not None:
            self._loop = loop
            loop.add_reader(self._fd, self._on_readable, self._fd)
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._reader, args=(loop,), name=f"serial:{self.url}", daemon=True
        )
        self._thread.start()

    def _cannot(self, exc: Exception) -> str:
        """Why the port did not open: the port, what failed, and what was asked of it."""
        kind = _not_a_serial_port(self.url, exc)
        opened = not (isinstance(exc, serial.SerialException) and "could not open port" in str(exc))
        verb = "configure" if opened else "open"
        if kind is not None:
            return f"cannot {verb} {self.url}: not a serial port ({kind}): {exc}"
        if not opened:
            return f"cannot open {self.url}: {exc}"
        what = str(exc) or type(exc).__name__
        if isinstance(exc, OverflowError | TypeError):
            what = f"{type(exc).__name__}: {what}"
        settings = self._settings
        framing = f"{settings['bytesize']}{settings['parity']}{settings['stopbits']:g}"
        return f"cannot configure {self.url}: {what} (asked {framing} at {settings['baudrate']} baud)"

    def _on_readable(self, fd: int) -> None:
        """The loop saw the local port readable: take what is there (a chunk, never a line)."""
        try:
            chunk = os.read(fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # EIO: the device (or the pty's other side) is gone
            self._lost(fd, str(exc))
            return
        if not chunk:  # readable with nothing to read: what pyserial calls a disconnected device
            self._lost(fd, "device disconnected (end of file)")
            return
        self._queue.put_nowait(chunk)

    def _lost(self, fd: int, why: str) -> None:
        if self._loop is not None:
            self._loop.remove_reader(fd)
        self._queue.put_nowait(DeviceError(f"{self.url}: {why}"))

    def _reader(self, loop: asyncio.AbstractEventLoop) -> None:
        port = self._port
        assert port is not None
        while not self._stop.is_set():
            try:
                chunk = port.read(port.in_waiting or 1)
            except (serial.SerialException, OSError, termios.error, TypeError, AttributeError) as exc:
                # TypeError/AttributeError: pyserial's fd went away under a concurrent close
                if not self._stop.is_set():
                    loop.call_soon_threadsafe(self._queue.put_nowait, DeviceError(f"{self.url}: {exc}"))
                return
            if chunk:
                loop.call_soon_threadsafe(self._queue.put_nowait, chunk)

    async def read(self, timeout: float | None = None) -> bytes:
        """The next chunk of bytes; b"" if `timeout` passes first; DeviceError when the port is lost."""
        try:
            async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can swallow a cancel
                item = await self._queue.get()
        except TimeoutError:
            return b""
        if isinstance(item, BaseException):
            raise item
        return item

    async def write(self, data: bytes) -> None:
        """Queue `data` for sending. On a local port (a tty or pty, opened non-blocking by pyserial) a
        short command goes straight into the kernel's output buffer from the event loop; only what does
        not fit, and every other kind of port (socket://, rfc2217://), takes a worker thread. A scale
        polled 50 times a second thus costs no thread hop per poll."""
        if self._port is None:
            raise DeviceError(f"{self.url}: not open")
        async with self._writing:  # one write at a time: a remainder in the thread keeps its place
            tail = self._tail
            if tail is not None and not tail.done():  # even if the write it belongs to was cancelled
                await asyncio.wait({tail})
            if self._fd is not None:
                try:
                    sent = os.write(self._fd, data)
                except BlockingIOError:
                    sent = 0
                except OSError as exc:
                    raise DeviceError(f"{self.url}: write failed: {exc}") from exc
                data = data[sent:]
                if not data:
                    return
            port = self._port
            if port is None:
                raise DeviceError(f"{self.url}: closed")
            self._tail = tail = asyncio.ensure_future(asyncio.to_thread(_write_all, port, data))
            tail.add_done_callback(_retrieved)  # a write whose caller was cancelled may still fail
            try:
                await asyncio.shield(tail)  # a cancelled caller leaves the bytes going out, in order
            except (serial.SerialException, OSError, termios.error, TypeError, AttributeError) as exc:
                # termios.error: flush() is tcdrain, which pyserial does not wrap either
                # TypeError/AttributeError: pyserial's fd went away under a concurrent close
                raise DeviceError(f"{self.url}: write failed: {exc}") from exc

    def read_pending(self) -> bytes:
        """Bytes received and not read yet, without waiting (b"" if none): for a polled device, what
        arrived while no request was outstanding. A lost port's error stays queued for the next read."""
        chunks: list[bytes] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, BaseException):
                self._queue.put_nowait(item)  # everything before it has been taken: it is first again
                break
            chunks.append(item)
        return b"".join(chunks)

    def drain_pending(self) -> None:
        """Forget bytes already received (before a request whose reply must not mix with old data)."""
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, BaseException):
                self._queue.put_nowait(item)
                return

    async def close(self) -> None:
        self._stop.set()
        if self._fd is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        port, self._port, self._fd, self._loop = self._port, None, None, None
        tail, self._tail = self._tail, None
        if port is not None and tail is not None and not tail.done():
            with contextlib.suppress(Exception):
                port.cancel_write()  # pyserial's abort for a write blocked on a device that reads nothing
            await asyncio.wait({tail}, timeout=2.0)  # the fd must not close under the writing thread
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 1.0)
            self._thread = None
        if port is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(port.close)

    async def __aenter__(self) -> SerialPort:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

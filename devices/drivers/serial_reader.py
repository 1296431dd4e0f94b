"""A serial line reader's session: what the barcode scanner's and the id readers' drivers share.

Both are readers that speak only when something is read: a line (or frame) per read, parsed by a
sans-I/O parser that takes time as an argument (`scanner.ScannerParser`, `id_reader.IdReaderParser`).
This module is the part around the parser — port, settle, reconnect, health — and a subclass says
what a parsed event becomes (`_handle`).

Health, and why UP does not wait for a read: a reader is silent until something is presented, so
the only proof of life between reads is an open port. UP when the port opens (for `socket://`,
when the TCP connection to the serial server is made); DOWN when it cannot be opened or a read
fails (USB unplugged, pty closed, socket dropped); the supervisor then retries with backoff capped
at `backoff_max_s` (1 s), so a device that returns is UP again within about a second, by itself.
Noise or an over-long line means the line is bad (wrong baud rate or framing, a loose connector):
DEGRADED, logged once by the supervisor; a read with no noise since the read before it brings it
back to UP (the first read after a burst does not: on a line that is noisy all the time that would
flap UP/DEGRADED once per read, logging each time). Nothing here blocks the event loop: a local
port is read by the loop itself, another kind by its own thread, and the only wait is for bytes or
for the parser's partial deadline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import ClassVar, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from devices.events import EventStream
from devices.health import Health, SupervisedDriver, Supervisor
from devices.protocols.scanner import Deduper, Discarded
from devices.transports.serial_port import Parity, SerialPort, SerialSettings, StopBits

log = logging.getLogger(__name__)

E = TypeVar("E")
E_co = TypeVar("E_co", covariant=True)


class LineParser(Protocol[E_co]):
    """The sans-I/O parser a reader's session feeds (time passed in, events out)."""

    @property
    def deadline(self) -> float | None: ...

    def receive_data(self, data: bytes, now: float) -> None: ...

    def tick(self, now: float) -> None: ...

    def skip_to_terminator(self, now: float) -> None: ...

    def reset(self) -> None: ...

    def events(self) -> Iterator[E_co]: ...


class SerialReaderConfig(BaseModel):
    """Where a reader is and how to talk to it; a reader's config adds its protocol's fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(description="device path (/dev/ttyUSB0, a by-id link) or pyserial URL (socket://h:p)")
    baudrate: int = Field(9600, gt=0)
    bytesize: Literal[7, 8] = Field(8, description="older devices default to 7 data bits")
    parity: Parity = Field("N", description="N, E, O, S (space: older devices with 7 bits) or M")
    stopbits: StopBits = 1
    dedupe_window_s: float = Field(
        1.0, ge=0, description="the same read again within this long of its last sighting is one read"
    )
    backoff_max_s: float = Field(1.0, gt=0, description="longest wait between reconnect attempts")
    settle_s: float = Field(
        0.05,
        ge=0,
        le=5,
        description="after the port opens, bytes arriving this soon were sent before it: dropped",
    )

    def serial_settings(self) -> SerialSettings:
        return {
            "baudrate": self.baudrate,
            "bytesize": self.bytesize,
            "parity": self.parity,
            "stopbits": self.stopbits,
        }


class SerialReaderDriver(SupervisedDriver, Generic[E]):
    """One reader. Read `driver.events`, `driver.health` (or `driver.supervisor`), the counters.
    A subclass sets `kind` (log lines say "scanner connected") and turns parser events into device
    events in `_handle`, calling `_discarded` for a Discarded and `_read` for anything read."""

    kind: ClassVar[str] = "reader"

    def __init__(
        self, name: str, config: SerialReaderConfig, parser: LineParser[E], *, events: EventStream | None
    ) -> None:
        self.name = name
        self.config = config
        self.events = events if events is not None else EventStream()
        self.parser = parser
        self.deduper = Deduper(config.dedupe_window_s)
        self.supervisor = Supervisor(name, self._session, backoff_max=config.backoff_max_s)
        self.disconnects = 0  # sessions lost after the port had opened
        self.stale_bytes = 0  # bytes dropped at the start of a session: sent before it
        self._dirty: str | None = None  # noise seen since the last read
        self._extra = {"device": name, "url": config.url}

    @property
    def health(self) -> Health:
        return self.supervisor.health

    async def run(self) -> None:
        """Forever: open, read, reconnect (the supervisor's loop). Cancel the task to stop."""
        await self.supervisor.run()

    def _handle(self, event: E) -> None:
        raise NotImplementedError

    # --- the session ----------------------------------------------------------------------------
    async def _session(self, supervisor: Supervisor) -> None:
        port = SerialPort(self.config.url, **self.config.serial_settings())
        await port.open()  # DeviceError if absent: the supervisor marks DOWN and retries
        parser = self.parser
        parser.reset()  # half a frame from the last connection must not join the next one
        self._dirty = None
        await self._settle(port)
        log.info(f"{self.kind} connected", extra=self._extra)
        supervisor.seen()  # an open port is the only proof of life a silent reader gives
        try:
            while True:
                deadline = parser.deadline
                timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
                data = await port.read(timeout)
                now = time.monotonic()
                if data:
                    parser.receive_data(data, now)
                parser.tick(now)
                for event in parser.events():
                    self._handle(event)
        except Exception:  # the port was lost (not a cancellation): counted, then DOWN
            self.disconnects += 1
            raise
        finally:
            await port.close()

    async def _settle(self, port: SerialPort) -> None:
        """Nothing the reader sent before this session may be read as a new read: a frame still in
        the OS's buffer (the agent restarted, the cable was replugged) would be stamped now and
        placed in a parcel's or a vehicle's window. What is buffered arrives at once: drop
        everything that arrives within `settle_s`, and if that ended mid-line, skip to the line's end
        (read rather than flushed, so that a line cut in half is known to be one)."""
        port.drain_pending()
        until = time.monotonic() + self.config.settle_s
        mid_line = False
        while (remaining := until - time.monotonic()) > 0:
            data = await port.read(remaining)
            if data:
                self.stale_bytes += len(data)
                mid_line = data[-1:] not in (b"\r", b"\n")
        if mid_line:
            self.parser.skip_to_terminator(time.monotonic())

    # --- health from what was parsed ------------------------------------------------------------
    def _discarded(self, event: Discarded) -> None:
        reason = "noise on the line" if event.reason == "noise" else "over-long line"
        log.debug(
            f"{self.kind} discarded a line",
            extra={**self._extra, "reason": event.reason, "detail": event.detail, "data": repr(event.data)},
        )
        self._dirty = reason
        self.supervisor.fault(reason)

    def _read(self) -> None:
        """Something was read: UP if none of the line's noise came since the previous read."""
        if self._dirty is None:
            self.supervisor.seen()
        else:
            self._dirty = None

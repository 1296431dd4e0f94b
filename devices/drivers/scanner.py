"""A serial barcode scanner: serial port + scanner parser + dedupe + supervisor.

`await driver.start()` (or `async with driver:`), then `async for event in driver.events:` — `ScannerRead` (a
`BarcodeRead` that also names the matching carrier) for each new code, `NoRead` when the scanner
sends its no-read token. `at` is the monotonic time the chunk holding the frame's last byte reached
the event loop. The same code again within `dedupe_window_s` of its previous sighting is counted in
`counters["duplicates"]` and not reported (see `Deduper` for why the window slides).

Health, and why UP does not wait for a frame: a scanner is silent until something is scanned, so
the only proof of life between parcels is an open port. UP when the port opens (for `socket://`,
when the TCP connection to the serial server is made); DOWN when it cannot be opened or a read
fails (USB unplugged, pty closed, socket dropped); the supervisor then retries with backoff capped
at `backoff_max_s` (1 s), so a device that returns is UP again within about a second, by itself.
Noise or an over-long line means the line is bad (wrong baud rate, a loose connector): DEGRADED,
logged once by the supervisor; a frame with no noise since the frame before it brings it back to
UP (the first frame after a burst does not: on a line that is noisy all the time that would flap
UP/DEGRADED once per parcel, logging each time). Nothing here blocks the event loop: the port's
reads run in its own thread, and the only wait is for bytes or for the parser's partial deadline.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from devices.events import BarcodeRead, EventStream, NoRead
from devices.health import Health, SupervisedDriver, Supervisor
from devices.protocols.scanner import (
    Deduper,
    Discarded,
    Frame,
    NoReadFrame,
    ScannerEvent,
    ScannerParser,
    ScannerProtocolConfig,
)
from devices.transports.serial_port import Parity, SerialPort, SerialSettings, StopBits

log = logging.getLogger(__name__)


class ScannerConfig(ScannerProtocolConfig):
    """The protocol fields (prefix, suffix, aim, max_length, carriers, partial_timeout_s, …) flat,
    plus where the scanner is and how to talk to it: one config block per scanner."""

    url: str = Field(description="device path (/dev/ttyUSB0, a by-id link) or pyserial URL (socket://h:p)")
    baudrate: int = Field(9600, gt=0)
    bytesize: Literal[7, 8] = Field(8, description="older engines default to 7 data bits")
    parity: Parity = Field("N", description="N, E, O, S (space: older engines with 7 bits) or M")
    stopbits: StopBits = 1
    dedupe_window_s: float = Field(
        1.0, ge=0, description="the same code again within this long of its last sighting is one read"
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


@dataclass(frozen=True)
class ScannerRead(BarcodeRead):
    """A BarcodeRead that also says which carrier's waybill pattern the code matched."""

    carrier: str | None = None  # None: no pattern matched (or none configured); the edge decides
    terminated: bool = True  # False: closed by the partial timeout, no CR/LF was seen


class ScannerDriver(SupervisedDriver):
    """One scanner. Read `driver.events`, `driver.health` (or `driver.supervisor`), `driver.counters`."""

    def __init__(self, name: str, config: ScannerConfig, *, events: EventStream | None = None) -> None:
        self.name = name
        self.config = config
        self.events = events if events is not None else EventStream()
        self.parser = ScannerParser(config)
        self.deduper = Deduper(config.dedupe_window_s)
        self.supervisor = Supervisor(name, self._session, backoff_max=config.backoff_max_s)
        self.disconnects = 0  # sessions lost after the port had opened
        self.stale_bytes = 0  # bytes dropped at the start of a session: sent before it
        self._dirty: str | None = None  # noise seen since the last frame
        self._extra = {"device": name, "url": config.url}

    @property
    def health(self) -> Health:
        return self.supervisor.health

    @property
    def counters(self) -> dict[str, int]:
        """frames parsed, reads reported, duplicates, noreads, noise, overlong, unmatched, partial,
        disconnects — monotonic since the driver was made, across reconnects."""
        s = self.parser.stats
        return {
            "frames": s.frames,
            "reads": s.frames - self.deduper.duplicates,
            "duplicates": self.deduper.duplicates,
            "noreads": s.noreads,
            "noise": s.noise,
            "overlong": s.overlong,
            "unmatched": s.unmatched,
            "partial": s.partial,
            "disconnects": self.disconnects,
            "stale_bytes": self.stale_bytes,
        }

    async def run(self) -> None:
        """Forever: open, read, reconnect (the supervisor's loop). Cancel the task to stop."""
        await self.supervisor.run()

    # --- the session ----------------------------------------------------------------------------
    async def _session(self, supervisor: Supervisor) -> None:
        port = SerialPort(self.config.url, **self.config.serial_settings())
        await port.open()  # DeviceError if absent: the supervisor marks DOWN and retries
        parser = self.parser
        parser.reset()  # half a frame from the last connection must not join the next one
        self._dirty = None
        await self._settle(port)
        log.info("scanner connected", extra=self._extra)
        supervisor.seen()  # an open port is the only proof of life a silent scanner gives
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
        """Nothing the scanner sent before this session may be read as a new scan: a frame still in
        the OS's buffer (the agent restarted, the cable was replugged) would be stamped now and
        placed in a parcel's window. What is buffered arrives at once: drop everything that arrives
        within `settle_s`, and if that ended mid-line, skip to the line's end (read rather than
        flushed, so that a line cut in half is known to be one)."""
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

    def _handle(self, event: ScannerEvent) -> None:
        if isinstance(event, Discarded):
            self._discarded(event)
            return
        self._framed()
        if isinstance(event, NoReadFrame):
            log.debug("scanner no-read", extra=self._extra)
            self.events.put(NoRead(self.name, at=event.at))
            return
        self._frame(event)

    def _frame(self, frame: Frame) -> None:
        extra = {**self._extra, "code": frame.code, "aim": frame.aim, "carrier": frame.carrier}
        if self.deduper.is_duplicate(frame.code, frame.at):
            log.debug("scanner duplicate read", extra=extra)
            return
        if frame.carrier is None and self.config.carriers:
            log.info("scanner read matches no carrier pattern", extra=extra)
        else:
            log.debug("scanner read", extra=extra)
        self.events.put(
            ScannerRead(
                self.name,
                frame.code,
                aim=frame.aim,
                symbology=frame.symbology,
                at=frame.at,
                carrier=frame.carrier,
                terminated=frame.terminated,
            )
        )

    def _discarded(self, event: Discarded) -> None:
        reason = "noise on the line" if event.reason == "noise" else "over-long line"
        log.debug(
            "scanner discarded a line",
            extra={**self._extra, "reason": event.reason, "detail": event.detail, "data": repr(event.data)},
        )
        self._dirty = reason
        self.supervisor.fault(reason)

    def _framed(self) -> None:
        """A frame: UP if none of the line's noise came since the previous frame."""
        if self._dirty is None:
            self.supervisor.seen()
        else:
            self._dirty = None

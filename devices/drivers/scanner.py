"""A serial barcode scanner: serial port + scanner parser + dedupe + supervisor.

`await driver.start()` (or `async with driver:`), then `async for event in driver.events:` — `ScannerRead` (a
`BarcodeRead` that also names the matching carrier) for each new code, `NoRead` when the scanner
sends its no-read token. `at` is the monotonic time the chunk holding the frame's last byte reached
the event loop. The same code again within `dedupe_window_s` of its previous sighting is counted in
`counters["duplicates"]` and not reported (see `Deduper` for why the window slides).

The session, its settle, reconnects and health are every serial line reader's
(`serial_reader.SerialReaderDriver`): UP once the port is open, DOWN when it is lost, DEGRADED on
noise or an over-long line until a clean frame-to-frame interval and a quiet spell have passed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from devices.drivers.serial_reader import SerialReaderConfig, SerialReaderDriver
from devices.events import BarcodeRead, EventStream, NoRead
from devices.protocols.scanner import (
    Discarded,
    Frame,
    NoReadFrame,
    ScannerEvent,
    ScannerParser,
    ScannerProtocolConfig,
)

log = logging.getLogger(__name__)


class ScannerConfig(ScannerProtocolConfig, SerialReaderConfig):
    """The protocol fields (prefix, suffix, aim, max_length, carriers, partial_timeout_s, …) flat,
    plus where the scanner is and how to talk to it (url, baudrate, bytesize, parity, stopbits,
    dedupe_window_s, backoff_max_s, settle_s): one config block per scanner."""


@dataclass(frozen=True)
class ScannerRead(BarcodeRead):
    """A BarcodeRead that also says which carrier's waybill pattern the code matched."""

    carrier: str | None = None  # None: no pattern matched (or none configured); the edge decides
    terminated: bool = True  # False: closed by the partial timeout, no CR/LF was seen


class ScannerDriver(SerialReaderDriver[ScannerEvent]):
    """One scanner. Read `driver.events`, `driver.health` (or `driver.supervisor`), `driver.counters`."""

    kind = "scanner"
    config: ScannerConfig
    parser: ScannerParser

    def __init__(self, name: str, config: ScannerConfig, *, events: EventStream | None = None) -> None:
        super().__init__(name, config, ScannerParser(config), events=events)

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

    def _handle(self, event: ScannerEvent) -> None:
        if isinstance(event, Discarded):
            self._discarded(event)
            return
        self._read()
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

"""An electronic-plate (RFID) or IC-card reader on a serial line: port + id parser + dedupe + supervisor.

`await driver.start()` (or `async with driver:`), then `async for event in driver.events:` — an
`IdRead` for each new id. `at` is the monotonic time the chunk holding the read's last byte reached
the event loop. A tag in a UHF reader's field, or a card left on the pad, is read again and again:
the same id within `dedupe_window_s` of its previous sighting (a sliding window, `scanner.Deduper`)
is counted in `counters["duplicates"]` and not reported, so a truck standing at the reader for
minutes is one read, and reported again only once it has been out of the field for a whole window.

Session, settle, reconnect and health are every serial line reader's
(`serial_reader.SerialReaderDriver`): UP once the port is open (a reader is silent until a card is
presented), DOWN when the port is lost (the reader unplugged) and UP again by itself when it comes
back, DEGRADED on noise — garbage, a line that is not an id of the configured alphabet and length, a
bad check byte — until a clean read-to-read interval and a quiet spell have passed.
"""

from __future__ import annotations

import logging

from pydantic import Field

from devices.drivers.serial_reader import SerialReaderConfig, SerialReaderDriver
from devices.events import EventStream, IdRead
from devices.protocols.id_reader import IdReaderEvent, IdReaderParser, IdReaderProtocolConfig
from devices.protocols.scanner import Discarded

log = logging.getLogger(__name__)


class IdReaderConfig(IdReaderProtocolConfig, SerialReaderConfig):
    """The protocol fields (framing, terminator, lrc, charset, separators, min/max_length, lengths,
    max_line, partial_timeout_s) flat, plus where the reader is and how to talk to it (url,
    baudrate, bytesize, parity, stopbits, dedupe_window_s, backoff_max_s, settle_s)."""

    dedupe_window_s: float = Field(
        3.0,
        ge=0,
        description="the same id again within this long of its last sighting is one read (a UHF reader "
        "reads a tag in its field several times a second)",
    )


class IdReaderDriver(SerialReaderDriver[IdReaderEvent]):
    """One reader. Read `driver.events`, `driver.health` (or `driver.supervisor`), `driver.counters`."""

    kind = "id reader"
    config: IdReaderConfig
    parser: IdReaderParser

    def __init__(self, name: str, config: IdReaderConfig, *, events: EventStream | None = None) -> None:
        super().__init__(name, config, IdReaderParser(config), events=events)

    @property
    def counters(self) -> dict[str, int]:
        """ids parsed (`frames`), reported (`reads`), duplicates, noise, overlong, partial, bad_lrc,
        disconnects, stale_bytes — monotonic since the driver was made, across reconnects."""
        s = self.parser.stats
        return {
            "frames": s.reads,
            "reads": s.reads - self.deduper.duplicates,
            "duplicates": self.deduper.duplicates,
            "noise": s.noise,
            "overlong": s.overlong,
            "partial": s.partial,
            "bad_lrc": s.bad_lrc,
            "disconnects": self.disconnects,
            "stale_bytes": self.stale_bytes,
        }

    def _handle(self, event: IdReaderEvent) -> None:
        if isinstance(event, Discarded):
            self._discarded(event)
            return
        self._read()
        extra = {**self._extra, "id": event.id}
        if self.deduper.is_duplicate(event.id, event.at):
            log.debug("id reader duplicate read", extra=extra)
            return
        log.debug("id read", extra=extra)
        self.events.put(IdRead(self.name, event.id, at=event.at))

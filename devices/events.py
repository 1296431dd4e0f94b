"""What devices report to the edge agent: small frozen events with a monotonic timestamp.

Every driver offers the same shape: `async for event in driver.events: …` plus its commands, and
`driver.supervisor.health` for UP/DOWN. `at` is `time.monotonic()` when the event's last byte (or
answer) arrived, so the agent can correlate events from different devices and measure latency.
devices/ knows nothing of parcels or customs: these are readings, not verdicts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal

from devices.protocols.sensor_payloads import SensorPayload


def _now() -> float:
    return time.monotonic()


@dataclass(frozen=True)
class BarcodeRead:
    device: str
    code: str
    aim: str | None = None  # AIM symbology identifier, e.g. "]C0" (Code 128); None if not sent
    symbology: str | None = None  # readable name, e.g. "Code 128"
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class IdRead:
    """An id read off a tag or card by a serial reader: an electronic plate's EPC, an IC card's UID
    or number (normalised: hex upper-cased, separators dropped). Whose it is, is the edge's business."""

    device: str
    id: str
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class NoRead:
    """The scanner said it saw nothing (a NOREAD frame), or a read window passed empty."""

    device: str
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class WeightReading:
    device: str
    kg: Decimal | None  # None when over/under range
    stable: bool
    overload: bool = False
    underload: bool = False
    net: bool = False
    at: float = field(default_factory=_now)
    # the earliest moment the weight can describe: when the request that it answers was sent (a
    # polled scale), or when its frame began (a streaming one); None if the driver cannot say
    since: float | None = None


@dataclass(frozen=True)
class InputChanged:
    """A digital input changed (photo-eye, loop detector, barrier position switch)."""

    device: str
    point: str  # the configured name, e.g. "photo_eye_1", "barrier_open"
    value: bool
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class SensorMessage:
    """A validated MQTT sensor payload (gate/door sensor, loop detector, plate, container-number or
    seal reader), the newest the driver has for its topic. `live` is False for one that is only the
    sensor's state, never an event: retained at the broker (sent on every (re)subscribe) or untimely
    (its `ts` too old). Consumers that act on an arrival must ignore non-live messages; they may
    follow their state."""

    device: str
    sensor_type: str
    topic: str
    payload: SensorPayload  # the validated model of its sensor type
    at: float = field(default_factory=_now)
    live: bool = True


@dataclass(frozen=True)
class CameraFrame:
    """A frame taken on trigger, with the codes decoded in it and the saved evidence file."""

    device: str
    codes: tuple[BarcodeRead, ...]
    evidence: str | None  # path of the JPEG saved under its content hash
    width: int
    height: int
    at: float = field(default_factory=_now)


DeviceEvent = BarcodeRead | IdRead | NoRead | WeightReading | InputChanged | SensorMessage | CameraFrame


class EventStream:
    """A bounded queue of device events with an async iterator; drops the oldest when full (a stuck
    consumer must not grow memory without bound) and counts what it dropped."""

    def __init__(self, maxsize: int = 1000) -> None:
        self._queue: asyncio.Queue[DeviceEvent] = asyncio.Queue(maxsize)
        self.dropped = 0

    def put(self, event: DeviceEvent) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    async def get(self, timeout: float | None = None) -> DeviceEvent:
        async with asyncio.timeout(timeout):
            return await self._queue.get()

    def empty(self) -> bool:
        return self._queue.empty()

    async def __aiter__(self) -> AsyncIterator[DeviceEvent]:
        while True:
            yield await self._queue.get()

"""Conveyor line: photo-eye → scan + stable weight + camera frame → decision → diverter, confirmed.

A parcel is opened by the photo-eye's rising edge. The scan, the weight and the camera frame that
arrive within the window belong to it; the decision is made as soon as all of them are in (not at
the end of the window), and must be made before the diverter deadline — otherwise the parcel is
held. The diverter lane coil is written and read back; a lane that cannot be confirmed puts the
station in FAULT (HOLD) and reports DEVICE_FAULT. The diverter's safe (power-off) lane is hold.
"""

from __future__ import annotations

import asyncio
import logging
import time

from devices.events import BarcodeRead, DeviceEvent, InputChanged
from devices.health import DeviceError
from edge import rules
from edge.checker import DecisionRecord
from edge.config import ConveyorStation
from edge.stations.base import Station, StationState

log = logging.getLogger(__name__)


class Conveyor(Station):
    kind = "conveyor"
    config: ConveyorStation

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.hub.subscribe(self.config.io, self._on_io)
        self.latencies: list[float] = []  # scan's last byte → diverter confirmed, seconds

    @property
    def io(self):  # type: ignore[no-untyped-def]
        return self.hub.drivers[self.config.io]

    def _on_io(self, event: DeviceEvent) -> None:
        if isinstance(event, InputChanged) and event.point == self.config.photo_eye and event.value:
            self.spawn(self.parcel(event.at), "parcel")

    async def parcel(self, t0: float) -> DecisionRecord | None:
        cfg = self.config
        self._set(StationState.CHECKING)
        faults: dict[str, str] = {}
        until = min(t0 + cfg.window_s, t0 + cfg.deadline_s)
        read, weight, (codes, evidence) = await asyncio.gather(
            self.next_read(t0 - cfg.window_s, until),
            self.weigh(cfg.window_s, faults),
            self.look(t0, faults),
        )
        code = read.code if isinstance(read, BarcodeRead) else None
        if time.monotonic() > t0 + cfg.deadline_s:
            faults["deadline"] = "decision after the diverter deadline"
        record = await self.decide(
            code=code, weight=weight, camera_codes=codes, evidence=evidence, faults=faults
        )
        await self.divert(record)
        if isinstance(read, BarcodeRead):
            self.latencies.append(time.monotonic() - read.at)
        self.show(record)
        return record

    def lane(self, verdict: rules.Verdict) -> str | None:
        d = self.config.diverter
        if verdict == rules.Verdict.RELEASE:
            return d.release
        if verdict == rules.Verdict.INSPECT and d.inspect:
            return d.inspect
        return d.hold

    async def divert(self, record: DecisionRecord) -> None:
        d = self.config.diverter
        target = self.lane(record.verdict)
        lanes = [x for x in (d.release, d.hold, d.inspect) if x]
        try:
            # off first, then on: never two lanes open at once
            for lane in lanes:
                if lane != target and self.io.outputs.get(lane, True):
                    await self.io.set_output(lane, False)
            if target is not None:
                await self.io.set_output(target, True)
        except DeviceError as exc:
            await self.actuation_failed(self.config.io, str(exc))
            return
        self.actuation_ok(self.config.io)

    async def safe_outputs(self) -> None:
        """Every lane off: the parcel goes on to the hold lane."""
        d = self.config.diverter
        for lane in (d.release, d.inspect):
            if lane:
                try:
                    await self.io.set_output(lane, False)
                except DeviceError as exc:
                    await self.actuation_failed(self.config.io, str(exc))

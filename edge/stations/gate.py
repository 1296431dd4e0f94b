"""Gate: a sensor (I/O input or MQTT loop/gate sensor) triggers the check; on RELEASE the barrier
output is pulsed and the barrier-open switch must confirm it; anything else leaves it closed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from devices.events import BarcodeRead, DeviceEvent, InputChanged, SensorMessage
from devices.health import DeviceError
from edge import rules
from edge.checker import DecisionRecord
from edge.config import GateStation
from edge.stations.base import Station, StationState

log = logging.getLogger(__name__)


class Gate(Station):
    kind = "gate"
    config: GateStation

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.hub.subscribe(self.config.trigger.device, self._on_trigger)
        self.hub.subscribe(self.config.io, self._on_io)
        self._busy = asyncio.Lock()
        self._opened = asyncio.Event()

    @property
    def io(self):  # type: ignore[no-untyped-def]
        return self.hub.drivers[self.config.io]

    def _on_io(self, event: DeviceEvent) -> None:
        if isinstance(event, InputChanged) and event.point == self.config.barrier_open and event.value:
            self._opened.set()

    def _on_trigger(self, event: DeviceEvent) -> None:
        point = self.config.trigger.point
        fired = False
        if isinstance(event, InputChanged) and event.point == point and event.value:
            fired = True
        elif isinstance(event, SensorMessage) and event.device == point:
            payload = event.payload
            fired = bool(getattr(payload, "occupied", False)) or getattr(payload, "state", None) == "closed"
        if fired and not self._busy.locked():
            self.spawn(self.vehicle(event.at), "vehicle")

    async def vehicle(self, t0: float) -> DecisionRecord:
        async with self._busy:
            cfg = self.config
            self._set(StationState.CHECKING)
            faults: dict[str, str] = {}
            read, weight, (codes, evidence) = await asyncio.gather(
                self.next_read(t0 - 1.0, t0 + cfg.window_s),
                self.weigh(cfg.window_s, faults),
                self.look(t0, faults),
            )
            code = read.code if isinstance(read, BarcodeRead) else None
            record = await self.decide(
                code=code, weight=weight, camera_codes=codes, evidence=evidence, faults=faults
            )
            self.show(record)
            if record.verdict == rules.Verdict.RELEASE:
                await self.open_barrier()
            return record

    async def open_barrier(self) -> None:
        cfg = self.config
        self._opened.clear()
        pulse = asyncio.create_task(self.io.pulse(cfg.barrier, cfg.pulse_s))
        try:
            if cfg.barrier_open is not None:
                if self.io.inputs.get(cfg.barrier_open):
                    self._opened.set()
                deadline = time.monotonic() + cfg.confirm_timeout_s
                try:
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        await self._opened.wait()
                except TimeoutError:
                    raise DeviceError(
                        f"barrier did not report open within {cfg.confirm_timeout_s} s"
                    ) from None
            await pulse
        except DeviceError as exc:
            pulse.cancel()
            with contextlib.suppress(DeviceError):
                await self.io.set_output(cfg.barrier, False)
            await self.actuation_failed(cfg.io, str(exc))
            return
        finally:
            if not pulse.done():  # cancelled (the station stops): the pulse still sends its "off"
                pulse.cancel()
                await asyncio.wait({pulse})
            if not pulse.cancelled():
                pulse.exception()  # retrieved: a failed pulse was already reported above
        self.actuation_ok(cfg.io)

    async def safe_outputs(self) -> None:
        """The barrier output off (closed)."""
        try:
            await self.io.set_output(self.config.barrier, False)
        except DeviceError as exc:
            await self.actuation_failed(self.config.io, str(exc))

"""Gate: a sensor (I/O input or MQTT loop/gate sensor) triggers the check; on RELEASE the barrier
output is pulsed and the barrier-open switch must confirm it; anything else leaves it closed.

What belongs to a vehicle: the first code read in its window (from `read_before_s` before the
trigger, never before the previous vehicle was decided, until `window_s` after it), never a read
the previous vehicle's label gave before this trigger; another code in the same window makes it
ambiguous (held). Its weight is one measured after the trigger. A second trigger while a vehicle is
being checked or the barrier is open is tailgating: it is recorded (HOLD, TAILGATING) and the
barrier closes — or does not open. What the barrier did is recorded against each decision.

An MQTT trigger sensor's free/occupied level follows the newest message the driver has for it (by
the sensor's own `ts`), live or not: a "free" that came back retained after a reconnect, or stale,
still means the loop is free, so the next vehicle is an arrival. Only a live, timely change from
free to occupied is one, and only after a free spell of at least `free_debounce_s` (by the sensor's
`ts`): occupied / free / occupied within 100 ms is one vehicle with a gap in it (a trailer's
drawbar), not a second one.

A device of the gate lost (DOWN) while the barrier is open closes it at once: the trigger sensor and
the scanner are what sees a vehicle following, and the I/O module is what closes it. A vehicle
during whose window a device was down is held (DEVICE_FAULT), even if the device is back by the
decision: it was not fully seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime

from devices.events import BarcodeRead, DeviceEvent, InputChanged, NoRead, SensorMessage
from devices.health import DeviceError, State
from devices.ports import OutputModule
from devices.protocols.sensor_payloads import GateSensor, LoopDetector
from edge import rules
from edge.checker import Checker, DecisionRecord
from edge.config import GateStation
from edge.devices import DeviceHub
from edge.stations.base import Station, StationState

log = logging.getLogger(__name__)


class Gate(Station):
    kind = "gate"
    config: GateStation

    def __init__(self, config: GateStation, hub: DeviceHub, checker: Checker) -> None:
        super().__init__(config, hub, checker)
        self.io: OutputModule = hub.output_module(config.io)  # the barrier out, its open switch in
        self.hub.subscribe(self.config.trigger.device, self._on_trigger)
        self.hub.subscribe(self.config.io, self._on_io)
        self._busy = False  # a vehicle is being checked, or the barrier is open for it
        self._opened = asyncio.Event()
        self._pulse: asyncio.Task[None] | None = None
        self._tailgated: str | None = None  # why the current vehicle's barrier must not (stay) open
        self._previous: tuple[str | None, float] = (None, -1e18)  # last vehicle's code, decided at
        self._sensor_level = False  # the MQTT trigger sensor's newest state (occupied / closed)
        self._sensor_ts: datetime | None = None  # the `ts` of the message that state is from
        self._free_since: datetime | None = None  # when the current free spell began (its `ts`)
        self._cut_short: str | None = None  # why the barrier was closed before the pulse ended
        self.flickers = 0  # occupied again within free_debounce_s: the same vehicle
        self.watch_platform()

    def _on_io(self, event: DeviceEvent) -> None:
        if isinstance(event, InputChanged) and event.point == self.config.barrier_open and event.value:
            self._opened.set()

    def _on_scanner(self, event: DeviceEvent) -> None:
        super()._on_scanner(event)
        pulse = self._pulse
        current = self._previous[0]
        if (
            isinstance(event, BarcodeRead)
            and pulse is not None
            and not pulse.done()
            and current is not None
            and event.code != current
        ):
            # another label at the gate while the barrier is open for this one: a second vehicle or
            # parcel coming through behind it
            why = f"label {event.code!r} read while the barrier was open for {current!r}"
            self._tailgated = why
            pulse.cancel()  # the pulse's own `finally` closes the barrier, confirmed
            self.spawn(self.tailgate(event.at, why, code=event.code), "tailgate")

    def _health_changed(self, device: str) -> None:
        super()._health_changed(device)
        pulse = self._pulse
        lost = self.hub.health(device).state in (State.DOWN, State.STARTING)
        if lost and pulse is not None and not pulse.done():
            # what would see a vehicle following (the trigger, the scanner) or close the barrier (the
            # I/O module) is gone: the barrier closes now, not at the end of the pulse
            self._cut_short = f"{device} lost"
            log.warning(
                "device lost while the barrier was open; closing it",
                extra={"station": self.name, "device": device},
            )
            pulse.cancel()  # the pulse's own `finally` closes the barrier, confirmed

    def _on_trigger(self, event: DeviceEvent) -> None:
        point = self.config.trigger.point
        fired = False
        if isinstance(event, InputChanged) and event.point == point and event.value:
            fired = True
        elif isinstance(event, SensorMessage) and event.device == point:
            fired = self._sensor_arrival(event)
        if not fired:
            return
        if self._busy:  # a second arrival while one is checked or passing
            why = "a second arrival while the barrier was open or the vehicle before was being checked"
            self._tailgated = why
            if self._pulse is not None and not self._pulse.done():
                self._pulse.cancel()  # the pulse's own `finally` closes the barrier, confirmed
            self.spawn(self.tailgate(event.at, why), "tailgate")
            return
        self._busy = True
        self._tailgated = None
        self.spawn(self.vehicle(event.at), "vehicle")

    def _sensor_arrival(self, event: SensorMessage) -> bool:
        """Follow the trigger sensor's level; True if this message is a vehicle arriving.

        An arrival is the sensor going from free to occupied: detectors repeat their state (a
        heartbeat), and a repeat is the same vehicle, never a second one behind it. The level follows
        every message newer than the one before (retained and stale ones too: a loop that went free
        while the agent was away is free), but only a live one fires, and only after the loop has
        been free for `free_debounce_s` by the sensor's own clock."""
        payload = event.payload
        ts = payload.ts
        if self._sensor_ts is not None and ts <= self._sensor_ts:
            return False  # no newer than what the gate knows (the driver drops these already)
        self._sensor_ts = ts
        level = (isinstance(payload, LoopDetector) and payload.occupied) or (
            isinstance(payload, GateSensor) and payload.state == "closed"
        )
        was, self._sensor_level = self._sensor_level, level
        if not level:
            if was or self._free_since is None:
                self._free_since = ts
            return False
        if was:
            return False
        if self._free_since is not None:
            free_for = (ts - self._free_since).total_seconds()
            if free_for < self.config.free_debounce_s:
                self.flickers += 1
                log.info(
                    "trigger sensor flicker: the same vehicle",
                    extra={"station": self.name, "free_s": round(free_for, 3), "live": event.live},
                )
                return False
        return event.live

    async def tailgate(self, at: float, why: str, *, code: str | None = None) -> DecisionRecord:
        """Record the second arrival (HOLD, TAILGATING) and what the barrier did."""
        record = await self.decide(
            code=code, weight=None, camera_codes=(), evidence=None, faults={}, tailgating=why
        )
        self.show(record)
        if self._pulse is not None:
            with contextlib.suppress(asyncio.CancelledError, DeviceError):
                await asyncio.wait({self._pulse})
        outcome, detail = await self.barrier_closed()
        await self.checker.record_actuation(
            self.name, record, outcome=outcome, output=self.config.barrier, detail=detail
        )
        return record

    async def vehicle(self, t0: float) -> DecisionRecord:
        try:
            return await self._vehicle(t0)
        finally:
            self._busy = False

    async def _vehicle(self, t0: float) -> DecisionRecord:
        cfg = self.config
        self._set(StationState.CHECKING)
        faults: dict[str, str] = {}
        previous_code, previous_at = self._previous
        since = max(t0 - cfg.read_before_s, previous_at)
        read, weight, (codes, evidence) = await asyncio.gather(
            self._first_read(since, t0, previous_code),
            self.weigh(cfg.window_s, faults, since=t0),
            self.look(t0, faults),
        )
        code = read.code if isinstance(read, BarcodeRead) else None
        # decided when the window has closed: a second code anywhere in it makes the vehicle ambiguous
        await asyncio.sleep(max(0.0, t0 + cfg.window_s - time.monotonic()))
        ambiguous = self._other_codes(code, since, t0 + cfg.window_s)
        # a device down at any moment of the window (even if back now) did not see all of the vehicle
        for device, why in self.faults_during(since, time.monotonic(), what="vehicle").items():
            faults.setdefault(device, why)
        record = await self.decide(
            code=code if not ambiguous else None,
            weight=weight,
            camera_codes=codes,
            evidence=evidence,
            faults=faults,
            read_ambiguities=ambiguous,
            tailgating=self._tailgated,
        )
        self._previous = (code, time.monotonic())
        self.show(record)
        if record.verdict == rules.Verdict.RELEASE:
            lost = self.device_faults()
            if self._tailgated is not None:
                outcome, detail = "withheld", self._tailgated
            elif lost:  # lost between the decision and now: the barrier stays closed
                outcome, detail = "withheld", "not opened: " + ", ".join(f"{d} lost" for d in lost)
            else:
                outcome, detail = await self.open_barrier()
        else:
            outcome, detail = await self.barrier_closed()
        await self.checker.record_actuation(
            self.name, record, outcome=outcome, output=cfg.barrier, detail=detail
        )
        return record

    async def barrier_closed(self) -> tuple[str, str]:
        """Read the barrier output back from the module (not what was last written): (outcome,
        detail) for the record; one that reads open is commanded closed and the station holds."""
        barrier = self.config.barrier
        try:
            if not (await self.io.read_outputs([barrier]))[barrier]:
                return "confirmed", "barrier closed: its output read back off"
            await self.io.set_output(barrier, False)
        except DeviceError as exc:
            await self.actuation_failed(self.config.io, f"barrier: {exc}")
            return "failed", f"barrier not confirmed closed: {exc}"
        await self.actuation_failed(self.config.io, "barrier output read back open")
        return "failed", "barrier output read back open (commanded closed again)"

    async def _first_read(self, since: float, t0: float, previous: str | None) -> BarcodeRead | NoRead | None:
        """The first read of this vehicle's window; a read of the previous vehicle's label taken
        before this trigger is that vehicle leaving, not this one arriving."""
        until = t0 + self.config.window_s
        while True:
            read = await self.next_read(since, until)
            if isinstance(read, BarcodeRead) and read.code == previous and read.at < t0:
                since = read.at
                continue
            return read

    def _other_codes(self, code: str | None, since: float, until: float) -> tuple[str, ...]:
        """Another code read in the same window before the decision: two vehicles, or two labels."""
        others = {
            r.code
            for r in self._reads
            if isinstance(r, BarcodeRead) and since <= r.at <= until and r.code != code
        }
        if code is None or not others:
            return ()
        listed = ", ".join(repr(c) for c in sorted(others))
        return (f"codes read in one window: {code!r}, {listed}",)

    async def open_barrier(self) -> tuple[str, str]:
        """Pulse the barrier and confirm it opened: (outcome, detail) for the record."""
        cfg = self.config
        self._opened.clear()
        self._cut_short = None
        pulse = asyncio.create_task(self.io.pulse(cfg.barrier, cfg.pulse_s))
        self._pulse = pulse
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
            try:
                await asyncio.shield(pulse)
            except asyncio.CancelledError:
                if not pulse.cancelled():
                    raise  # this task itself is being cancelled (the station stops)
                why = self._tailgated or self._cut_short or "cut short"
                return "confirmed", f"barrier opened, closed early: {why}"
        except DeviceError as exc:
            pulse.cancel()
            with contextlib.suppress(DeviceError):
                await self.io.set_output(cfg.barrier, False)
            await self.actuation_failed(cfg.io, str(exc))
            return "failed", str(exc) if self._cut_short is None else f"{exc} (cut short: {self._cut_short})"
        finally:
            if not pulse.done():  # cancelled (the station stops): the pulse still sends its "off"
                pulse.cancel()
                await asyncio.wait({pulse})
            if not pulse.cancelled():
                pulse.exception()  # retrieved: a failed pulse was already reported above
            self._pulse = None
        self.actuation_ok(cfg.io)
        return "confirmed", "barrier opened (confirmed by its switch) and closed"

    async def safe_outputs(self) -> None:
        """The barrier output off (closed)."""
        try:
            await self.io.set_output(self.config.barrier, False)
        except DeviceError as exc:
            await self.actuation_failed(self.config.io, str(exc))

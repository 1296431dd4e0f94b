"""What every station does: gather what the devices saw, decide, show it, drive outputs safely."""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from devices.events import BarcodeRead, DeviceEvent, NoRead, WeightReading
from devices.health import DeviceError, Health, State
from devices.ports import FrameSource, WeightSource
from edge import rules
from edge.checker import Checker, DecisionRecord
from edge.config import ConveyorStation, GateStation, ManualStation, VehicleGateStation
from edge.devices import DeviceHub
from kernel.tasks import cancel_and_wait

log = logging.getLogger(__name__)


PLATFORM_BAND_KG = Decimal("0.005")  # two stable readings this close are the same load


class StationState(StrEnum):
    IDLE = "IDLE"
    CHECKING = "CHECKING"
    RELEASE = "RELEASE"
    HOLD = "HOLD"
    INSPECT = "INSPECT"
    FAULT = "FAULT"  # a device of this station is down or an actuation failed: everything holds
    PASS = "PASS"  # a vehicle gate: the vehicle may drive out
    STOP = "STOP"  # a vehicle gate: the vehicle stays, with the reason


@dataclass
class StationView:
    """What a screen, the API and MQTT show of a station."""

    name: str
    kind: str
    state: StationState = StationState.IDLE
    last: DecisionRecord | None = None
    faults: dict[str, str] = field(default_factory=dict)  # device → why
    updated: float = field(default_factory=time.monotonic)


Listener = Callable[[StationView], None]
StationConfig = ConveyorStation | ManualStation | GateStation | VehicleGateStation


class Station:
    """One station's devices, state and decisions. Its devices come from the hub by the names its
    configuration gives them, as the port each role needs: a scanner it listens to, a scale it asks
    for a weight (`weigh`), a camera it asks for a frame (`look`); stations with outputs add theirs."""

    kind = "station"
    config: StationConfig

    def __init__(self, config: StationConfig, hub: DeviceHub, checker: Checker) -> None:
        self.config = config
        self.name: str = config.name
        self.hub = hub
        self.checker = checker
        self.scale: WeightSource | None = None if config.scale is None else hub.weight_source(config.scale)
        self.camera: FrameSource | None = None if config.camera is None else hub.frame_source(config.camera)
        self.view = StationView(name=self.name, kind=self.kind)
        self._listeners: list[Listener] = []
        self._reads: deque[BarcodeRead | NoRead] = deque(maxlen=64)
        self._read_arrived = asyncio.Event()
        self._actuation_faults: dict[str, str] = {}
        self._device_states: dict[str, State] = {}
        self._outages: dict[str, list[list[float]]] = {}  # device → [[down from, up again or inf], …]
        self.decisions = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._watching = False  # weighs one parcel at a time on one platform (`watch_platform`)
        self._taken: tuple[Decimal, float] | None = None  # watching: the last weight taken, when measured
        self._changed_at: float | None = None  # watching: when the platform was first seen changed since
        for _role, device in config.device_refs().items():
            if device is not None:
                hub.drivers[device].supervisor.subscribe(self._health_listener(device))
        if config.scanner:
            hub.code_source(config.scanner)  # a scanner, or the configuration let a wrong device through
            hub.subscribe(config.scanner, self._on_scanner)

    # --- listeners and state ---------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _set(self, state: StationState, last: DecisionRecord | None = None) -> None:
        self.view.state = state
        if last is not None:
            self.view.last = last
        self.view.updated = time.monotonic()
        for listener in self._listeners:
            listener(self.view)

    def tracking(self) -> dict[str, object] | None:
        """How the station's tracking is doing (a conveyor's strays, ambiguous reads, stalls)."""
        return None

    def devices(self) -> list[str]:
        return sorted({d for d in self.config.device_refs().values() if d is not None})

    def device_faults(self) -> dict[str, str]:
        faults = dict(self._actuation_faults)
        for device in self.devices():
            health = self.hub.health(device)
            if health.state in (State.DOWN, State.STARTING):
                faults[device] = health.reason or health.state.value
        return faults

    def _health_changed(self, device: str) -> None:
        state = self.hub.health(device).state
        previous = self._device_states.get(device, State.STARTING)
        self._device_states[device] = state
        now = time.monotonic()
        outages = self._outages.setdefault(device, [])
        if state in (State.DOWN, State.STARTING) and not (outages and outages[-1][1] == math.inf):
            outages.append([now, math.inf])
        elif state in (State.UP, State.DEGRADED) and outages and outages[-1][1] == math.inf:
            outages[-1][1] = now
        del outages[:-20]
        if state in (State.UP, State.DEGRADED) and previous in (State.DOWN, State.STARTING):
            self.session_began(device, now)
        if state == State.UP and previous in (State.DOWN, State.STARTING):
            # a new device session, and every I/O session starts by driving its outputs to their
            # safe values, confirmed: an earlier unconfirmed output is settled (a coil that still
            # disagrees fails that session, so the device would not be UP)
            self._actuation_faults.pop(device, None)
        faults = self.device_faults()
        self.view.faults = faults
        if faults and self.view.state != StationState.CHECKING:
            self._set(StationState.FAULT)
        elif not faults and self.view.state == StationState.FAULT:
            self._set(StationState.IDLE)

    def _health_listener(self, device: str) -> Callable[[Health], None]:
        return lambda _health: self._health_changed(device)

    def session_began(self, device: str, at: float) -> None:
        """`device` (re)connected at `at`: nothing it reported before then belongs to a parcel now."""

    def faults_during(self, since: float, until: float, *, what: str = "parcel") -> dict[str, str]:
        """Devices of this station that were not up at some moment of [since, until]: a parcel (or
        vehicle) whose windows a device missed was not fully seen, even if the device is back by its
        decision."""
        out = {}
        for device, outages in self._outages.items():
            for down, up in outages:
                if down <= until and up >= since:
                    out[device] = f"down during this {what}'s window" if up < math.inf else "down"
        return out

    # --- inputs ----------------------------------------------------------------------------------
    def _on_scanner(self, event: DeviceEvent) -> None:
        if isinstance(event, (BarcodeRead, NoRead)):
            self._reads.append(event)
            self._read_arrived.set()

    async def next_read(self, since: float, until: float) -> BarcodeRead | NoRead | None:
        """The first scanner frame at or after `since`, waiting until the monotonic time `until`."""
        while True:
            while self._reads and self._reads[0].at < since:
                self._reads.popleft()
            if self._reads:
                return self._reads.popleft()
            remaining = until - time.monotonic()
            if remaining <= 0:
                return None
            self._read_arrived.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._read_arrived.wait()
            except TimeoutError:
                return None

    def watch_platform(self) -> None:
        """For stations that weigh one parcel at a time on one platform (bench, gate): follow the
        scale's readings, so a weight is taken only once the platform has changed since the one
        taken before (the parcel before lifted off, or another weight) — a scan made while the
        parcel before still lies on the scale must not take its weight."""
        self._watching = True
        if self.config.scale is not None:
            self.hub.subscribe(self.config.scale, self._on_platform)

    def _on_platform(self, event: DeviceEvent) -> None:
        if not isinstance(event, WeightReading) or self._taken is None or self._changed_at is not None:
            return
        measured = event.since if event.since is not None else event.at
        if measured > self._taken[1] and not self._same_load(event):
            self._changed_at = measured

    def _same_load(self, reading: WeightReading) -> bool:
        """A stable, positive weight within PLATFORM_BAND_KG of the one taken last."""
        if self._taken is None or not reading.stable or reading.kg is None or reading.kg <= 0:
            return False
        return abs(reading.kg - self._taken[0]) <= PLATFORM_BAND_KG

    async def weigh(
        self,
        deadline_s: float,
        faults: dict[str, str],
        *,
        since: float | None = None,
        same_parcel: bool = False,
    ) -> Decimal | None:
        """The first stable, in-range weight with something on the platform, within the deadline,
        measured at or after `since` (the parcel's scan or trigger): never a leftover reading of the
        parcel before, nor a reply that was already on its way. At a station that watches its
        platform, also not the weight taken last unless the platform changed in between (or the
        re-check is of `same_parcel`, an override).

        A stable zero (the empty platform, or a reply that was on the wire before the parcel
        landed) is not the parcel's weight: keep waiting for the load to arrive and settle."""
        scale, device = self.scale, self.config.scale
        if scale is None or device is None:
            return None
        watching = self._watching
        until = time.monotonic() + deadline_s
        while (remaining := until - time.monotonic()) > 0:
            try:
                reading = await scale.wait_stable(remaining, since=since)
            except DeviceError as exc:
                faults[device] = str(exc)
                return None
            if reading is None:
                return None
            if reading.kg is None or reading.kg <= 0 or reading.overload or reading.underload:
                continue
            measured = reading.since if reading.since is not None else reading.at
            if watching and not same_parcel and self._taken is not None and self._same_load(reading):
                changed = self._changed_at
                if changed is None or measured < changed:  # still the parcel weighed before
                    since = reading.at
                    continue
            if watching:
                self._taken, self._changed_at = (reading.kg, reading.at), None
            return reading.kg
        return None

    async def look(self, trigger_at: float, faults: dict[str, str]) -> tuple[tuple[str, ...], str | None]:
        """The codes the camera read in its first frame at or after `trigger_at`, and the frame's
        evidence file; ((), None) without a camera, or with the camera's failure in `faults`."""
        camera, device = self.camera, self.config.camera
        if camera is None or device is None:
            return (), None
        try:
            frame = await camera.capture(trigger_at)
        except (DeviceError, TimeoutError) as exc:
            faults[device] = str(exc) or "no frame"
            return (), None
        return tuple(c.code for c in frame.codes), frame.evidence

    # --- deciding --------------------------------------------------------------------------------
    async def decide(
        self,
        *,
        code: str | None,
        weight: Decimal | None,
        camera_codes: tuple[str, ...],
        evidence: str | None,
        faults: dict[str, str],
        operator: str | None = None,
        waive: frozenset[str] = frozenset(),
        read_ambiguities: tuple[str, ...] = (),
        weight_ambiguities: tuple[str, ...] = (),
        tailgating: str | None = None,
    ) -> DecisionRecord:
        """Every decision of every station goes through here (and so through the checker)."""
        all_faults = {**self.device_faults(), **faults}
        obs = rules.Observation(
            scanned_code=code,
            weight_kg=weight,
            weight_required=self.config.scale is not None and "weight" not in waive,
            camera_code=camera_codes[0] if camera_codes else None,
            camera_codes=camera_codes,
            camera_configured=self.config.camera is not None and "label" not in waive,
            device_faults=() if "devices" in waive else tuple(f"{d}: {why}" for d, why in all_faults.items()),
            read_ambiguities=read_ambiguities,
            weight_ambiguities=weight_ambiguities,
            tailgating=tailgating,
        )
        record = await self.checker.decide(self.name, obs, evidence=evidence, operator=operator)
        self.decisions += 1
        devices = set(self.devices())
        for device, why in faults.items():
            if device in devices:  # a device's own fault; the decision itself carries the others
                await self.checker.report_fault(self.name, device, why)
        return record

    def show(self, record: DecisionRecord) -> None:
        states: dict[str, StationState] = {
            rules.Verdict.RELEASE: StationState.RELEASE,
            rules.Verdict.INSPECT: StationState.INSPECT,
            "PASS": StationState.PASS,
            "STOP": StationState.STOP,
        }
        state = states.get(record.verdict.value, StationState.HOLD)
        self.view.faults = self.device_faults()
        if self.view.faults and state in (StationState.HOLD, StationState.STOP):
            state = StationState.FAULT  # still faulty after this parcel: the station holds everything
        self._set(state, record)

    async def actuation_failed(self, device: str, why: str) -> None:
        """An output could not be confirmed: the station holds and says so, upstream too."""
        self._actuation_faults[device] = why
        log.error(
            "actuation failed; station holds", extra={"station": self.name, "device": device, "why": why}
        )
        self.view.faults = self.device_faults()
        self._set(StationState.FAULT)
        await self.checker.report_fault(self.name, device, f"actuation: {why}")

    def actuation_ok(self, device: str) -> None:
        if self._actuation_faults.pop(device, None) is not None:
            self._health_changed(device)

    async def start(self) -> None:
        """Called once the devices run. Outputs need nothing here: every I/O driver session starts
        by driving its module to the configured safe state (barrier closed, diverter to hold)."""

    def spawn(self, work: Coroutine[Any, Any, Any], what: str) -> None:
        """Run one parcel's (or vehicle's) work as a task the station owns. Nothing new starts once
        the station is stopping; work that fails unexpectedly leaves the outputs in the safe state."""
        if self._stopping:
            work.close()
            return
        task = asyncio.create_task(self._guarded(work), name=f"{self.name}:{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, work: Coroutine[Any, Any, Any]) -> None:
        try:
            await work
        except Exception as exc:  # a bug or a broken store must end in hold, never in the last lane
            log.exception("station work failed; outputs to the safe state", extra={"station": self.name})
            fault = self.show_failure(exc)  # the screen says why first: a full disk fails the rest too
            try:
                await self.safe_outputs()
            except Exception:
                log.exception("outputs not driven to the safe state", extra={"station": self.name})
            self.view.faults = {**self.device_faults(), **fault}
            self._set(StationState.FAULT)

    def show_failure(self, exc: BaseException) -> dict[str, str]:
        """FAULT on the screen with the reason a parcel could not be decided (the store's, when it is
        the store that failed: a full disk)."""
        where = "store" if isinstance(exc, sqlite3.Error) else "station"
        fault = {where: f"{type(exc).__name__}: {exc}"}
        self.view.faults = {**self.device_faults(), **fault}
        self._set(StationState.FAULT)
        return fault

    async def safe_outputs(self) -> None:
        """Drive this station's outputs to the safe state (stations with outputs override it)."""

    async def stop(self) -> None:
        """Start nothing new and cancel work in progress (outputs stay as the last confirmed or safe
        state; the I/O module's own watchdog takes over if the agent is gone for good)."""
        self._stopping = True
        await cancel_and_wait(list(self._tasks))

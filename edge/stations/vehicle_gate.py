"""Vehicle gate (卡口): one lane through which vehicles leave (or enter) the bonded area.

A vehicle arrives over the entry loop and drives onto the weighbridge. Its weight counts only when
the whole vehicle is on the platform — the beam at the platform's entry end was interrupted and is
clear again, the beam at its exit end is clear — and the bridge reads a stable load; a beam
interrupted again (the vehicle moved) voids it. Meanwhile the readers report: plate recognition, the
electronic plate / IC card, container numbers, seal ids. Once the weight is taken the lane waits for
the readers it has, at most `collect_s`, and decides (edge/gate_checker.py: the note found by plate
or card, every rule of edge/vehicle_rules.py, the decision and its PASSAGE event committed before
the barrier moves).

The barrier opens only on a pass, and only once its open switch confirms it (otherwise the command
drops, the lane shows FAULT and the actuation is reported failed). It closes when the vehicle has
left — through the exit loop, with the safety loop under the arm clear — and never while the safety
loop is occupied: the safety loop wins over every command of this station (and the barrier's own
controller does the same in hardware). Something in the safety loop again after the vehicle's tail
had cleared it, or a new vehicle on the entry loop or the platform while the barrier is open, is a
tailgater: recorded as its own passage (STOP, TAILGATING), and the barrier closes as soon as the loop
is clear. On a stop the barrier stays closed, read back; a supervisor may release an operational
stop with a reason (`override`): the check runs again on the same collected facts and passes only
what the rules let a supervisor release. A device of the lane down during the vehicle's window is a
DEVICE_FAULT in its decision; a device lost while the barrier is open closes it as soon as the
safety loop allows.

After a restart (a crash between the committed decision and the barrier), the lane's last decision
that has no actuation yet is taken up again: a pass whose vehicle is still on the platform opens the
barrier for it (its passage was reported once, with the decision); otherwise it is recorded as not
carried out. No second passage is made for that vehicle.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from devices.events import DeviceEvent, IdRead, InputChanged, SensorMessage, WeightReading
from devices.health import DeviceError, State
from devices.ports import OutputModule
from devices.protocols.sensor_payloads import ContainerResult, LoopDetector, PlateResult, SealRead
from edge import vehicle_rules as vr
from edge.checker import Checker, DecisionRecord
from edge.config import SensorRef, VehicleGateStation
from edge.devices import DeviceHub
from edge.gate_checker import GateChecker, OverrideRefused, PassageRecord
from edge.stations.base import Station, StationState
from edge.store import Store
from kernel.timefmt import iso_now, utc_now

log = logging.getLogger(__name__)

EMPTY_FOR_S = 2.0  # a lane empty this long (no loop, no beam, no load) has no vehicle on it any more
RESUME_WITHIN_S = 300.0  # a pass this recent whose vehicle still stands on the bridge is taken up
RESUME_DEVICES_S = 15.0  # after a restart, how long the lane waits for its I/O module and weighbridge


@dataclass
class Vehicle:
    """What the lane collected for the vehicle on it."""

    arrived: float
    on_platform_at: float | None = None  # when the whole vehicle was last seen on the platform
    back_seen: bool = False  # the entry-end beam was interrupted since the arrival
    gross_kg: Decimal | None = None
    weighed_at: float | None = None
    plate: str | None = None
    plate_confidence: float | None = None
    card: str | None = None
    containers: tuple[str, ...] = ()
    container_types: tuple[str, ...] = ()
    container_seen: bool = False
    seals: tuple[str, ...] = ()
    seal_seen: bool = False
    photos: tuple[str, ...] = ()
    evidence: str | None = None
    decided: PassageRecord | None = None
    decided_at: float | None = None  # monotonic: the decision committed
    confident_plates: set[str] = field(default_factory=set)  # normalised plates read above the threshold
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class VehicleGate(Station):
    kind = "vehicle_gate"
    config: VehicleGateStation

    def __init__(self, config: VehicleGateStation, hub: DeviceHub, checker: Checker) -> None:
        super().__init__(config, hub, checker)
        t = config.tolerance
        self.gate_checker = GateChecker(
            checker,
            vr.GateTolerance(
                absolute_kg=t.absolute_kg,
                percent=t.percent,
                override_limit=None
                if t.override_absolute_kg is None
                else vr.WeightLimit(absolute_kg=t.override_absolute_kg, percent=t.override_percent),
                plate_min_confidence=t.plate_min_confidence,
            ),
        )
        self.io: OutputModule = hub.output_module(config.io)
        self.points = config.points
        hub.subscribe(config.io, self._on_io)
        hub.subscribe(config.scale, self._on_weight)
        if config.card is not None:
            hub.subscribe(config.card, self._on_card)
        if config.seal_reader is not None:
            hub.subscribe(config.seal_reader, self._on_seal_reader)
        self._mqtt_levels: dict[str, bool] = {}  # points the lane takes from MQTT loop detectors
        for name, loop in config.loops.items():
            point = getattr(config.points, name)
            self._mqtt_levels[point] = False
            hub.subscribe(loop.device, self._loop_handler(point, loop))
        for ref in {r.device for r in (config.plate, config.container, config.seal) if r is not None}:
            hub.subscribe(ref, self._sensor_handler(ref))
        self.vehicle: Vehicle | None = None
        self._worker: asyncio.Task[None] | None = None
        self._barrier_open = False  # commanded open (confirmed) for the vehicle on the lane
        self._tail_cleared = False  # the passing vehicle's tail has left the safety loop
        self._tailgated: str | None = None
        self._lane_changed = asyncio.Event()
        self._bridge_kg: Decimal | None = None  # the bridge's latest reading, stable or not
        self.passages = 0
        self.tailgaters = 0
        self.foreign_reads = 0  # reads naming another lane: ignored
        self._close_now = False  # a tailgater or a reversal: close as soon as the safety loop allows
        self._exit_seen = False  # the passing vehicle reached the exit loop: the pass was carried out
        # monotonic moments of the latest passes (arrived, weighed, decided, barrier confirmed open)
        self.cycles: deque[dict[str, float | None]] = deque(maxlen=100)

    # --- what the devices say -------------------------------------------------------------------------
    def _input(self, point: str) -> bool:
        if point in self._mqtt_levels:
            return self._mqtt_levels[point]
        return bool(self.io.inputs.get(point, False))

    def _loop_handler(self, point: str, ref: SensorRef) -> Callable[[DeviceEvent], None]:
        def handle(event: DeviceEvent) -> None:
            if not isinstance(event, SensorMessage) or event.device != ref.sensor:
                return
            payload = event.payload
            if not isinstance(payload, LoopDetector):
                return
            # the level follows the newest message (retained or stale ones too: a loop that went free
            # while the agent was away is free); only a live change is an event for the lane
            was = self._mqtt_levels.get(point, False)
            self._mqtt_levels[point] = payload.occupied
            if event.live and payload.occupied != was:
                self._on_io(InputChanged(ref.device, point, payload.occupied, at=event.at))
            else:
                self._lane_changed.set()

        return handle

    def _on_io(self, event: DeviceEvent) -> None:
        if not isinstance(event, InputChanged):
            return
        p = self.points
        self._lane_changed.set()
        v = self.vehicle
        if event.point == p.entry_loop and event.value:
            if self._barrier_open:
                self._tailgater("a vehicle on the entry loop while the barrier was open")
            elif v is None:
                self._arrive(event.at)
        elif event.point == p.platform_back:
            if self._barrier_open and event.value:
                self._tailgater("a vehicle driving onto the weighbridge while the barrier was open")
                return
            if v is None and event.value:
                self._arrive(event.at)
                v = self.vehicle
            if v is not None and v.decided is None:
                if event.value:
                    v.back_seen = True
                self._platform_moved(v, event.at)
        elif event.point == p.platform_front and v is not None and v.decided is None:
            self._platform_moved(v, event.at)
        elif event.point == p.exit_loop and self._barrier_open and event.value:
            self._exit_seen = True
        elif event.point == p.safety_loop and self._barrier_open:
            if not event.value:
                self._tail_cleared = True
            elif self._tail_cleared:
                self._tailgater("something in the safety loop after the vehicle's tail had cleared it")

    def _platform_moved(self, v: Vehicle, at: float) -> None:
        """A platform beam changed: the weight taken so far no longer describes the whole vehicle."""
        whole = (
            v.back_seen
            and not self._input(self.points.platform_back)
            and not self._input(self.points.platform_front)
        )
        v.on_platform_at = at if whole else None
        v.gross_kg = v.weighed_at = None
        v.changed.set()

    def _on_weight(self, event: DeviceEvent) -> None:
        if isinstance(event, WeightReading) and event.kg is not None:
            self._bridge_kg = event.kg
            self._lane_changed.set()
        v = self.vehicle
        if not isinstance(event, WeightReading) or v is None or v.decided is not None:
            return
        measured = event.since if event.since is not None else event.at
        if v.on_platform_at is None or measured < v.on_platform_at:
            return  # not (yet) the whole vehicle at rest on the platform
        if not event.stable or event.kg is None or event.overload or event.underload:
            if not event.stable:
                v.gross_kg = v.weighed_at = None  # moving again
            return
        if event.kg < self.config.min_vehicle_kg:
            return
        v.gross_kg, v.weighed_at = event.kg, event.at
        v.changed.set()

    def _on_card(self, event: DeviceEvent) -> None:
        v = self.vehicle
        if isinstance(event, IdRead) and v is not None and v.decided is None and event.at >= v.arrived:
            v.card = event.id
            v.changed.set()

    def _plate_read(self, v: Vehicle, result: PlateResult) -> None:
        """The vehicle's plate: the most confident read, unless two confident reads disagree — then
        both, joined, which matches no note (PLATE_MISMATCH): one vehicle does not carry two plates."""
        threshold = self.config.tolerance.plate_min_confidence
        if result.confidence >= threshold:
            v.confident_plates.add(vr.normalise_plate(result.plate))
        if len(v.confident_plates) > 1:
            v.plate, v.plate_confidence = "/".join(sorted(v.confident_plates)), 1.0
        elif v.plate is None or (v.plate_confidence or 0) <= result.confidence:
            v.plate, v.plate_confidence = result.plate, result.confidence

    def _on_seal_reader(self, event: DeviceEvent) -> None:
        """An electronic seal read by a serial reader: one more seal id of the vehicle."""
        v = self.vehicle
        if isinstance(event, IdRead) and v is not None and v.decided is None and event.at >= v.arrived:
            v.seals, v.seal_seen = tuple(dict.fromkeys((*v.seals, event.id))), True
            v.changed.set()

    def _sensor_handler(self, device: str) -> Callable[[DeviceEvent], None]:
        return lambda event: self._on_sensor(device, event)

    def _on_sensor(self, device: str, event: DeviceEvent) -> None:
        v = self.vehicle
        if not isinstance(event, SensorMessage) or not event.live or v is None or v.decided is not None:
            return
        if event.at < v.arrived:
            return
        cfg = self.config
        payload = event.payload
        name = (device, event.device)  # a sensor message's `device` is the sensor's name
        lane = getattr(payload, "lane", None)
        if cfg.lane_id is not None and lane != cfg.lane_id:
            self.foreign_reads += 1  # another lane's camera or reader on a shared topic
            return
        if (
            cfg.plate is not None
            and name == (cfg.plate.device, cfg.plate.sensor)
            and isinstance(payload, PlateResult)
        ):
            self._plate_read(v, payload)
        elif (
            cfg.container is not None
            and name == (cfg.container.device, cfg.container.sensor)
            and isinstance(payload, ContainerResult)
        ):
            # every number seen counts: a box that is not the note's, read once, is a mismatch
            v.containers = tuple(dict.fromkeys((*v.containers, *payload.numbers)))
            v.container_types = tuple(dict.fromkeys((*v.container_types, *payload.types)))
            v.container_seen = True
        elif (
            cfg.seal is not None
            and name == (cfg.seal.device, cfg.seal.sensor)
            and isinstance(payload, SealRead)
        ):
            v.seals, v.seal_seen = tuple(dict.fromkeys((*v.seals, *payload.ids))), True
        else:
            return
        v.changed.set()

    # --- one vehicle ----------------------------------------------------------------------------------
    def _arrive(self, at: float) -> None:
        if self._stopping:
            return
        self.vehicle = Vehicle(arrived=at)
        self._set(StationState.CHECKING)
        self._worker = asyncio.create_task(
            self._guarded(self._vehicle(self.vehicle)), name=f"{self.name}:vehicle"
        )
        self._tasks.add(self._worker)
        self._worker.add_done_callback(self._tasks.discard)

    def _complete(self, v: Vehicle) -> bool:
        """Every reader the lane has has spoken for this vehicle."""
        cfg = self.config
        return (
            (cfg.plate is None or v.plate is not None)
            and (cfg.card is None or v.card is not None)
            and (cfg.container is None or v.container_seen)
            and ((cfg.seal is None and cfg.seal_reader is None) or v.seal_seen)
        )

    async def _vehicle(self, v: Vehicle) -> None:
        try:
            await self._check(v)
        finally:
            if self.vehicle is v:
                self.vehicle = None
            if self.view.state == StationState.CHECKING:
                self._set(StationState.FAULT if self.device_faults() else StationState.IDLE)

    async def _check(self, v: Vehicle) -> None:
        cfg = self.config
        # 1. the whole vehicle weighed, stable; or it leaves without (reverses out: nothing decided)
        empty_since: float | None = None
        while v.gross_kg is None:
            if not self._lane_empty():
                empty_since = None
            elif empty_since is None:
                empty_since = time.monotonic()
            elif time.monotonic() - empty_since >= EMPTY_FOR_S:
                return  # it backed out (or was never more than a loop's flicker): nothing to decide
            if self._weighbridge_down():
                break  # decided without a weight: NO_WEIGHT / DEVICE_FAULT say why
            v.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.25):
                    await v.changed.wait()
        # 2. the readers, at most collect_s more
        deadline = time.monotonic() + cfg.collect_s
        while not self._complete(v) and (remaining := deadline - time.monotonic()) > 0:
            v.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await v.changed.wait()
        await self._photo(v)
        # 3. decide and act
        record = await self._decide(v)
        v.decided_at = time.monotonic()
        await self._act(v, record)

    def _lane_empty(self) -> bool:
        """No loop or beam occupied and the bridge reads less than a vehicle (moving or not); with the
        weighbridge down nothing shows the platform empty (a truck at rest on it breaks no beam)."""
        if self._weighbridge_down():
            return False
        return self._lane_empty_now() and (
            self._bridge_kg is None or self._bridge_kg < self.config.min_vehicle_kg
        )

    def _weighbridge_down(self) -> bool:
        return self.hub.health(self.config.scale).state in (State.DOWN, State.STARTING)

    async def _photo(self, v: Vehicle) -> None:
        faults: dict[str, str] = {}
        _codes, evidence = await self.look(time.monotonic(), faults)
        if evidence:
            v.evidence = evidence
            v.photos = (Path(evidence).stem,)  # the camera names its evidence by the image's SHA-256

    def _roles(self) -> dict[str, str]:
        """Each of the lane's devices as the role the rules know it by (others keep their name)."""
        cfg = self.config
        roles: dict[str, str] = {cfg.scale: vr.Device.WEIGHBRIDGE.value}
        if cfg.card:
            roles[cfg.card] = vr.Device.CARD_READER.value
        for ref, role in (
            (cfg.plate, vr.Device.PLATE_CAMERA),
            (cfg.container, vr.Device.CONTAINER_CAMERA),
            (cfg.seal, vr.Device.SEAL_READER),
        ):
            if ref is not None:
                roles.setdefault(ref.device, role.value)
        if cfg.seal_reader:
            roles[cfg.seal_reader] = vr.Device.SEAL_READER.value
        return roles

    def _faults(self, v: Vehicle) -> tuple[str, ...]:
        faults = {**self.faults_during(v.arrived, time.monotonic(), what="vehicle"), **self.device_faults()}
        roles = self._roles()
        return tuple(sorted({roles.get(device, device) for device in faults}))

    def passage_of(self, v: Vehicle, *, tailgating: bool = False) -> vr.Passage:
        cfg = self.config
        return vr.Passage(
            direction=cfg.direction,
            gate=cfg.gate,
            plate=v.plate,
            plate_confidence=v.plate_confidence,
            card=v.card,
            card_reader_configured=cfg.card is not None,
            gross_kg=v.gross_kg,
            containers=v.containers,
            container_types=v.container_types,
            seals=v.seals,
            device_faults=self._faults(v),
            tailgating=tailgating,
        )

    async def _decide(
        self, v: Vehicle, *, operator: str | None = None, override: tuple[DecisionRecord, str] | None = None
    ) -> PassageRecord:
        passage = self.passage_of(v)
        record = await self.gate_checker.decide(
            self.name, passage, photos=v.photos, evidence=v.evidence, operator=operator, override=override
        )
        self.decisions += 1
        self.passages += 1
        v.decided = record
        self.show(record.decision)
        return record

    async def _act(self, v: Vehicle, record: PassageRecord) -> None:
        if record.decision.verdict == vr.Verdict.PASS:
            await self._let_through(v, record)
            return
        outcome, detail = await self.barrier_closed()
        await self.checker.record_actuation(
            self.name, record.decision, outcome=outcome, output=self.points.barrier, detail=detail
        )
        # the vehicle waits at the barrier: a supervisor may release it, or it reverses out
        while not self._lane_empty():
            if v.decided is not record:  # overridden: `override` opened the barrier for it
                return
            self._lane_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._lane_changed.wait()

    async def override(self, original: DecisionRecord, *, operator: str, reason: str) -> DecisionRecord:
        """A supervisor releases the stopped vehicle still on the lane (OverrideRefused: a customs
        stop, or no vehicle waiting on that decision)."""
        v = self.vehicle
        if v is None or v.decided is None or v.decided.decision.decision_id != original.decision_id:
            raise OverrideRefused("that vehicle is no longer waiting at this lane")
        record = await self._decide(v, operator=operator, override=(original, reason))
        self.spawn(self._let_through(v, record), "override")
        return record.decision

    # --- the barrier ------------------------------------------------------------------------------------
    async def _let_through(self, v: Vehicle, record: PassageRecord) -> None:
        p = self.points
        if self.config.io in self.device_faults():
            with contextlib.suppress(TimeoutError):
                supervisor = self.hub.drivers[self.config.io].supervisor
                await supervisor.wait_for(State.UP, self.config.confirm_timeout_s)
        if self.config.io in self.device_faults():
            outcome, detail = "withheld", "not opened: the lane's I/O module is not up"
            await self.checker.record_actuation(
                self.name, record.decision, outcome=outcome, output=p.barrier, detail=detail
            )
            await self._gone(record.decision.decision_id)  # not carried out, and never taken up again
            return
        self._tail_cleared = False
        self._tailgated = None
        self._close_now = False
        self._exit_seen = False
        # from the command on, not from the open switch: a vehicle rolling on behind while the arm
        # rises is a tailgater too
        self._barrier_open = True
        try:
            await self.io.set_output(p.barrier, True)
            await self._wait_input(p.barrier_open, True, self.config.confirm_timeout_s)
        except (DeviceError, TimeoutError) as exc:
            why = str(exc) or f"the open switch did not confirm within {self.config.confirm_timeout_s:g} s"
            await self._close_when_clear()
            self._barrier_open = False
            await self.actuation_failed(self.config.io, f"barrier: {why}")
            await self.checker.record_actuation(
                self.name,
                record.decision,
                outcome="failed",
                output=p.barrier,
                detail=f"barrier not confirmed open: {why}",
            )
            return
        self.cycles.append(
            {
                "arrived": v.arrived,
                "weighed": v.weighed_at,
                "decided": v.decided_at,
                "opened": time.monotonic(),
            }
        )
        self.actuation_ok(self.config.io)
        await self.checker.record_actuation(
            self.name,
            record.decision,
            outcome="confirmed",
            output=p.barrier,
            detail="barrier opened (its open switch confirms)",
        )
        try:
            ended = await self._wait_gone(v)
            if not self._exit_seen:
                # the passed vehicle never reached the exit loop: it backed out (even after nosing
                # under the arm), or the lane lost sight of it; the pass was not carried out as far as
                # anyone saw, and central lists it with its parcels as not out
                outcome = "failed" if ended == "io_lost" else "withheld"
                why = {
                    "close_now": f"closed: {self._tailgated}",
                    "io_lost": "the lane's I/O module was lost",
                    "timeout": "the lane emptied",
                }.get(ended, ended)
                await self.checker.record_actuation(
                    self.name,
                    record.decision,
                    outcome=outcome,
                    output=p.barrier,
                    detail=f"the vehicle was not seen at the exit loop ({why})",
                )
            await self._gone(record.decision.decision_id)
        finally:
            await self._close_when_clear()
            self._barrier_open = False
            if self.vehicle is v:
                self.vehicle = None
            self._set(StationState.FAULT if self.device_faults() else StationState.IDLE)

    async def _wait_input(self, point: str, value: bool, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while self._input(point) != value:
                self._lane_changed.clear()
                await self._lane_changed.wait()

    async def _wait_gone(self, v: Vehicle) -> str:
        """Until the vehicle has gone through (the exit loop occupied, then it and the safety loop
        clear: "through"), a tailgater or a reversal ("close_now"), the lane's I/O module is lost
        ("io_lost"), or the lane has been empty past `leave_timeout_s` ("timeout")."""
        p = self.points
        deadline = time.monotonic() + self.config.leave_timeout_s
        while True:
            if self._input(p.exit_loop):
                self._exit_seen = True
            if self._close_now:
                return "close_now"  # close behind whatever is past the arm
            if self._exit_seen and not self._input(p.exit_loop) and not self._input(p.safety_loop):
                return "through"
            if self.config.io in self.device_faults():
                return "io_lost"
            if time.monotonic() > deadline and self._lane_empty_now():
                return "timeout"
            self._lane_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._lane_changed.wait()

    def _lane_empty_now(self) -> bool:
        p = self.points
        return not any(
            self._input(x)
            for x in (p.entry_loop, p.platform_back, p.platform_front, p.safety_loop, p.exit_loop)
        )

    async def _close_when_clear(self) -> None:
        """Drop the open command — never while the safety loop is occupied."""
        while self._input(self.points.safety_loop) and self.config.io not in self.device_faults():
            self._lane_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._lane_changed.wait()
        try:
            await self.io.set_output(self.points.barrier, False)
        except DeviceError as exc:
            await self.actuation_failed(self.config.io, f"barrier not closed: {exc}")

    def _tailgater(self, why: str) -> None:
        self._close_now = True  # the barrier comes down as soon as the safety loop is clear
        self._lane_changed.set()
        if self._tailgated is not None:
            return
        self._tailgated = why
        self.tailgaters += 1
        self.spawn(self._record_tailgater(why), "tailgater")

    async def _record_tailgater(self, why: str) -> None:
        v = Vehicle(arrived=time.monotonic())
        passage = self.passage_of(v, tailgating=True)
        record = await self.gate_checker.decide(self.name, passage, operator=None)
        self.show(record.decision)
        await self.checker.record_actuation(
            self.name,
            record.decision,
            outcome="withheld",
            output=self.points.barrier,
            detail=f"tailgating: {why}; the barrier closes once the safety loop is clear",
        )

    async def barrier_closed(self) -> tuple[str, str]:
        """Read the barrier command back (not what was last written); one that reads open is dropped
        (once the safety loop is clear) and the lane holds."""
        barrier = self.points.barrier
        try:
            if not (await self.io.read_outputs([barrier]))[barrier]:
                return "confirmed", "barrier stays closed: its command read back off"
        except DeviceError as exc:
            await self.actuation_failed(self.config.io, f"barrier: {exc}")
            return "failed", f"barrier not confirmed closed: {exc}"
        await self._close_when_clear()
        await self.actuation_failed(self.config.io, "barrier command read back on")
        return "failed", "barrier command read back on (dropped)"

    async def safe_outputs(self) -> None:
        await self._close_when_clear()

    # --- after a restart ----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Take up this lane's last pass whose vehicle was not seen through (the agent stopped between
        the decision and the vehicle leaving)."""
        row = await asyncio.to_thread(lambda: Store.unfinished_pass(self.checker.store.reader(), self.name))
        if row is not None:
            self.spawn(self._resume(dict(row)), "resume")

    async def _resume(self, row: dict[str, Any]) -> None:
        """The pass is carried out again only for the vehicle it was decided for: one standing wholly
        on the weighbridge at the weight it was decided at (within the lane's tolerance), within
        RESUME_WITHIN_S of the decision. Otherwise it is closed: recorded as not carried out (if the
        barrier never opened for it) and never taken up again. No new passage is made either way."""
        decision = DecisionRecord(
            id=int(row["id"]),
            decision_id=str(row["decision_id"]),
            station=self.name,
            code=row["code"],
            verdict=vr.Verdict.PASS,
            codes=tuple(json.loads(str(row["codes"]))),
            reason=str(row["reason"]),
            weight_kg=Decimal(str(row["weight_kg"])) if row["weight_kg"] is not None else None,
            declared_kg=None,
            evidence=None,
            goods=None,
            created_at=str(row["created_at"]),
        )
        age = (utc_now() - datetime.fromisoformat(str(row["created_at"]))).total_seconds()
        for device in (self.config.io, self.config.scale):  # the lane's own eyes first
            with contextlib.suppress(TimeoutError):
                await self.hub.drivers[device].supervisor.wait_for(State.UP, RESUME_DEVICES_S)
        same = age <= RESUME_WITHIN_S and await self._same_vehicle_on_bridge(decision.weight_kg)
        v = self.vehicle or Vehicle(arrived=time.monotonic())
        if same:
            # and the same vehicle by what identified it: a new plate or card read that matches the
            # decision's (the weight alone would open for another truck as heavy)
            self.vehicle = v
            same = await self._reidentified(v, row.get("plate"), row.get("card"))
        if same:
            record = PassageRecord(decision, None, None, self.passage_of(v))
            v.decided = record
            self.show(decision)
            log.warning(
                "taking up a pass whose vehicle is still on the weighbridge",
                extra={"station": self.name, "decision_id": decision.decision_id},
            )
            await self._let_through(v, record)
            return
        if self.vehicle is v and v.decided is None:
            self.vehicle = None
        if row["actuation"] is None:  # the barrier may have moved for it; nothing confirmed it
            await self.checker.record_actuation(
                self.name,
                decision,
                outcome="failed",
                output=self.points.barrier,
                detail="the agent stopped before the barrier was confirmed open; after the restart that"
                " vehicle was no longer on the weighbridge",
            )
        await self._gone(decision.decision_id)

    async def _reidentified(self, v: Vehicle, plate: str | None, card: str | None) -> bool:
        """Within `resume_read_s`, a live plate read (confident) or card read of `v` that is the
        decision's plate or card."""
        want_plate = vr.normalise_plate(plate) if plate else None
        want_card = vr.normalise_plate(card) if card else None
        threshold = self.config.tolerance.plate_min_confidence
        deadline = time.monotonic() + self.config.resume_read_s
        while (remaining := deadline - time.monotonic()) > 0:
            read_plate = (
                vr.normalise_plate(v.plate) if v.plate and (v.plate_confidence or 0) >= threshold else None
            )
            if want_plate and read_plate == want_plate and len(v.confident_plates) <= 1:
                return True
            if want_card and v.card and vr.normalise_plate(v.card) == want_card:
                return True
            v.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await v.changed.wait()
        return False

    async def _same_vehicle_on_bridge(self, kg: Decimal | None) -> bool:
        """A stable reading of the whole vehicle, as heavy as `kg` within the lane's tolerance."""
        if kg is None or self.scale is None:
            return False
        p = self.points
        with contextlib.suppress(DeviceError):
            reading = await self.scale.wait_stable(self.config.confirm_timeout_s)
            if (
                reading is None
                or reading.kg is None
                or self._input(p.platform_back)
                or self._input(p.platform_front)
            ):
                return False
            t = self.config.tolerance
            allowed = max(t.absolute_kg, kg * t.percent / 100)
            return abs(reading.kg - kg) <= allowed
        return False

    async def _gone(self, decision_id: str) -> None:
        await self.checker.store.write(lambda conn: Store.mark_gone(conn, decision_id, iso_now()))

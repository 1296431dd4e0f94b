"""Conveyor line: photo-eye → tracked parcel → scan + stable weight + camera frame in its own
windows → decision before it reaches the diverter → diverter lane, confirmed, recorded.

Each photo-eye edge opens a tracked parcel (edge/tracking.py): a read, a weight belongs to the
parcel whose window holds its time, never to "the next parcel", so an extra, missed or late read
changes at most the parcels whose windows it touches. The parcel is decided once every window has
closed; the decision (and the events reporting it) commit before any output moves.

The diverter serves one parcel at a time, in photo-eye order: a parcel's lane is written (and read
back) once the parcel before it has passed the diverter, and must be confirmed before the parcel
reaches it; once it has passed (plus `dwell_s`) the lanes return to hold unless the next parcel has
already taken the diverter. What the outputs did is recorded against the decision and reported
(an `actuation` event): confirmed, failed (not confirmed), or withheld (a release not carried out
because a read stamped in the parcel's window arrived after the decision). A lane that cannot be
confirmed puts the station in FAULT (HOLD) and reports DEVICE_FAULT, and the lanes are commanded
to hold at once (the unconfirmed lane may be open). The safe lane is hold.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from devices.events import BarcodeRead, DeviceEvent, InputChanged, NoRead, WeightReading
from devices.health import DeviceError, State
from devices.ports import OutputModule
from edge import loopwatch, rules
from edge.checker import Checker, DecisionRecord
from edge.config import ConveyorStation
from edge.devices import DeviceHub
from edge.stations.base import Station, StationState
from edge.tracking import Outcome, Parcel, Tracker

log = logging.getLogger(__name__)


@dataclass
class Turn:
    """A parcel's place in the diverter's queue."""

    parcel: Parcel
    taken: asyncio.Future[None]  # resolved when this parcel has passed the diverter (or never took it)
    set: asyncio.Future[str | None]  # resolved with its lane once written (or given up: None)
    record: DecisionRecord | None = None
    actuated: bool = False  # its lane has been written (or it was given up)
    off: asyncio.TimerHandle | None = None
    camera: asyncio.Task[tuple[tuple[str, ...], str | None]] | None = None
    withdrawn: bool = False  # its confirmed lane was taken back before it passed (recorded once)
    faults: dict[str, str] = field(default_factory=dict)


class Conveyor(Station):
    kind = "conveyor"
    config: ConveyorStation

    def __init__(self, config: ConveyorStation, hub: DeviceHub, checker: Checker) -> None:
        super().__init__(config, hub, checker)
        self.io: OutputModule = hub.output_module(config.io)  # the photo-eye in, the diverter's lanes out
        self.layout = self.config.tracking.layout()
        self.tracker = Tracker(self.layout, started_at=time.monotonic())
        self.hub.subscribe(self.config.io, self._on_io)
        if self.config.scale is not None:
            self.hub.subscribe(self.config.scale, self._on_scale)
        self.latencies: list[float] = []  # the scan's last byte → diverter confirmed, seconds
        self.decision_latencies: list[float] = []  # the parcel's windows closed → diverter confirmed
        self._turns: dict[int, Turn] = {}  # parcel number → its turn, until it has passed
        self._last_turn: Turn | None = None
        self._owner: Turn | None = None  # the parcel the diverter's lanes are set for
        self._timer: asyncio.TimerHandle | None = None
        self._unwatch: Callable[[], None] | None = None  # the loop's watcher (edge/loopwatch.py)
        self._holds: list[tuple[float, float, str]] = []  # lanes held: (from, until, why)
        self._blocked: tuple[float, str] | None = None  # a jam's hold (from, why), open until the eye clears
        self._eye_lost_at: float | None = None  # the I/O module (so the photo-eye) went away then
        self._started_at = time.monotonic()

    def tracking(self) -> dict[str, object]:
        """The tracking counters, for the API and the overview."""
        return {**dataclasses.asdict(self.tracker.stats), "open": self.tracker.open_parcels}

    async def start(self) -> None:
        """Tracking starts now: nothing read or weighed before the agent started belongs to a parcel."""
        self._started_at = time.monotonic()
        self.tracker = Tracker(self.layout, started_at=self._started_at)
        self._unwatch = loopwatch.watch().subscribe(self.layout.margin_s, self._stalled)

    def _stalled(self, start: float, end: float) -> None:
        log.warning(
            "event loop held up: parcels in their windows are held",
            extra={"station": self.name, "ms": round((end - start) * 1000, 1)},
        )
        self.tracker.stall(start, end)
        if end - start >= self.layout.min_parcel_s:  # long enough to hide a whole parcel
            self._unseen(start, end, f"the agent was held up for {(end - start) * 1000:.0f} ms")

    # --- objects the photo-eye may not have seen ---------------------------------------------------
    def _unseen(self, first: float, last: float, why: str) -> None:
        """Something may have passed the photo-eye unseen between `first` and `last` (a stall hid
        its edges; a stray read is a label no window holds). It is not tracked, so it must not ride
        through an open lane: the lanes are held while it could be at the diverter, and a release
        that would pass the diverter meanwhile is withheld."""
        layout = self.layout
        if layout.diverter is None:
            return
        start = first + layout.diverter.start_s - layout.switch_s - layout.margin_s
        end = last + layout.max_parcel_s + layout.diverter.end_s + layout.margin_s
        now = time.monotonic()
        self._holds = [h for h in self._holds if h[1] > now]
        self._holds.append((start, end, why))
        log.warning(
            "lanes held for an object the photo-eye may not have seen",
            extra={
                "station": self.name,
                "why": why,
                "from_s": round(start - now, 3),
                "for_s": round(end - start, 3),
            },
        )
        asyncio.get_running_loop().call_at(max(start, now), self._enter_hold, start, end, why)

    def _lanes_reset(self, lost: float, now: float) -> None:
        """The module's new session drove every output to its safe value: a lane set for a parcel
        that had not passed the diverter by then (`lost`: the module went away) was not carried
        out, whatever was confirmed before."""
        self._owner = None
        why = "the I/O module's outputs went to their safe values (module lost, then a new session)"
        turns = {id(t): t for t in [*self._turns.values(), *([self._last_turn] if self._last_turn else [])]}
        for turn in turns.values():
            record = turn.record
            if not turn.actuated or record is None or record.verdict == rules.Verdict.HOLD:
                continue
            if self.layout.diverter is not None and self._passage(turn.parcel)[1] > lost:
                self.spawn(self._withdraw(turn, why), "lanes-reset")

    def _jammed(self, parcel: Parcel) -> None:
        """The photo-eye has been blocked longer than any parcel: whatever is under it now (a long
        object, parcels touching it) is not tracked. Hold the lanes from when the first of it could
        reach the diverter until the photo-eye clears and that has passed the diverter too."""
        layout = self.layout
        if layout.diverter is None:
            return
        start = (
            parcel.rise + layout.max_parcel_s + layout.diverter.start_s - layout.switch_s - layout.margin_s
        )
        why = f"the photo-eye blocked for more than {layout.max_parcel_s:g} s after parcel #{parcel.number}"
        self._blocked = (start, why)
        self._holds.append((start, math.inf, why))
        log.warning("photo-eye blocked: lanes held until it clears", extra={"station": self.name})
        asyncio.get_running_loop().call_at(
            max(start, time.monotonic()), self._enter_hold, start, math.inf, why
        )

    def _cleared(self, at: float) -> None:
        """The photo-eye is clear again after a jam: the hold ends once what blocked it has passed."""
        assert self._blocked is not None
        start, why = self._blocked
        self._blocked = None
        layout = self.layout
        assert layout.diverter is not None
        end = at + layout.diverter.end_s + layout.margin_s
        self._holds = [
            (a, end if (a, w) == (start, why) and b == math.inf else b, w) for a, b, w in self._holds
        ]

    def lanes_held_until(self) -> float | None:
        """The end of the last hold for an unseen object (None: none)."""
        return max((b for _, b, _ in self._holds), default=None)

    def _held(self, start: float, end: float) -> str | None:
        """Why the lanes are held during some moment of [start, end], if they are."""
        return next((why for a, b, why in self._holds if a <= end and b >= start), None)

    def _enter_hold(self, start: float, end: float, why: str) -> None:
        owner, self._owner = self._owner, None
        if self._stopping:
            return
        if owner is not None and owner.record is not None and owner.record.verdict == rules.Verdict.RELEASE:
            passing = self._passage(owner.parcel)
            if passing[1] >= start and passing[0] <= end:
                self.spawn(
                    self._withdraw(owner, f"held for an object the photo-eye may not have seen ({why})"),
                    "withdraw",
                )
        self.spawn(self._hold_lane(), "hold-for-unseen")

    async def _withdraw(self, turn: Turn, why: str) -> None:
        """Its lane was confirmed, then the lanes went to hold before it had passed the diverter."""
        assert turn.record is not None
        if turn.withdrawn:
            return
        turn.withdrawn = True
        await self.checker.record_actuation(
            self.name,
            turn.record,
            outcome="withheld",
            output="hold",
            detail=f"the lanes went to hold before it had passed the diverter: {why}",
        )

    def _passage(self, parcel: Parcel) -> tuple[float, float]:
        """When the parcel is at the diverter (its lane must hold from `from - switch_s`)."""
        layout = self.layout
        assert layout.diverter is not None
        start = parcel.rise + layout.diverter.start_s - layout.switch_s
        trailing = parcel.trailing(layout)
        if trailing is None:
            trailing = parcel.rise + layout.max_parcel_s
        return start, trailing + layout.diverter.end_s + layout.margin_s

    def session_began(self, device: str, at: float) -> None:
        if device == self.config.scanner:
            self.tracker.session("scanner", at)
        if device == self.config.scale:
            self.tracker.session("scale", at)

    def _health_changed(self, device: str) -> None:
        previous = self._device_states.get(device)
        super()._health_changed(device)
        if device != self.config.io:
            return
        state, now = self.hub.health(device).state, time.monotonic()
        if state in (State.DOWN, State.STARTING):
            if self._eye_lost_at is None:
                self._eye_lost_at = now
            if self.tracker.lost_eye(now):
                self._reschedule()
        elif state in (State.UP, State.DEGRADED) and previous in (None, State.DOWN, State.STARTING):
            # the photo-eye is read again: whatever passed it meanwhile (or, at start, was already
            # on the belt between it and the diverter) is not tracked and must not ride an open lane
            layout = self.layout
            lost = self._eye_lost_at
            if lost is None and layout.diverter is not None:
                lost = self._started_at - layout.diverter.end_s - layout.max_parcel_s
            self._eye_lost_at = None
            if lost is not None:
                self._lanes_reset(lost, now)
                self._unseen(lost, now, "the photo-eye was not read")

    # --- inputs ------------------------------------------------------------------------------------
    def _on_io(self, event: DeviceEvent) -> None:
        if not (isinstance(event, InputChanged) and event.point == self.config.photo_eye):
            return
        parcel = self.tracker.eye(event.value, event.at)
        if parcel is not None:
            self._opened(parcel)
        elif not event.value and self._blocked is not None:
            self._cleared(event.at)
        self._reschedule()

    def _on_scanner(self, event: DeviceEvent) -> None:
        if isinstance(event, BarcodeRead):
            outcome = self.tracker.read(event.code, event.at)
        elif isinstance(event, NoRead):
            outcome = self.tracker.read(None, event.at)
        else:
            return
        if outcome is Outcome.LATE:
            log.warning(
                "read arrived after its parcel was decided",
                extra={"station": self.name, "code": event.code if isinstance(event, BarcodeRead) else None},
            )
        self._reschedule()

    def _on_scale(self, event: DeviceEvent) -> None:
        if not isinstance(event, WeightReading) or not event.stable or event.kg is None or event.kg <= 0:
            return  # only a stable weight with something on the platform can be a parcel's
        if event.overload or event.underload:
            return
        self.tracker.weight(event.kg, since=event.since if event.since is not None else event.at, at=event.at)

    def _opened(self, parcel: Parcel) -> None:
        self._set(StationState.CHECKING)
        turn = self._turn(parcel)
        if self.config.camera is not None and self.layout.camera_s is not None:
            turn.camera = asyncio.ensure_future(self._look(parcel.rise + self.layout.camera_s, turn.faults))
        self._turns[parcel.number] = turn

    @staticmethod
    def _turn(parcel: Parcel) -> Turn:
        loop = asyncio.get_running_loop()
        return Turn(parcel, loop.create_future(), loop.create_future())

    async def _look(self, at: float, faults: dict[str, str]) -> tuple[tuple[str, ...], str | None]:
        return await self.look(at, faults)

    # --- time ------------------------------------------------------------------------------------
    def _reschedule(self) -> None:
        for stray in self.tracker.take_strays():
            log.warning(
                "stray read: in no parcel's window, not used",
                extra={"station": self.name, "code": stray.code, "strays": self.tracker.stats.strays},
            )
            layout = self.layout
            self._unseen(
                stray.at - layout.scanner.end_s - layout.max_parcel_s - layout.margin_s,
                stray.at - layout.scanner.start_s + layout.margin_s,
                f"stray read {stray.code!r}",
            )
        when = self.tracker.next_event_at()
        if self._timer is not None:
            if when is not None and abs(self._timer.when() - when) < 1e-6:
                return
            self._timer.cancel()
            self._timer = None
        if when is not None:
            self._timer = asyncio.get_running_loop().call_at(when, self._tick)

    def _tick(self) -> None:
        timer, self._timer = self._timer, None
        now = time.monotonic()
        if timer is not None and now - timer.when() > self.layout.margin_s:
            self._stalled(timer.when(), now)  # this very callback was held up: say so before deciding
        for parcel in self.tracker.due(now):
            if parcel.jammed and self._blocked is None:
                self._jammed(parcel)
            turn = self._turns.get(parcel.number) or self._turn(parcel)
            previous, self._last_turn = self._last_turn, turn
            self.spawn(self.parcel(turn, previous), "parcel")
        self._reschedule()

    # --- one parcel ------------------------------------------------------------------------------
    async def parcel(self, turn: Turn, previous: Turn | None) -> DecisionRecord | None:
        """Decide a parcel whose windows have all closed, then drive the diverter for it."""
        closed = time.monotonic()
        parcel, layout = turn.parcel, self.layout
        self._set(StationState.CHECKING)
        faults = dict(turn.faults)
        codes: tuple[str, ...] = ()
        evidence = None
        if turn.camera is not None:
            try:
                async with asyncio.timeout(max(0.0, parcel.deadline(layout) - time.monotonic())):
                    codes, evidence = await asyncio.shield(turn.camera)
            except TimeoutError:
                faults[self.config.camera or "camera"] = "no frame before the diverter"
            faults.update(turn.faults)
        read_notes, weight_notes = parcel.ambiguities(layout)
        faults.update(self.faults_during(parcel.rise - layout.margin_s, closed))
        if time.monotonic() > parcel.deadline(layout):
            faults["deadline"] = "the parcel reached the diverter before it was decided"
        weight: Decimal | None = parcel.weight(layout) if not weight_notes else None
        try:
            record = await self.decide(
                code=parcel.code if not read_notes else None,
                weight=weight,
                camera_codes=codes,
                evidence=evidence,
                faults=faults,
                read_ambiguities=tuple(read_notes),
                weight_ambiguities=tuple(weight_notes),
            )
        except BaseException:
            turn.actuated = True  # nothing to actuate: the lanes go to hold when its turn comes
            self._give_up(turn, previous)
            raise
        turn.record = record
        await self.divert(turn, previous)
        confirmed = time.monotonic()
        if turn.actuated and record.verdict is not None:
            self.decision_latencies.append(confirmed - closed)
            read = next((r for r in parcel.reads if r.code == record.code), None)
            if read is not None:
                self.latencies.append(confirmed - read.at)
        self.show(record)
        return record

    def _give_up(self, turn: Turn, previous: Turn | None) -> None:
        """A parcel that was never decided: it does not hold up the ones after it."""

        async def pass_on() -> None:
            if previous is not None:
                await previous.taken
            if not turn.set.done():
                turn.set.set_result(None)
            self._release_turn(turn)

        self.spawn(pass_on(), "pass-on")

    # --- the diverter ------------------------------------------------------------------------------
    def lane(self, verdict: rules.Verdict) -> str | None:
        d = self.config.diverter
        if verdict == rules.Verdict.RELEASE:
            return d.release
        if verdict == rules.Verdict.INSPECT and d.inspect:
            return d.inspect
        return d.hold

    async def divert(self, turn: Turn, previous: Turn | None) -> None:
        """Set this parcel's lane once the parcel before it has its own (lanes are written in photo-
        eye order); if the lanes differ, only once that parcel has passed the diverter. Confirm the
        lane by read-back before this parcel reaches the diverter, record what happened, and hand
        the diverter on once this parcel has passed."""
        record, parcel = turn.record, turn.parcel
        assert record is not None
        deadline = parcel.deadline(self.layout)
        verdict = record.verdict if isinstance(record.verdict, rules.Verdict) else rules.Verdict.HOLD
        outcome, detail = "confirmed", ""
        target = self.lane(verdict)
        try:
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    if previous is not None:
                        previous_lane = await asyncio.shield(previous.set)
                        if previous_lane != target:  # never switch under the parcel before it
                            await asyncio.shield(previous.taken)
            except TimeoutError:
                if verdict == rules.Verdict.RELEASE:
                    verdict = rules.Verdict.HOLD
                    outcome, detail = "withheld", "the parcel before it was still at the diverter"
            if parcel.vetoed and verdict == rules.Verdict.RELEASE:
                verdict = rules.Verdict.HOLD
                outcome, detail = "withheld", "; ".join(parcel.late_notes)
            held = self._held(*self._passage(parcel)) if self.layout.diverter is not None else None
            if held is not None and verdict == rules.Verdict.RELEASE:
                verdict = rules.Verdict.HOLD
                outcome, detail = (
                    "withheld",
                    f"lanes held for an object the photo-eye may not have seen ({held})",
                )
            target = self.lane(verdict)
            self._owner = turn
            lane_set = target  # the lane the diverter is left in for this parcel
            try:
                confirmation = await self._set_lane(
                    target, deadline=deadline if deadline > time.monotonic() else None
                )
            except DeviceError as exc:
                outcome, detail = "failed", str(exc)
                if target != self.lane(rules.Verdict.HOLD):
                    lane_set = self._hold_now(turn)
                await self.actuation_failed(self.config.io, str(exc))
            else:
                self.actuation_ok(self.config.io)
                if not detail:
                    detail = confirmation
                if time.monotonic() > deadline and outcome == "confirmed":
                    outcome = "failed"
                    detail = f"{detail}, but only after the parcel reached the diverter"
            turn.actuated = True
            if not turn.set.done():
                turn.set.set_result(lane_set)
            await self.checker.record_actuation(
                self.name, record, outcome=outcome, output=target or "hold", detail=detail
            )
        finally:
            if not turn.set.done():
                turn.set.set_result(None)
            self._schedule_release(turn)

    def _hold_now(self, turn: Turn) -> str | None:
        """A lane that could not be confirmed may still be open (the module may have carried the
        write out): the lanes go to hold now, not once the parcel has passed — it must not ride a
        lane it was never confirmed into. Returns the hold lane, the one this parcel is left in (a
        parcel behind it that needs another lane waits until this one has passed)."""
        if self._owner is turn:
            self._owner = None
        self.spawn(self._hold_lane(), "lane-unconfirmed")
        return self.lane(rules.Verdict.HOLD)

    async def _set_lane(self, target: str | None, *, deadline: float | None = None) -> str:
        """Drive the diverter to `target` (None: all lanes off, the hold lane) and say how it was
        confirmed. Off first, then on: never two lanes open at once. A lane not written now is one
        last confirmed off (an output whose command failed is never taken as known); when the target
        is not the release lane, every lane is read back from the module as well. `deadline` (the
        parcel reaches the diverter) bounds the release lane's command: the I/O driver asks a lost
        answer again only while there is time, so a release it cannot confirm by then fails (the
        station's safe path) instead of opening the lane under the parcel; lanes going off are safe
        at any time and keep their whole retry budget."""
        d = self.config.diverter
        lanes = [x for x in (d.release, d.hold, d.inspect) if x]
        written = []
        for lane in lanes:
            if lane != target and self.io.outputs.get(lane, True):
                await self.io.set_output(lane, False)
                written.append(lane)
        if target is not None:
            await self.io.set_output(target, True, deadline=deadline if target == d.release else None)
            written.append(target)
        if target == d.release:
            return f"lane {target} confirmed by read-back; the others off as last confirmed"
        actual = await self.io.read_outputs(lanes)
        wrong = [lane for lane in lanes if actual[lane] != (lane == target)]
        if wrong:
            raise DeviceError(f"lanes read back {actual} for target {target or 'hold (all off)'}")
        return f"lane {target or 'hold (all off)'} confirmed: every lane read back"

    def _schedule_release(self, turn: Turn) -> None:
        """Once the parcel has passed the diverter, the next one may take it; after the dwell the
        lanes go back to hold unless it already has."""
        layout = self.layout
        passed = turn.parcel.passed_at(layout)
        loop = asyncio.get_running_loop()
        if passed is None:  # no diverter position known: hand on at once
            self._release_turn(turn)
            return
        handover = passed - layout.dwell_s
        loop.call_at(handover, self._release_turn, turn)
        turn.off = loop.call_at(passed, self._back_to_hold, turn)

    def _release_turn(self, turn: Turn) -> None:
        if not turn.taken.done():
            turn.taken.set_result(None)
        self._turns.pop(turn.parcel.number, None)

    def _back_to_hold(self, turn: Turn) -> None:
        if self._owner is not turn or self._stopping:
            return  # the next parcel has the diverter now
        self._owner = None
        self.spawn(self._hold_lane(), "dwell-over")

    async def _hold_lane(self) -> None:
        if self._owner is not None:
            return
        try:
            await self._set_lane(self.lane(rules.Verdict.HOLD))
        except DeviceError as exc:  # the lanes may still be open: the station holds and says so
            await self.actuation_failed(self.config.io, f"back to hold: {exc}")

    async def safe_outputs(self) -> None:
        """Every lane off: the parcel goes on to the hold lane."""
        d = self.config.diverter
        for lane in (d.release, d.inspect):
            if lane:
                try:
                    await self.io.set_output(lane, False)
                except DeviceError as exc:
                    await self.actuation_failed(self.config.io, str(exc))

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._unwatch is not None:
            self._unwatch()
        for turn in list(self._turns.values()):
            if turn.camera is not None:
                turn.camera.cancel()
        await super().stop()

"""Parcel tracking on a conveyor line: which read, weight and frame belong to which parcel.

Sorters do not pair "the next read" with "the next parcel": they track each parcel as a position on
the belt. Here the photo-eye's rising edge (the parcel's leading edge) and falling edge (its
trailing edge) open a tracked parcel, and each device sees the parcel during a window that follows
from where the device is: from ``zone.start_s`` after the leading edge passed the photo-eye until
``zone.end_s`` after the trailing edge passed it (both widened by ``margin_s`` for the timestamps'
own uncertainty: the photo-eye is polled, a read is stamped when its last byte reached the agent).
Distances and belt speed become these offsets in the configuration (edge/config.py).

A reading belongs to the parcel whose window holds its time — a weight to the parcel whose window
holds the whole interval over which it was measured. A reading in no window is a stray: counted,
never used. A reading in two windows, two different codes in one window, or stable weights in one
window that disagree make the parcel ambiguous: it is held (AMBIGUOUS_READ). One extra, missing or
late read therefore changes at most the parcels whose windows it touches, never the ones after.

A parcel is decided when every window it has is closed (plus ``settle_s`` for a reading stamped
inside the window to reach the tracker); a read can still be added to a parcel that is decided, if
it was stamped in that parcel's window but arrived late: ``read()`` says so (LATE), so the station
can withhold a release that has not been actuated yet.

Pure: no I/O and no clock; every time is passed in (monotonic seconds).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum


@dataclass(frozen=True)
class Zone:
    """Where a device sees a parcel, as offsets from the parcel passing the photo-eye: from `start_s`
    after its leading edge passed until `end_s` after its trailing edge passed (either may be < 0:
    a device upstream of the photo-eye)."""

    start_s: float
    end_s: float


@dataclass(frozen=True)
class Layout:
    """One conveyor line's geometry in time (edge/config.py builds it from metres or seconds)."""

    scanner: Zone
    scale: Zone | None = None
    camera_s: float | None = None  # the camera's frame is taken this long after the leading edge
    margin_s: float = 0.01  # each window widened by this much at both ends
    settle_s: float = 0.005  # after the last window closed, for readings stamped in it to arrive
    max_parcel_s: float = 2.0  # the photo-eye blocked longer: parcels touching, or a jam
    min_parcel_s: float = 0.0  # the shortest parcel at the photo-eye: a shorter stall cannot hide one
    weight_spread_kg: Decimal = Decimal("0.02")  # stable weights of one parcel may differ this much
    repeat_s: float = 30.0  # a code read for another parcel this recently makes a parcel ambiguous
    diverter: Zone | None = None  # where the diverter acts on a parcel: the decision comes before
    switch_s: float = 0.0  # the diverter's time to change lanes
    dwell_s: float = 0.0  # its lane is kept this long after the parcel has passed it

    def __post_init__(self) -> None:
        for name, value in (("margin_s", self.margin_s), ("settle_s", self.settle_s)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0")
        if not (math.isfinite(self.max_parcel_s) and self.max_parcel_s > 0):
            raise ValueError("max_parcel_s must be finite and > 0")
        for zone in self.zones():
            if not (math.isfinite(zone.start_s) and math.isfinite(zone.end_s)):
                raise ValueError("a zone's offsets must be finite")
            if zone.end_s < zone.start_s:  # a parcel of no length would have an empty window
                raise ValueError("a zone must end no earlier than it starts")

    def zones(self) -> Iterator[Zone]:
        yield self.scanner
        if self.scale is not None:
            yield self.scale

    def longest_decidable_s(self) -> float:
        """The longest parcel (seconds at the photo-eye) decided before it reaches the diverter."""
        if self.diverter is None:
            return math.inf
        closes = max(z.end_s + self.margin_s + max(self.settle_s, self.lookahead_s(z)) for z in self.zones())
        return self.diverter.start_s - self.switch_s - closes

    def lookahead_s(self, zone: Zone) -> float:
        """How long after a reading a parcel whose leading edge has not reached the photo-eye yet may
        still turn out to own it (a device upstream of the eye sees parcels before the eye does)."""
        return max(0.0, self.margin_s - zone.start_s)


class Outcome(StrEnum):
    """What became of one reading."""

    PENDING = "pending"  # kept: its parcel is open (or may not have reached the photo-eye yet)
    LATE = "late"  # stamped in the window of a parcel that was already decided
    STALE = "stale"  # stamped before tracking (or the device's session) began: never used


@dataclass
class Read:
    code: str | None  # None: the scanner's NOREAD frame
    at: float


@dataclass
class Weight:
    kg: Decimal
    since: float  # the measurement's interval: from the request (or the frame's first byte)…
    at: float  # …to the reply


@dataclass
class Parcel:
    """One tracked parcel, from its photo-eye edge to its decision."""

    number: int
    rise: float
    fall: float | None = None
    reads: list[Read] = field(default_factory=list)
    weights: list[Weight] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why it cannot be told apart from another
    weight_notes: list[str] = field(default_factory=list)  # the same, for its weight
    jammed: bool = False  # the photo-eye stayed blocked past max_parcel_s
    decided: bool = False
    late_notes: list[str] = field(default_factory=list)  # reads of its window that came after its decision
    unplaced: list[str] = field(default_factory=list)  # codes in its window that were also in another's

    @property
    def vetoed(self) -> bool:
        """A read stamped in its window arrived after it was decided: a release not yet carried out
        must not be (the decision did not see everything)."""
        return bool(self.late_notes)

    # --- geometry ----------------------------------------------------------------------------------
    def trailing(self, layout: Layout) -> float | None:
        """When the trailing edge passed the photo-eye (None: not yet, and no jam yet)."""
        if self.fall is not None:
            return self.fall
        return self.rise + layout.max_parcel_s if self.jammed else None

    def window(self, zone: Zone, layout: Layout) -> tuple[float, float]:
        """[start, end] in which `zone`'s device sees this parcel; end is +inf while the trailing
        edge has not passed the photo-eye."""
        trailing = self.trailing(layout)
        end = math.inf if trailing is None else trailing + zone.end_s + layout.margin_s
        return self.rise + zone.start_s - layout.margin_s, end

    def closes_at(self, layout: Layout) -> float | None:
        """When every window is closed and whatever was stamped in them has arrived; None while the
        trailing edge is still in front of the photo-eye."""
        trailing = self.trailing(layout)
        if trailing is None:
            return None
        ends = [
            self.window(zone, layout)[1] + max(layout.settle_s, layout.lookahead_s(zone))
            for zone in layout.zones()
        ]
        return max(ends)

    def deadline(self, layout: Layout) -> float:
        """The lane must be confirmed by then: the parcel reaches the diverter (less its switch time)."""
        if layout.diverter is None:
            return math.inf
        return self.rise + layout.diverter.start_s - layout.switch_s

    def passed_at(self, layout: Layout) -> float | None:
        """When the parcel has passed the diverter and its dwell is over (None: length unknown yet)."""
        trailing = self.trailing(layout)
        if trailing is None or layout.diverter is None:
            return None
        return trailing + layout.diverter.end_s + layout.margin_s + layout.dwell_s

    def jam_at(self, layout: Layout) -> float | None:
        return self.rise + layout.max_parcel_s if self.fall is None and not self.jammed else None

    # --- what it was seen as -----------------------------------------------------------------------
    @property
    def codes(self) -> tuple[str, ...]:
        """The distinct codes read in its window, in the order first read."""
        return tuple(dict.fromkeys(r.code for r in self.reads if r.code is not None))

    @property
    def code(self) -> str | None:
        """The one code read, or None (no read, or several: see `ambiguities`)."""
        codes = self.codes
        return codes[0] if len(codes) == 1 else None

    def weight(self, layout: Layout) -> Decimal | None:
        """Its stable weight: the last one measured in its window, if they all agree."""
        if not self.weights or self.weight_conflict(layout):
            return None
        return self.weights[-1].kg

    def weight_conflict(self, layout: Layout) -> str | None:
        kgs = [w.kg for w in self.weights]
        if kgs and max(kgs) - min(kgs) > layout.weight_spread_kg:
            shown = ", ".join(dict.fromkeys(format(k, "f") for k in kgs))
            return f"stable weights in one window disagree: {shown} kg"
        return None

    def ambiguities(self, layout: Layout) -> tuple[list[str], list[str]]:
        """(about its reads, about its weight): why this parcel cannot be told apart from another."""
        reads = list(self.notes)
        if len(self.codes) > 1:
            reads.append("codes read in one window: " + ", ".join(repr(c) for c in self.codes))
        if self.jammed:
            reads.append(
                f"photo-eye blocked for more than {layout.max_parcel_s:g} s: parcels touching, or a jam"
            )
        weights = list(self.weight_notes)
        conflict = self.weight_conflict(layout)
        if conflict:
            weights.append(conflict)
        return reads, weights


@dataclass
class TrackingStats:
    """Counters for /api/status and the overview."""

    parcels: int = 0
    decided: int = 0
    strays: int = 0  # reads in no parcel's window: never used
    stray_noreads: int = 0  # the scanner's NOREAD frames in no window
    ambiguous_reads: int = 0  # reads that fell in two windows
    ambiguous_weights: int = 0  # weights that could belong to two parcels
    late: int = 0  # reads that arrived after the parcel whose window holds them was decided
    stalls: int = 0  # times the agent did not read its devices for longer than margin_s
    stale: int = 0  # readings stamped before tracking or the device's session began
    jams: int = 0
    last_stray: str | None = None


class Tracker:
    """The parcels of one conveyor line. Feed it `eye()`, `read()` and `weight()` as they come;
    call `due(now)` when `next_event_at()` has come for the parcels that are ready to be decided."""

    # decided parcels kept to judge late or two-window reads against, and readings kept for parcels
    # that may still claim them, are dropped once this far behind every window that could use them
    def __init__(self, layout: Layout, *, started_at: float) -> None:
        self.layout = layout
        self.stats = TrackingStats()
        self._started = started_at
        self._sessions: dict[str, float] = {}  # device role → its session's start
        self._open: deque[Parcel] = deque()  # in photo-eye order, not yet decided
        self._decided: deque[Parcel] = deque()  # recently decided, for late and ambiguous reads
        self._reads: deque[Read] = deque()  # not yet claimed by a parcel (or not yet known stray)
        self._weights: deque[Weight] = deque()
        self._placed: dict[str, tuple[int, float]] = {}  # code → (parcel, when) within repeat_s
        self._stalls: deque[tuple[float, float]] = deque(maxlen=64)
        self._new_strays: deque[Read] = deque(maxlen=100)  # for the caller to log: take_strays()
        self._numbers = 0

    # --- input ------------------------------------------------------------------------------------
    def session(self, device: str, started_at: float) -> None:
        """`device` ("scanner" or "scale") began a new session: nothing it stamped before counts."""
        self._sessions[device] = started_at

    def _stale(self, device: str, at: float) -> bool:
        if at < self._started or at < self._sessions.get(device, -math.inf):
            self.stats.stale += 1
            return True
        return False

    def eye(self, blocked: bool, at: float) -> Parcel | None:
        """A photo-eye edge: the leading edge opens a parcel (returned), the trailing edge sets its
        length. A trailing edge with no parcel in front of the eye (the agent started with the eye
        blocked) is ignored: that parcel's leading edge was never seen, so none of its readings can
        be placed, and its reads become strays."""
        last = self._open[-1] if self._open else None
        in_front = last is not None and last.fall is None and not last.jammed
        if not blocked:
            if in_front:
                assert last is not None
                last.fall = max(at, last.rise)
            return None
        if in_front:  # two leading edges in a row: the trailing edge between them was not seen
            assert last is not None
            last.fall = max(at, last.rise)
            last.notes.append("the photo-eye's trailing edge was not seen: its length is unknown")
        self._numbers += 1
        self.stats.parcels += 1
        parcel = Parcel(number=self._numbers, rise=at)
        self._open.append(parcel)
        self._forget(at)
        return parcel

    def lost_eye(self, at: float) -> list[Parcel]:
        """The photo-eye can no longer be read (its I/O module is down): a parcel in front of it
        gets its trailing edge now, so it is decided (and held: the station knows the module was
        down) instead of waiting for an edge nobody will see."""
        cut = []
        for parcel in self._open:
            if parcel.fall is None and not parcel.jammed:
                parcel.fall = max(at, parcel.rise)
                cut.append(parcel)
        return cut

    def stall(self, start: float, end: float) -> None:
        """The agent did not run between `start` and `end` (its event loop was held up longer than
        margin_s): whatever its devices sent meanwhile was stamped when it ran again, so no reading
        of that time can be placed. Every parcel whose windows meet the stall is ambiguous; one
        already decided has its release withheld if it has not been carried out."""
        if end - start <= self.layout.margin_s:
            return
        self.stats.stalls += 1
        self._stalls.append((start, end))
        note = f"the agent was held up for {(end - start) * 1000:.0f} ms during its windows"
        for parcel in self._decided:
            if self._meets(parcel, start, end):
                parcel.late_notes.append(note)

    def _meets(self, parcel: Parcel, start: float, end: float) -> bool:
        after = end + self.layout.settle_s  # what was held up is stamped just after the stall
        return any(_overlaps(start, after, parcel.window(z, self.layout)) for z in self.layout.zones())

    def read(self, code: str | None, at: float) -> Outcome:
        """A scanner frame (`code` None: its NOREAD)."""
        if self._stale("scanner", at):
            return Outcome.STALE
        read = Read(code, at)
        late = [p for p in self._decided if _inside(at, p.window(self.layout.scanner, self.layout))]
        if late:
            self.stats.late += 1
            for parcel in late:
                parcel.late_notes.append(f"read {code!r} stamped in its window arrived after the decision")
            return Outcome.LATE
        self._reads.append(read)
        self._forget(at)
        return Outcome.PENDING

    def weight(self, kg: Decimal, *, since: float, at: float) -> Outcome:
        """A stable weight with something on the platform, measured over [since, at]."""
        if self.layout.scale is None:
            return Outcome.STALE
        if self._stale("scale", since):
            return Outcome.STALE
        self._weights.append(Weight(kg, min(since, at), at))
        self._forget(at)
        return Outcome.PENDING

    # --- output -----------------------------------------------------------------------------------
    def next_event_at(self) -> float | None:
        """When `due()` next has something to do: a parcel closing, or a photo-eye jam limit."""
        times = []
        for parcel in self._open:
            closes = parcel.closes_at(self.layout)
            times.append(closes if closes is not None else parcel.jam_at(self.layout))
        found = [t for t in times if t is not None]
        return min(found) if found else None

    def due(self, now: float) -> list[Parcel]:
        """The parcels ready to be decided at `now`, in photo-eye order, with their readings placed."""
        layout = self.layout
        for parcel in self._open:
            jam = parcel.jam_at(layout)
            if jam is not None and now >= jam:
                parcel.jammed = True
                self.stats.jams += 1
        ready: list[Parcel] = []
        while self._open:
            closes = self._open[0].closes_at(layout)
            if closes is None or now < closes:
                break
            ready.append(self._open.popleft())
        if not ready:
            self._forget(now)
            return []
        everyone = [*self._decided, *ready, *self._open]
        for parcel in ready:
            self._place(parcel, everyone)
            parcel.decided = True
            self.stats.decided += 1
            self._decided.append(parcel)
        self._forget(now)
        return ready

    def take_strays(self) -> list[Read]:
        """Reads found to lie in no parcel's window since the last call (to be logged)."""
        out = list(self._new_strays)
        self._new_strays.clear()
        return out

    @property
    def open_parcels(self) -> int:
        return len(self._open)

    # --- placing readings --------------------------------------------------------------------------
    def _place(self, parcel: Parcel, everyone: list[Parcel]) -> None:
        layout = self.layout
        for start, end in self._stalls:
            if self._meets(parcel, start, end):
                parcel.notes.append(
                    f"the agent was held up for {(end - start) * 1000:.0f} ms during its windows"
                )
        scanner = parcel.window(layout.scanner, layout)
        for read in self._reads:
            if not _inside(read.at, scanner):
                continue
            if read.code is None:  # a NOREAD claims no parcel: it is never ambiguous
                parcel.reads.append(read)
                continue
            others = [
                p for p in everyone if p is not parcel and _inside(read.at, p.window(layout.scanner, layout))
            ]
            if others:
                names = ", ".join(f"#{p.number}" for p in others)
                parcel.notes.append(f"read {read.code!r} also in the window of parcel {names}")
                self.stats.ambiguous_reads += 1
                parcel.unplaced.append(read.code)
            else:
                parcel.reads.append(read)
        self._repeats(parcel)
        if layout.scale is None:
            return
        scale = parcel.window(layout.scale, layout)
        for weight in self._weights:
            if not _overlaps(weight.since, weight.at, scale):
                continue
            others = [
                p
                for p in everyone
                if p is not parcel and _overlaps(weight.since, weight.at, p.window(layout.scale, layout))
            ]
            if others:
                names = ", ".join(f"#{p.number}" for p in others)
                parcel.weight_notes.append(
                    f"weight {format(weight.kg, 'f')} kg could belong to parcel {names} too"
                )
                self.stats.ambiguous_weights += 1
            else:
                parcel.weights.append(weight)

    def _repeats(self, parcel: Parcel) -> None:
        """A code read for another parcel not long ago is a second label, a label lying on the belt
        or a re-read of the other one's: either way it does not tell this parcel apart. Codes read in
        this parcel's window that could not be placed (also in another's) are remembered as well:
        that label was on the belt just now, whatever parcel it was on."""
        for code in dict.fromkeys([*parcel.codes, *parcel.unplaced]):
            before = self._placed.get(code)
            if before is not None and before[0] != parcel.number:
                number, when = before
                parcel.notes.append(
                    f"code {code!r} was read for parcel #{number} {parcel.rise - when:.1f} s before"
                )
            self._placed.pop(code, None)  # re-inserted last: the dict stays in placement order
            self._placed[code] = (parcel.number, parcel.rise)

    def _forget(self, now: float) -> None:
        """Drop what no parcel can use any more; reads that no window ever held are strays."""
        layout = self.layout
        # a reading older than the horizon lies before the window of every parcel still open or to come
        first = min(self._open[0].rise, now) if self._open else now
        horizon_reads = first + layout.scanner.start_s - layout.margin_s
        while self._reads and self._reads[0].at < horizon_reads:
            read = self._reads.popleft()
            if not any(_inside(read.at, p.window(layout.scanner, layout)) for p in self._decided):
                if read.code is None:
                    self.stats.stray_noreads += 1
                else:
                    self.stats.strays += 1
                    self.stats.last_stray = read.code
                    self._new_strays.append(read)
        if layout.scale is not None:
            horizon_weights = first + layout.scale.start_s - layout.margin_s
            while self._weights and self._weights[0].at < horizon_weights:
                self._weights.popleft()  # between parcels the scale weighs nothing of interest
        while self._placed:  # insertion order is placement order: the oldest first
            code, (_, when) = next(iter(self._placed.items()))
            if when >= now - layout.repeat_s:
                break
            del self._placed[code]
        # a decided parcel matters while a new reading could still be stamped inside its windows
        keep_after = now - max(layout.lookahead_s(z) for z in layout.zones()) - 1.0
        while self._decided and (self._decided[0].closes_at(layout) or now) < keep_after:
            self._decided.popleft()


def _inside(at: float, window: tuple[float, float]) -> bool:
    return window[0] <= at <= window[1]


def _overlaps(since: float, at: float, window: tuple[float, float]) -> bool:
    return since <= window[1] and at >= window[0]

"""The pass decision for one vehicle at a vehicle gate (卡口) lane: pure rules over what the lane read,
the release note (核放单, shaped after SAS121) the edge holds and its records of the note's inventories.

DESIGN.md §4 "vehicle gate": a vehicle leaves with a release note central approved, listing the released
inventories it carries; the lane checks plate, electronic plate or IC card, weighbridge gross − (tare +
frame + container) against the note, container number (ISO 6346) and seal. The barrier opens (PASS) only
if exactly one usable note is found for the vehicle, it is genuine (signature), for this park, not older
than a version of it already seen, approved for this gate (status "1"; "3" at the second gate of a
dual-gate park), in the lane's direction and not used here before; the plate matches (and the card, when
the note carries one and the lane has a reader), the weight is within tolerance, the container matches,
a seal was read where one is required, every inventory is releasable (known, 800, not cancelled, genuine,
this park's, current), released by the line and not already out; no second vehicle came into the lane,
no device is down and the cache is fresh. Anything else is a STOP with a code.

Same shape as edge/rules.py, for the same reason (the rules are the legal heart, testable with no
devices, database or clock): one ``rule_*`` function per discrepancy, ``RULES`` in reporting order,
``decide`` runs every rule (a vehicle with three problems reports all three) and ``Decision.checked``
records what was compared. A note that is missing, ambiguous, fails its signature, is another park's or
is older than a version seen is not evidence: the rules that read it stay silent, and the rule that
said why stops the vehicle.

Models chosen here (the caller fills them from the cache, the ledgers and the lane's devices):

- One note, one vehicle, one passage per gate. SAS121 carries one ``vehicleNo`` and per-note weights, so
  "one declaration, many vehicles" (bind type 3) is several notes, one per vehicle, each listing what
  that vehicle carries and weighs. The vehicle that passes a note closes it (at this gate stage);
  whether the *declaration* is then fully out is central's reconciliation, not the lane's.
  ``NoteFacts.earlier_passages`` is the edge's own count of vehicles it let through this gate stage on
  the note: not zero means the note is used, whatever central's status still says after days offline.
- Dual gate: the first gate takes status "1", the second "3" (customs's receipt of the first passage).
  "1" at a second gate, "3" or an earlier passage at a first gate, "3" at a single gate: WRONG_GATE_ORDER.
- Candidates: the notes the caller's lookup found for the plate or card read. Exactly one is the note;
  several are AMBIGUOUS_NOTE, whatever their statuses: choosing among them here would let a change that
  makes one note worse (deleted, passed) release the vehicle on another, so adding a fault could turn a
  STOP into a PASS. The lookup leaves out the notes it knows are finished when it has a live one.
- Weight: expected gross = tare + frame + container + goods (SAS ``totalWt``; an empty-vehicle note,
  type 6, expects no goods). The goods weighed are gross − (tare + frame + container); their difference
  from the note's goods equals gross − expected gross. Allowed = max(absolute_kg, percent % of the
  expected gross): percent of the whole load, not of the goods, because a weighbridge's error grows with
  what stands on it (an empty vehicle would otherwise get no percent at all). Inclusive at the edge.
- A read that is missing because its device is down (plate camera, card reader, container camera, seal
  reader) is that device's DEVICE_FAULT, not a mismatch; a read that was taken is always compared.

Stops come in two classes (``Code.stop_class``). Customs stops are never overridden: anything about
the note's validity or use, the vehicle's identity, the inventories, the container, the seal,
tailgating, signatures and the cache's age. Operational stops may be overridden by a supervisor with a
reason, each only while what it failed to show is shown otherwise (``Finding.override_refused`` says
why not, ``overridable`` answers for a whole decision):

- WEIGHT_OUT_OF_TOLERANCE: while the difference is within ``GateTolerance.override_limit`` (none
  configured: never). An empty vehicle too heavy is EMPTY_VEHICLE_NOT_EMPTY, a customs stop.
- NO_WEIGHT: never. The weight is the only measured evidence of what the vehicle carries: the seal ids
  and the container's tare are what the enterprise typed on its note, so a seal read proves nothing a
  cut weighbridge cable did not hide (found by the outside attack). A vehicle not fully on a working
  bridge weighs again; a weight from another bridge is a new passage, not an override.
- DEVICE_FAULT, per device down: the card reader while the plate read matched; the plate camera while
  the card read matched; the seal reader when the note requires no seal. The weighbridge never. Any
  other device (container camera, position sensors, barrier, safety loop, names
  this module does not know) is never overridden: it is the only evidence of something, or safety.

So a supervisor can never release a vehicle whose note is not approved, genuine, current and this
park's, or whose inventories are not all releasable, released by the line and still in the park.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.rules import age_words, fresh
from kernel import containers
from kernel.plates import normalise_plate
from kernel.status import ClearanceStatus

__all__ = [
    "RULES",
    "Code",
    "Decision",
    "Device",
    "Finding",
    "GateCache",
    "GateTolerance",
    "InventoryFacts",
    "NoteFacts",
    "Passage",
    "Rule",
    "StopClass",
    "Verdict",
    "WeightLimit",
    "allowed_difference",
    "decide",
    "explain",
    "normalise_plate",
    "overridable",
    "override_refusal",
    "rule_card",
    "rule_container",
    "rule_devices",
    "rule_direction",
    "rule_inventory_out",
    "rule_inventory_releasable",
    "rule_note",
    "rule_park",
    "rule_plate",
    "rule_released_by_line",
    "rule_rollback",
    "rule_seal",
    "rule_signature",
    "rule_staleness",
    "rule_status",
    "rule_tailgating",
    "rule_weight",
]


class Verdict(StrEnum):
    """Barrier opens (PASS) or stays closed (STOP)."""

    PASS = "PASS"
    STOP = "STOP"


class StopClass(StrEnum):
    """Customs stops are never overridden; operational ones may be, within their conditions."""

    CUSTOMS = "customs"
    OPERATIONAL = "operational"


class Code(StrEnum):
    """Why a vehicle stops. Every code is a STOP; ``stop_class`` says whether it may be overridden.

    NOTE_DELETED_OR_VOIDED is not folded into NOTE_NOT_APPROVED: the driver's next step differs (a new
    note, not waiting for approval), and a dead note presented at the gate is worth central's notice.
    """

    NO_NOTE = "NO_NOTE"
    AMBIGUOUS_NOTE = "AMBIGUOUS_NOTE"
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    FOREIGN_PARK = "FOREIGN_PARK"
    ROLLED_BACK = "ROLLED_BACK"
    NOTE_NOT_APPROVED = "NOTE_NOT_APPROVED"
    NOTE_DELETED_OR_VOIDED = "NOTE_DELETED_OR_VOIDED"
    NOTE_ALREADY_PASSED = "NOTE_ALREADY_PASSED"
    WRONG_GATE_ORDER = "WRONG_GATE_ORDER"
    DIRECTION_MISMATCH = "DIRECTION_MISMATCH"
    PLATE_MISMATCH = "PLATE_MISMATCH"
    CARD_MISMATCH = "CARD_MISMATCH"
    NO_WEIGHT = "NO_WEIGHT"
    WEIGHT_OUT_OF_TOLERANCE = "WEIGHT_OUT_OF_TOLERANCE"
    EMPTY_VEHICLE_NOT_EMPTY = "EMPTY_VEHICLE_NOT_EMPTY"
    CONTAINER_MISMATCH = "CONTAINER_MISMATCH"
    SEAL_MISSING = "SEAL_MISSING"
    INVENTORY_NOT_RELEASABLE = "INVENTORY_NOT_RELEASABLE"
    NOT_RELEASED_BY_LINE = "NOT_RELEASED_BY_LINE"
    INVENTORY_ALREADY_OUT = "INVENTORY_ALREADY_OUT"
    TAILGATING = "TAILGATING"
    STALE_CACHE = "STALE_CACHE"
    DEVICE_FAULT = "DEVICE_FAULT"

    @property
    def stop_class(self) -> StopClass:
        return StopClass.OPERATIONAL if self in _OPERATIONAL else StopClass.CUSTOMS


_OPERATIONAL = frozenset({Code.NO_WEIGHT, Code.WEIGHT_OUT_OF_TOLERANCE, Code.DEVICE_FAULT})


class Device(StrEnum):
    """Device roles a lane reports in ``Passage.device_faults`` whose fault this module reasons about.

    Any other name (barrier, safety loop, position sensors, …) is a device whose fault stops the
    vehicle and is never overridden."""

    PLATE_CAMERA = "plate_camera"
    CARD_READER = "card_reader"
    WEIGHBRIDGE = "weighbridge"
    CONTAINER_CAMERA = "container_camera"
    SEAL_READER = "seal_reader"


# --- screen texts ---------------------------------------------------------------------------------

# Per code, templates from the most specific to the generic one; ``explain`` picks the first whose
# placeholders are all given. Short: a driver reads them on a lane display from the cab.
_TEXTS: dict[Code, tuple[str, ...]] = {
    Code.NO_NOTE: ("No release note for {vehicle}", "No release note for this vehicle"),
    Code.AMBIGUOUS_NOTE: (
        "{count} release notes match: see the office",
        "Several notes match: see the office",
    ),
    Code.SIGNATURE_INVALID: ("Release note not genuine: see the office",),
    Code.FOREIGN_PARK: ("Release note is for park {park}", "Release note is for another park"),
    Code.ROLLED_BACK: ("Old copy of note: v{version}, v{seen} seen", "Old copy of the release note"),
    Code.NOTE_NOT_APPROVED: ("Note {note} not approved (status {status})", "Release note not approved"),
    Code.NOTE_DELETED_OR_VOIDED: ("Note {note} deleted or voided", "Release note deleted or voided"),
    Code.NOTE_ALREADY_PASSED: ("Note {note} already used", "Release note already used"),
    Code.WRONG_GATE_ORDER: ("Wrong gate: {why}", "Wrong gate order"),
    Code.DIRECTION_MISMATCH: ("Note is for {direction}: wrong lane", "Note is for the other direction"),
    Code.PLATE_MISMATCH: ("Plate {read}: note says {plate}", "Plate not read: {why}", "Plate does not match"),
    Code.CARD_MISMATCH: ("Card {read} is not the note's card", "Card not read: {why}", "Card does not match"),
    Code.NO_WEIGHT: ("No stable weight: {why}", "No stable weight: stay on the weighbridge"),
    Code.WEIGHT_OUT_OF_TOLERANCE: (
        "Weighs {weighed} kg, note {expected} ±{allowed} kg",
        "Weight does not match the note",
    ),
    Code.EMPTY_VEHICLE_NOT_EMPTY: ("Empty vehicle {excess} kg too heavy", "Empty vehicle is not empty"),
    Code.CONTAINER_MISMATCH: ("Container: {why}", "Container does not match the note"),
    Code.SEAL_MISSING: ("Customs seal required: none read",),
    Code.INVENTORY_NOT_RELEASABLE: (
        "{count} declaration(s) not cleared: {invt}",
        "Goods not cleared by customs",
    ),
    Code.NOT_RELEASED_BY_LINE: (
        "{count} declaration(s) not released by line: {invt}",
        "Goods not released by the line",
    ),
    Code.INVENTORY_ALREADY_OUT: ("{count} declaration(s) already out: {invt}", "Goods already left the park"),
    Code.TAILGATING: ("Second vehicle in the lane: one at a time",),
    Code.STALE_CACHE: ("Note list out of date ({age})", "Note list out of date"),
    Code.DEVICE_FAULT: ("Device fault: {device}", "Device fault"),
}


def explain(code: Code, /, **facts: object) -> str:
    """Plain words for a code, with the facts filled in when given; the generic line otherwise (an HMI
    may call this with just the code it got over MQTT)."""
    templates = _TEXTS[Code(code)]
    for template in templates:
        try:
            return template.format_map(facts)
        except (KeyError, IndexError, ValueError):
            continue
    return templates[-1]


# --- inputs ---------------------------------------------------------------------------------------

# Every input model is frozen and forbids unknown fields: a misspelt fault flag must not vanish.

# A declared or configured weight: finite, ≥ 0, at most five decimals (SAS121's N19,5) and far above
# any road vehicle at most, which keeps every sum and product of them exact in ``_CTX``.
Kg = Annotated[Decimal, Field(ge=0, le=1_000_000, max_digits=19, decimal_places=5)]
Percent = Annotated[Decimal, Field(ge=0, le=100, max_digits=8, decimal_places=5)]


class WeightLimit(BaseModel):
    """How far the weighbridge may read from the expected gross: max(absolute_kg, percent % of it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    absolute_kg: Kg
    percent: Percent = Field(description="% of the expected gross weight")


class GateTolerance(BaseModel):
    """A park's vehicle-gate configuration.

    ``absolute_kg``/``percent``: the weight tolerance (``WeightLimit``); set it no tighter than the
    weighbridge's in-service error, or honest vehicles stop. ``override_limit``: how far beyond that a
    supervisor may still release a vehicle as "slightly out" (fuel, rain, a pallet); None: weight is
    never overridden. It must be at least the tolerance. ``plate_min_confidence``: a plate read with a
    confidence below this (0–1; 0.9 by default, where recognition cameras start confusing 8/B and 0/D)
    counts as not read; so does a read with no, a non-finite or an out-of-range confidence.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    absolute_kg: Kg
    percent: Percent = Field(description="% of the expected gross weight")
    override_limit: WeightLimit | None = None
    plate_min_confidence: float = Field(0.9, ge=0, le=1)

    @property
    def limit(self) -> WeightLimit:
        return WeightLimit(absolute_kg=self.absolute_kg, percent=self.percent)

    @model_validator(mode="after")
    def _override_not_tighter(self) -> GateTolerance:
        o = self.override_limit
        if o is not None and (o.absolute_kg < self.absolute_kg or o.percent < self.percent):
            raise ValueError("override_limit must be at least the tolerance (absolute_kg and percent)")
        return self


class NoteFacts(BaseModel):
    """A release note as the edge's cache holds it, plus the edge's own facts about it.

    ``signature_valid``: the caller's check of central's signature; ``newest_version_seen``: the highest
    version of this note the edge ever stored (None: no mark, which a cached note must have).
    ``earlier_passages``: vehicles the edge's gate records already let through on this note at the
    lane's gate stage (single, first or second gate) — the note is used once per stage.
    ``status`` is SAS ``stucd``: 0 applied, 1 approved, 2 passed, 3/4 passed first/second gate, 5
    deleted, 6 voided. ``note_type`` 6 is an empty vehicle (no goods, no inventories). A field whose
    forgotten value would let a vehicle through (seal, card, inventories) has no default.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    note_no: str = Field(description="enterprise note number (etpsPreentNo)")
    passport_no: str | None = Field(None, description="customs note number (passportNo), once assigned")
    park_id: str
    version: int
    newest_version_seen: int | None
    signature_valid: bool
    earlier_passages: int = Field(ge=0)
    status: str
    note_type: Literal[1, 2, 3, 4, 5, 6]
    bind_type: Literal[1, 2, 3] | None = None
    direction: Literal["I", "E"]
    plate: str = Field(description="vehicleNo")
    ic_card: str | None = Field(description="vehicleIcNo: electronic plate or IC card")
    vehicle_tare_kg: Kg = Field(description="vehicleWt")
    frame_kg: Kg = Field(Decimal(0), description="vehicleFrameWt")
    container_no: str | None = None
    container_type: str | None = Field(None, description="containerType, ISO 6346 size-type (22G1 …)")
    container_kg: Kg = Field(Decimal(0), description="containerWt")
    goods_gross_kg: Kg = Field(Decimal(0), description="totalGrossWt")
    seal_required: bool
    seal_ids: tuple[str, ...] = Field(
        (), description="the electronic seals the note names (Bondgate's sealNo): each must be read"
    )
    inventories: tuple[str, ...] = Field(description="invtNo of every inventory the vehicle carries")


class InventoryFacts(BaseModel):
    """One inventory of the note, as the clearance cache and the edge's ledgers know it.

    ``known`` False: not in the clearance cache (then nothing else here is evidence).
    ``released_by_line``: the edge's release ledger holds a RELEASE decision for it in this park;
    ``passed_gate``: it already left through the gate on another passage. Defaults are the unsafe-to-
    pass values; ``cancelled`` and ``passed_gate`` have none.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    invt_no: str
    known: bool
    status: str | None = None
    cancelled: bool
    signature_valid: bool = False
    park_id: str | None = None
    version: int | None = None
    newest_version_seen: int | None = None
    released_by_line: bool = False
    passed_gate: bool


class GateCache(BaseModel):
    """What the edge's cache holds for this vehicle, looked up at decision time.

    ``candidates``: the notes held for the plate or card read that could be meant now (the lookup is
    the caller's: it leaves out notes finished by status or by its own passages when a live one exists);
    ``inventories``: the facts for every invtNo the candidate notes list (a missing one is unknown;
    several entries for one invtNo must all be good). ``last_sync_age_s`` None: no sync is known.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    park_id: str = Field(description="the park this edge serves")
    candidates: tuple[NoteFacts, ...]
    inventories: tuple[InventoryFacts, ...] = ()
    last_sync_age_s: float | None
    staleness_limit_s: float


class Passage(BaseModel):
    """What the lane collected for one vehicle.

    ``gross_kg`` None: no stable whole-vehicle reading; NaN, infinities, zero and negatives count as
    none. ``plate_confidence`` is 0–1. ``containers``: numbers read (front/back, may be empty), raw;
    ``seals``: electronic seal ids read. ``device_faults``: names of devices down during the passage
    (``Device`` roles are understood; any other name is never overridden). ``tailgating``: a second
    vehicle entered the lane during the passage; it and ``device_faults`` have no default.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    direction: Literal["I", "E"]
    gate: Literal["single", "first", "second"]
    plate: str | None
    plate_confidence: float | None
    card: str | None = None
    card_reader_configured: bool
    gross_kg: Decimal | None = Field(allow_inf_nan=True)
    containers: tuple[str, ...] = ()
    container_types: tuple[str, ...] = Field(
        (), description="the size-type codes recognition read off the boxes, when it reads them"
    )
    seals: tuple[str, ...] = ()
    device_faults: tuple[str, ...]
    tailgating: bool


# --- outputs --------------------------------------------------------------------------------------


class Finding(BaseModel):
    """One discrepancy: its code, the exact facts, the screen line, and why it may not be overridden
    (None: a supervisor may override it with a reason)."""

    model_config = ConfigDict(frozen=True)

    code: Code
    detail: str
    text: str
    override_refused: str | None


class Decision(BaseModel):
    """The verdict, every applicable code once in rule order, and what was checked."""

    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    codes: tuple[Code, ...]
    findings: tuple[Finding, ...]
    reason: str
    checked: dict[str, Any] = Field(description="JSON-ready facts the decision was based on")


Rule = Callable[[Passage, GateCache, GateTolerance], list[Finding]]

_CUSTOMS_REFUSAL = "customs stop: never overridden"


def _finding(code: Code, detail: str, refused: str | None = None, /, **facts: object) -> Finding:
    """A finding; a customs code is always refused, whatever the rule says."""
    if code.stop_class is StopClass.CUSTOMS:
        refused = _CUSTOMS_REFUSAL
    return Finding(code=code, detail=detail[:2000], text=explain(code, **facts), override_refused=refused)


# --- helpers --------------------------------------------------------------------------------------

# Decimal arithmetic in its own context: independent of the caller's, exact for every declared weight
# (bounded above), and never trapping on an absurd measured one.
_CTX = Context(prec=60, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[])


def _selected(cache: GateCache) -> NoteFacts | None:
    """The note: the only candidate."""
    return cache.candidates[0] if len(cache.candidates) == 1 else None


def _genuine(cache: GateCache) -> NoteFacts | None:
    note = _selected(cache)
    return note if note is not None and note.signature_valid else None


def _trusted(cache: GateCache) -> NoteFacts | None:
    """The note only when it can be relied on: selected, genuine, this park's, not rolled back."""
    note = _genuine(cache)
    if note is None or note.park_id != cache.park_id:
        return None
    seen = note.newest_version_seen
    return note if seen is not None and note.version >= seen else None


def _down(passage: Passage) -> frozenset[str]:
    return frozenset(name.strip() for name in passage.device_faults)


def _plate_read(passage: Passage, tol: GateTolerance) -> tuple[str | None, str]:
    """The plate read, normalised, when it counts; else None and why not."""
    raw = passage.plate
    plate = normalise_plate(raw) if raw is not None else ""
    if not plate:
        return None, "no read"
    confidence = passage.plate_confidence
    if confidence is None or not math.isfinite(confidence) or not 0 <= confidence <= 1:
        return None, f"confidence {confidence!r} unusable"
    if confidence < tol.plate_min_confidence:
        return None, f"confidence {confidence:.2f} below {tol.plate_min_confidence:.2f}"
    return plate, ""


def _plate_matches(passage: Passage, note: NoteFacts, tol: GateTolerance) -> bool:
    read, _ = _plate_read(passage, tol)
    return read is not None and read == normalise_plate(note.plate)


def _card_read(passage: Passage) -> str | None:
    card = normalise_plate(passage.card) if passage.card is not None else ""
    return card or None


def _card_expected(passage: Passage, note: NoteFacts) -> str | None:
    """The note's card when the lane can check it (a reader is configured), else None."""
    card = normalise_plate(note.ic_card) if note.ic_card is not None else ""
    return card if card and passage.card_reader_configured else None


def _card_matches(passage: Passage, note: NoteFacts) -> bool:
    expected = _card_expected(passage, note)
    return (
        expected is not None and Device.CARD_READER not in _down(passage) and _card_read(passage) == expected
    )


def _seals(passage: Passage) -> tuple[str, ...]:
    return tuple(s.strip() for s in passage.seals if s.strip())


def _container_reads(passage: Passage) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for n in (containers.normalise(r) for r in passage.containers) if n))


def _sealed_goods(passage: Passage, note: NoteFacts) -> str | None:
    """Why the load is not shown otherwise than by weight, or None when it travels in a container
    under a required seal that was read (and the note is not an empty vehicle's)."""
    if note.note_type == 6:
        return "an empty vehicle's weight is the only proof it is empty"
    if note.container_no is None or not containers.normalise(note.container_no):
        return "no container: the weight is the only proof of the load"
    if not note.seal_required:
        return "container not under a required seal: the weight is the only proof of the load"
    if not _seals(passage):
        return "no seal read: the weight is the only proof of the load"
    return None


def _usable_weight(weight: Decimal | None) -> bool:
    return weight is not None and weight.is_finite() and weight > 0


def allowed_difference(expected_gross_kg: Decimal, limit: WeightLimit) -> Decimal:
    """max(absolute_kg, percent % of the expected gross weight) — see the module docstring."""
    share = _CTX.multiply(expected_gross_kg, limit.percent).scaleb(-2, _CTX)
    return max(limit.absolute_kg, share)


def _expected_gross(note: NoteFacts) -> tuple[Decimal, Decimal]:
    """(vehicle + frame + container, expected gross): an empty-vehicle note expects no goods."""
    empty = _CTX.add(_CTX.add(note.vehicle_tare_kg, note.frame_kg), note.container_kg)
    goods = Decimal(0) if note.note_type == 6 else note.goods_gross_kg
    return empty, _CTX.add(empty, goods)


def _kg(value: Decimal) -> str:
    """Exact kilograms for people and JSON: no rounding, at least two decimals; absurd magnitudes in
    scientific notation rather than a million digits."""
    if not value.is_finite() or abs(value.adjusted()) > 24:
        return str(value)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def _is_fresh(cache: GateCache) -> bool:
    return fresh(cache.last_sync_age_s, cache.staleness_limit_s)


def _listed(invts: list[str]) -> dict[str, object]:
    return {"count": len(invts), "invt": invts[0][:20] + (" …" if len(invts) > 1 else "")}


# --- rules: the note ------------------------------------------------------------------------------


def rule_note(passage: Passage, cache: GateCache, tol: GateTolerance) -> list[Finding]:
    """NO_NOTE: no candidate for the plate or card read. AMBIGUOUS_NOTE: several: the lane cannot tell
    which note the vehicle travels on."""
    notes = cache.candidates
    if not notes:
        vehicle = passage.plate or passage.card or "this vehicle"
        return [
            _finding(
                Code.NO_NOTE,
                f"no release note for plate {passage.plate!r} / card {passage.card!r}",
                vehicle=normalise_plate(vehicle)[:16] or "this vehicle",
            )
        ]
    if len(notes) == 1:
        return []
    listed = ", ".join(f"{n.note_no!r} status {n.status!r}" for n in notes)
    detail = f"{len(notes)} notes match: {listed}"
    return [_finding(Code.AMBIGUOUS_NOTE, detail, count=len(notes))]


def rule_signature(passage: Passage, cache: GateCache, tol: GateTolerance) -> list[Finding]:
    """SIGNATURE_INVALID: central's signature on the note does not verify; nothing in it is believed."""
    note = _selected(cache)
    if note is None or note.signature_valid:
        return []
    return [_finding(Code.SIGNATURE_INVALID, f"note {note.note_no!r} v{note.version}: signature fails")]


def rule_park(passage: Passage, cache: GateCache, tol: GateTolerance) -> list[Finding]:
    """FOREIGN_PARK: a genuine note central issued for another park."""
    note = _genuine(cache)
    if note is None or note.park_id == cache.park_id:
        return []
    detail = f"note {note.note_no!r} is for park {note.park_id!r}, not {cache.park_id!r}"
    return [_finding(Code.FOREIGN_PARK, detail, park=note.park_id[:14])]


def rule_rollback(passage: Passage, cache: GateCache, tol: GateTolerance) -> list[Finding]:
    """ROLLED_BACK: a genuine note older than a version of it the edge stored before, or with no mark."""
    note = _genuine(cache)
    seen = None if note is None else note.newest_version_seen
    if note is None or (seen is not None and note.version >= seen):
        return []
    if seen is None:
        detail = f"note {note.note_no!r} v{note.version}: no newest-version mark for it"
        return [_finding(Code.ROLLED_BACK, detail)]
    detail = f"note {note.note_no!r} v{note.version}, but v{seen} was stored before"
    return [_finding(Code.ROLLED_BACK, detail, version=note.version, seen=seen)]


def _status_problem(status: str, gate: str) -> tuple[Code, str] | None:
    """What the note's SAS status says at this gate; None when the gate accepts it."""
    if status == "1":
        if gate == "second":
            return Code.WRONG_GATE_ORDER, "first gate not passed"
        return None
    if status == "3":
        if gate == "second":
            return None
        why = "already through the first gate" if gate == "first" else "first gate passed: go to the second"
        return Code.WRONG_GATE_ORDER, why
    if status in ("2", "4"):
        return Code.NOTE_ALREADY_PASSED, "passed"
    if status in ("5", "6"):
        return Code.NOTE_DELETED_OR_VOIDED, "deleted" if status == "5" else "voided"
    return Code.NOTE_NOT_APPROVED, "applied, not approved" if status == "0" else "unknown status"


def rule_status(passage: Passage, cache: GateCache, tol: GateTolerance) -> list[Finding]:
    """NOTE_NOT_APPROVED / NOTE_DELETED_OR_VOIDED / NOTE_ALREADY_PASSED / WRONG_GATE_ORDER from the
    note's status at this gate, and from the edge's own passages on it (reported even for a note that
    is not trusted: they are the edge's facts). An empty-vehicle note listing inventories is not a
    note any gate accepts (NOTE_NOT_APPROVED)."""
    note = _selected(cache)
    if note is None:
        return []
    found: dict[Code, tuple[list[str], dict[str, object]]] = {}

    def add(code: Code, detail: str, **facts: object) -> None:
        found.setdefault(code, ([], facts))[0].append(detail)

    name = note.passport_no or note.note_no
    if _trusted(cache) is not None:
        problem = _status_problem(note.status, passage.gate)
        if problem is not None:
            code, why = problem
            detail = f"note {note.note_no!r} status {note.status!r} ({why}) at a {passage.gate} gate"
            add(code, detail, note=name[:20], status=note.status[:4], why=why)
        if note.note_type == 6 and note.inventories:
            add(
                Code.NOTE_NOT_APPROVED,
                f"empty-vehicle note lists {len(note.inventories)} inventories",
                note=name[:20],
            )
    if note.earlier_passages:
        detail = f"the edge let {note.earlier_passages} vehicle(s) through at this {passage.gate} gate on it"
        if passage.gate == "first":
            add(Code.WRONG_GATE_ORDER, detail, why="already through the first gate")
        else:
            add(Code.NOTE_ALREADY_PASSED, detail, note=name[:20])
    return [_finding(code, "; ".join(details), **facts) for code, (details, facts) in found.items()]


def rule_direction(passage: Passage, cache: GateCache, tol: GateTolerance) -> list[Finding]:
    """DIRECTION_MISMATCH: the note is for the other direction (I in, E out) than this lane's."""
    note = _trusted(cache)
    if note is None or note.direction == passage.direction:
        return []
    words = {"I": "entering", "E": "leaving"}
    detail = f"note direction {note.direction}, lane direction {passage.direction}"
    return [_finding(Code.DIRECTION_MISMATCH, detail, direction=words[note.direction])]


# --- rules: the vehicle ---------------------------------------------------------------------------


def rule_plate(passage: Passage, cache: GateCache, tol: GateTolerance) -> list[Finding]:
    """PLATE_MISMATCH: the plate read (normalised, confident enough) is not the note's — or there is
    none, unless the plate camera is down (DEVICE_FAULT says so)."""
    note = _trusted(cache)
    if note is None:
        return []
    expected = normalise_plate(note.plate)
    read, why = _plate_read(passage, tol)
    if read is None:
        if Device.PLATE_CAMERA in _down(passage):
            return []
        detail = f"plate {passage.plate!r} not counted ({why}); note plate {note.plate!r}"
        return [_finding(Code.PLATE_MISMATCH, detail, why=why)]
    if not expected:
        return [
            _finding(
                Code.PLATE_MISMATCH, f"plate read {read!r}; the note names no plate", why="note has none"
            )
        ]
    if read == expected:
        return []
    detail = f"plate read {passage.plate!r} ({read}); note plate {note.plate!r} ({expected})"
    return [_finding(Code.PLATE_MISMATCH, detail, read=read[:12], plate=expected[:12])]


def rule_card(passage: Passage, cache: GateCache, tol: GateTolerance) -> list[Finding]:
    """CARD_MISMATCH: the note carries a card, the lane has a reader, and the card read is another —
    or none was read while the reader is up."""
    note = _trusted(cache)
    expected = None if note is None else _card_expected(passage, note)
    if expected is None:
        return []
    read = _card_read(passage)
    if read is None:
        if Device.CARD_READER in _down(passage):
            return []
        return [
            _finding(Code.CARD_MISMATCH, f"no card read; note card {expected!r}", why="hold it to the reader")
        ]
    if read == expected:
        return []
    return [_finding(Code.CARD_MISMATCH, f"card read {read!r}; note card {expected!r}", read=read[-6:])]


def rule_weight(passage: Passage, cache: GateCache, tol: GateTolerance) -> list[Finding]:
    """NO_WEIGHT / WEIGHT_OUT_OF_TOLERANCE / EMPTY_VEHICLE_NOT_EMPTY.

    NO_WEIGHT needs no note. The comparison needs a trusted one: |gross − expected gross| ≤ allowed,
    inclusive. An empty-vehicle note too heavy is EMPTY_VEHICLE_NOT_EMPTY (customs: it carries
    something); too light, like any note either way, WEIGHT_OUT_OF_TOLERANCE.
    """
    gross = passage.gross_kg
    note = _trusted(cache)
    if gross is None or not _usable_weight(gross):
        shown = "none" if gross is None else str(gross)
        down = Device.WEIGHBRIDGE in _down(passage)
        why = "weighbridge down" if down else "drive fully onto the weighbridge"
        refused: str | None = (
            "the weighbridge is down: weigh on another bridge (the weight is the only measured evidence"
            " of the load)"
            if down
            else "weighbridge up: weigh again with the whole vehicle on it"
        )
        return [_finding(Code.NO_WEIGHT, f"no stable whole-vehicle weight (got {shown})", refused, why=why)]
    if note is None:
        return []
    empty, expected = _expected_gross(note)
    difference = _CTX.subtract(gross, expected)
    allowed = allowed_difference(expected, tol.limit)
    if _CTX.abs(difference) <= allowed:
        return []
    detail = (
        f"weighed {_kg(gross)} kg, expected {_kg(expected)} kg: goods {_kg(_CTX.subtract(gross, empty))} kg "
        f"against the note's {_kg(_CTX.subtract(expected, empty))} kg, difference {_kg(difference)} kg, "
        f"allowed ±{_kg(allowed)} kg"
    )
    if note.note_type == 6 and difference > 0:
        return [_finding(Code.EMPTY_VEHICLE_NOT_EMPTY, detail, excess=_kg(difference))]
    if tol.override_limit is None:
        refused = "no override limit configured"
    else:
        limit = allowed_difference(expected, tol.override_limit)
        within = _CTX.abs(difference) <= limit
        refused = None if within else f"{_kg(difference)} kg is beyond the override limit ±{_kg(limit)} kg"
    facts = {"weighed": _kg(gross), "expected": _kg(expected), "allowed": _kg(allowed)}
    return [_finding(Code.WEIGHT_OUT_OF_TOLERANCE, detail, refused, **facts)]


def rule_container(passage: Passage, cache: GateCache, tol: GateTolerance) -> list[Finding]:
    """CONTAINER_MISMATCH: a number read that fails ISO 6346 or is not the note's, a container read
    when the note has none, none read when it has one (unless the container camera is down), or a
    note whose own number fails ISO 6346. Front and back reads must both be the note's container."""
    note = _trusted(cache)
    if note is None:
        return []
    expected = containers.normalise(note.container_no) if note.container_no is not None else ""
    reads = _container_reads(passage)
    problems: list[str] = []
    if not expected:
        problems += [f"container {r!r} read; the note has none" for r in reads]
    else:
        if (bad := containers.problem(expected)) is not None:
            problems.append(f"note's {bad}")
        if not reads and Device.CONTAINER_CAMERA not in _down(passage):
            problems.append(f"no container number read; note has {expected!r}")
        for read in reads:
            if (bad := containers.problem(read)) is not None:
                problems.append(f"read {bad}")
            elif read != expected:
                problems.append(f"read {read!r}, note has {expected!r}")
        # the box's size-type, where recognition reads it: its tare is what the note subtracts
        declared = (note.container_type or "").strip().upper()
        for size_type in dict.fromkeys(t.strip().upper() for t in passage.container_types if t.strip()):
            if size_type != declared:
                problems.append(f"box read as size-type {size_type!r}, note has {declared or 'none'!r}")
    if not problems:
        return []
    if not expected:
        why = f"{reads[0]} on vehicle, none on note"
    elif not reads:
        why = f"none read, note has {expected}"
    else:
        why = f"read {reads[0]}, note has {expected}"
    return [_finding(Code.CONTAINER_MISMATCH, "; ".join(problems), why=why[:44])]


def rule_seal(passage: Passage, cache: GateCache, tol: GateTolerance) -> list[Finding]:
    """SEAL_MISSING: the note requires a seal and no seal id was read, or a seal it names was not
    among those read (unless the seal reader is down: DEVICE_FAULT says so)."""
    note = _trusted(cache)
    if note is None or not (note.seal_required or note.seal_ids):
        return []
    if Device.SEAL_READER in _down(passage):
        return []
    read = _seals(passage)
    if not read:
        return [_finding(Code.SEAL_MISSING, f"note {note.note_no!r} requires a seal; none read")]
    missing = [s for s in note.seal_ids if s not in read]
    if missing:
        return [
            _finding(
                Code.SEAL_MISSING,
                f"note {note.note_no!r} names seal {', '.join(missing)}; read {', '.join(read)}",
            )
        ]
    return []


# --- rules: the inventories -----------------------------------------------------------------------


def _inventory_facts(cache: GateCache, note: NoteFacts) -> list[tuple[str, tuple[InventoryFacts, ...]]]:
    """Every invtNo the note lists, once, with every fact the cache passed for it."""
    return [
        (invt, tuple(f for f in cache.inventories if f.invt_no == invt))
        for invt in dict.fromkeys(note.inventories)
    ]


def _not_releasable(facts: InventoryFacts, park_id: str) -> str | None:
    if not facts.known:
        return "not in the clearance cache"
    if not facts.signature_valid:
        return "signature fails"
    if facts.park_id != park_id:
        return f"for park {facts.park_id!r}"
    seen = facts.newest_version_seen
    if facts.version is None or seen is None or facts.version < seen:
        return f"v{facts.version} but v{seen} seen"
    if facts.cancelled:
        return "cancelled"
    if facts.status != ClearanceStatus.RELEASED:
        return f"status {facts.status!r}"
    return None


def rule_inventory_releasable(passage: Passage, cache: GateCache, tol: GateTolerance) -> list[Finding]:
    """INVENTORY_NOT_RELEASABLE: an inventory of the note not in the cache, not genuine, another park's,
    rolled back, cancelled or not at 800."""
    note = _trusted(cache)
    if note is None:
        return []
    bad: dict[str, str] = {}
    if not note.inventories and note.note_type != 6:
        # goods no clearance covers: central takes no such note, an edge cache must not pass one either
        return [
            _finding(
                Code.INVENTORY_NOT_RELEASABLE,
                f"note {note.note_no!r} (type {note.note_type}) lists no inventory:"
                " no clearance covers its goods",
            )
        ]
    for invt, facts in _inventory_facts(cache, note):
        reasons = [r for f in facts if (r := _not_releasable(f, cache.park_id)) is not None]
        if not facts or reasons:
            bad[invt] = reasons[0] if reasons else "not in the clearance cache"
    if not bad:
        return []
    detail = "; ".join(f"{invt}: {why}" for invt, why in bad.items())
    return [_finding(Code.INVENTORY_NOT_RELEASABLE, detail, **_listed(list(bad)))]


def rule_released_by_line(passage: Passage, cache: GateCache, tol: GateTolerance) -> list[Finding]:
    """NOT_RELEASED_BY_LINE: the edge's release ledger has no RELEASE for an inventory of the note. (One
    with no facts at all is INVENTORY_NOT_RELEASABLE alone.)"""
    note = _trusted(cache)
    if note is None:
        return []
    bad = [
        invt
        for invt, facts in _inventory_facts(cache, note)
        if facts and not all(f.released_by_line for f in facts)
    ]
    if not bad:
        return []
    return [_finding(Code.NOT_RELEASED_BY_LINE, "no line release for " + ", ".join(bad), **_listed(bad))]


def rule_inventory_out(passage: Passage, cache: GateCache, tol: GateTolerance) -> list[Finding]:
    """INVENTORY_ALREADY_OUT: an inventory of the note already left through the gate on another passage."""
    note = _trusted(cache)
    if note is None:
        return []
    bad = [invt for invt, facts in _inventory_facts(cache, note) if any(f.passed_gate for f in facts)]
    if not bad:
        return []
    return [_finding(Code.INVENTORY_ALREADY_OUT, "already out: " + ", ".join(bad), **_listed(bad))]


# --- rules: the lane ------------------------------------------------------------------------------


def rule_tailgating(passage: Passage, cache: GateCache, tol: GateTolerance) -> list[Finding]:
    """TAILGATING: a second vehicle entered the lane during the passage."""
    if not passage.tailgating:
        return []
    return [_finding(Code.TAILGATING, "a second vehicle entered the lane during the passage")]


def rule_staleness(passage: Passage, cache: GateCache, tol: GateTolerance) -> list[Finding]:
    """STALE_CACHE: the notes and clearances are not fresher than the park's limit (no waiver here:
    a note deleted or voided meanwhile is exactly what a stale cache would miss)."""
    if _is_fresh(cache):
        return []
    age = cache.last_sync_age_s
    detail = f"last sync age {age!r} s, limit {cache.staleness_limit_s!r} s"
    return [_finding(Code.STALE_CACHE, detail, age=age_words(age))]


def _device_refusal(device: str, passage: Passage, cache: GateCache, tol: GateTolerance) -> str | None:
    """Why a supervisor may not override this device being down (None: the evidence it gives is there
    otherwise) — see the module docstring."""
    note = _trusted(cache)
    if device not in set(Device) or device == Device.CONTAINER_CAMERA:
        return "the only evidence of what it checks, or safety"
    if note is None:
        return "no trusted note to check the vehicle against"
    if device == Device.CARD_READER:
        return None if _plate_matches(passage, note, tol) else "the plate read does not identify the vehicle"
    if device == Device.PLATE_CAMERA:
        return None if _card_matches(passage, note) else "no matching card read identifies the vehicle"
    if device == Device.SEAL_READER:
        return "the note requires a seal" if note.seal_required or note.seal_ids else None
    return "the weight is the only measured evidence of the load"  # the weighbridge


def rule_devices(passage: Passage, cache: GateCache, tol: GateTolerance) -> list[Finding]:
    """DEVICE_FAULT: one finding per device down — every device fault keeps the barrier closed."""
    names = tuple(dict.fromkeys(name.strip() or "unnamed device" for name in passage.device_faults))
    return [
        _finding(
            Code.DEVICE_FAULT,
            f"device down: {name}",
            _device_refusal(name, passage, cache, tol),
            device=name[:30],
        )
        for name in names
    ]


RULES: tuple[Rule, ...] = (
    rule_note,
    rule_signature,
    rule_park,
    rule_rollback,
    rule_status,
    rule_direction,
    rule_plate,
    rule_card,
    rule_weight,
    rule_container,
    rule_seal,
    rule_inventory_releasable,
    rule_released_by_line,
    rule_inventory_out,
    rule_tailgating,
    rule_staleness,
    rule_devices,
)


# --- decision -------------------------------------------------------------------------------------


def _json_float(value: float | None) -> float | str | None:
    return value if value is None or math.isfinite(value) else str(value)


def _checked(passage: Passage, cache: GateCache, tol: GateTolerance, verdict: Verdict) -> dict[str, Any]:
    """What the decision was based on, JSON-ready (Decimals as exact strings). The weight block is the
    reconciliation central needs: the note's expected gross and goods against what the bridge read."""
    note = _selected(cache)
    trusted = _trusted(cache)
    gross = passage.gross_kg
    weight: dict[str, Any] = {
        "gross_kg": None if gross is None else _kg(gross),
        "tolerance": {"absolute_kg": _kg(tol.absolute_kg), "percent": str(tol.percent)},
    }
    if trusted is not None:
        empty, expected = _expected_gross(trusted)
        weight |= {
            "tare_kg": _kg(trusted.vehicle_tare_kg),
            "frame_kg": _kg(trusted.frame_kg),
            "container_kg": _kg(trusted.container_kg),
            "declared_goods_kg": _kg(Decimal(0) if trusted.note_type == 6 else trusted.goods_gross_kg),
            "expected_gross_kg": _kg(expected),
            "allowed_kg": _kg(allowed_difference(expected, tol.limit)),
            "override_allowed_kg": (
                None if tol.override_limit is None else _kg(allowed_difference(expected, tol.override_limit))
            ),
        }
        if gross is not None and _usable_weight(gross):
            weight["measured_goods_kg"] = _kg(_CTX.subtract(gross, empty))
            weight["difference_kg"] = _kg(_CTX.subtract(gross, expected))  # + heavier than the note
    read, _ = _plate_read(passage, tol)
    return {
        "park_id": cache.park_id,
        "candidates": [n.note_no for n in cache.candidates],
        "note_no": note.note_no if note else None,
        "passport_no": note.passport_no if note else None,
        "note_version": note.version if note else None,
        "newest_version_seen": note.newest_version_seen if note else None,
        "signature_valid": note.signature_valid if note else None,
        "note_park_id": note.park_id if note else None,
        "note_trusted": trusted is not None,
        "status": note.status if note else None,
        "note_type": note.note_type if note else None,
        "bind_type": note.bind_type if note else None,
        "note_direction": note.direction if note else None,
        "earlier_passages": note.earlier_passages if note else None,
        "closes_note": verdict is Verdict.PASS,  # one note, one vehicle: its passage closes it here
        "gate": passage.gate,
        "lane_direction": passage.direction,
        "plate_read": passage.plate,
        "plate_confidence": _json_float(passage.plate_confidence),
        "plate_min_confidence": tol.plate_min_confidence,
        "plate_counted": read,
        "note_plate": note.plate if note else None,
        "card_reader_configured": passage.card_reader_configured,
        "card_read": passage.card,
        "note_card": note.ic_card if note else None,
        "weight": weight,
        "containers_read": list(passage.containers),
        "note_container": note.container_no if note else None,
        "seals_read": list(passage.seals),
        "seal_required": note.seal_required if note else None,
        "inventories": [
            {
                "invtNo": invt,
                "facts": [f.model_dump(exclude={"invt_no"}) for f in facts],
            }
            for invt, facts in (_inventory_facts(cache, trusted) if trusted else [])
        ],
        "cache_age_s": _json_float(cache.last_sync_age_s),
        "staleness_limit_s": _json_float(cache.staleness_limit_s),
        "cache_fresh": _is_fresh(cache),
        "device_faults": list(passage.device_faults),
        "tailgating": passage.tailgating,
    }


def decide(passage: Passage, cache: GateCache, tol: GateTolerance) -> Decision:
    """Run every rule and decide: PASS only when no rule found anything."""
    findings = tuple(f for rule in RULES for f in rule(passage, cache, tol))
    verdict = Verdict.STOP if findings else Verdict.PASS
    if findings:
        others = len(findings) - 1
        reason = findings[0].text if others == 0 else f"{findings[0].text} (+{others} more)"
    else:
        reason = "Release note checked: barrier opens"
    return Decision(
        verdict=verdict,
        codes=tuple(dict.fromkeys(f.code for f in findings)),
        findings=findings,
        reason=reason,
        checked=_checked(passage, cache, tol, verdict),
    )


def override_refusal(decision: Decision) -> str | None:
    """Why a supervisor may not release this stopped vehicle, or None when they may (with a reason).

    Refused for a PASS (nothing to override), for any customs code — judged from the codes themselves,
    so a Decision built by hand cannot smuggle one through — and for any finding its rule refused."""
    if decision.verdict is Verdict.PASS:
        return "nothing to override: the vehicle passes"
    customs = [c for c in decision.codes if c.stop_class is StopClass.CUSTOMS]
    if customs:
        return f"customs stop {customs[0]}: never overridden"
    if not decision.findings:
        return "a stop without findings is not understood"
    for finding in decision.findings:
        if finding.code.stop_class is StopClass.CUSTOMS:
            return f"customs stop {finding.code}: never overridden"
        if finding.override_refused is not None:
            return f"{finding.code}: {finding.override_refused}"
    return None


def overridable(decision: Decision) -> bool:
    """Whether a supervisor may release this stopped vehicle with a reason (see ``override_refusal``)."""
    return override_refusal(decision) is None

"""The release decision for one physical parcel: pure rules over what the station saw and the cache.

DESIGN.md §5: a parcel is RELEASED only if its record is found, at status 800, signed, for this park,
not older than a version of it already seen, not already released, its weight is within tolerance,
the camera saw the scanned label (where a camera is configured), the cache is fresh and no device
failed. Everything else is a discrepancy with a code.

Why a pure module: the rules are the legal heart of the edge, so they must be testable without
devices, a database or a clock. Nothing here does I/O or reads time; the caller (edge/checker.py)
looks the record up, verifies its signature, measures the sync age and passes the facts in.

Shape: one small function per rule, each ``(obs, cache, tol) -> list[Finding]``, listed in ``RULES``
in reporting order. ``decide`` runs every rule — a parcel with three problems reports all three,
so the worker fixes them in one go and central sees the whole picture — and derives the verdict:
any HOLD-class finding → HOLD; otherwise an INSPECTION finding → INSPECT; no finding → RELEASE.
A record that is missing, belongs to another code, fails its signature, is for another park or is
older than a version already seen is not evidence, so the rules that read it (status, cancelled,
weight comparison) stay silent; the rules that need only the observation (no weight, label,
staleness, devices, the edge's own release marker) still report.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Context, Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kernel.status import ClearanceStatus, is_detained
from kernel.wire import FeedRecord

__all__ = [
    "RULES",
    "CacheState",
    "Code",
    "Decision",
    "Finding",
    "Observation",
    "Rule",
    "Tolerance",
    "Verdict",
    "age_words",
    "allowed_difference",
    "decide",
    "explain",
    "fresh",
    "rule_already_released",
    "rule_ambiguous",
    "rule_cancelled",
    "rule_devices",
    "rule_found",
    "rule_label",
    "rule_park",
    "rule_read",
    "rule_rollback",
    "rule_signature",
    "rule_staleness",
    "rule_status",
    "rule_tailgating",
    "rule_weight",
]


class Verdict(StrEnum):
    """What the station does with the parcel: exit lane / barrier open, hold lane, inspection lane."""

    RELEASE = "RELEASE"
    HOLD = "HOLD"
    INSPECT = "INSPECT"


class Code(StrEnum):
    """Discrepancy codes of DESIGN.md §5. Only INSPECTION sends a parcel to inspection; all others hold."""

    NO_READ = "NO_READ"
    NOT_FOUND = "NOT_FOUND"
    NOT_CLEARED = "NOT_CLEARED"
    INSPECTION = "INSPECTION"
    CUSTOMS_HOLD = "CUSTOMS_HOLD"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"
    ALREADY_RELEASED = "ALREADY_RELEASED"
    WEIGHT_MISMATCH = "WEIGHT_MISMATCH"
    NO_WEIGHT = "NO_WEIGHT"
    LABEL_MISMATCH = "LABEL_MISMATCH"
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    STALE_CACHE = "STALE_CACHE"
    DEVICE_FAULT = "DEVICE_FAULT"
    AMBIGUOUS_READ = "AMBIGUOUS_READ"
    TAILGATING = "TAILGATING"
    FOREIGN_PARK = "FOREIGN_PARK"
    ROLLED_BACK = "ROLLED_BACK"

    @property
    def verdict(self) -> Verdict:
        return Verdict.INSPECT if self is Code.INSPECTION else Verdict.HOLD


# --- screen texts ---------------------------------------------------------------------------------

# Per code, templates from the most specific to the generic one; ``explain`` picks the first whose
# placeholders are all given. Short on purpose: a worker reads them on a screen from two metres.
_TEXTS: dict[Code, tuple[str, ...]] = {
    Code.NO_READ: ("No barcode read: scan again or key it in",),
    Code.NOT_FOUND: ("{waybill} not in clearance list", "Not in clearance list"),
    Code.NOT_CLEARED: ("Not cleared by customs yet (status {status})", "Not cleared by customs yet"),
    Code.INSPECTION: ("Customs inspection: to inspection lane",),
    Code.CUSTOMS_HOLD: ("Held by customs (status {status})", "Held by customs"),
    Code.REJECTED: ("Rejected by customs (status {status})", "Rejected by customs"),
    Code.CANCELLED: ("Declaration cancelled or return requested",),
    Code.ALREADY_RELEASED: (
        "Release history {history}: call a supervisor",
        "Customs closed this record (status {status}): should be out already",
        "Already released: this parcel left before",
    ),
    Code.WEIGHT_MISMATCH: (
        "Weight wrong: {weighed} kg, expected {declared} ±{allowed} kg",
        "Weight does not match declaration",
    ),
    Code.NO_WEIGHT: ("No stable weight: weigh again",),
    Code.LABEL_MISMATCH: (
        "Label check failed: {seen}",
        "Label check failed: camera did not see this code",
    ),
    Code.SIGNATURE_INVALID: ("Clearance record not genuine (bad signature)",),
    Code.STALE_CACHE: ("Clearance list out of date ({age})", "Clearance list out of date"),
    Code.DEVICE_FAULT: ("Device fault: {device}", "Device fault"),
    Code.AMBIGUOUS_READ: (
        "Cannot tell which parcel: {why}",
        "Read or weight may be another parcel's",
    ),
    Code.TAILGATING: ("Second arrival while barrier open: check it",),
    Code.FOREIGN_PARK: (
        "Clearance record is for park {park}",
        "Clearance record is for another park",
    ),
    Code.ROLLED_BACK: (
        "Old clearance record: v{version}, v{seen} seen",
        "Old clearance record: a newer one was seen",
    ),
}


def explain(code: Code, /, **facts: object) -> str:
    """Plain words for a code, with the facts filled in when given (e.g. ``status="399"``).

    Missing facts fall back to the generic line rather than failing: a screen must always show
    something, and an HMI may call this with just the code it got over MQTT.
    """
    templates = _TEXTS[Code(code)]
    for template in templates:
        try:
            return template.format_map(facts)
        except (KeyError, IndexError, ValueError):
            continue
    return templates[-1]


# --- inputs and outputs ---------------------------------------------------------------------------


class Tolerance(BaseModel):
    """How far a weighed parcel may be from its declared gross weight (per park).

    Allowed difference = max(absolute_kg, percent % of the declared gross weight). Max, not min or
    sum: a tiny parcel (0.2 kg at 5 % = 10 g) would otherwise be held for the scale's own
    resolution and a box's tape, so it still gets the absolute slack; a heavy one gets the percent,
    which follows packaging and moisture that grow with size.
    """

    model_config = ConfigDict(frozen=True)

    absolute_kg: Decimal = Field(ge=0, description="kg")
    percent: Decimal = Field(ge=0, description="% of declared gross weight")


class Observation(BaseModel):
    """What a station saw for one parcel within its correlation window.

    ``scanned_code`` None (or blank) means NO_READ. ``weight_kg`` None means no stable weight in
    time. The camera's check passes only if the scanned code is among the codes it decoded
    (``camera_code`` and ``camera_codes`` together); a configured camera that decoded *nothing* is
    a LABEL_MISMATCH, not a pass: the camera is the proof that the label the scanner read is on the
    parcel in front of it (a handheld can read a neighbour's label), and a label the camera cannot
    see is exactly the case that proof is missing. A camera that is down is reported by the station
    in ``device_faults`` and adds DEVICE_FAULT. Other codes the camera also saw (product EANs) do
    not fail the check as long as the scanned one is among them.
    """

    model_config = ConfigDict(frozen=True)

    scanned_code: str | None = Field(description="waybill code the scanner read; None: NO_READ")
    weight_kg: Decimal | None = Field(None, description="stable weight; None: none in time")
    weight_required: bool = Field(True, description="this station must weigh every parcel")
    camera_code: str | None = Field(None, description="the camera's primary decoded code, if any")
    camera_configured: bool = False
    camera_codes: tuple[str, ...] = Field((), description="every code the camera decoded")
    device_faults: tuple[str, ...] = Field((), description="devices DOWN or actuation/timeouts")
    read_ambiguities: tuple[str, ...] = Field(
        (), description="why the code read cannot be tied to this parcel alone (tracking)"
    )
    weight_ambiguities: tuple[str, ...] = Field(
        (), description="why the weight cannot be tied to this parcel alone (tracking)"
    )
    tailgating: str | None = Field(None, description="a second arrival while the barrier was open")


class CacheState(BaseModel):
    """What the edge's cache says about the scanned code, looked up at decision time.

    ``signature_valid`` is the caller's Ed25519 verification of ``record`` — done now, or
    ``signature_cached``: done earlier (at sync) on the same stored bytes; ``already_released`` is
    the edge's own records of this parcel having left (any station): ``release_evidence`` says which
    (release marker, ledger entry, RELEASE decision), and ``release_history_intact`` False means the
    release ledger is damaged, so no parcel can be shown not to have left. ``park_id`` is the park
    this edge serves and ``highest_version_seen`` the highest version of the record's clearance the
    edge ever stored (None: it has no such mark, which a found record must have). ``last_sync_age_s``
    None means no successful sync is known.
    """

    model_config = ConfigDict(frozen=True)

    record: FeedRecord | None
    signature_valid: bool
    already_released: bool
    signature_cached: bool = False  # valid because these exact bytes passed the check earlier
    last_sync_age_s: float | None
    staleness_limit_s: float
    stale_policy: Literal["hold", "allow"] = "hold"
    park_id: str = Field(description="the park this edge serves")
    highest_version_seen: int | None = Field(description="highest version of the clearance stored before")
    release_evidence: tuple[str, ...] = ()
    release_history_intact: bool = True
    # why the edge cannot show, right now, that no parcel was released before (ledger not verified yet
    # at start, this database behind central's record of this edge): every parcel holds meanwhile
    release_history_problem: str | None = None


class Finding(BaseModel):
    """One discrepancy: its code, the exact facts (for audit and events) and the screen line."""

    model_config = ConfigDict(frozen=True)

    code: Code
    detail: str = Field(description="the facts, exact, e.g. 'weighed 2.31 kg, declared 1.80 kg…'")
    text: str = Field(description="short plain words for the station screen")

    @property
    def verdict(self) -> Verdict:
        return self.code.verdict


class Decision(BaseModel):
    """The verdict, every applicable code and what was checked — the edge's proof (invariant 1)."""

    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    codes: tuple[Code, ...] = Field(description="every applicable code, once each, in rule order")
    findings: tuple[Finding, ...]
    reason: str = Field(description="plain words: the leading reason for the verdict")
    checked: dict[str, Any] = Field(description="JSON-ready facts the decision was based on")


Rule = Callable[[Observation, CacheState, Tolerance], list[Finding]]


def _finding(code: Code, detail: str, /, **facts: object) -> Finding:
    return Finding(code=code, detail=detail, text=explain(code, **facts))


# --- helpers --------------------------------------------------------------------------------------

# Decimal arithmetic with its own context: the result must not depend on whatever precision or
# rounding the calling thread happens to have set. 60 digits is exact for any real weight.
_CTX = Context(prec=60)
_HUNDRED = Decimal(100)


def _scanned(obs: Observation) -> str | None:
    """The scanned code, or None for no read. A blank string is no read, not a code."""
    code = obs.scanned_code
    return code if code is not None and code.strip() else None


def _record(obs: Observation, cache: CacheState) -> FeedRecord | None:
    """The record for the scanned code, or None. A record for another code is not this parcel's."""
    code = _scanned(obs)
    record = cache.record
    if code is None or record is None or record.logisticsNo != code:
        return None
    return record


def _genuine(obs: Observation, cache: CacheState) -> FeedRecord | None:
    """The record when it was found for this code and its signature verified."""
    record = _record(obs, cache)
    return record if record is not None and cache.signature_valid else None


def _current(record: FeedRecord, cache: CacheState) -> bool:
    """For this park, and not older than a version of its clearance already seen (no rollback)."""
    seen = cache.highest_version_seen
    return record.park_id == cache.park_id and seen is not None and record.version >= seen


def _trusted(obs: Observation, cache: CacheState) -> FeedRecord | None:
    """The record only when it can be relied on: found for this code, its signature verified, for
    this park and the newest version seen."""
    record = _genuine(obs, cache)
    return record if record is not None and _current(record, cache) else None


def _kg(value: Decimal) -> str:
    """Exact kilograms for people: no rounding (an audit must not lie), at least two decimals."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def _usable_weight(weight: Decimal) -> bool:
    """A weight that can be compared: finite and positive. Zero or less means nothing was on the
    scale (or a tare fault) — never evidence that the right parcel was weighed."""
    return weight.is_finite() and weight > 0


def allowed_difference(declared_kg: Decimal, tol: Tolerance) -> Decimal:
    """max(absolute_kg, percent % of the declared gross weight) — see ``Tolerance``."""
    share = _CTX.multiply(declared_kg, tol.percent).scaleb(-2, _CTX)
    return max(tol.absolute_kg, share)


def fresh(age: float | None, limit_s: float) -> bool:
    """Fresher than the limit, strictly. NaN, negative or unknown ages are never fresh: a clock that
    went backwards or a missing sync time is no proof of freshness. (Also the vehicle gate's rule.)"""
    if age is None or not math.isfinite(age) or age < 0:
        return False
    return age < limit_s


def _is_fresh(cache: CacheState) -> bool:
    return fresh(cache.last_sync_age_s, cache.staleness_limit_s)


def age_words(age: float | None) -> str:
    """A cache's age for a screen (also the vehicle gate's)."""
    if age is None:
        return "never synced"
    if not math.isfinite(age) or age < 0:
        return "sync time unknown"
    minutes = int(age // 60)
    if minutes < 120:
        return f"{minutes} min old"
    return f"{minutes // 60} h old"


# --- rules ----------------------------------------------------------------------------------------


def rule_read(obs: Observation, cache: CacheState, tol: Tolerance) -> list[Finding]:
    """NO_READ: no code read in the window (None or blank). Nothing else can identify the parcel.
    Silent when codes were read but could not be tied to it (AMBIGUOUS_READ says so)."""
    if _scanned(obs) is not None or obs.read_ambiguities:
        return []
    return [_finding(Code.NO_READ, "no waybill code read in the window")]


def rule_found(obs: Observation, cache: CacheState, tol: Tolerance) -> list[Finding]:
    """NOT_FOUND: a code was read but the cache has no record for exactly that code.

    A record whose logisticsNo differs from the scanned code counts as not found: the lookup is the
    caller's, and a record for another parcel is no clearance for this one.
    """
    code = _scanned(obs)
    if code is None or _record(obs, cache) is not None:
        return []
    if cache.record is None:
        detail = f"code {code!r} not in the clearance cache"
    else:
        detail = f"code {code!r} looked up record for {cache.record.logisticsNo!r}"
    return [_finding(Code.NOT_FOUND, detail, waybill=code[:30])]


def rule_signature(obs: Observation, cache: CacheState, tol: Tolerance) -> list[Finding]:
    """SIGNATURE_INVALID: the record is there but central's signature does not verify, so none of its
    fields (status, weight) can be believed; the rules that read them stay silent."""
    record = _record(obs, cache)
    if record is None or cache.signature_valid:
        return []
    detail = f"record {record.logisticsCode}/{record.logisticsNo} v{record.version}: signature fails"
    return [_finding(Code.SIGNATURE_INVALID, detail)]


def rule_park(obs: Observation, cache: CacheState, tol: Tolerance) -> list[Finding]:
    """FOREIGN_PARK: a genuine record, but central issued it for another park: it clears nothing here.
    (A record that fails its signature says nothing about its park; SIGNATURE_INVALID covers it.)"""
    record = _genuine(obs, cache)
    if record is None or record.park_id == cache.park_id:
        return []
    name = f"{record.logisticsCode}/{record.logisticsNo}"
    detail = f"record {name} is for park {record.park_id!r}, not {cache.park_id!r}"
    return [_finding(Code.FOREIGN_PARK, detail, park=record.park_id[:14])]


def rule_rollback(obs: Observation, cache: CacheState, tol: Tolerance) -> list[Finding]:
    """ROLLED_BACK: a genuine record older than a version of the same clearance the edge stored before
    (an old copy put back, or served again): a clearance's version never goes down. A found record
    with no mark at all is held too: every record the edge stores leaves one."""
    record = _genuine(obs, cache)
    seen = cache.highest_version_seen
    if record is None or (seen is not None and record.version >= seen):
        return []
    if seen is None:
        detail = f"record v{record.version}: no highest-version mark for this clearance (removed?)"
        return [_finding(Code.ROLLED_BACK, detail)]
    detail = f"record v{record.version}, but v{seen} of this clearance was stored before"
    return [_finding(Code.ROLLED_BACK, detail, version=record.version, seen=seen)]


def _status_code(status: str) -> Code | None:
    """DESIGN.md §3.3 → §5. None only for 800. Unknown statuses hold as NOT_CLEARED: only a status
    the edge knows to mean "released" may let a parcel out.

    899 (closed) → ALREADY_RELEASED: customs closes an inventory after release, so a parcel
    presenting a closed record is a duplicate label or a parcel back in the park — the same
    response as the edge's own double-release marker. CUSTOMS_HOLD would send the worker to ask
    customs about a hold that does not exist.
    """
    if status == ClearanceStatus.RELEASED:
        return None
    fixed = {
        ClearanceStatus.ACCEPTED: Code.NOT_CLEARED,
        ClearanceStatus.MANUAL_REVIEW: Code.NOT_CLEARED,
        ClearanceStatus.REVIEW_COMPLETE: Code.NOT_CLEARED,
        ClearanceStatus.INSPECTION: Code.INSPECTION,
        ClearanceStatus.RETURN_SHIPMENT: Code.CUSTOMS_HOLD,
        ClearanceStatus.REJECTED: Code.REJECTED,
        ClearanceStatus.CLOSED: Code.ALREADY_RELEASED,
    }
    if status in fixed:
        return fixed[ClearanceStatus(status)]
    if is_detained(status):
        return Code.CUSTOMS_HOLD
    return Code.NOT_CLEARED


def rule_status(obs: Observation, cache: CacheState, tol: Tolerance) -> list[Finding]:
    """NOT_CLEARED / INSPECTION / CUSTOMS_HOLD / REJECTED / ALREADY_RELEASED from the record's status."""
    record = _trusted(obs, cache)
    if record is None:
        return []
    code = _status_code(record.status)
    if code is None:
        return []
    known = record.status in set(ClearanceStatus) or code is Code.CUSTOMS_HOLD
    note = "" if known else " (unknown status)"
    detail = f"status {record.status!r}{note}, record v{record.version}"
    return [_finding(code, detail, status=record.status[:12])]


def rule_cancelled(obs: Observation, cache: CacheState, tol: Tolerance) -> list[Finding]:
    """CANCELLED: inventory cancelled (CEB623) or return requested (CEB625) — never releasable,
    whatever its status says."""
    record = _trusted(obs, cache)
    if record is None or not record.cancelled:
        return []
    return [_finding(Code.CANCELLED, f"record v{record.version} cancelled or return requested")]


def rule_already_released(obs: Observation, cache: CacheState, tol: Tolerance) -> list[Finding]:
    """ALREADY_RELEASED: the edge's own records say this parcel already left through a station — or
    its release ledger is damaged, so that it cannot show the parcel has not.

    Reported even without a trusted record: the marker is the edge's fact, not the feed's.
    """
    problem = cache.release_history_problem or (None if cache.release_history_intact else "damaged")
    if problem is not None:
        detail = f"release history {problem}: releases may be missing from the edge's records"
        return [_finding(Code.ALREADY_RELEASED, detail, history=problem[:40])]
    if not cache.already_released:
        return []
    evidence = cache.release_evidence or ("release marker",)
    detail = "parcel already left: " + ", ".join(evidence)
    if "release marker" not in evidence:
        detail += " (its release marker is missing)"
    return [_finding(Code.ALREADY_RELEASED, detail)]


def rule_weight(obs: Observation, cache: CacheState, tol: Tolerance) -> list[Finding]:
    """NO_WEIGHT / WEIGHT_MISMATCH against the declared gross weight.

    NO_WEIGHT needs only the observation, so it is reported even when the record is missing.
    A weight that was taken is compared even where the station does not require one: a weight
    that contradicts the declaration is evidence, and ignoring it would release a wrong parcel.
    Exactly at the allowed difference passes (the tolerance is inclusive).
    """
    weight = obs.weight_kg
    if weight is None or not _usable_weight(weight):
        if not obs.weight_required or obs.weight_ambiguities:  # AMBIGUOUS_READ says why there is none
            return []
        shown = "none" if weight is None else format(weight, "f")
        return [_finding(Code.NO_WEIGHT, f"no stable positive weight in time (got {shown})")]
    record = _trusted(obs, cache)
    if record is None:
        return []
    declared = record.grossWeight
    allowed = allowed_difference(declared, tol)
    if _CTX.abs(_CTX.subtract(weight, declared)) <= allowed:
        return []
    detail = f"weighed {_kg(weight)} kg, declared {_kg(declared)} kg, allowed ±{_kg(allowed)} kg"
    return [
        _finding(
            Code.WEIGHT_MISMATCH, detail, weighed=_kg(weight), declared=_kg(declared), allowed=_kg(allowed)
        )
    ]


def _camera_seen(obs: Observation) -> tuple[str, ...]:
    seen = ((obs.camera_code,) if obs.camera_code else ()) + obs.camera_codes
    return tuple(dict.fromkeys(seen))


def rule_label(obs: Observation, cache: CacheState, tol: Tolerance) -> list[Finding]:
    """LABEL_MISMATCH: a camera is configured and the scanned code is not among the codes it decoded
    (including when it decoded none — see ``Observation``). Without a scanned code there is
    nothing to compare; NO_READ already holds the parcel."""
    code = _scanned(obs)
    if not obs.camera_configured or code is None:
        return []
    seen = _camera_seen(obs)
    if code in seen:
        return []
    if not seen:
        detail = f"scanner read {code!r}; camera decoded no code"
        return [_finding(Code.LABEL_MISMATCH, detail, seen="camera sees no label")]
    detail = f"scanner read {code!r}; camera decoded {', '.join(repr(s) for s in seen)}"
    return [_finding(Code.LABEL_MISMATCH, detail, seen=f"camera sees {seen[0][:30]}")]


def rule_staleness(obs: Observation, cache: CacheState, tol: Tolerance) -> list[Finding]:
    """STALE_CACHE: the feed is not fresher than the park's limit.

    Policy "allow" waives the age limit (a park that chose to keep releasing through a long uplink
    outage) but never a cache with no known successful sync or an untrustworthy age: then the edge
    cannot say how old its knowledge is at all. Under "allow" a stale cache leaves no finding (a
    finding always stops a release); ``Decision.checked`` still records the age and the policy.
    """
    if _is_fresh(cache):
        return []
    age = cache.last_sync_age_s
    if cache.stale_policy == "allow" and age is not None and math.isfinite(age) and age >= 0:
        return []
    detail = f"last sync age {age!r} s, limit {cache.staleness_limit_s!r} s, policy {cache.stale_policy}"
    return [_finding(Code.STALE_CACHE, detail, age=age_words(age))]


def rule_ambiguous(obs: Observation, cache: CacheState, tol: Tolerance) -> list[Finding]:
    """AMBIGUOUS_READ: a read or a weight that could belong to another parcel too (two codes in one
    window, a read in two windows, a code read for another parcel, weights that disagree): the
    parcel cannot be identified, or weighed, as itself. One finding, every reason in its detail."""
    reasons = (*obs.read_ambiguities, *obs.weight_ambiguities)
    if not reasons:
        return []
    return [_finding(Code.AMBIGUOUS_READ, "; ".join(reasons)[:2000], why=reasons[0][:60])]


def rule_tailgating(obs: Observation, cache: CacheState, tol: Tolerance) -> list[Finding]:
    """TAILGATING: something arrived at the gate while the barrier was open for another."""
    if obs.tailgating is None:
        return []
    return [_finding(Code.TAILGATING, obs.tailgating[:2000])]


def rule_devices(obs: Observation, cache: CacheState, tol: Tolerance) -> list[Finding]:
    """DEVICE_FAULT: one finding per failed device — every device fault ends in hold (§6)."""
    names = tuple(dict.fromkeys(name.strip() or "unnamed device" for name in obs.device_faults))
    return [
        _finding(Code.DEVICE_FAULT, f"device down or actuation failed: {name}", device=name[:30])
        for name in names
    ]


RULES: tuple[Rule, ...] = (
    rule_read,
    rule_ambiguous,
    rule_tailgating,
    rule_found,
    rule_signature,
    rule_park,
    rule_rollback,
    rule_status,
    rule_cancelled,
    rule_already_released,
    rule_weight,
    rule_label,
    rule_staleness,
    rule_devices,
)


# --- decision -------------------------------------------------------------------------------------


def _verdict(findings: tuple[Finding, ...]) -> Verdict:
    """HOLD beats INSPECT beats RELEASE: a parcel due for inspection but also, say, overweight is
    held, because the inspection lane is for customs' check, not for settling our own doubts."""
    verdicts = {f.verdict for f in findings}
    if Verdict.HOLD in verdicts:
        return Verdict.HOLD
    if Verdict.INSPECT in verdicts:
        return Verdict.INSPECT
    return Verdict.RELEASE


def _reason(verdict: Verdict, findings: tuple[Finding, ...]) -> str:
    """The first finding that explains the verdict (rule order), and how many more there are."""
    if verdict is Verdict.RELEASE:
        return "Cleared: release"
    lead = next(f for f in findings if f.verdict is verdict)
    others = len(findings) - 1
    return lead.text if others == 0 else f"{lead.text} (+{others} more)"


def _json_float(value: float | None) -> float | str | None:
    """Floats JSON can carry; NaN and infinities as their names (json.dumps would emit bare NaN)."""
    return value if value is None or math.isfinite(value) else str(value)


def _checked(obs: Observation, cache: CacheState, tol: Tolerance) -> dict[str, Any]:
    """What the decision was based on, JSON-ready (Decimals as exact strings)."""
    record = _record(obs, cache)
    trusted = _trusted(obs, cache)

    def dec(value: Decimal | None) -> str | None:
        return None if value is None else format(value, "f")

    return {
        "scanned_code": obs.scanned_code,
        "record_found": record is not None,
        "logisticsCode": record.logisticsCode if record else None,
        "logisticsNo": record.logisticsNo if record else None,
        "invtNo": record.invtNo if record else None,
        "record_version": record.version if record else None,
        "status": record.status if record else None,
        "cancelled": record.cancelled if record else None,
        "signature_valid": cache.signature_valid if record else None,
        "signature_checked": (
            None if not record else "earlier, same bytes" if cache.signature_cached else "now"
        ),
        "record_park_id": record.park_id if record else None,
        "park_id": cache.park_id,
        "highest_version_seen": cache.highest_version_seen if record else None,
        "already_released": cache.already_released,
        "release_evidence": list(cache.release_evidence),
        "release_history_intact": cache.release_history_intact,
        "release_history_problem": cache.release_history_problem,
        "weight_kg": dec(obs.weight_kg),
        "weight_required": obs.weight_required,
        "declared_gross_kg": dec(trusted.grossWeight) if trusted else None,
        "allowed_kg": dec(allowed_difference(trusted.grossWeight, tol)) if trusted else None,
        "tolerance": {"absolute_kg": dec(tol.absolute_kg), "percent": dec(tol.percent)},
        "camera_configured": obs.camera_configured,
        "camera_codes": list(_camera_seen(obs)),
        "cache_age_s": _json_float(cache.last_sync_age_s),
        "staleness_limit_s": _json_float(cache.staleness_limit_s),
        "stale_policy": cache.stale_policy,
        "cache_fresh": _is_fresh(cache),
        "device_faults": list(obs.device_faults),
        "read_ambiguities": list(obs.read_ambiguities),
        "weight_ambiguities": list(obs.weight_ambiguities),
        "tailgating": obs.tailgating,
    }


def decide(obs: Observation, cache: CacheState, tol: Tolerance) -> Decision:
    """Run every rule and decide. RELEASE only when no rule found anything."""
    findings = tuple(f for rule in RULES for f in rule(obs, cache, tol))
    verdict = _verdict(findings)
    return Decision(
        verdict=verdict,
        codes=tuple(dict.fromkeys(f.code for f in findings)),
        findings=findings,
        reason=_reason(verdict, findings),
        checked=_checked(obs, cache, tol),
    )

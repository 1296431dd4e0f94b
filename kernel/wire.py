"""Wire forms central and edge share: the signed feed record and the hash-chained edge event.

central/ and edge/ never import each other; they meet over HTTP in these shapes. The canonical
byte forms below are the contract for signatures and hashes and are documented in the README:

* feed record: ``b"bondgate-feed-v1\\n" + canonical_json(record without "seq" and "signature")``,
  signed with Ed25519; the signature travels base64 (standard alphabet, padded).
* event: ``hash = sha256(prev_hash_hex_ascii + b"\\n" + canonical_json(event without "hash"))``
  as lowercase hex; the first event of an edge's chain has ``prev_hash = GENESIS_HASH``. A chain is
  one epoch of the edge (``epoch``, absent for the first, 2, 3, … after each re-provisioning), which
  is part of the hashed content.
* feed chain (per park, RFC 6962 style): ``leaf = sha256(b"\\x00" + canonical_json(record as served,
  with its "seq" and "signature"))``; ``hash_n = sha256(b"\\x01" + hash_{n-1} + leaf_n)`` over the raw
  32-byte digests, ``hash_0`` = 32 zero bytes; carried as lowercase hex.
* feed checkpoint: ``b"bondgate-checkpoint-v1\\n" + canonical_json({park_id, cursor, count, hash})``,
  signed with Ed25519 like a record.
* release ledger entry (edge): ``hash = sha256(b"bondgate-release-v1\\n" + prev_hash_hex_ascii + b"\\n"
  + canonical_json({n, logisticsNo, logisticsCode, decision_id, record_version}))``.

``canonical_json`` is JSON with keys sorted, no insignificant whitespace, UTF-8 (not ASCII-escaped),
null fields, empty lists and empty objects left out at any depth, decimals as their exact string,
datetimes in UTC as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` (docs/canonical-form.md, with vectors).
``canonical_json_v1``, the form until 2026-12-05, is still accepted when verifying.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, StrictInt, WithJsonSchema, field_validator

FEED_DOMAIN = b"bondgate-feed-v1\n"
CHECKPOINT_DOMAIN = b"bondgate-checkpoint-v1\n"
RELEASE_DOMAIN = b"bondgate-release-v1\n"
NOTE_DOMAIN = b"bondgate-note-v1\n"
GENESIS_HASH = "0" * 64
_LEAF = b"\x00"  # RFC 6962's domain separation of leaves and interior hashes
_NODE = b"\x01"


def wire_datetime(moment: datetime) -> str:
    """A datetime in its one text form, on the wire and in signed or hashed bytes: UTC,
    ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``, microseconds only when not zero (what pydantic writes for a
    UTC datetime). A naive datetime is taken as UTC."""
    utc = moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{utc.microsecond:06d}Z" if utc.microsecond else f"{text}Z"


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (list, dict)) and not value)


def _clean(value: Any) -> Any:
    """JSON-ready form of any payload: null fields, empty lists and empty objects dropped (at any
    depth), decimals as exact strings, datetimes as `wire_datetime`, enums as their values."""
    if isinstance(value, dict):
        cleaned = ((k, _clean(v)) for k, v in value.items())
        return {k: v for k, v in cleaned if not _empty(v)}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return wire_datetime(value)
    if isinstance(value, StrEnum):
        return value.value
    return value


def _clean_v1(value: Any) -> Any:
    """The form signed and hashed before the canonical form was written down whole (until
    2026-12-05): datetimes as `isoformat()` (``+00:00``), empty lists and objects kept. Verifiers
    still accept it, so records signed and events hashed before then stay valid; nothing new is
    made in it."""
    if isinstance(value, dict):
        return {k: _clean_v1(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean_v1(v) for v in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    return value


# what json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False) builds on each call
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_AS_IS = frozenset({str, int, bool, float})  # exact types `_clean` returns unchanged


def canonical_json(payload: dict[str, Any]) -> bytes:
    """The one byte form that gets signed or hashed (docs/canonical-form.md, the module docstring).

    The top level of a flat record is converted in one loop on exact types, and anything else
    (nested dicts and lists, enums, subclasses) goes through `_clean`, so the bytes are exactly
    those of `json.dumps(_clean(payload), ...)`; tests/kernel/test_canonical_json.py holds that."""
    if type(payload) is not dict:
        return _ENCODER.encode(_clean(payload)).encode()
    out = {}
    for key, value in payload.items():
        kind = type(value)
        if kind in _AS_IS:
            out[key] = value
        elif value is None:
            continue
        elif kind is Decimal:
            out[key] = format(value, "f")
        elif kind is datetime:
            out[key] = wire_datetime(value)
        else:
            cleaned = _clean(value)
            if not _empty(cleaned):
                out[key] = cleaned
    return _ENCODER.encode(out).encode()


def canonical_json_v1(payload: dict[str, Any]) -> bytes:
    """The earlier byte form (`_clean_v1`), for verifying what was signed or hashed in it."""
    return _ENCODER.encode(_clean_v1(payload)).encode()


# --- clearance feed ---------------------------------------------------------------------------


class FeedRecord(BaseModel):
    """What an edge knows of one parcel's clearance. No buyer or consignee personal data."""

    model_config = ConfigDict(frozen=True)

    seq: int = Field(description="feed cursor position of this change (not signed)")
    park_id: str
    invtNo: str | None = Field(None, description="inventory number assigned by customs")
    orderNo: str
    ebpCode: str
    ebcCode: str
    logisticsCode: str
    logisticsNo: str
    grossWeight: Decimal = Field(description="kg")
    netWeight: Decimal = Field(description="kg")
    goods: str = Field(description="goods summary: names and quantities, for the screen")
    status: str = Field(description="clearance returnStatus code, e.g. 800 released")
    cancelled: bool = Field(description="cancelled (CEB623) or return requested (CEB625)")
    version: int = Field(description="increments on every change of this record")
    updated_at: datetime
    signature: str = Field("", description="Ed25519 over the canonical bytes, base64")

    def signed_bytes(self) -> bytes:
        body = self.model_dump(mode="python", exclude={"seq", "signature"})
        return FEED_DOMAIN + canonical_json(body)

    def signed_bytes_v1(self) -> bytes:
        """The bytes as signed before 2026-12-05 (`canonical_json_v1`): still accepted."""
        return FEED_DOMAIN + canonical_json_v1(self.model_dump(mode="python", exclude={"seq", "signature"}))


class NoteRecord(BaseModel):
    """What an edge knows of one release note (核放单): what its vehicle gate checks, and no personal
    data (the applicant's name and phone stay at central). A feed item with `kind` "release_note";
    clearance records carry no `kind`. Signed like a clearance record, under its own domain, so
    neither can pass for the other."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["release_note"] = "release_note"
    seq: int = Field(description="feed cursor position of this change (not signed)")
    park_id: str
    etpsPreentNo: str = Field(description="the enterprise's note number")
    passportNo: str | None = Field(None, description="customs' note number, once approved")
    status: str = Field(description="SAS stucd: 0 applied, 1 approved, 2 passed, 3/4 first/second gate, 5, 6")
    passportTypecd: str = Field(description="1–6; 6 an empty vehicle")
    bindTypecd: str | None = None
    ioTypecd: Literal["I", "E"]
    vehicleNo: str = Field(description="plate")
    vehicleIcNo: str | None = Field(None, description="electronic plate / IC card the gate must read")
    vehicleWt: Decimal = Field(description="registered tare, kg")
    vehicleFrameWt: Decimal = Field(Decimal(0), description="kg")
    containerNo: str | None = None
    containerType: str | None = Field(None, description="ISO 6346 size-type code, e.g. 22G1")
    containerWt: Decimal = Field(Decimal(0), description="kg")
    totalGrossWt: Decimal = Field(description="goods gross weight, kg")
    totalWt: Decimal = Field(description="vehicle + frame + container + goods, kg")
    sealIds: tuple[str, ...] = Field((), description="electronic seals the gate must read")
    inventories: tuple[str, ...] = Field((), description="invtNo of the parcels on the vehicle")
    version: int = Field(description="increments on every change of this note")
    updated_at: datetime
    signature: str = Field("", description="Ed25519 over the canonical bytes, base64")

    def signed_bytes(self) -> bytes:
        body = self.model_dump(mode="python", exclude={"seq", "signature"})
        return NOTE_DOMAIN + canonical_json(body)


def is_note_item(item: Any) -> bool:
    """A feed item that is a release note (by its `kind`), not a clearance record."""
    return isinstance(item, dict) and item.get("kind") == "release_note"


def sign_note(record: NoteRecord, key: Ed25519PrivateKey) -> NoteRecord:
    signature = base64.b64encode(key.sign(record.signed_bytes())).decode()
    return record.model_copy(update={"signature": signature})


def verify_note(record: NoteRecord, public_key: Ed25519PublicKey) -> bool:
    try:
        signature = base64.b64decode(record.signature, validate=True)
        public_key.verify(signature, record.signed_bytes())
    except (ValueError, InvalidSignature):
        return False
    return True


class FeedCheckpoint(BaseModel):
    """Central's signed statement about a park's feed: up to and including seq `cursor` it holds
    `count` records whose running hash (`feed_chain`) is `hash`. The feed only grows, so a later
    checkpoint of the same park must extend an earlier one; anything else is a stale or forked copy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    park_id: str = Field(min_length=1, max_length=64)
    cursor: int = Field(ge=0, lt=2**63, description="seq of the park's last record covered (0: none)")
    count: int = Field(ge=0, lt=2**63, description="how many of the park's records that is")
    hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="running hash over them, in seq order")
    signature: str = Field("", description="Ed25519 over the canonical bytes, base64")

    def signed_bytes(self) -> bytes:
        return checkpoint_signed_bytes(self.park_id, self.cursor, self.count, self.hash)

    def same_point(self, other: FeedCheckpoint) -> bool:
        """The same statement (signatures aside)."""
        return (self.park_id, self.cursor, self.count, self.hash) == (
            other.park_id,
            other.cursor,
            other.count,
            other.hash,
        )


def checkpoint_signed_bytes(park_id: str, cursor: int, count: int, hash: str) -> bytes:
    """What central signs for a checkpoint (also without building a `FeedCheckpoint`, on its write path)."""
    return CHECKPOINT_DOMAIN + canonical_json(
        {"park_id": park_id, "cursor": cursor, "count": count, "hash": hash}
    )


def genesis_checkpoint(park_id: str) -> FeedCheckpoint:
    """Where every park's feed starts; needs no signature, every edge knows it."""
    return FeedCheckpoint(park_id=park_id, cursor=0, count=0, hash=GENESIS_HASH)


def feed_leaf(item: Any) -> bytes:
    """The 32-byte leaf hash of one feed record as served (a JSON object with its seq and signature).

    `item` is the parsed JSON value: central hashes ``{"seq": seq, **json.loads(stored)}``, an edge
    the item of the page it parsed; both are the same value, so their canonical bytes are the same.
    Any JSON value hashes (a hostile item only fails to match)."""
    return hashlib.sha256(_LEAF + canonical_json(item)).digest()


def feed_chain(prev_hash: str, items: Iterable[Any]) -> str:
    """Extend a running hash (hex) by the records `items`, in order."""
    state = bytes.fromhex(prev_hash)
    sha256 = hashlib.sha256
    for item in items:
        state = sha256(_NODE + state + sha256(_LEAF + canonical_json(item)).digest()).digest()
    return state.hex()


class FeedPage(BaseModel):
    records: list[FeedRecord | NoteRecord] = Field(
        description="clearance records and (with `kind` release_note) release notes, in seq order"
    )
    next_after: int = Field(description="pass as `after` to get the next page")
    has_more: bool
    head: int = Field(0, description="the park's newest seq: `head - next_after` is how far behind you are")
    checkpoint: FeedCheckpoint = Field(
        description="signed checkpoint at `next_after`: the page's records must extend the previous one to it"
    )


def sign_record(record: FeedRecord, key: Ed25519PrivateKey) -> FeedRecord:
    signature = base64.b64encode(key.sign(record.signed_bytes())).decode()
    return record.model_copy(update={"signature": signature})


def verify_record(record: FeedRecord, public_key: Ed25519PublicKey) -> bool:
    """The signature holds over the record's canonical bytes (or, for a record signed before the
    canonical form was written down whole, over its earlier form)."""
    try:
        signature = base64.b64decode(record.signature, validate=True)
    except ValueError:
        return False
    for signed in (record.signed_bytes, record.signed_bytes_v1):
        try:
            public_key.verify(signature, signed())
        except InvalidSignature:
            continue
        return True
    return False


def sign_checkpoint(checkpoint: FeedCheckpoint, key: Ed25519PrivateKey) -> FeedCheckpoint:
    signature = base64.b64encode(key.sign(checkpoint.signed_bytes())).decode()
    return checkpoint.model_copy(update={"signature": signature})


def verify_checkpoint(checkpoint: FeedCheckpoint, public_key: Ed25519PublicKey) -> bool:
    try:
        public_key.verify(base64.b64decode(checkpoint.signature, validate=True), checkpoint.signed_bytes())
    except (InvalidSignature, ValueError):
        return False
    return True


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


# --- edge events --------------------------------------------------------------------------------


class EventKind(StrEnum):
    RELEASE = "release"
    DISCREPANCY = "discrepancy"
    INSPECTION_DIVERTED = "inspection_diverted"
    OVERRIDE = "override"
    DEVICE_FAULT = "device_fault"
    HEARTBEAT = "heartbeat"
    ACTUATION = "actuation"  # what the outputs did for a decision: confirmed by read-back, or failed
    ALARM = "alarm"  # the edge found its inputs or its own records tampered with: `reason` names which
    PASSAGE = "passage"  # a vehicle at a vehicle gate: passed, stopped, overridden or tailgating


# The wire forms an event's values are taken in (docs/canonical-form.md): what is hashed is the
# canonical form of the value, so a value must travel in a form whose canonical bytes are plain.
WIRE_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})"
)
"""An RFC 3339 date-time with seconds, at most six fraction digits and a zone (`Z` or ±HH:MM)."""
WIRE_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")
"""A decimal quantity as its exact string: what it says is what is hashed (no exponent, no leading
zeros, no sign but a minus)."""


def _wire_datetime_input(value: Any, name: str) -> Any:
    """A datetime (built in Python) as is; from JSON only a string in the wire form (`WIRE_DATETIME`):
    a number, a date alone, no zone or a seventh fraction digit names no one moment the hash is over."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and WIRE_DATETIME.fullmatch(value):
        return value
    raise ValueError(
        f"{name} must be a date-time string YYYY-MM-DDTHH:MM:SS[.ffffff] with a zone (Z or ±HH:MM)"
        " (docs/canonical-form.md); the hash is over its canonical form"
    )


def _exact_decimal_input(value: Any, name: str) -> Any:
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, str) and WIRE_DECIMAL.fullmatch(value):
        return value
    raise ValueError(f'{name} must be a JSON string holding the exact decimal, e.g. "14292.8"')


WireKg = Annotated[Decimal, WithJsonSchema({"type": "string", "pattern": f"^{WIRE_DECIMAL.pattern}$"})]


class PassageBody(BaseModel):
    """One vehicle at a vehicle gate (卡口): what the lane collected, the note it was checked against
    and the verdict. Weights travel as exact decimal strings, like `weight_kg`."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(
        None, max_length=64, description="etpsPreentNo of the note checked (None: none found)"
    )
    note_version: StrictInt | None = Field(None, ge=1, lt=2**63)
    passportNo: str | None = Field(None, max_length=64)
    gate: Literal["single", "first", "second"]
    direction: Literal["I", "E"]
    verdict: Literal["PASS", "STOP"]
    overridden: bool = Field(
        False, description="a supervisor released an operational stop (operator, reason)"
    )
    codes: list[str] = Field(default_factory=list, max_length=64)
    plate: str | None = Field(None, max_length=32)
    plate_confidence_pct: StrictInt | None = Field(
        None, ge=0, le=100, description="the plate reading's confidence, whole percent (no float is hashed)"
    )
    card: str | None = Field(None, max_length=64)
    gross_kg: WireKg | None = Field(None, description="the weighbridge's stable whole-vehicle reading")
    goods_kg: WireKg | None = Field(None, description="gross − (tare + frame + container), as measured")
    expected_kg: WireKg | None = Field(None, description="the note's totalWt")
    containers: list[str] = Field(default_factory=list, max_length=4)
    seals: list[str] = Field(default_factory=list, max_length=4)
    photos: list[str] = Field(
        default_factory=list, max_length=8, description="sha256 (hex) of each image taken of the vehicle"
    )
    inventories: list[str] = Field(default_factory=list, max_length=5000)
    tailgating: bool = False

    @field_validator("gross_kg", "goods_kg", "expected_kg", mode="before")
    @classmethod
    def _exact(cls, value: Any) -> Any:
        return _exact_decimal_input(value, "passage weights")


class EventBody(BaseModel):
    """What happened. Parcel fields are set for parcel events; others for faults/heartbeats."""

    model_config = ConfigDict(extra="forbid")

    logisticsCode: str | None = None
    logisticsNo: str | None = Field(None, max_length=60)
    invtNo: str | None = None
    record_version: StrictInt | None = Field(
        None, lt=2**63, description="version of the clearance record checked"
    )
    verdict: str | None = Field(None, description="RELEASE, HOLD or INSPECT")
    codes: list[str] = Field(default_factory=list, description="discrepancy codes (DESIGN.md §5)")
    weight_kg: (
        Annotated[Decimal, WithJsonSchema({"type": "string", "pattern": f"^{WIRE_DECIMAL.pattern}$"})] | None
    ) = Field(None, description='kg, as a JSON string holding the exact decimal ("0.815"): hashed as it is')
    device: str | None = None
    operator: str | None = None
    reason: str | None = Field(None, max_length=1000)
    backlog: StrictInt | None = Field(None, ge=0, lt=2**63, description="heartbeat: outbox size at the edge")
    decision_id: str | None = Field(
        None, max_length=64, description="the edge decision this event reports or follows up"
    )
    actuation: Literal["confirmed", "failed", "withheld"] | None = Field(
        None,
        description="actuation: the output was read back as commanded (confirmed), was not (failed: where"
        " the parcel went is not known), or a release was not carried out (withheld: sent to hold)",
    )
    output: str | None = Field(
        None, max_length=64, description="actuation: the lane or barrier output the decision drove"
    )
    detail: str | None = Field(None, max_length=2000)
    ledger_n: StrictInt | None = Field(
        None,
        ge=1,
        lt=2**63,
        description="release: this release's entry in the edge's release ledger (1, 2, …)",
    )
    ledger_hash: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="release: the ledger's hash after that entry"
    )
    passage: PassageBody | None = Field(None, description="passage: the vehicle, its note and verdict")

    @field_validator("weight_kg", mode="before")
    @classmethod
    def _exact_decimal(cls, value: Any) -> Any:
        """A JSON string holding the exact decimal ("0.815"), hashed as that string; a JSON number
        (0.815) has no one canonical string and is refused (a Decimal built in Python is kept)."""
        if value is None or isinstance(value, Decimal):
            return value
        if isinstance(value, str) and WIRE_DECIMAL.fullmatch(value):
            return value
        raise ValueError('weight_kg must be a JSON string holding the exact decimal, e.g. "0.815"')


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    edge_id: str = Field(min_length=1, max_length=64)
    epoch: StrictInt | None = Field(
        None,
        ge=2,
        lt=2**63,
        description="the edge's chain after re-provisioning (2, 3, …); absent for its first chain, so"
        " chains from before epochs hash the same",
    )
    seq: StrictInt = Field(
        ge=1,
        lt=2**63,
        description="per-edge sequence number, contiguous from 1 within the epoch; a JSON integer"
        " written without a fraction (5, not 5.0: it is hashed as an integer)",
    )
    kind: EventKind
    station: str | None = Field(None, max_length=64)
    occurred_at: Annotated[
        datetime,
        WithJsonSchema({"type": "string", "format": "date-time", "pattern": f"^{WIRE_DATETIME.pattern}$"}),
    ] = Field(description="YYYY-MM-DDTHH:MM:SS[.ffffff] with a zone (Z or ±HH:MM); hashed in UTC, `Z`")
    body: EventBody = Field(default_factory=EventBody)
    prev_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _wire_occurred_at(cls, value: Any) -> Any:
        return _wire_datetime_input(value, "occurred_at")

    def hashed_bytes(self) -> bytes:
        return (
            self.prev_hash.encode() + b"\n" + canonical_json(self.model_dump(mode="python", exclude={"hash"}))
        )

    def expected_hash(self) -> str:
        return hashlib.sha256(self.hashed_bytes()).hexdigest()

    def hash_form(self) -> Literal["canonical", "earlier"] | None:
        """Which form `hash` is the hash of this content in: the canonical form, the earlier one
        (events hashed before the canonical form was written down whole, 2026-12-05), or neither."""
        if self.hash == self.expected_hash():
            return "canonical"
        earlier = (
            self.prev_hash.encode()
            + b"\n"
            + canonical_json_v1(self.model_dump(mode="python", exclude={"hash"}))
        )
        return "earlier" if self.hash == hashlib.sha256(earlier).hexdigest() else None

    def hash_matches(self) -> bool:
        """`hash` is the hash of this content, in the canonical form or the earlier one."""
        return self.hash_form() is not None


def release_entry_hash(
    prev_hash: str, *, n: int, logistics_no: str, logistics_code: str, decision_id: str, record_version: int
) -> str:
    """The edge's release ledger: entry `n` chained to the one before (GENESIS_HASH for the first).
    A release event carries `ledger_n` and `ledger_hash`, so central's copy of the events can
    recompute the ledger from the release events alone, and so anchors it."""
    body = canonical_json(
        {
            "n": n,
            "logisticsNo": logistics_no,
            "logisticsCode": logistics_code,
            "decision_id": decision_id,
            "record_version": record_version,
        }
    )
    return hashlib.sha256(RELEASE_DOMAIN + prev_hash.encode() + b"\n" + body).hexdigest()


def chain_event(prev_hash: str, **fields: Any) -> Event:
    """Build the next event of a chain, computing its hash."""
    draft = Event(prev_hash=prev_hash, hash=GENESIS_HASH, **fields)
    return draft.model_copy(update={"hash": draft.expected_hash()})

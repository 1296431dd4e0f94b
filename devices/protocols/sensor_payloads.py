"""MQTT sensor payloads, sans-I/O: bytes in, a validated model or one `PayloadError` out.

Five sensor types reach the edge over MQTT: gate/door position sensors, loop detectors, the result
messages of plate-recognition cameras, and at a vehicle gate (卡口) container-number recognition and
electronic seal (电子关锁) readers. Each payload is a small JSON object; `decode()` checks
the size before parsing, parses and validates in one pass (pydantic-core's JSON parser reads the
bytes directly), and turns every failure — invalid UTF-8 or JSON, not an object, a missing field, a
wrong type, a value out of range — into `PayloadError` with a one-line reason naming the field. A
sensor sending garbage must cost the driver one counter increment, never an exception it did not
expect, so nothing else may escape (the hypothesis test feeds arbitrary bytes).

Types are strict: `"occupied": "yes"` or `"confidence": "0.9"` are wrong types, not guesses. Two
fields are lenient. `ts`, because firmware sends both: an ISO 8601 time with a zone, or a Unix time
in seconds (or milliseconds, told apart by magnitude); a time without a zone is refused, since it is
ambiguous on a park that spans a border. And a seal reader's `ids`, a list of ids or the customs
gate's own form of them, one string with the two ids separated by `|` (`"GS0001|GS0002"`; an empty
piece, as in `"GS0001|"`, is no seal). Unknown extra fields are ignored so that a firmware update
adding a field does not blind the gate.

What recognition read is reported as read: a container number is bounded in length and charset but
its ISO 6346 check digit is not checked here (a misread is the lane's finding, kernel/containers.py
has the rule), nor are two seal ids checked to differ.

`ts` is required: it is what tells a loop occupied now from a message that waited at the broker (a
QoS 1 message queued while the agent was away, a sensor replaying its buffer), and a message nobody
can date could not be told apart. `untimely()` says why a decoded message is too old, or dated too far
ahead of the reader's clock, to count as an event; what to do about it is the driver's business.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from devices.protocols.errors import ProtocolError

MAX_PAYLOAD = 16 * 1024  # bytes; a sensor message is well under 1 KiB, a result with a URL ~ 2 KiB

Timestamp = Annotated[AwareDatetime, Field(strict=False)]  # ISO 8601 with zone, or Unix s / ms


class SensorType(StrEnum):
    GATE = "gate"  # gate or door position sensor
    LOOP = "loop"  # inductive loop detector
    PLATE = "plate"  # plate-recognition camera result
    CONTAINER = "container"  # container-number recognition result (vehicle gate)
    SEAL = "seal"  # electronic seal reader (vehicle gate)


class _Payload(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")


GateState = Literal["open", "closed", "opening", "closing", "stopped", "fault"]


class GateSensor(_Payload):
    state: GateState
    ts: Timestamp


class LoopDetector(_Payload):
    occupied: bool
    ts: Timestamp


class PlateResult(_Payload):
    plate: str = Field(min_length=1, max_length=32, pattern=r"\S")
    confidence: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    lane: str = Field(min_length=1, max_length=64)
    ts: Timestamp
    image_url: str | None = Field(None, max_length=2048, pattern=r"^https?://\S+$")


MAX_CONTAINERS = 2  # a truck carries one 40' or 45', or two 20' containers
MAX_SEALS = 2  # the customs gate's message has room for two electronic seals
# as read: ISO 6346 is 4 letters + 7 digits, but a misread may be shorter or longer, and a reader may
# add the size/type code; bounded so that a hostile payload cannot pass a long text on
ContainerNumber = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Z0-9]+$")]
SealId = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]


def _as_tuple(value: object) -> object:
    """A JSON array as the frozen tuple the model keeps (strict mode takes no list for a tuple)."""
    return tuple(value) if isinstance(value, list) else value


class ContainerResult(_Payload):
    """Container-number recognition: the numbers as read (none: no container seen or none readable)."""

    numbers: tuple[ContainerNumber, ...] = Field(max_length=MAX_CONTAINERS)
    types: tuple[Annotated[str, Field(pattern=r"^[0-9A-Z]{4}$")], ...] = Field(
        (),
        max_length=MAX_CONTAINERS,
        description="the ISO 6346 size-type codes read off the boxes (22G1 …), in the order of `numbers`",
    )
    confidence: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    lane: str = Field(min_length=1, max_length=64)
    ts: Timestamp
    image_url: str | None = Field(None, max_length=2048, pattern=r"^https?://\S+$")

    _numbers = field_validator("numbers", "types", mode="before")(_as_tuple)


class SealRead(_Payload):
    """An electronic seal reader: the ids of the seals it read (none: no seal on the vehicle)."""

    ids: tuple[SealId, ...] = Field(max_length=MAX_SEALS)
    lane: str = Field(min_length=1, max_length=64)
    ts: Timestamp

    @field_validator("ids", mode="before")
    @classmethod
    def _customs_form(cls, value: object) -> object:
        """`"A|B"` (the customs gate's collect message) is `["A", "B"]`; `""` or `"A|"` hold fewer."""
        if isinstance(value, str):
            return tuple(part for part in value.split("|") if part)
        return _as_tuple(value)


SensorPayload = GateSensor | LoopDetector | PlateResult | ContainerResult | SealRead
_Model = type[GateSensor] | type[LoopDetector] | type[PlateResult] | type[ContainerResult] | type[SealRead]

MODELS: dict[SensorType, _Model] = {
    SensorType.GATE: GateSensor,
    SensorType.LOOP: LoopDetector,
    SensorType.PLATE: PlateResult,
    SensorType.CONTAINER: ContainerResult,
    SensorType.SEAL: SealRead,
}

ErrorKind = Literal[
    "too_large", "invalid_json", "not_object", "missing_field", "wrong_type", "invalid_value", "unknown_type"
]


class PayloadError(ProtocolError, ValueError):
    """A payload that is not a valid message of its sensor type; `kind` is stable, `reason` is for logs."""

    def __init__(self, kind: ErrorKind, reason: str, *, sensor_type: str, topic: str) -> None:
        super().__init__(f"{sensor_type} payload on {topic!r}: {reason}")
        self.kind: ErrorKind = kind
        self.reason = reason
        self.sensor_type = sensor_type
        self.topic = topic


# pydantic error types, by the kind we report (anything else is an invalid value)
_KINDS: dict[str, ErrorKind] = {
    "json_invalid": "invalid_json",
    "json_type": "invalid_json",
    "model_type": "not_object",
    "model_attributes_type": "not_object",
    "missing": "missing_field",
    "bool_type": "wrong_type",
    "string_type": "wrong_type",
    "float_type": "wrong_type",
    "int_type": "wrong_type",
    "datetime_type": "wrong_type",
    "tuple_type": "wrong_type",
}
_SHOWN_INPUT = 40  # characters of a bad value quoted in a reason (payloads are hostile: keep logs short)


def decode(sensor_type: SensorType | str, topic: str, payload: bytes) -> SensorPayload:
    """Validate one MQTT payload as `sensor_type`; raises only `PayloadError`."""
    try:
        kind = SensorType(sensor_type)
    except ValueError:
        raise PayloadError(
            "unknown_type",
            f"unknown sensor type {str(sensor_type)[:_SHOWN_INPUT]!r}",
            sensor_type=str(sensor_type)[:_SHOWN_INPUT],
            topic=topic,
        ) from None
    if len(payload) > MAX_PAYLOAD:
        raise PayloadError(
            "too_large", f"{len(payload)} bytes > {MAX_PAYLOAD}", sensor_type=kind.value, topic=topic
        )
    try:
        return MODELS[kind].model_validate_json(payload)
    except ValidationError as exc:
        error_kind, reason = _describe(exc)
        raise PayloadError(error_kind, reason, sensor_type=kind.value, topic=topic) from None


def age_s(message: SensorPayload, now: float) -> float:
    """Seconds from the message's own `ts` to `now` (a Unix time); negative if dated after `now`."""
    return now - message.ts.timestamp()


def untimely(
    message: SensorPayload, topic: str, now: float, *, max_age_s: float, max_ahead_s: float
) -> str | None:
    """Why `message` is no event at `now`: older than `max_age_s`, or dated more than `max_ahead_s`
    ahead (a sensor clock that runs fast, or a forged time); None if it is timely."""
    age = age_s(message, now)
    shown = topic if len(topic) <= 2 * _SHOWN_INPUT else topic[: 2 * _SHOWN_INPUT] + "…"
    if age > max_age_s:
        return f"stale sensor message on {shown!r} ({age:.1f} s old)"
    if -age > max_ahead_s:
        return f"sensor message on {shown!r} dated {-age:.1f} s ahead of this clock"
    return None


def encode(message: SensorPayload) -> bytes:
    """The wire form of a payload (what the simulator sends); `decode` of it gives `message` back."""
    return message.model_dump_json(exclude_none=True).encode()


def _describe(exc: ValidationError) -> tuple[ErrorKind, str]:
    errors = exc.errors(include_url=False)
    first = errors[0]
    kind = _KINDS.get(first["type"], "invalid_value")
    if first["type"] == "literal_error" and not isinstance(first["input"], str):
        kind = "wrong_type"  # {"state": 1}: not a misspelt state but a number where text belongs
    where = ".".join(str(part) for part in first["loc"])
    if kind == "invalid_json":
        reason = f"invalid JSON: {first['msg'].removeprefix('Invalid JSON: ')}"
    elif kind == "not_object":
        reason = f"not a JSON object ({type(first['input']).__name__})"
    elif kind == "missing_field":
        reason = f"missing field {where!r}"
    else:
        shown = repr(first["input"])
        if len(shown) > _SHOWN_INPUT:
            shown = shown[:_SHOWN_INPUT] + "…"
        label = "wrong type" if kind == "wrong_type" else "invalid value"
        reason = f"{label} for {where!r}: {first['msg']} (got {shown})"
    if len(errors) > 1:
        reason += f" (+{len(errors) - 1} more)"
    return kind, reason

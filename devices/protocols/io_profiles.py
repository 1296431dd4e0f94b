"""Gate I/O modules as data: where a module keeps its inputs and outputs, what the park calls them,
and how polled input bits become edge events. No I/O here (the driver polls; this decides).

Points are configured by *channel* (the DI0…DIn / DO0…DOn printed on the module's terminals), not
by protocol address, so the same point map works on an ioLogik E1212 and an ADAM-6050; the profile
turns a channel into an address. The ADAM-6050's DO base is configurable because integrators
disagree: the manual's 00017 is protocol address 16, and some code reads it as 17.

First poll: `InputTracker` records the state and emits nothing by default. An `InputChanged` is then
always a transition the driver actually saw, with the time it saw it; the starting state is in
`driver.inputs`. Pass `emit_initial=True` to get one event per point on the first poll instead.
After a reconnect the tracker keeps its state, so what changed while the module was down is emitted
(late) on the first good poll, and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from devices.events import InputChanged

MAX_BITS = 2000  # Modbus: at most 2000 bits in one read (functions 1 and 2)


class ModuleProfile(BaseModel):
    """Where one module model keeps its DIs (function 2) and DOs (coils, functions 1/5/15)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    di_address: int = Field(0, ge=0, le=65535)  # protocol address of DI0
    di_count: int = Field(ge=1, le=MAX_BITS)
    do_address: int = Field(0, ge=0, le=65535)  # protocol address of DO0
    do_count: int = Field(ge=1, le=MAX_BITS)
    di_word_register: int | None = Field(None, ge=0, le=65535)  # all DIs as one holding register

    @model_validator(mode="after")
    def _fits(self) -> ModuleProfile:
        if self.di_address + self.di_count > 65536:
            raise ValueError(f"profile {self.name!r}: DIs run past address 65535")
        if self.do_address + self.do_count > 65536:
            raise ValueError(f"profile {self.name!r}: DOs run past address 65535")
        return self

    def di(self, channel: int) -> int:
        return self.di_address + channel

    def do(self, channel: int) -> int:
        return self.do_address + channel


def e1212() -> ModuleProfile:
    """Moxa ioLogik E1212: DO0–7 at coils 0–7, DI0–15 at discrete inputs 0–15."""
    return ModuleProfile(name="e1212", di_address=0, di_count=16, do_address=0, do_count=8)


def adam6050(do_address: int = 16) -> ModuleProfile:
    """Advantech ADAM-6050: DI0–11 at 0–11, DO0–5 at coils 16–21 (or 17–22; check the module),
    and all DIs as one word in holding register 300 (40301)."""
    return ModuleProfile(
        name="adam6050", di_address=0, di_count=12, do_address=do_address, do_count=6, di_word_register=300
    )


PROFILES = {"e1212": e1212, "adam6050": adam6050}


def profile_named(name: str) -> ModuleProfile:
    """A built-in profile by name, case and dashes ignored ("ADAM-6050" is "adam6050")."""
    factory = PROFILES.get(name.lower().replace("-", "").replace("_", ""))
    if factory is None:
        raise ValueError(f"unknown module profile {name!r} (known: {', '.join(PROFILES)})")
    return factory()


class InputPoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    channel: int = Field(ge=0)
    invert: bool = False  # a normally-closed switch or a dark-on photo-eye: report the opposite


class OutputPoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    channel: int = Field(ge=0)
    safe: bool = False  # the value safe_state() drives: barrier closed, diverter on hold


def _point_shorthand(value: Any) -> Any:
    """`{"photo_eye_1": 0}` is short for `{"photo_eye_1": {"channel": 0}}`."""
    if isinstance(value, Mapping):
        return {
            k: ({"channel": v} if isinstance(v, int) and not isinstance(v, bool) else v)
            for k, v in value.items()
        }
    return value


class IOMap(BaseModel):
    """A module profile plus the park's names for its points; every error names the point."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: ModuleProfile
    inputs: dict[str, InputPoint] = Field(default_factory=dict)
    outputs: dict[str, OutputPoint] = Field(default_factory=dict)

    @field_validator("profile", mode="before")
    @classmethod
    def _profile_by_name(cls, value: Any) -> Any:
        """A built-in name ("adam6050"), or one with overrides: {"name": "adam6050", "do_address": 17}."""
        if isinstance(value, str):
            return profile_named(value)
        if isinstance(value, Mapping) and "di_count" not in value and isinstance(value.get("name"), str):
            return profile_named(value["name"]).model_dump() | dict(value)
        return value

    @field_validator("inputs", "outputs", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return _point_shorthand(value)

    @model_validator(mode="after")
    def _points_fit(self) -> IOMap:
        p = self.profile
        _check(self.inputs.items(), "input", "DI", p.di_count, p.name)
        _check(self.outputs.items(), "output", "DO", p.do_count, p.name)
        return self

    def coil(self, output: str) -> int:
        """Protocol address of a named output's coil."""
        return self.profile.do(self.outputs[output].channel)


def _check(
    points: Iterable[tuple[str, InputPoint | OutputPoint]], kind: str, label: str, count: int, profile: str
) -> None:
    used: dict[int, str] = {}
    for name, point in points:
        if not name or not name.isidentifier():
            raise ValueError(f"{kind} {name!r}: a point name must be an identifier (letters, digits, _)")
        if point.channel >= count:
            last = f"{label}{count - 1}"
            raise ValueError(
                f"{kind} {name!r}: channel {point.channel} is outside {label}0–{last} of {profile}"
            )
        if point.channel in used:
            raise ValueError(
                f"{kind} {name!r}: {label}{point.channel} is already {kind} {used[point.channel]!r}"
            )
        used[point.channel] = name


class InputTracker:
    """Turn polled DI bit lists into `InputChanged` events (pure; the caller supplies the time).

    `bits[i]` is DI channel i as read (before inversion). Points whose channel is beyond `bits`
    are an error: the driver asked for fewer bits than the map needs.
    """

    def __init__(self, device: str, inputs: Mapping[str, InputPoint], *, emit_initial: bool = False) -> None:
        self.device = device
        self._inputs = dict(inputs)
        self._emit_initial = emit_initial
        self._state: dict[str, bool] | None = None

    @property
    def state(self) -> dict[str, bool]:
        """The last polled value of every point (empty before the first poll)."""
        return dict(self._state or {})

    def update(self, bits: Sequence[bool], at: float) -> list[InputChanged]:
        values = {}
        for name, point in self._inputs.items():
            if point.channel >= len(bits):
                raise ValueError(f"input {name!r}: DI{point.channel} not in a read of {len(bits)} bits")
            values[name] = bool(bits[point.channel]) != point.invert
        old, self._state = self._state, values
        if old is None:
            if not self._emit_initial:
                return []
            old = {}
        return [
            InputChanged(self.device, name, value, at)
            for name, value in values.items()
            if old.get(name) != value
        ]

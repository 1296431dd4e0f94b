"""Weight indicators over Modbus: a register map as configuration, decode and encode as pure functions.

Vendors disagree on everything: INT32 or UINT32 with the high word first or last (sometimes with the
bytes of each word swapped too), a float32, or one 16-bit register; a scale factor (0.001 kg per
count, 0.005 for a 5 g division); and a status word with motion, overload, underload, net and
sometimes a sign bit next to an unsigned magnitude. So all of it is configuration, and the driver
only reads the blocks `read_blocks()` names and hands the registers to `decode()`.

Weight and status are read in one request whenever they lie within `max_span` registers of each
other (registers in between are read and ignored): one answer then always holds a weight with its
own status word, and an answer that arrives late (RTU has no transaction id) can only ever be an
older reading of the same registers, never one register's value taken for another's. Maps whose
registers lie further apart, or whose indicator refuses the span, are read in separate requests
(see drivers/modbus_scale.py for how those are kept consistent).

Integer types decode exactly: kg = raw × scale, as a Decimal. A float32 carries 6 significant
decimal digits exactly (FLT_DIG), so it is rounded to `resolution` (0.001 kg unless configured):
with gram resolution that is exact up to 999.999 kg. `encode()` is the inverse, for simulators and
round-trip tests.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from devices.protocols.errors import ProtocolError

WeightType = Literal["int16", "uint16", "int32", "uint32", "float32"]

_STRUCT: dict[str, str] = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f"}
MAX_SPAN = 32  # weight and status within this many registers: one request (Modbus allows 125)


class WeightDecodeError(ProtocolError, ValueError):
    """The registers do not hold a weight under this map (missing, out of range, NaN)."""


class WeightMap(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    table: Literal["holding", "input"] = "holding"  # function 3 or 4
    weight_address: int = Field(ge=0, le=65534)
    weight_type: WeightType = "int32"
    word_order: Literal["high_first", "low_first"] = "high_first"
    byte_swap: bool = False  # the two bytes of every register swapped ("BADC"/"DCBA" devices)
    scale: Decimal = Field(Decimal(1), gt=0)  # kg per count (or per float unit)
    resolution: Decimal | None = Field(None, gt=0)  # round decoded kg to this; floats: 0.001 if unset
    status_address: int = Field(ge=0, le=65535)
    motion_bit: int = Field(ge=0, le=15)
    overload_bit: int | None = Field(None, ge=0, le=15)
    underload_bit: int | None = Field(None, ge=0, le=15)
    negative_bit: int | None = Field(None, ge=0, le=15)  # sign of an unsigned magnitude
    net_bit: int | None = Field(None, ge=0, le=15)
    max_span: int = Field(
        MAX_SPAN,
        ge=1,
        le=125,
        description="read weight and status in one request when they lie within this many registers",
    )

    @model_validator(mode="after")
    def _consistent(self) -> WeightMap:
        bits = [
            (name, getattr(self, name))
            for name in ("motion_bit", "overload_bit", "underload_bit", "negative_bit", "net_bit")
            if getattr(self, name) is not None
        ]
        seen: dict[int, str] = {}
        for name, bit in bits:
            if bit in seen:
                raise ValueError(f"{name}: bit {bit} is already {seen[bit]}")
            seen[bit] = name
        if self.weight_address <= self.status_address < self.weight_address + self.words:
            raise ValueError(f"status_address {self.status_address} overlaps the weight registers")
        if self.weight_address + self.words > 65536:
            raise ValueError("weight registers run past address 65535")
        if self.negative_bit is not None and not self.weight_type.startswith("uint"):
            raise ValueError("negative_bit: only meaningful with an unsigned weight_type")
        return self

    @property
    def words(self) -> int:
        return 2 if self.weight_type in ("int32", "uint32", "float32") else 1

    @property
    def effective_resolution(self) -> Decimal | None:
        if self.resolution is None and self.weight_type == "float32":
            return Decimal("0.001")
        return self.resolution

    def read_blocks(self, *, apart: bool = False) -> list[tuple[int, int]]:
        """(address, count) reads covering the weight and status registers: one request if they lie
        within `max_span` registers (unless `apart`), else the status word's and the weight's."""
        spans = sorted([(self.weight_address, self.words), (self.status_address, 1)])
        (a1, n1), (a2, n2) = spans
        span = max(a1 + n1, a2 + n2) - a1
        if not apart and span <= self.max_span:
            return [(a1, span)]
        return [(a1, n1), (a2, n2)]


@dataclass(frozen=True)
class WeightValue:
    kg: Decimal | None  # None when over or under range
    motion: bool
    overload: bool = False
    underload: bool = False
    net: bool = False

    @property
    def stable(self) -> bool:
        """A weight to take: not moving, and in range. Over or under range is never stable, however
        still the indicator is — the same meaning as the serial scales' `stable`."""
        return not self.motion and self.kg is not None


def _bit(status: int, bit: int | None) -> bool:
    return bit is not None and bool(status >> bit & 1)


def _swap(word: int) -> int:
    return (word >> 8) | (word & 0xFF) << 8


def _payload(m: WeightMap, words: list[int]) -> bytes:
    if m.byte_swap:
        words = [_swap(w) for w in words]
    if m.word_order == "low_first":
        words = words[::-1]
    return b"".join(w.to_bytes(2, "big") for w in words)


def _words(m: WeightMap, payload: bytes) -> list[int]:
    words = [int.from_bytes(payload[i : i + 2], "big") for i in range(0, len(payload), 2)]
    if m.word_order == "low_first":
        words = words[::-1]
    if m.byte_swap:
        words = [_swap(w) for w in words]
    return words


def _register(regs: Mapping[int, int], address: int) -> int:
    try:
        value = regs[address]
    except KeyError:
        raise WeightDecodeError(f"register {address} was not read") from None
    if not 0 <= value <= 0xFFFF:
        raise WeightDecodeError(f"register {address} = {value} is not a 16-bit value")
    return value


def decode(m: WeightMap, regs: Mapping[int, int]) -> WeightValue:
    """Registers by address → a weight in kg and the status flags."""
    status = _register(regs, m.status_address)
    words = [_register(regs, m.weight_address + i) for i in range(m.words)]
    (raw,) = struct.unpack(">" + _STRUCT[m.weight_type], _payload(m, words))
    overload, underload = _bit(status, m.overload_bit), _bit(status, m.underload_bit)
    flags = {"motion": _bit(status, m.motion_bit), "net": _bit(status, m.net_bit)}
    if overload or underload:
        return WeightValue(None, overload=overload, underload=underload, **flags)
    if isinstance(raw, float) and not math.isfinite(raw):
        raise WeightDecodeError(f"weight register holds {raw}")
    kg = Decimal(raw) * m.scale
    if _bit(status, m.negative_bit):
        kg = -kg
    if (resolution := m.effective_resolution) is not None:
        try:
            kg = kg.quantize(resolution, rounding=ROUND_HALF_EVEN)
        except InvalidOperation:
            raise WeightDecodeError(f"weight {kg} kg is beyond any scale") from None
    return WeightValue(kg, **flags)


def encode(
    m: WeightMap,
    kg: Decimal | None,
    *,
    motion: bool = False,
    overload: bool = False,
    underload: bool = False,
    net: bool = False,
    exact: bool = True,
) -> dict[int, int]:
    """A weight and flags → registers by address. With `exact`, a kg that is not a whole number of
    scale steps is an error; otherwise it is rounded as an indicator's display division would."""
    status = 0
    flags = (
        (motion, m.motion_bit),
        (overload, m.overload_bit),
        (underload, m.underload_bit),
        (net, m.net_bit),
    )
    for flag, bit in flags:
        if flag:
            if bit is None:
                raise ValueError("this map has no bit for that flag")
            status |= 1 << bit
    kg = Decimal(0) if kg is None else kg
    if kg < 0 and m.negative_bit is not None:
        status |= 1 << m.negative_bit
        kg = -kg
    try:
        count = kg / m.scale
    except InvalidOperation as exc:
        raise ValueError(f"{kg} kg cannot be scaled by {m.scale}") from exc
    value: int | float
    if m.weight_type == "float32":
        value = float(count)
    else:
        whole = count.to_integral_value(rounding=ROUND_HALF_EVEN)
        if exact and whole != count:
            raise ValueError(f"{kg} kg is not a whole number of {m.scale} kg steps")
        value = int(whole)
    try:
        payload = struct.pack(">" + _STRUCT[m.weight_type], value)
    except (struct.error, OverflowError) as exc:
        raise ValueError(f"{kg} kg does not fit a {m.weight_type} at scale {m.scale}") from exc
    words = _words(m, payload)
    regs = {m.weight_address + i: w for i, w in enumerate(words)}
    regs[m.status_address] = status
    return regs


# A common layout, used by the simulator's defaults and the bench: INT32 high word first in holding
# registers 0–1, grams (scale 0.001 kg), status in register 2.
GENERIC_INT32 = WeightMap(
    weight_address=0,
    weight_type="int32",
    scale=Decimal("0.001"),
    status_address=2,
    motion_bit=0,
    overload_bit=1,
    underload_bit=2,
    net_bit=3,
)

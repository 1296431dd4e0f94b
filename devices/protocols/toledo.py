"""Toledo scale protocols, sans-I/O: the 8217 request/reply protocol and the continuous output.

Why two parsers in one module: both frame on STX … CR, resynchronise on the next STX after
garbage, and share the 7-bit conventions. Both formats are 7-bit ASCII, and Toledo indicators often
talk 7E1: read by a port opened 8N1, every byte — STX, digits, CR, not only the status bytes —
carries the parity bit in bit 7. Frames are found and decoded with bit 7 masked off, and taken when
bit 7 is clear throughout or consistently one parity (`parity.bit7`); `parser.parity` then says
which, so the driver can tell the operator; bit 7 set on the status bytes alone is masked too.
Neither parser raises on input: garbage becomes a `Garbage` event and is counted;
`ToledoProtocolError` is raised only for local misuse (encoding a weight the format cannot carry).
Results never depend on how the stream was split into chunks: a run of garbage is reported when the
next STX ends it (or in pieces of MAX_GARBAGE bytes).

8217 (as Odoo's IoT box drives it): the host sends `W`; the scale answers `STX weight CR`, an `N`
after the digits marking a net weight, or `STX ? status CR` when it cannot weigh (motion, over
capacity, under zero). The reply carries no unit: the driver is configured with one.

Continuous: `STX SWA SWB SWC` + 6 weight digits + 6 tare digits + CR (+ checksum), streamed. The
unit is in SWC bits 0–2 (000: lb or kg, as SWB bit 4 says; 001 g; 010 metric t; IND terminals also
011 oz, 100 troy oz, 101 dwt, 110 long ton, 111 custom), SWB bit 6 says the scale has not been zeroed
since power-up and SWC bit 4 that the display is expanded ×10 (Toledo "standard continuous output"
status tables). A frame carries each; whether it is a weight is `ContinuousFrame.stable`'s business.
Checksum: the 2's complement of the 7-bit sum of STX..CR, masked to 7 bits (Toledo/IND manuals).
`ToledoContinuousParser(checksum=None)` detects whether the stream carries one — a checksum seen to
verify once is required on every frame after, and no frame is emitted unverified until the stream
is known to carry none; True or False fixes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Final, Literal

from devices.protocols import parity
from devices.protocols.errors import ProtocolError
from devices.protocols.need_data import NEED_DATA, NeedData
from devices.protocols.receive_buffer import ReceiveBuffer

STX: Final = 0x02
CR: Final = 0x0D
LB_KG: Final = Decimal("0.45359237")  # exact, by definition
# Units with an exact kg value (lb by international definition, oz = lb / 16): never through float.
KG_PER_UNIT: Final[dict[str, Decimal]] = {
    "kg": Decimal(1),
    "lb": LB_KG,
    "g": Decimal("0.001"),
    "t": Decimal(1000),
    "oz": Decimal("0.028349523125"),
}
MAX_GARBAGE: Final = 64  # a garbage run is reported in pieces of at most this many bytes
MAX_8217_BODY: Final = 16  # bytes between STX and CR in an 8217 reply
CONTINUOUS_LEN: Final = 17  # STX + 3 status + 6 + 6 + CR, without the checksum
_WHITESPACE: Final = frozenset(b" \r\n")
_8217_WEIGHT = re.compile(rb" *(-?) *(\d+(?:\.\d*)?|\.\d+)(N?) *\Z")

Unit8217 = Literal["kg", "lb"]  # what an 8217 may be configured to send (its replies carry no unit)
# What SWC bits 0–2 (and SWB bit 4, for code 000) can say. The last four have no kg value here: a
# scale showing them is set wrong for a parcel station, and says so rather than being converted.
ContinuousUnit = Literal["kg", "lb", "g", "t", "oz", "ozt", "dwt", "long ton", "custom"]
_SWC_UNITS: Final[dict[int, ContinuousUnit]] = {
    0b001: "g",
    0b010: "t",
    0b011: "oz",
    0b100: "ozt",
    0b101: "dwt",
    0b110: "long ton",
    0b111: "custom",
}


class ToledoProtocolError(ProtocolError):
    """Local misuse of the encoders; received bytes never raise."""


def kg(value: Decimal, unit: str) -> Decimal:
    """`value` in `unit` (a key of KG_PER_UNIT) as kg. Exact: Toledo values have at most 6 digits
    and the factors at most 11 significant ones, well inside Decimal's default precision."""
    return value if unit == "kg" else value * KG_PER_UNIT[unit]


@dataclass(frozen=True, slots=True)
class Garbage:
    """Bytes that were not a frame (noise, a truncated frame, a bad status byte)."""

    data: bytes


class _Framer:
    """What both parsers share: the receive buffer (`_rx`: bytes masked and raw, and the read
    position), the counters, and finding the next STX."""

    def __init__(self) -> None:
        self._rx = ReceiveBuffer()
        self.garbage = 0  # Garbage events reported
        self.frames = 0  # good frames
        self.parity: parity.BitParity | None = None  # in bit 7 of the last frame returned

    def receive_data(self, data: bytes) -> None:
        self._rx.receive(data)

    def clear(self) -> None:
        """Forget buffered bytes (after a timeout, so a late half-reply cannot pair with the next)."""
        self._rx.clear()

    def _bit7(self, start: int, end: int, status: tuple[int, ...]) -> parity.Seen:
        """How bit 7 is used in the frame at [start, end) (`parity.bit7`); False if it follows no
        rule. Bit 7 set on the `status` positions (relative to start) alone counts as clear: None."""
        raw = bytes(self._rx.raw[start:end])
        seen = parity.bit7(raw)
        if seen is False:
            rest = bytes(b for i, b in enumerate(raw) if i not in status)
            if parity.bit7(rest) is None:
                return None
        return seen

    def _garbage(self, start: int, end: int) -> Garbage:
        self.garbage += 1
        return Garbage(bytes(self._rx.raw[start:end]))

    def _garbage_before_stx(self) -> Garbage | NeedData | None:
        """Skip to the next STX. Returns Garbage for a reportable run, None when positioned on an
        STX, NEED_DATA when no STX is buffered yet. Whitespace-only runs are dropped silently (CR LF
        between frames is common)."""
        rx = self._rx
        buf, pos = rx.masked, rx.pos
        while True:
            stx = buf.find(b"\x02", pos)
            if stx == pos:
                rx.pos = pos
                return None
            end = len(buf) if stx == -1 else stx
            if end - pos >= MAX_GARBAGE:
                end = pos + MAX_GARBAGE
            elif stx == -1:
                rx.pos = pos
                return NEED_DATA
            start, pos = pos, end
            if not _WHITESPACE.issuperset(buf[start:end]):
                rx.pos = pos
                return self._garbage(start, end)


# --- 8217 -----------------------------------------------------------------------------------------

Command8217 = Literal["W", "Z", "T", "C"]


def encode_8217(command: Command8217) -> bytes:
    """W weigh, Z zero, T tare, C clear tare: one byte, no terminator."""
    if command not in ("W", "Z", "T", "C"):
        raise ToledoProtocolError(f"unknown 8217 command {command!r}")
    return command.encode()


@dataclass(frozen=True, slots=True)
class Weight8217:
    """A weight answer: the scale is stable (it answers with a status while in motion)."""

    value: Decimal  # in the indicator's configured unit
    net: bool = False


@dataclass(frozen=True, slots=True)
class Status8217:
    """`STX ? status CR`: why the scale did not send a weight."""

    status: int  # bit 6 always set

    @property
    def motion(self) -> bool:
        return bool(self.status & 0x01)

    @property
    def over_capacity(self) -> bool:
        return bool(self.status & 0x02)

    @property
    def under_zero(self) -> bool:
        return bool(self.status & 0x04)

    @property
    def outside_zero_range(self) -> bool:
        return bool(self.status & 0x08)

    @property
    def centre_of_zero(self) -> bool:
        return bool(self.status & 0x10)

    @property
    def net(self) -> bool:
        return bool(self.status & 0x20)


Event8217 = Weight8217 | Status8217 | Garbage


def status_byte(
    *,
    motion: bool = False,
    over_capacity: bool = False,
    under_zero: bool = False,
    outside_zero_range: bool = False,
    centre_of_zero: bool = False,
    net: bool = False,
) -> int:
    flags = (motion, over_capacity, under_zero, outside_zero_range, centre_of_zero, net)
    return 0x40 | sum(1 << bit for bit, on in enumerate(flags) if on)


def encode_8217_reply(reply: Weight8217 | Status8217) -> bytes:
    """What an 8217 sends (simulator, round-trip tests): `b"\\x02  1.234\\r"`, `b"\\x02?A\\r"`."""
    if isinstance(reply, Status8217):
        if not 0x40 <= reply.status <= 0x7F:
            raise ToledoProtocolError(f"8217 status must have bit 6 set: {reply.status:#x}")
        return bytes((STX, ord("?"), reply.status, CR))
    if not reply.value.is_finite():
        raise ToledoProtocolError(f"not a weight: {reply.value}")
    text = f"{format(reply.value, 'f'):>7}" + ("N" if reply.net else "")
    if len(text) > MAX_8217_BODY:
        raise ToledoProtocolError(f"weight too long for an 8217 reply: {text}")
    return b"\x02" + text.encode("ascii") + b"\r"


def parse_8217_body(body: bytes) -> Weight8217 | Status8217 | None:
    """The bytes between STX and CR; None if they are neither a weight nor a status."""
    if len(body) == 2 and body[0] == ord("?"):
        status = body[1] & 0x7F
        return Status8217(status) if status & 0x40 else None
    match = _8217_WEIGHT.match(body)
    if match is None:
        return None
    sign, digits, net = match.groups()
    return Weight8217(Decimal((sign + digits).decode()), net=bool(net))


class Toledo8217Parser(_Framer):
    """Bytes in, replies out: `receive_data(bytes)`, then `next_event()` until NEED_DATA."""

    def next_event(self) -> Event8217 | NeedData:
        while True:
            skipped = self._garbage_before_stx()
            if skipped is not None:
                return skipped
            rx = self._rx
            pos = rx.pos
            window = rx.masked[pos + 1 : pos + 2 + MAX_8217_BODY]
            cr, stx = window.find(b"\r"), window.find(b"\x02")
            if cr != -1 and (stx == -1 or cr < stx):
                end = rx.pos = pos + 2 + cr
                body = bytes(window[:cr])
                seen = self._bit7(pos, end, (2,) if body[:1] == b"?" else ())
                reply = parse_8217_body(body) if seen is not False else None
                if reply is not None:
                    self.frames += 1
                    self.parity = seen or None
                    return reply
                return self._garbage(pos, end)
            if stx == -1 and len(window) <= MAX_8217_BODY:
                return NEED_DATA  # a frame still arriving
            # a new STX before the CR, or no CR where one must be: the frame is broken
            end = pos + 1 + (stx if stx != -1 else len(window))
            rx.pos = end
            return self._garbage(pos, end)


# --- continuous output ----------------------------------------------------------------------------

_INCREMENTS: Final[dict[int, int]] = {0b01: 1, 0b10: 2, 0b11: 5}


@dataclass(frozen=True, slots=True)
class ContinuousFrame:
    """One continuous-output frame, decoded. `weight` is signed and in `unit`.

    `stable` is the one question for a weight: at rest, in range, zeroed since power-up, not the
    expanded (×10) display, and in a unit with a kg value. `kg` is None for a unit without one."""

    weight: Decimal
    tare: Decimal
    unit: ContinuousUnit
    net: bool = False
    motion: bool = False
    out_of_range: bool = False
    increment: int | None = 1  # display increment ×1, ×2, ×5 (None: code 00, undefined)
    checksum_ok: bool | None = None  # None: the stream carries no checksum (or not yet known)
    not_zeroed: bool = False  # SWB bit 6: powered up and not zeroed since
    expanded: bool = False  # SWC bit 4: the display shows ×10 resolution (a test mode, not a weighing)

    @property
    def unit_known(self) -> bool:
        return self.unit in KG_PER_UNIT

    @property
    def kg(self) -> Decimal | None:
        return kg(self.weight, self.unit) if self.unit_known else None

    @property
    def stable(self) -> bool:
        return not (
            self.motion or self.out_of_range or self.not_zeroed or self.expanded or not self.unit_known
        )


@dataclass(frozen=True, slots=True)
class ChecksumError:
    """A well-formed frame whose checksum byte is wrong (a corrupted byte on the line)."""

    frame: bytes


ContinuousEvent = ContinuousFrame | ChecksumError | Garbage


def continuous_checksum(frame: bytes) -> int:
    """2's complement of the sum of bits 0–6 of every byte from STX to CR, in 7 bits."""
    return -sum(b & 0x7F for b in frame) & 0x7F


def _exponent(swa: int) -> int:
    """SWA bits 0–2: 010 none, 011 X.X, 100 X.XX, 101 X.XXX (and 000 XX00, 001 XX0, 110/111
    four/five decimals, per Toledo) — i.e. a power of ten of 2 − code."""
    return 2 - (swa & 0x07)


def decode_continuous(frame: bytes, checksum_ok: bool | None = None) -> ContinuousFrame | None:
    """A 17-byte frame (STX..CR) → ContinuousFrame; None if it is not one."""
    if len(frame) != CONTINUOUS_LEN or frame[0] != STX or frame[16] != CR:
        return None
    swa, swb, swc = frame[1] & 0x7F, frame[2] & 0x7F, frame[3] & 0x7F
    if not (swa & 0x20 and swb & 0x20 and swc & 0x20) or swa & 0x40:
        return None
    weight_digits, tare_digits = frame[4:10], frame[10:16]
    if not (_digits(weight_digits) and _digits(tare_digits)):
        return None
    exponent = _exponent(swa)
    weight = _value(weight_digits, exponent)
    if swb & 0x02:
        weight = -weight
    return ContinuousFrame(
        weight=weight,
        tare=_value(tare_digits, exponent),
        unit=_SWC_UNITS.get(swc & 0x07) or ("kg" if swb & 0x10 else "lb"),
        net=bool(swb & 0x01),
        motion=bool(swb & 0x08),
        out_of_range=bool(swb & 0x04),
        increment=_INCREMENTS.get((swa >> 3) & 0x03),
        checksum_ok=checksum_ok,
        not_zeroed=bool(swb & 0x40),
        expanded=bool(swc & 0x10),
    )


def _value(field: bytes, exponent: int) -> Decimal:
    """Six digits at a power of ten; a display counting in tens or hundreds gives whole units
    (49020, not 4.902E+4, which is the same number but not what anyone expects to read)."""
    count = int(field.strip() or b"0")
    return Decimal(count * 10**exponent) if exponent > 0 else Decimal(count).scaleb(exponent)


def _digits(field: bytes) -> bool:
    """Six digits; leading blanks allowed (some indicators blank leading zeros)."""
    stripped = field.lstrip(b" ")
    return stripped.isdigit() or (not stripped and len(field) == 6)


def encode_continuous(
    weight: Decimal,
    *,
    decimals: int = 2,
    unit: ContinuousUnit = "kg",
    tare: Decimal = Decimal(0),
    net: bool = False,
    motion: bool = False,
    out_of_range: bool = False,
    increment: Literal[1, 2, 5] = 1,
    not_zeroed: bool = False,
    expanded: bool = False,
    with_checksum: bool = False,
) -> bytes:
    """A frame as an indicator sends it; `weight`/`tare` in `unit`, `decimals` 0–5 places, or −1/−2
    for a display that counts in tens or hundreds (a weighbridge of 10, 20 or 50 kg divisions: SWA
    code XX0 or XX00, the dummy zeros not sent). kg and lb are SWC unit code 000 with SWB bit 4 saying
    which; the others their own code (SWB bit 4 set for the metric ones).

    12.34 kg gross stable, 2 decimals: `b"\\x02,0 001234000000\\r"`.
    """
    if not -2 <= decimals <= 5:
        raise ToledoProtocolError(f"decimals must be -2–5, not {decimals}")
    counts = []
    for value in (weight, tare):
        if not value.is_finite():
            raise ToledoProtocolError(f"not a weight: {value}")
        scaled = abs(value).scaleb(decimals)
        if scaled != scaled.to_integral_value() or scaled >= 1_000_000:
            raise ToledoProtocolError(f"{value} does not fit 6 digits with {decimals} decimals")
        counts.append(int(scaled))
    inc = {1: 0b01, 2: 0b10, 5: 0b11}[increment]
    swa = 0x20 | inc << 3 | (2 + decimals)
    negative = weight < 0
    code = next((c for c, u in _SWC_UNITS.items() if u == unit), 0)
    metric = unit in ("kg", "g", "t")
    swb = 0x20 | net | negative << 1 | out_of_range << 2 | motion << 3 | metric << 4 | not_zeroed << 6
    swc = 0x20 | code | expanded << 4
    frame = bytes((STX, swa, swb, swc)) + b"%06d%06d\r" % (counts[0], counts[1])
    return frame + bytes((continuous_checksum(frame),)) if with_checksum else frame


class ToledoContinuousParser(_Framer):
    """Bytes in, frames out. `checksum`: True (required), False (none) or None (detect).

    A frame with a bad checksum is never a weight, and detection never falls back to taking frames
    unverified because frames go bad. Detecting, a frame waits for the byte after its CR:

    - its checksum (and not an STX or a blank, which a checksum-less stream may send there): the
      stream carries checksums. `checksum` is settled True at once, and from then on every frame
      must carry a good one; one that does not is a ChecksumError (noise on the line), counted. Bad
      frames never unsettle it (a new parser, i.e. a new session, detects afresh);
    - an STX (or a blank: CR LF) that is not its checksum: no checksum on this frame. DETECT_AFTER
      such frames in a row settle `checksum` False; the ones before are held back, not emitted (a
      checksummed stream that lost a checksum byte looks like this once, not three times in a row);
    - any other byte: a bad checksum, or noise after a checksum-less frame — either way the frame
      cannot be vouched for: ChecksumError, and the run towards False starts again.

    A checksum that happens to be an STX or a blank is told apart by the byte after it where it can
    be (an STX never follows an STX), and is otherwise no evidence either way (the frame is held).
    """

    DETECT_AFTER: Final = 3

    def __init__(self, checksum: bool | None = None) -> None:
        super().__init__()
        self.checksum = checksum
        self._without = 0  # detecting: frames in a row seen to carry no checksum
        self.checksum_errors = 0
        self.held = 0  # detecting: frames not emitted because the stream's checksum was not known yet

    def clear(self) -> None:
        super().clear()
        self._without = 0  # what was settled stays settled

    def next_event(self) -> ContinuousEvent | NeedData:
        while True:
            skipped = self._garbage_before_stx()
            if skipped is not None:
                return skipped
            event = self._frame_at_stx()
            if event is not None:
                return event
            # a frame held back while detecting: on to the next

    def _frame_at_stx(self) -> ContinuousEvent | NeedData | None:
        """Positioned on an STX: a frame, a checksum error, garbage from a false STX up to the next
        one, NEED_DATA, or None for a frame held back (detecting)."""
        buf, pos = self._rx.masked, self._rx.pos
        need = CONTINUOUS_LEN + (0 if self.checksum is False else 1)  # the byte after the CR decides
        if len(buf) - pos < need:
            # wait for a whole frame — unless a CR or STX inside shows it can't be one
            return NEED_DATA if self._may_be_frame(pos) else self._false_stx(pos)
        frame = bytes(buf[pos : pos + CONTINUOUS_LEN])
        decoded = decode_continuous(frame)
        if decoded is None:
            return self._false_stx(pos)
        if self.checksum is False:
            return self._take(decoded, pos, CONTINUOUS_LEN, None)
        expected, after = continuous_checksum(frame), buf[pos + CONTINUOUS_LEN]
        if self.checksum:
            if after == expected:
                return self._take(decoded, pos, CONTINUOUS_LEN + 1, True)
            # a bad checksum; or none where one must be (an STX: the next frame's, kept for it)
            return self._bad(pos, CONTINUOUS_LEN if after == STX else CONTINUOUS_LEN + 1)
        # detecting
        if after == expected and after != STX and after not in _WHITESPACE:
            self.checksum = True
            return self._take(decoded, pos, CONTINUOUS_LEN + 1, True)
        if after == STX or after in _WHITESPACE:
            if after == expected:
                if after == STX:  # a checksum that is an STX, or the next frame's STX?
                    if len(buf) - pos < CONTINUOUS_LEN + 2:
                        return NEED_DATA
                    if buf[pos + CONTINUOUS_LEN + 1] == STX:  # an STX after it: it was the checksum
                        self.checksum = True
                        return self._take(decoded, pos, CONTINUOUS_LEN + 1, True)
                else:  # a blank that is the checksum, or CR LF: no evidence either way
                    return self._hold(pos)
            self._without += 1
            if self._without < self.DETECT_AFTER:
                return self._hold(pos)
            self.checksum = False
            return self._take(decoded, pos, CONTINUOUS_LEN, None)
        self._without = 0
        return self._bad(pos, CONTINUOUS_LEN + 1)

    def _take(
        self, decoded: ContinuousFrame, pos: int, size: int, verified: bool | None
    ) -> ContinuousFrame | Garbage | NeedData:
        seen = self._bit7(pos, pos + size, (1, 2, 3, CONTINUOUS_LEN))
        if seen is False:
            return self._false_stx(pos)
        self._rx.pos = pos + size
        self.frames += 1
        self.parity = seen or None
        return replace(decoded, checksum_ok=verified) if verified else decoded

    def _bad(self, pos: int, size: int) -> ChecksumError:
        self._rx.pos = pos + size
        self.checksum_errors += 1
        return ChecksumError(bytes(self._rx.raw[pos : pos + size]))

    def _hold(self, pos: int) -> Garbage | NeedData | None:
        if self._bit7(pos, pos + CONTINUOUS_LEN, (1, 2, 3)) is False:
            return self._false_stx(pos)
        self._rx.pos = pos + CONTINUOUS_LEN
        self.held += 1
        return None

    def _may_be_frame(self, pos: int) -> bool:
        """An incomplete frame can be ruled out early: STX or CR may only appear at its ends."""
        buf = self._rx.masked
        inner = buf[pos + 1 : pos + CONTINUOUS_LEN - 1]
        if b"\x02" in inner or b"\r" in inner:
            return False
        end = pos + CONTINUOUS_LEN - 1
        return end >= len(buf) or buf[end] == CR

    def _false_stx(self, pos: int) -> Garbage | NeedData:
        """Not a frame here: report from this STX up to the next STX as garbage."""
        buf = self._rx.masked
        nxt = buf.find(b"\x02", pos + 1)
        if nxt == -1:
            if len(buf) - pos < MAX_GARBAGE:
                return NEED_DATA
            nxt = pos + MAX_GARBAGE
        end = min(nxt, pos + MAX_GARBAGE)
        self._rx.pos = end
        return self._garbage(pos, end)

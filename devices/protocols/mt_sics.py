"""MT-SICS (Mettler Toledo Standard Interface Command Set), sans-I/O.

Why sans-I/O: the same parser serves the driver, the simulator's tests and the benchmark, and it
can be fed every split of a byte stream without a port. `MtSicsParser` turns bytes into typed
replies; `MtSicsClient` adds the one rule MT-SICS insists on — one command at a time — and matches
each reply to the command that asked for it. `encode` builds commands; `encode_reply` builds what a
balance would answer (for the simulator and round-trip tests).

Lines end in CR LF (a bare LF is accepted). Replies are split on whitespace, never on columns: the
weight is right-aligned in a 10-character field, but balances differ in padding and in whether a
minus sign is glued to the digits. A line that is not a known reply becomes `Unparsed(line)` and is
counted; the parser itself never raises on input. `MtSicsProtocolError` is raised only for local
misuse (a second command while one is outstanding, an unencodable argument).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import Decimal, Inexact, localcontext
from enum import Enum, StrEnum
from typing import ClassVar, Final, Literal

CRLF: Final = b"\r\n"
MAX_LINE: Final = 256  # a longer line is garbage: reported once (truncated), its rest skipped
MAX_NUMBER: Final = 20  # characters; keeps unit conversion exact and cheap

# Exact factors (lb by international definition, oz = lb / 16): conversions never go through float.
KG_PER_UNIT: Final[dict[str, Decimal]] = {
    "kg": Decimal(1),
    "g": Decimal("0.001"),
    "mg": Decimal("0.000001"),
    "lb": Decimal("0.45359237"),
    "oz": Decimal("0.028349523125"),
}

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)\Z")


class MtSicsProtocolError(Exception):
    """Local misuse of the protocol objects; received bytes never raise."""


class Command(StrEnum):
    S = "S"  # stable weight (the balance waits for stability, or answers S I)
    SI = "SI"  # immediate weight, stable or dynamic
    SIR = "SIR"  # immediate weight, repeated until @
    Z = "Z"  # zero when stable
    ZI = "ZI"  # zero immediately
    T = "T"  # tare when stable
    TA = "TA"  # query (or preset) the tare value
    TAC = "TAC"  # clear tare
    RESET = "@"  # reset; answers with the serial number; also stops SIR


class _Need(Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = _Need.NEED_DATA
NeedData = Literal[_Need.NEED_DATA]


def to_kg(value: Decimal, unit: str) -> Decimal:
    """`value` in `unit` as kg, exactly (raises KeyError on an unknown unit)."""
    factor = KG_PER_UNIT[unit]
    with localcontext() as ctx:
        ctx.prec = 2 * MAX_NUMBER + 20
        ctx.traps[Inexact] = True  # cannot happen within MAX_NUMBER digits; proves it
        return value * factor


# --- replies --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WeightReply:
    """`S S`/`S D` line. `command` is the reply id ("S"); MtSicsClient sets the command that asked."""

    command: str
    status: Literal["S", "D"]  # S stable, D dynamic
    value: Decimal
    unit: str

    @property
    def stable(self) -> bool:
        return self.status == "S"

    @property
    def kg(self) -> Decimal:
        return to_kg(self.value, self.unit)


@dataclass(frozen=True, slots=True)
class Busy:
    """`S I`: the balance could not give a weight (busy, or no stability before its own timeout)."""

    command: str = "S"


@dataclass(frozen=True, slots=True)
class Overload:
    command: str = "S"


@dataclass(frozen=True, slots=True)
class Underload:
    command: str = "S"


ZeroStatus = Literal["A", "I", "+", "-", "S", "D"]


@dataclass(frozen=True, slots=True)
class ZeroReply:
    """`Z A` done, `Z I` not done (busy/unstable), `Z +`/`Z -` out of range; `ZI S`/`ZI D` done
    immediately with a stable/dynamic weight."""

    command: str  # "Z" or "ZI"
    status: ZeroStatus

    @property
    def ok(self) -> bool:
        return self.status in ("A", "S", "D")


TareStatus = Literal["S", "A", "I", "+", "-"]


@dataclass(frozen=True, slots=True)
class TareReply:
    """`T S <tare> <unit>`, `TA A <tare> <unit>`, `TAC A`; status I/+/- when refused."""

    command: str  # "T", "TA" or "TAC"
    status: TareStatus
    value: Decimal | None = None
    unit: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("S", "A")

    @property
    def kg(self) -> Decimal | None:
        return None if self.value is None or self.unit is None else to_kg(self.value, self.unit)


@dataclass(frozen=True, slots=True)
class ResetReply:
    """`I4 A "<serial>"`: the answer to @ (the serial number)."""

    serial: str


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An error line. `command` is set when the balance named it (`S L`), else None."""

    code: ClassVar[str] = ""
    command: str | None = None


@dataclass(frozen=True, slots=True)
class SyntaxErrorReply(ErrorReply):
    code: ClassVar[str] = "ES"  # command not recognised


@dataclass(frozen=True, slots=True)
class TransmissionErrorReply(ErrorReply):
    code: ClassVar[str] = "ET"  # parity/overrun: the balance received garbage


@dataclass(frozen=True, slots=True)
class LogicalErrorReply(ErrorReply):
    code: ClassVar[str] = "EL"  # understood but not executable ("<cmd> L" names the command)


@dataclass(frozen=True, slots=True)
class Unparsed:
    """A line that is not an MT-SICS reply (noise, another device, a truncated line)."""

    line: bytes


Reply = (
    WeightReply
    | Busy
    | Overload
    | Underload
    | ZeroReply
    | TareReply
    | ResetReply
    | SyntaxErrorReply
    | TransmissionErrorReply
    | LogicalErrorReply
)
ParserEvent = Reply | Unparsed

_ERRORS: Final[dict[str, type[ErrorReply]]] = {
    "ES": SyntaxErrorReply,
    "ET": TransmissionErrorReply,
    "EL": LogicalErrorReply,
}
_WEIGHT_IDS: Final = frozenset({"S", "SI", "SIR"})  # some firmwares echo SI/SIR as the reply id
_KNOWN_IDS: Final = frozenset({"S", "SI", "SIR", "Z", "ZI", "T", "TA", "TAC"})
_TARE_DONE: Final[dict[str, Literal["S", "A"]]] = {"T": "S", "TA": "A", "TAC": "A"}  # status when done
_S_STATUS: Final[dict[str, type[Busy | Overload | Underload]]] = {"I": Busy, "+": Overload, "-": Underload}


# --- encoding -------------------------------------------------------------------------------------


def format_number(value: Decimal) -> str:
    """Plain notation (never exponent), as a balance prints it."""
    if not value.is_finite():
        raise MtSicsProtocolError(f"not a weight: {value}")
    text = format(value, "f")
    if len(text) > MAX_NUMBER:
        raise MtSicsProtocolError(f"weight too long for MT-SICS: {text}")
    return text


def _weight_field(value: Decimal, unit: str) -> str:
    if unit not in KG_PER_UNIT:
        raise MtSicsProtocolError(f"unknown unit {unit!r}")
    return f"{format_number(value):>10} {unit}"


def encode(command: Command | str, preset: tuple[Decimal, str] | None = None) -> bytes:
    """One command line. `preset` (value, unit) only for TA, to preset a tare."""
    try:
        cmd = Command(command)
    except ValueError:
        raise MtSicsProtocolError(f"unknown MT-SICS command {command!r}") from None
    if preset is None:
        return cmd.value.encode() + CRLF
    if cmd is not Command.TA:
        raise MtSicsProtocolError(f"{cmd.value} takes no argument")
    return f"TA {_weight_field(*preset).lstrip()}".encode() + CRLF


def encode_reply(reply: Reply) -> bytes:
    """What a balance sends for `reply` (used by the simulator and the round-trip tests)."""
    match reply:
        case WeightReply(command=cmd, status=status, value=value, unit=unit):
            text = f"{cmd} {status} {_weight_field(value, unit)}"
        case Busy(command=cmd):
            text = f"{cmd} I"
        case Overload(command=cmd):
            text = f"{cmd} +"
        case Underload(command=cmd):
            text = f"{cmd} -"
        case ZeroReply(command=cmd, status=status):
            text = f"{cmd} {status}"
        case TareReply(command=cmd, status=status, value=value, unit=unit):
            text = f"{cmd} {status}"
            if value is not None and unit is not None:
                text += f" {_weight_field(value, unit)}"
        case ResetReply(serial=serial):
            if '"' in serial or not serial.isprintable():
                raise MtSicsProtocolError(f"unencodable serial {serial!r}")
            text = f'I4 A "{serial}"'
        case LogicalErrorReply(command=str() as cmd):
            text = f"{cmd} L"
        case ErrorReply():
            text = reply.code
        case _:
            raise MtSicsProtocolError(f"not a reply: {reply!r}")
    return text.encode("ascii") + CRLF


# --- decoding -------------------------------------------------------------------------------------


def _weight(tokens: list[str]) -> tuple[Decimal, str] | None:
    """`["12.34", "kg"]` or `["-", "12.34", "kg"]` → (value, unit); None if not a weight."""
    if len(tokens) == 3 and tokens[0] in ("-", "+"):
        tokens = [tokens[0] + tokens[1], tokens[2]]
    if len(tokens) != 2:
        return None
    number, unit = tokens
    if len(number) > MAX_NUMBER or unit not in KG_PER_UNIT or not _NUMBER.match(number):
        return None
    return Decimal(number), unit


def parse_line(line: bytes) -> ParserEvent | None:
    """One line without its terminator → a reply, Unparsed, or None for a blank line."""
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        return Unparsed(line)
    tokens = text.split()
    if not tokens:
        return None
    head, rest = tokens[0], tokens[1:]
    status = rest[0] if rest else ""
    if head in _ERRORS and not rest:
        return _ERRORS[head]()
    if len(rest) == 1 and status == "L" and head in _KNOWN_IDS:
        return LogicalErrorReply(command=head)
    if head in _WEIGHT_IDS:
        if status in ("S", "D"):
            weight = _weight(rest[1:])
            if weight is not None:
                return WeightReply(head, "S" if status == "S" else "D", *weight)
        elif status in _S_STATUS and len(rest) == 1:
            return _S_STATUS[status](head)
    elif head in ("Z", "ZI"):
        allowed = ("A", "I", "+", "-") if head == "Z" else ("S", "D", "I", "+", "-")
        if len(rest) == 1 and status in allowed:
            return ZeroReply(head, status)  # type: ignore[arg-type]
    elif head in _TARE_DONE:
        done = _TARE_DONE[head]
        if head != "TAC" and status == done:
            weight = _weight(rest[1:])
            if weight is not None:
                return TareReply(head, done, *weight)
        elif len(rest) == 1 and (status in ("I", "+", "-") or (head == "TAC" and status == "A")):
            return TareReply(head, status)  # type: ignore[arg-type]
    elif head == "I4" and status == "A" and len(rest) >= 2:
        serial = text.split(None, 2)[2].strip()
        if len(serial) >= 2 and serial[0] == serial[-1] == '"':
            serial = serial[1:-1]
        if serial and '"' not in serial:
            return ResetReply(serial)
    return Unparsed(line)


class MtSicsParser:
    """Bytes in, replies out (h11 style): `receive_data(bytes)`, then `next_event()` until NEED_DATA.

    The result never depends on how the stream was split into chunks.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0  # start of unconsumed bytes (compacted on receive, not per line)
        self._skipping = False  # inside an over-long line already reported
        self.unparsed = 0  # lines that were not replies
        self.lines = 0  # lines seen (blank ones excluded)

    def receive_data(self, data: bytes) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def clear(self) -> None:
        """Forget buffered bytes (after a timeout, so a late half-reply cannot pair with the next)."""
        self._buf.clear()
        self._pos = 0
        self._skipping = False

    def next_event(self) -> ParserEvent | NeedData:
        buf = self._buf
        while True:
            start = self._pos
            end = buf.find(b"\n", start)
            if end == -1:
                if len(buf) - start > MAX_LINE:
                    self._pos = len(buf)
                    if not self._skipping:
                        self._skipping = True
                        return self._unparsed(bytes(buf[start : start + MAX_LINE]))
                elif self._skipping:
                    self._pos = len(buf)
                return NEED_DATA
            self._pos = end + 1
            if self._skipping:
                self._skipping = False
                continue
            if end - start > MAX_LINE:
                return self._unparsed(bytes(buf[start : start + MAX_LINE]))
            stop = end - 1 if end > start and buf[end - 1] == 0x0D else end
            event = parse_line(bytes(buf[start:stop]))
            if event is None:
                continue
            self.lines += 1
            if isinstance(event, Unparsed):
                self.unparsed += 1
            return event

    def _unparsed(self, line: bytes) -> Unparsed:
        self.lines += 1
        self.unparsed += 1
        return Unparsed(line)


# --- the client: one command at a time ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Unsolicited:
    """A well-formed reply that answers no outstanding command (late, stray, or after @)."""

    reply: Reply


ClientEvent = Reply | Unparsed | Unsolicited

_ANSWERS: Final[dict[Command, tuple[type, ...]]] = {
    Command.S: (WeightReply, Busy, Overload, Underload),
    Command.SI: (WeightReply, Busy, Overload, Underload),
    Command.SIR: (WeightReply, Busy, Overload, Underload),
    Command.Z: (ZeroReply,),
    Command.ZI: (ZeroReply,),
    Command.T: (TareReply,),
    Command.TA: (TareReply,),
    Command.TAC: (TareReply,),
    Command.RESET: (ResetReply,),
}
_REPLY_IDS: Final[dict[Command, frozenset[str]]] = {
    Command.S: _WEIGHT_IDS,
    Command.SI: _WEIGHT_IDS,
    Command.SIR: _WEIGHT_IDS,
    Command.Z: frozenset({"Z"}),
    Command.ZI: frozenset({"ZI"}),
    Command.T: frozenset({"T"}),
    Command.TA: frozenset({"TA"}),
    Command.TAC: frozenset({"TAC"}),
    Command.RESET: frozenset(),
}


class MtSicsClient:
    """The host side: refuses to pipeline, and pairs each reply with the command that asked for it.

    `send()` returns the bytes to write and raises MtSicsProtocolError while a command is
    outstanding — except @, which MT-SICS allows at any time (it is how SIR is stopped). Replies
    from `next_event()` carry the outstanding command's name (an `S D` after SI says "SI"). SIR stays
    outstanding through its stream until @ is answered. `abandon()` gives up on a silent balance.
    """

    def __init__(self) -> None:
        self.parser = MtSicsParser()
        self.outstanding: Command | None = None
        self.unsolicited = 0

    def send(self, command: Command | str, preset: tuple[Decimal, str] | None = None) -> bytes:
        data = encode(command, preset)
        cmd = Command(command)
        if self.outstanding is not None and cmd is not Command.RESET:
            raise MtSicsProtocolError(
                f"cannot send {cmd.value} while {self.outstanding.value} is outstanding (no pipelining)"
            )
        self.outstanding = cmd
        return data

    def abandon(self) -> None:
        """The reply did not come: forget the command and any half-received line."""
        self.outstanding = None
        self.parser.clear()

    def receive_data(self, data: bytes) -> None:
        self.parser.receive_data(data)

    def next_event(self) -> ClientEvent | NeedData:
        event = self.parser.next_event()
        if event is NEED_DATA or isinstance(event, Unparsed):
            return event
        cmd = self.outstanding
        if cmd is None or not self._answers(cmd, event):
            self.unsolicited += 1
            return Unsolicited(event)
        if isinstance(event, WeightReply | Busy | Overload | Underload):
            event = replace(event, command=cmd.value)
        if not (cmd is Command.SIR and isinstance(event, WeightReply)):
            self.outstanding = None
        return event

    @staticmethod
    def _answers(cmd: Command, reply: Reply) -> bool:
        if isinstance(reply, SyntaxErrorReply | TransmissionErrorReply):
            return True
        if isinstance(reply, LogicalErrorReply):
            return reply.command is None or reply.command in _REPLY_IDS[cmd] or reply.command == cmd.value
        if not isinstance(reply, _ANSWERS[cmd]):
            return False
        command = getattr(reply, "command", None)
        return command is None or command in _REPLY_IDS[cmd]

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
from enum import StrEnum
from typing import ClassVar, Final, Literal

from devices.protocols import parity
from devices.protocols.errors import ProtocolError
from devices.protocols.need_data import NEED_DATA, NeedData
from devices.protocols.receive_buffer import ReceiveBuffer

CRLF: Final = b"\r\n"
MAX_LINE: Final = 256  # a longer line is garbage: reported once (truncated), its rest skipped
MAX_NUMBER: Final = 20  # characters; keeps unit conversion exact and cheap
MAX_UNIT: Final = 16  # characters of a unit token; a longer one is not a unit

# Exact factors (lb by international definition, oz = lb / 16): conversions never go through float.
KG_PER_UNIT: Final[dict[str, Decimal]] = {
    "kg": Decimal(1),
    "g": Decimal("0.001"),
    "mg": Decimal("0.000001"),
    "lb": Decimal("0.45359237"),
    "oz": Decimal("0.028349523125"),
}

# Units a balance can be set to (MT-SICS reference manual: the unit settings) that are not defined
# in kg here — carat, troy ounce, grain, pennyweight, momme, mesghal, taels, tola, baht, newton,
# pieces, percent. A reply in one is the balance's answer (it is there, it is not silent), but never
# a weight the edge may use: `UnsupportedUnit`. Why not convert the mass ones: the edge weighs parcels
# in kg, and a balance showing carats was set so by mistake; the operator must be told, not
# accommodated. kg, g, mg, lb and oz are exact by definition and converted. A unit token in neither
# list (`t`, `lbs`, `Kg`, a custom unit) is the same case: a well-formed weight line, in a unit this
# code does not know — `UnsupportedUnit` too, never noise (which would read as a silent balance).
OTHER_UNITS: Final = frozenset(
    {"ct", "ozt", "GN", "dwt", "mom", "msg", "tl", "tlh", "tls", "tlt", "tola", "baht", "N", "PCS", "%"}
)

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)\Z")


class MtSicsProtocolError(ProtocolError):
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
    I4 = "I4"  # serial number: no side effect; the client's marker to find its place after a timeout
    RESET = "@"  # reset; answers with the serial number; also stops SIR


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
class UnsupportedUnit:
    """A weight (`S S 11.023 ct`) or tare (`T S …`, `TA A …`) in a unit not in KG_PER_UNIT (one of
    OTHER_UNITS, or any other token): the balance answered, but not in a unit this code can turn
    into kg. `command` is the reply id ("S", "T",
    "TA"); MtSicsClient sets the command that asked, as for WeightReply."""

    command: str
    status: str
    value: Decimal
    unit: str


@dataclass(frozen=True, slots=True)
class Busy:
    """`S I`: the balance could not give a weight (busy, or no stability before its own timeout);
    `I4 I`: busy, for I4."""

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
    """`I4 A "<serial>"`: the answer to I4 and to @ (the serial number)."""

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
    | UnsupportedUnit
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

_ERRORS: Final[dict[str, type[SyntaxErrorReply | TransmissionErrorReply | LogicalErrorReply]]] = {
    "ES": SyntaxErrorReply,
    "ET": TransmissionErrorReply,
    "EL": LogicalErrorReply,
}
_WEIGHT_IDS: Final = frozenset({"S", "SI", "SIR"})  # some firmwares echo SI/SIR as the reply id
_KNOWN_IDS: Final = frozenset({"S", "SI", "SIR", "Z", "ZI", "T", "TA", "TAC", "I4"})
_TARE_DONE: Final[dict[str, Literal["S", "A"]]] = {"T": "S", "TA": "A", "TAC": "A"}  # status when done
# the status tokens each reply id may carry alone, as the literal the reply holds
_ZERO_STATUS: Final[dict[str, dict[str, ZeroStatus]]] = {
    "Z": {"A": "A", "I": "I", "+": "+", "-": "-"},
    "ZI": {"S": "S", "D": "D", "I": "I", "+": "+", "-": "-"},
}
_TARE_REFUSED: Final[dict[str, TareStatus]] = {"I": "I", "+": "+", "-": "-"}
_TAC_STATUS: Final[dict[str, TareStatus]] = {**_TARE_REFUSED, "A": "A"}
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
        case UnsupportedUnit(command=cmd, status=status, value=value, unit=unit) if (
            _unit_token(unit) and unit not in KG_PER_UNIT
        ):
            text = f"{cmd} {status} {format_number(value):>10} {unit}"
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


def _unit_token(token: str) -> bool:
    """A unit as a balance prints one: a short run of printable characters, no blank. Which units
    are known is the caller's business (KG_PER_UNIT); any other is an unsupported unit."""
    return (
        0 < len(token) <= MAX_UNIT
        and token.isprintable()
        and token.isascii()
        and not any(c.isspace() for c in token)
    )


def _weight(tokens: list[str]) -> tuple[Decimal, str] | None:
    """`["12.34", "kg"]` or `["-", "12.34", "kg"]` → (value, unit); None if not a weight. The unit
    is any unit token (`_unit_token`): a weight in an unknown unit is still a weight line."""
    if len(tokens) == 3 and tokens[0] in ("-", "+"):
        tokens = [tokens[0] + tokens[1], tokens[2]]
    if len(tokens) != 2:
        return None
    number, unit = tokens
    if len(number) > MAX_NUMBER or not _unit_token(unit) or not _NUMBER.match(number):
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
            if weight is not None and weight[1] not in KG_PER_UNIT:
                return UnsupportedUnit(head, status, *weight)
            if weight is not None:
                return WeightReply(head, "S" if status == "S" else "D", *weight)
        elif status in _S_STATUS and len(rest) == 1:
            return _S_STATUS[status](head)
    elif head in _ZERO_STATUS:
        zero = _ZERO_STATUS[head].get(status)
        if len(rest) == 1 and zero is not None:
            return ZeroReply(head, zero)
    elif head in _TARE_DONE:
        done = _TARE_DONE[head]
        if head != "TAC" and status == done:
            weight = _weight(rest[1:])
            if weight is not None and weight[1] not in KG_PER_UNIT:
                return UnsupportedUnit(head, done, *weight)
            if weight is not None:
                return TareReply(head, done, *weight)
        elif len(rest) == 1 and (alone := (_TAC_STATUS if head == "TAC" else _TARE_REFUSED).get(status)):
            return TareReply(head, alone)
    elif head == "I4" and status == "I" and len(rest) == 1:
        return Busy("I4")  # understood, not executable now (the balance is busy)
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

    Lines are found and parsed with bit 7 masked off, and a line is taken only if its bit 7 is clear
    throughout or consistently one kind of parity (`parity.bit7`): a 7E1 balance read by an 8N1 port
    still decodes, and `parity` tells the caller what the balance sends ("E", "O", "M"; None when bit
    7 was clear) for the event last returned. A line whose bit 7 follows no rule is Unparsed.
    """

    def __init__(self) -> None:
        self._rx = ReceiveBuffer()
        self._skipping = False  # inside an over-long line already reported
        self.unparsed = 0  # lines that were not replies
        self.lines = 0  # lines seen (blank ones excluded)
        self.parity: parity.BitParity | None = None  # in bit 7 of the last event's line

    def receive_data(self, data: bytes) -> None:
        self._rx.receive(data)

    def clear(self) -> None:
        """Forget buffered bytes (after a timeout, so a late half-reply cannot pair with the next)."""
        self._rx.clear()
        self._skipping = False

    def next_event(self) -> ParserEvent | NeedData:
        rx = self._rx
        buf, raw = rx.masked, rx.raw
        while True:
            start = rx.pos
            end = buf.find(b"\n", start)
            if end == -1:
                if len(buf) - start > MAX_LINE:
                    rx.pos = len(buf)
                    if not self._skipping:
                        self._skipping = True
                        return self._unparsed(bytes(raw[start : start + MAX_LINE]))
                elif self._skipping:
                    rx.pos = len(buf)
                return NEED_DATA
            rx.pos = end + 1
            if self._skipping:
                self._skipping = False
                continue
            if end - start > MAX_LINE:
                return self._unparsed(bytes(raw[start : start + MAX_LINE]))
            stop = end - 1 if end > start and buf[end - 1] == 0x0D else end
            seen = parity.bit7(bytes(raw[start : end + 1]))  # with its CR LF: more evidence
            event = parse_line(bytes(buf[start:stop])) if seen is not False else Unparsed(b"")
            if event is None:
                continue
            self.lines += 1
            self.parity = seen or None
            if isinstance(event, Unparsed):
                self.unparsed += 1
                return Unparsed(bytes(raw[start:stop]))
            return event

    def _unparsed(self, line: bytes) -> Unparsed:
        self.lines += 1
        self.unparsed += 1
        self.parity = None
        return Unparsed(line)


# --- the client: one command at a time, and in step ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Unsolicited:
    """A well-formed reply that answers no outstanding command (stray, or after @)."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class Late:
    """A reply that arrived while the client was out of step: the answer to a command given up on
    (or a leftover answer to an earlier I4). It answers nothing now; drop it."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class InStep:
    """The answer to the I4 sent by `resync()`: every reply before it was late, none after it is.
    `reply` is the serial number (ResetReply), `Busy("I4")`, or an error line."""

    reply: Reply


ClientEvent = Reply | Unparsed | Unsolicited | Late | InStep

_ANSWERS: Final[dict[Command, tuple[type, ...]]] = {
    Command.S: (WeightReply, UnsupportedUnit, Busy, Overload, Underload),
    Command.SI: (WeightReply, UnsupportedUnit, Busy, Overload, Underload),
    Command.SIR: (WeightReply, UnsupportedUnit, Busy, Overload, Underload),
    Command.Z: (ZeroReply,),
    Command.ZI: (ZeroReply,),
    Command.T: (TareReply, UnsupportedUnit),
    Command.TA: (TareReply, UnsupportedUnit),
    Command.TAC: (TareReply,),
    Command.I4: (ResetReply, Busy),
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
    Command.I4: frozenset({"I4"}),
    Command.RESET: frozenset(),
}


def from_i4(reply: Reply) -> bool:
    """Only I4 (and @) answer with these: a reply that can be nothing but the marker's."""
    return isinstance(reply, ResetReply) or getattr(reply, "command", None) == "I4"


def _error_line(reply: Reply) -> bool:
    """ES, ET or a bare EL: the answer to whatever command the balance took it for."""
    return isinstance(reply, ErrorReply) and reply.command is None


class MtSicsClient:
    """The host side: refuses to pipeline, pairs each reply with the command that asked for it, and
    never lets a late reply answer a later command.

    `send()` returns the bytes to write and raises MtSicsProtocolError while a command is
    outstanding — except @, which MT-SICS allows at any time (it is how SIR is stopped). Replies
    from `next_event()` carry the outstanding command's name (an `S D` after SI says "SI"). SIR stays
    outstanding through its stream until @ is answered.

    Why a marker: MT-SICS replies carry no request id, and `S S 5.000 kg` answers any weight
    request. A balance answers in the order it was asked, so after a command was given up on
    (`abandon()`: no reply in time, or the caller went away) the client is out of step: `send()`
    refuses until `resync()` has sent I4 (the serial number: level 0, no side effect, and an answer
    no other command gives) and its answer came back as `InStep`. Everything before that answer
    comes out as `Late` — the abandoned reply, however late — and nothing after it can be. A client
    built with `in_step=False` starts that way (a new session: a reply to the session before may be
    on its way).

    Markers are alike, so the client counts the answers still owed to markers of an earlier
    episode (sent before the one that was answered, answered by nobody yet): they arrive before the
    answer to any command sent after that episode, and are dropped as Late, never taken for the
    current marker's. A device that does not know I4 answers ES, which could as well be the
    abandoned command's answer: then every marker's answer is counted as owed, and an error line
    that answers a command while one may be owed is returned (the error is reported) but puts the
    client out of step again — a weight still owed then comes out Late. A non-error answer to a
    command shows that nothing is owed before it. Counting too many (a marker the balance never
    received) only costs another resync; too few never happens.
    """

    def __init__(self, *, in_step: bool = True) -> None:
        self.parser = MtSicsParser()
        self.outstanding: Command | None = None
        self.in_step = in_step
        self.unsolicited = 0
        self.late = 0  # Late events
        self._markers = 0  # I4s sent since the client fell out of step
        self._owed = 0  # answers that earlier markers may still get

    def send(self, command: Command | str, preset: tuple[Decimal, str] | None = None) -> bytes:
        data = encode(command, preset)
        cmd = Command(command)
        if self.outstanding is not None and cmd is not Command.RESET:
            raise MtSicsProtocolError(
                f"cannot send {cmd.value} while {self.outstanding.value} is outstanding (no pipelining)"
            )
        if not self.in_step and cmd is not Command.RESET:
            raise MtSicsProtocolError(f"cannot send {cmd.value}: a late reply may still come (resync first)")
        self.outstanding = cmd
        return data

    def resync(self) -> bytes:
        """The I4 to send to find the client's place again (nothing outstanding)."""
        if self.outstanding is not None:
            raise MtSicsProtocolError(f"cannot resync while {self.outstanding.value} is outstanding")
        if self.in_step:
            self.in_step, self._markers = False, 0
        self._markers += 1
        self.outstanding = Command.I4
        return encode(Command.I4)

    def abandon(self) -> None:
        """The reply did not come (in time, or for a caller that went away): forget the command and
        any half-received line. Its reply may still come, so the client is out of step."""
        if self.outstanding is not None and self.in_step:
            self.in_step, self._markers = False, 0
        self.outstanding = None
        self.parser.clear()

    def receive_data(self, data: bytes) -> None:
        self.parser.receive_data(data)

    def next_event(self) -> ClientEvent | NeedData:
        event = self.parser.next_event()
        if event is NEED_DATA or isinstance(event, Unparsed):
            return event
        if not self.in_step:
            return self._out_of_step(event)
        cmd = self.outstanding
        if from_i4(event) and cmd not in (Command.I4, Command.RESET):
            self._owed = max(0, self._owed - 1)  # the answer to an I4 given up on
            self.late += 1
            return Late(event)
        if cmd is None or not self._answers(cmd, event):
            self.unsolicited += 1
            return Unsolicited(event)
        if isinstance(event, WeightReply | UnsupportedUnit | Busy | Overload | Underload):
            event = replace(event, command=cmd.value)
        if self._owed and _error_line(event):
            # perhaps a marker's answer, owed: this command's own answer may still come
            self._owed -= 1
            self.in_step, self.outstanding, self._markers = False, None, 0
            return event
        self._owed = 0  # in order: whatever was owed before this answer has come (or never will)
        if not (cmd is Command.SIR and isinstance(event, WeightReply)):
            self.outstanding = None
        return event

    def _out_of_step(self, event: Reply) -> Late | InStep:
        tagged = from_i4(event)
        if tagged or (self.outstanding is Command.I4 and _error_line(event)):
            if self._owed:
                self._owed -= 1  # an earlier episode's marker (or the abandoned command's error)
            else:
                # this episode's marker (or, for an error line, maybe the abandoned command's): every
                # earlier reply has come; this episode's other markers may still be answered
                self.in_step, self.outstanding = True, None
                self._owed, self._markers = self._markers - (1 if tagged else 0), 0
                return InStep(event)
        self.late += 1
        return Late(event)

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

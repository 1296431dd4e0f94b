"""Electronic-plate (RFID) and IC-card readers on a serial line, sans-I/O: bytes in, ids out.

A vehicle gate reads the truck's electronic plate (an RFID tag: the reader sends its EPC) and the
driver's IC card (the reader sends the card's UID) with desktop readers set to their serial output
mode: one read, one line of ASCII. Vendors differ in three ways, each configured here:

- framing. `line`: the id then a terminator — CR, LF or CR LF (`terminator`; `any` takes each of
  them, as the scanner parser does). `stx-etx`: `STX id ETX`, optionally followed by a check byte
  (`lrc`: the XOR of every byte from STX to ETX, so that STX..LRC XOR to zero, as ID TECH documents
  it) and by blanks (CR, LF, space), which are skipped between frames;
- the id's alphabet: `hex` (EPCs, card UIDs; normalised to upper case, since readers differ),
  `decimal` (a card number printed on the card, leading zeros kept: they are part of it) or `alnum`;
  `separators` are characters dropped from inside the id (`E2 80 11 60` → `E2801160`);
- the id's length: `min_length`..`max_length` characters, or exactly one of `lengths` (a 96-bit
  EPC is 24 hex digits; a MIFARE UID 4, 7 or 10 bytes, i.e. 8, 14 or 20).

A configured terminator other than `any` is strict: a reader set to CR LF on a line configured CR
sends lines that start with LF, and these are noise, so the wrong setting shows as DEGRADED instead
of working by luck.

Received bytes never raise. What is not an id is a `Discarded` event (the scanner parser's type)
and counted in `stats`: noise (a control or non-ASCII byte, the wrong alphabet or length, a bad
check byte, garbage between frames, a line or frame cut off by silence) or over-long (more than
`max_line` bytes without an end: discarded up to its terminator, or its ETX, counted once). An id
is never taken from a partial line: a cut-off UID may be another card's. Time is passed in, as in
the scanner parser: `receive_data(data, now)` stamps the ids completed by `data`, `tick(now)` closes
what has been open for `partial_timeout_s`, `deadline` says when that is due. Results never depend
on how the stream was split into chunks. Deduplication of one card held to the reader is the
driver's job (`scanner.Deduper`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from devices.protocols.errors import ProtocolError
from devices.protocols.need_data import NEED_DATA, NeedData
from devices.protocols.scanner import SAMPLE, Discarded

STX: Final = 0x02
ETX: Final = 0x03
CR: Final = 0x0D
LF: Final = 0x0A
BLANKS: Final = b" \r\n"  # skipped between STX/ETX frames
_EDGE_BLANKS: Final = b" \t"  # stripped from both ends of an id (fixed-width output pads)
_HEX: Final = frozenset(b"0123456789ABCDEFabcdef")
_DECIMAL: Final = frozenset(b"0123456789")
_ALNUM: Final = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_ALPHABETS: Final = {"hex": _HEX, "decimal": _DECIMAL, "alnum": _ALNUM}

Framing = Literal["line", "stx-etx"]
Terminator = Literal["any", "cr", "lf", "crlf"]
Charset = Literal["hex", "decimal", "alnum"]


class IdReaderProtocolError(ProtocolError):
    """Local misuse (encoding an id the wire cannot carry); received bytes never raise."""


class IdReaderProtocolConfig(BaseModel):
    """How one reader frames its output. Defaults: hex ids of 4–32 digits, one per line."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    framing: Framing = Field("line", description="line: id + terminator; stx-etx: STX id ETX [LRC]")
    terminator: Terminator = Field(
        "any", description="line framing: what ends a line (any: CR, LF or CR LF, as each comes)"
    )
    lrc: bool = Field(False, description="stx-etx framing: a check byte after ETX, XOR of STX..ETX")
    charset: Charset = Field("hex", description="the id's alphabet; hex ids are upper-cased")
    separators: str = Field("", description="characters dropped from inside an id (e.g. ' :-')")
    min_length: int = Field(4, ge=1, le=256, description="shortest id, in characters")
    max_length: int = Field(32, ge=1, le=256, description="longest id, in characters")
    lengths: tuple[int, ...] = Field((), description="if set: the only id lengths accepted")
    max_line: int = Field(
        80, ge=1, le=4096, description="longest line or frame in bytes (blanks, separators, STX/ETX)"
    )
    partial_timeout_s: float = Field(
        0.5, gt=0, description="quiet time after which an unterminated line or frame is discarded"
    )

    @model_validator(mode="after")
    def _consistent(self) -> IdReaderProtocolConfig:
        if self.min_length > self.max_length:
            raise ValueError(f"min_length {self.min_length} > max_length {self.max_length}")
        if any(not self.min_length <= n <= self.max_length for n in self.lengths):
            raise ValueError(f"lengths {self.lengths} must lie within min_length..max_length")
        if self.max_line < self.max_length:
            raise ValueError(f"max_line {self.max_line} < max_length {self.max_length}")
        if any(not (" " <= ch < "\x7f") for ch in self.separators):
            raise ValueError("separators must be printable ASCII")
        if set(self.separators.encode()) & _ALPHABETS[self.charset]:
            raise ValueError(f"a separator may not be a {self.charset} character")
        return self


# --- events ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdFrame:
    """One read. `at` is the `now` given with the chunk that held its last byte."""

    id: str  # normalised: separators dropped, hex upper-cased
    at: float


IdReaderEvent = IdFrame | Discarded


@dataclass
class IdReaderStats:
    reads: int = 0  # IdFrame events
    noise: int = 0  # lines, frames or garbage runs discarded as noise
    overlong: int = 0  # lines or frames discarded for length (each counted once)
    partial: int = 0  # lines or frames closed by the timeout (always discarded)
    bad_lrc: int = 0  # frames whose check byte was wrong (also counted as noise)


# --- the parser -----------------------------------------------------------------------------------

_Stage = Literal["outside", "frame", "check", "skip", "skip_check"]  # stx-etx framing


class IdReaderParser:
    """`receive_data(chunk, now)`, then `next_event()` until NEED_DATA (or `events()`); `tick(now)`
    when the line is quiet.

    Bytes are taken one at a time through a small state machine, so that where a chunk ends can
    change nothing but the `at` of what it completes (readers send a few dozen bytes per read)."""

    def __init__(self, config: IdReaderProtocolConfig | None = None) -> None:
        self.config = c = config if config is not None else IdReaderProtocolConfig()
        self.stats = IdReaderStats()
        self._events: deque[IdReaderEvent] = deque()
        self._alphabet = _ALPHABETS[c.charset]
        self._drop = c.separators.encode()
        self._limit = c.max_line
        self._lengths = frozenset(c.lengths)
        self._framing = c.framing
        self._terminator = c.terminator
        self._buf = bytearray()  # the open line, or the open frame from its STX
        self._last: float | None = None  # `now` of the last non-empty chunk
        # line framing
        self._cr = False  # crlf: a CR that may begin the terminator, not yet in the line
        self._discarding = False  # past an over-long line: drop to its end
        # stx-etx framing
        self._stage: _Stage = "outside"
        self._garbage = bytearray()  # non-blank bytes between frames (the first SAMPLE of them)
        self._garbage_len = 0
        self._garbage_told = False  # a burst already reported: the rest of it is dropped

    # --- input ----------------------------------------------------------------------------------
    def receive_data(self, data: bytes, now: float) -> None:
        """Buffer `data`, which arrived at monotonic time `now`; complete reads become events."""
        if not data:
            return
        self._last = now
        step = self._line_byte if self._framing == "line" else self._frame_byte
        for byte in data:
            step(byte, now)

    @property
    def deadline(self) -> float | None:
        """When `tick` will act (a line, frame or garbage run is open); None: nothing pending."""
        if self._last is None:
            return None
        if self._framing == "line":
            pending = bool(self._buf) or self._cr or self._discarding
        else:
            pending = self._stage != "outside" or self._garbage_len > 0
        return self._last + self.config.partial_timeout_s if pending else None

    def tick(self, now: float) -> None:
        """Close what is open if the line has been quiet for `partial_timeout_s`: never an id."""
        deadline = self.deadline
        if deadline is None or now < deadline:
            return
        assert self._last is not None
        at = self._last
        self._end_garbage(at)
        open_read = self._buf if self._stage in ("frame", "check") or self._framing == "line" else b""
        if open_read:
            self.stats.partial += 1
            what = "line" if self._framing == "line" else "frame"
            self._noise(bytes(open_read), at, f"unterminated {what} timed out")
        self._clear()

    def skip_to_terminator(self, now: float) -> None:
        """Drop what arrives up to the end of the current read — its line's terminator, or its
        frame's ETX (and check byte); a new STX begins a frame at once. Silence ends it too."""
        self._clear()
        if self._framing == "line":
            self._discarding = True
        else:
            self._stage = "skip"
        self._last = now

    def reset(self) -> None:
        """Forget everything open (a new connection must not finish the old one's read); keep stats."""
        self._clear()
        self._last = None
        self._events.clear()

    def _clear(self) -> None:
        self._buf.clear()
        self._cr = False
        self._discarding = False
        self._stage = "outside"
        self._garbage.clear()
        self._garbage_len = 0
        self._garbage_told = False

    # --- output ---------------------------------------------------------------------------------
    def next_event(self) -> IdReaderEvent | NeedData:
        if self._events:
            return self._events.popleft()
        return NEED_DATA

    def events(self) -> Iterator[IdReaderEvent]:
        """Every event available now."""
        while self._events:
            yield self._events.popleft()

    # --- line framing ---------------------------------------------------------------------------
    def _line_byte(self, byte: int, now: float) -> None:
        term = self._terminator
        if term == "crlf":
            if self._cr:
                self._cr = False
                if byte == LF:
                    self._end_line(now)
                    return
                self._line_data(CR, now)  # a CR that was not a terminator: data (noise, later)
            if byte == CR:
                self._cr = True
                return
        elif (byte == CR and term in ("any", "cr")) or (byte == LF and term in ("any", "lf")):
            self._end_line(now)
            return
        self._line_data(byte, now)

    def _line_data(self, byte: int, now: float) -> None:
        if self._discarding:
            return
        self._buf.append(byte)
        if len(self._buf) > self._limit:
            self._overlong(self._buf, now)
            self._buf.clear()
            self._discarding = True

    def _end_line(self, now: float) -> None:
        if self._discarding:
            self._discarding = False  # the end of an over-long line, already counted
        elif self._buf:  # an empty line (CR LF read as two ends, blank lines) is nothing
            self._id(bytes(self._buf), bytes(self._buf), now)
        self._buf.clear()

    # --- STX/ETX framing ------------------------------------------------------------------------
    def _frame_byte(self, byte: int, now: float) -> None:
        stage, buf = self._stage, self._buf
        if stage == "outside":
            if byte == STX:
                self._end_garbage(now)
                buf.append(byte)
                self._stage = "frame"
            elif byte not in BLANKS:
                self._garbage_byte(byte, now)
        elif stage == "frame":
            if byte == STX:
                self._noise(bytes(buf), now, "frame cut short by the next STX")
                buf[:] = b"\x02"
            elif byte == ETX:
                buf.append(byte)
                if self.config.lrc:
                    self._stage = "check"
                else:
                    self._frame(now)
            else:
                buf.append(byte)
                if len(buf) - 1 > self._limit:
                    self._overlong(buf, now)
                    buf.clear()
                    self._stage = "skip"
        elif stage == "check":
            buf.append(byte)
            self._frame(now)
        elif stage == "skip":
            if byte == STX:
                buf[:] = b"\x02"
                self._stage = "frame"
            elif byte == ETX:
                self._stage = "skip_check" if self.config.lrc else "outside"
        else:  # skip_check: the check byte of a frame skipped
            self._stage = "outside"

    def _garbage_byte(self, byte: int, now: float) -> None:
        if self._garbage_told:
            return
        if len(self._garbage) < SAMPLE:
            self._garbage.append(byte)
        self._garbage_len += 1
        if self._garbage_len > self._limit:  # a burst of noise: reported now, the rest dropped
            self._end_garbage(now)
            self._garbage_told = True

    def _end_garbage(self, at: float) -> None:
        if self._garbage_len:
            self._noise(bytes(self._garbage), at, "garbage between frames")
            self._garbage.clear()
            self._garbage_len = 0
        self._garbage_told = False

    def _frame(self, now: float) -> None:
        """`_buf` holds STX … ETX [check byte]: an id, or why not."""
        frame = bytes(self._buf)
        self._buf.clear()
        self._stage = "outside"
        etx = frame.index(ETX)
        if self.config.lrc:
            expected = lrc(frame[: etx + 1])
            if frame[etx + 1] != expected:
                self.stats.bad_lrc += 1
                self._noise(frame, now, f"bad check byte {frame[etx + 1]:#04x} (expected {expected:#04x})")
                return
        self._id(frame[1:etx], frame, now)

    # --- one id ---------------------------------------------------------------------------------
    def _id(self, body: bytes, raw: bytes, at: float) -> None:
        body = body.strip(_EDGE_BLANKS)
        if not body:
            self._noise(raw, at, "no data")
            return
        bad = next((b for b in body if b < 0x20 or b >= 0x7F), None)
        if bad is not None:
            what = "non-ASCII byte" if bad >= 0x80 else "control character"
            self._noise(raw, at, f"{what} {bad:#04x}")
            return
        if self._drop:
            body = body.translate(None, self._drop)
        outside = next((b for b in body if b not in self._alphabet), None)
        if outside is not None:
            self._noise(raw, at, f"{chr(outside)!r} is not {self.config.charset}")
            return
        c = self.config
        n = len(body)
        if not c.min_length <= n <= c.max_length or (self._lengths and n not in self._lengths):
            accepted = ", ".join(map(str, c.lengths)) if c.lengths else f"{c.min_length}–{c.max_length}"
            self._noise(raw, at, f"{n} characters, not {accepted}")
            return
        text = body.decode("ascii")
        self.stats.reads += 1
        self._events.append(IdFrame(text.upper() if c.charset == "hex" else text, at))

    def _noise(self, data: bytes, at: float, detail: str) -> None:
        self.stats.noise += 1
        self._events.append(Discarded("noise", detail, data[:SAMPLE], at))

    def _overlong(self, data: bytes | bytearray, at: float) -> None:
        self.stats.overlong += 1
        detail = f"longer than {self._limit} bytes"
        self._events.append(Discarded("overlong", detail, bytes(data[:SAMPLE]), at))


# --- encoding (simulators, tests) -----------------------------------------------------------------


def lrc(frame: bytes) -> int:
    """The check byte after ETX: the XOR of every byte from STX to ETX."""
    check = 0
    for byte in frame:
        check ^= byte
    return check


def encode_read(
    id_: str,
    *,
    framing: Framing = "line",
    terminator: bytes = b"\r\n",
    with_lrc: bool = False,
) -> bytes:
    """The bytes a reader sends for one read of `id_`. `terminator` ends a line (and, with STX/ETX
    framing, follows the frame if not empty). Raises IdReaderProtocolError for what no reader
    sends: an empty id, a non-printable or non-ASCII character."""
    if not id_:
        raise IdReaderProtocolError("empty id")
    if not id_.isascii() or not id_.isprintable():
        raise IdReaderProtocolError(f"{id_!r}: ids are printable ASCII")
    body = id_.encode("ascii")
    if framing == "line":
        if terminator not in (b"\r", b"\n", b"\r\n"):
            raise IdReaderProtocolError(f"a line ends in CR, LF or CR LF, not {terminator!r}")
        return body + terminator
    if terminator.translate(None, BLANKS):
        raise IdReaderProtocolError(f"only blanks may follow a frame, not {terminator!r}")
    frame = bytes((STX,)) + body + bytes((ETX,))
    return frame + (bytes((lrc(frame),)) if with_lrc else b"") + terminator

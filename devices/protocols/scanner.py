"""Serial barcode scanners, sans-I/O: bytes in, frames out, time passed in by the caller.

Frame on the wire: `[prefix][AIM id]data[suffix]<CR | LF | CR LF>`. Any of CR, LF
or CR LF ends a line, so a scanner set to any of them works unconfigured; an empty line (the LF of
a CR LF that arrived in the next chunk, or blank lines) is not a frame. Other end markers (ETX,
TAB) are configured as `suffix`; a scanner that sends no CR/LF at all is framed by the partial
timeout alone.

Why time is an argument: a partial frame must be flushed when the line goes quiet, dedupe needs a
window, and tests must drive both without sleeping. `receive_data(data, now)` stamps every frame
completed by `data` with `now` (when its last byte arrived); `tick(now)` closes a partial frame once
`partial_timeout_s` has passed since its last byte; `deadline` says when that will be, so a driver
can wait exactly that long and no clock is read here.

Received bytes never raise. Lines that are not frames are counted in `stats` and reported as
`Discarded` events (noise: control bytes, bad encoding, a missing configured prefix/suffix or AIM
identifier, no data; over-long: more than `max_length` bytes, discarded up to the next terminator,
counted once). Only local misuse raises `ScannerProtocolError` (encoding a frame that cannot be
carried). A frame that matches none of the configured carrier waybill patterns is still a frame,
with `carrier=None` and counted in `stats.unmatched`: whether an unknown code is a fault is the
edge's decision, not the wire's. Results never depend on how the stream was split into chunks.

`Deduper` is separate on purpose: it is about the world (one parcel read twice), not the wire.
"""

from __future__ import annotations

import codecs
import re
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from devices.protocols.errors import ProtocolError
from devices.protocols.need_data import NEED_DATA, NeedData

CR: Final = b"\r"
LF: Final = b"\n"
CRLF: Final = b"\r\n"
TERMINATORS: Final = (CR, LF, CRLF)
SAMPLE: Final = 32  # bytes of a discarded line kept in its event, for logs

# ISO/IEC 15424 symbology identifiers a parcel park meets; others are "unknown"
SYMBOLOGIES: Final[dict[str, str]] = {
    "]C0": "Code 128",
    "]C1": "GS1-128",
    "]E0": "EAN-13",
    "]E4": "EAN-8",
    "]A0": "Code 39",
    "]I1": "ITF",
    "]Q1": "QR",
    "]d1": "DataMatrix",
}
UNKNOWN_SYMBOLOGY: Final = "unknown"
_ASCII_ALNUM: Final = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_ASCII_LETTERS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


class ScannerProtocolError(ProtocolError):
    """Local misuse (encoding a frame the wire cannot carry); received bytes never raise."""


class ScannerProtocolConfig(BaseModel):
    """How one scanner frames its output. Defaults fit a factory-default scanner with AIM ids on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prefix: bytes = Field(b"", description="sent before every frame; a line without it is noise")
    suffix: bytes = Field(b"", description="sent before the CR/LF (e.g. ETX); a line without it is noise")
    aim: Literal["optional", "required", "off"] = Field(
        "optional",
        description="optional: parse ]Xm when present; required: a line without one is noise (a frame "
        "whose start was lost); off: data starting with ] is kept as it is",
    )
    max_length: int = Field(512, ge=1, description="longest line in bytes, prefix and suffix included")
    encoding: str = Field("utf-8", description="undecodable lines are noise")
    allowed_controls: str = Field(
        "\x1d\x1e\x04",
        description="control characters that are data, not noise: GS (GS1 FNC1 separator), RS and "
        "EOT (ISO/IEC 15434 envelopes in 2D codes)",
    )
    noread_tokens: tuple[bytes, ...] = Field(
        (b"NOREAD", b"NR"), description="whole lines (with or without prefix/suffix) meaning no read"
    )
    carriers: dict[str, re.Pattern[str]] = Field(
        default_factory=dict,
        description="carrier name -> waybill regex (full match on the data, AIM id excluded); first "
        "match in order wins",
    )
    partial_timeout_s: float = Field(
        0.5, gt=0, description="quiet time after the last byte before a partial line is closed"
    )
    partial: Literal["emit", "discard"] = Field(
        "emit",
        description="a line closed by the timeout: emit it as a frame (scanners set up without a "
        "terminator) or discard it as noise",
    )

    @field_validator("prefix", "suffix", "allowed_controls")
    @classmethod
    def _no_line_ends(cls, value: bytes | str) -> bytes | str:
        if isinstance(value, str):
            if "\r" in value or "\n" in value:
                raise ValueError("CR and LF end lines; they cannot be part of a frame")
        elif b"\r" in value or b"\n" in value:
            raise ValueError("CR and LF end lines; they cannot be part of a frame")
        return value

    @field_validator("noread_tokens")
    @classmethod
    def _tokens(cls, value: tuple[bytes, ...]) -> tuple[bytes, ...]:
        for token in value:
            if not token or b"\r" in token or b"\n" in token:
                raise ValueError(f"a no-read token must be a non-empty line: {token!r}")
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError as exc:
            raise ValueError(f"unknown encoding {value!r}") from exc
        return value


# --- events ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """One barcode read. `at` is the `now` given with the chunk that held its last byte."""

    code: str  # the data, AIM identifier excluded
    aim: str | None  # e.g. "]C0"; None when the scanner sent none
    symbology: str | None  # from SYMBOLOGIES, "unknown" for other ids, None without an id
    carrier: str | None  # the first matching carrier pattern; None if none matched (or none set)
    at: float
    terminated: bool = True  # False: closed by the partial timeout, no CR/LF seen


@dataclass(frozen=True, slots=True)
class NoReadFrame:
    """The scanner said it saw no code (a configured NOREAD token)."""

    at: float
    terminated: bool = True


DiscardReason = Literal["noise", "overlong"]


@dataclass(frozen=True, slots=True)
class Discarded:
    """A line that was not a frame: counted, reported for logs and health, never raised."""

    reason: DiscardReason
    detail: str  # why, for a log line
    data: bytes  # the first SAMPLE bytes of the line (of an over-long one: max_length + 1 at most)
    at: float


ScannerEvent = Frame | NoReadFrame | Discarded


@dataclass
class ScannerStats:
    frames: int = 0  # Frame events (matched or not, terminated or flushed)
    noreads: int = 0
    noise: int = 0  # lines discarded as noise
    overlong: int = 0  # lines discarded for length (each counted once)
    unmatched: int = 0  # frames that matched no carrier pattern (only when patterns are set)
    partial: int = 0  # lines closed by the timeout (emitted or discarded)


def split_aim(text: str) -> tuple[str | None, str]:
    """`]` + code letter + modifier character at the start: (aim, data); else (None, text)."""
    if len(text) >= 3 and text[0] == "]" and text[1] in _ASCII_LETTERS and text[2] in _ASCII_ALNUM:
        return text[:3], text[3:]
    return None, text


# --- the parser -----------------------------------------------------------------------------------


class ScannerParser:
    """`receive_data(chunk, now)`, then `next_event()` until NEED_DATA; `tick(now)` when the line is
    quiet. Lines are framed eagerly on receive so each frame carries the time of its own chunk."""

    def __init__(self, config: ScannerProtocolConfig | None = None) -> None:
        self.config = config if config is not None else ScannerProtocolConfig()
        self.stats = ScannerStats()
        self._events: deque[ScannerEvent] = deque()
        self._partial = b""  # bytes of an unterminated line (never more than max_length)
        self._discarding = False  # inside an over-long line: drop up to the next terminator
        self._last: float | None = None  # `now` of the last non-empty chunk
        c = self.config  # read once: the per-line path below runs for every frame
        self._noread = frozenset(c.noread_tokens)
        self._carriers = tuple(c.carriers.items())
        self._allowed = frozenset(c.allowed_controls)
        self._max, self._prefix, self._suffix, self._encoding = c.max_length, c.prefix, c.suffix, c.encoding
        self._aim = c.aim

    # --- input ----------------------------------------------------------------------------------
    def receive_data(self, data: bytes, now: float) -> None:
        """Buffer `data`, which arrived at monotonic time `now`; complete lines become events."""
        if not data:
            return
        self._last = now
        chunk = self._partial + data if self._partial else data
        lines = chunk.splitlines()  # bytes.splitlines breaks at CR, LF and CR LF only
        partial = b"" if chunk[-1] in b"\r\n" else lines.pop()
        if self._discarding and lines:
            del lines[0]  # the tail of an over-long line, already counted
            self._discarding = False
        for line in lines:
            if line:
                self._line(line, now, terminated=True)
        if self._discarding:
            partial = b""
        elif len(partial) > self.config.max_length:
            self._overlong(partial, now)
            self._discarding = True
            partial = b""
        self._partial = partial

    @property
    def deadline(self) -> float | None:
        """When `tick` will act (a partial line or an over-long one is open); None: nothing pending."""
        if self._last is None or not (self._partial or self._discarding):
            return None
        return self._last + self.config.partial_timeout_s

    def tick(self, now: float) -> None:
        """Close an open line if the line has been quiet for `partial_timeout_s`."""
        deadline = self.deadline
        if deadline is None or now < deadline:
            return
        assert self._last is not None
        self._discarding = False  # an over-long line without a terminator ends with the silence
        partial, self._partial = self._partial, b""
        if not partial:
            return
        self.stats.partial += 1
        if self.config.partial == "emit":
            self._line(partial, self._last, terminated=False)
        else:
            self._noise(partial, self._last, "partial line timed out")

    def skip_to_terminator(self, now: float) -> None:
        """Drop what arrives up to the next terminator (the rest of a line whose start was thrown
        away); the line's silence for `partial_timeout_s` ends the skipping too."""
        self._partial = b""
        self._discarding = True
        self._last = now

    def reset(self) -> None:
        """Forget an open line (a new connection must not finish the old one's frame); keep stats."""
        self._partial = b""
        self._discarding = False
        self._last = None
        self._events.clear()

    # --- output ---------------------------------------------------------------------------------
    def next_event(self) -> ScannerEvent | NeedData:
        if self._events:
            return self._events.popleft()
        return NEED_DATA

    def events(self) -> Iterator[ScannerEvent]:
        """Every event available now."""
        while self._events:
            yield self._events.popleft()

    # --- one line -------------------------------------------------------------------------------
    def _line(self, line: bytes, at: float, *, terminated: bool) -> None:
        if len(line) > self._max:
            self._overlong(line, at)
            return
        if line in self._noread:
            self._noread_frame(at, terminated)
            return
        body = line
        if prefix := self._prefix:
            if not body.startswith(prefix):
                self._noise(line, at, "missing prefix")
                return
            body = body[len(prefix) :]
        if suffix := self._suffix:
            if not body.endswith(suffix):
                self._noise(line, at, "missing suffix")
                return
            body = body[: len(body) - len(suffix)]
        if body in self._noread:
            self._noread_frame(at, terminated)
            return
        try:
            text = body.decode(self._encoding)
        except UnicodeDecodeError:
            self._noise(line, at, f"not {self._encoding}")
            return
        if not text.isprintable():
            bad = next((ch for ch in text if not ch.isprintable() and ch not in self._allowed), None)
            if bad is not None:
                self._noise(line, at, f"control character {ord(bad):#04x}")
                return
        aim: str | None = None
        if self._aim != "off":
            if text[:1] == "]" and len(text) >= 3 and text[1] in _ASCII_LETTERS and text[2] in _ASCII_ALNUM:
                aim, text = text[:3], text[3:]  # split_aim, inlined: this runs for every frame
            elif self._aim == "required":
                self._noise(line, at, "no AIM identifier")
                return
        if not text.strip():
            self._noise(line, at, "no data")
            return
        carrier: str | None = None
        if self._carriers:
            carrier = next((name for name, pattern in self._carriers if pattern.fullmatch(text)), None)
            if carrier is None:
                self.stats.unmatched += 1
        self.stats.frames += 1
        symbology = None if aim is None else SYMBOLOGIES.get(aim, UNKNOWN_SYMBOLOGY)
        self._events.append(Frame(text, aim, symbology, carrier, at, terminated))

    def _noread_frame(self, at: float, terminated: bool) -> None:
        self.stats.noreads += 1
        self._events.append(NoReadFrame(at, terminated))

    def _noise(self, line: bytes, at: float, detail: str) -> None:
        self.stats.noise += 1
        self._events.append(Discarded("noise", detail, line[:SAMPLE], at))

    def _overlong(self, line: bytes, at: float) -> None:
        self.stats.overlong += 1
        limit = self.config.max_length
        # the first max_length + 1 bytes at most: all a chunk may have shown when the line overflowed
        sample = line[: min(SAMPLE, limit + 1)]
        self._events.append(Discarded("overlong", f"line longer than {limit} bytes", sample, at))


# --- dedupe ---------------------------------------------------------------------------------------


class Deduper:
    """The same code again within `window_s` of its previous sighting is a duplicate.

    Why from the previous sighting and not from the first report: a parcel standing under a
    scanner in continuous mode is read every few hundred milliseconds; measured from the first
    report it would be reported again every window, as if it were a new parcel. Measured from the
    last sighting it is reported once until it has been gone for a whole window. Keyed on the code
    alone: the same data under another symbology is the same label. A window of 0 turns dedupe off.
    Memory is bounded: codes unseen for a window are forgotten, and at most `max_codes` are kept.
    """

    def __init__(self, window_s: float, *, max_codes: int = 10_000) -> None:
        if window_s < 0:
            raise ValueError("window_s must be >= 0")
        self.window_s = window_s
        self.max_codes = max_codes
        self.duplicates = 0
        self._seen: OrderedDict[str, float] = OrderedDict()  # code -> last sighting, oldest first

    def is_duplicate(self, code: str, now: float) -> bool:
        """Record a sighting of `code` at `now`; True if it repeats one within the window."""
        if self.window_s <= 0:
            return False
        seen = self._seen
        while seen:
            oldest, when = next(iter(seen.items()))
            if now - when < self.window_s and len(seen) < self.max_codes:
                break
            del seen[oldest]
        last = seen.pop(code, None)
        seen[code] = now
        if last is not None and now - last < self.window_s:
            self.duplicates += 1
            return True
        return False

    def clear(self) -> None:
        self._seen.clear()


# --- encoding (simulators, tests) -----------------------------------------------------------------


def encode_frame(
    code: str,
    *,
    aim: str | None = "]C0",
    prefix: bytes = b"",
    suffix: bytes = b"",
    terminator: bytes = CR,
    encoding: str = "utf-8",
) -> bytes:
    """The bytes a scanner sends for `code`. Raises ScannerProtocolError for what no scanner could
    send: an empty code, CR/LF inside the frame, a malformed AIM id, an unencodable character."""
    if terminator not in TERMINATORS:
        raise ScannerProtocolError(f"terminator must be CR, LF or CR LF, not {terminator!r}")
    if not code:
        raise ScannerProtocolError("empty code")
    if aim is not None and (len(aim) != 3 or split_aim(aim)[0] != aim):
        raise ScannerProtocolError(f"malformed AIM identifier {aim!r}")
    try:
        body = ((aim or "") + code).encode(encoding)
    except UnicodeEncodeError as exc:
        raise ScannerProtocolError(f"cannot encode {code!r} as {encoding}") from exc
    frame = prefix + body + suffix
    if b"\r" in frame or b"\n" in frame:
        raise ScannerProtocolError("CR or LF inside a frame would split it")
    return frame + terminator

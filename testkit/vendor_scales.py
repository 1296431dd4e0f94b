"""Scales written from the vendors' documents — not from firmware_sim, and not from the project's own
encoders: an MT-SICS balance (Mettler Toledo MT-SICS reference manual, level 0 and 1), a Toledo 8217
and a Toledo continuous-output indicator (the formats in docs/PROTOCOLS), each on a pty, behind a
model of the serial line between two UARTs.

Why a line model: a pty carries bytes, not characters on a wire, and ignores data bits and parity
(Linux keeps a pty at CS8 whatever the host asks). A 7E1 device read by an 8N1 port delivers its
parity bit as bit 7 of every byte; an 8N1 host writing to a 7E1 device makes the device take bit 7
for a parity bit, wrong for about half the characters. `Line` frames each character the way the
sender's UART does and samples it the way the receiver's does (parity is not checked on the host
side: pyserial clears INPCK), so the tests see exactly those bytes. Characters are taken one at a
time with the line idle between them.

Why replies can be held: the MT-SICS finding is a reply that arrives after the host gave up on it. A
balance answers commands in the order it received them (each command is acknowledged by its
response), so a late reply delays every reply behind it. `hold()` keeps the next replies back until a
time, the next command, or `release()`: no test depends on timing to produce a late line.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import tty
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from devices.drivers.scale import ScaleConfig, ScaleDriver
from devices.events import WeightReading

STX, CR, LF = 0x02, 0x0D, 0x0A


# --- the line -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Framing:
    bits: int  # data bits, 7 or 8
    parity: Literal["N", "E", "O", "M", "S"]
    stop: int

    @classmethod
    def parse(cls, text: str) -> Framing:
        """`"7E1"` → Framing(7, "E", 1)."""
        bits, parity, stop = int(text[0]), text[1], int(text[2])
        if bits not in (7, 8) or parity not in "NEOMS" or stop not in (1, 2):
            raise ValueError(f"framing {text!r}")
        return cls(bits, parity, stop)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.bits}{self.parity}{self.stop}"


def parity_bit(value: int, parity: str) -> int | None:
    """The parity bit a UART sends after `value`'s data bits (None: no parity bit)."""
    ones = bin(value).count("1") & 1
    return {"E": ones, "O": 1 - ones, "M": 1, "S": 0}.get(parity)


def character_bits(byte: int, framing: Framing) -> list[int]:
    """One character on the wire: start bit, data bits LSB first, parity bit, stop bits."""
    data = byte & ((1 << framing.bits) - 1)
    bits = [0] + [(data >> i) & 1 for i in range(framing.bits)]
    parity = parity_bit(data, framing.parity)
    if parity is not None:
        bits.append(parity)
    return bits + [1] * framing.stop


def sample(bits: list[int], framing: Framing) -> tuple[int, bool]:
    """What a UART set to `framing` reads from one character's bits: (data, parity and stop bit ok).
    Past the sender's bits the line idles at 1."""
    bits = [*bits, 1, 1, 1, 1]
    data = sum(bits[1 + i] << i for i in range(framing.bits))
    at, ok = 1 + framing.bits, True
    expected = parity_bit(data, framing.parity)
    if expected is not None:
        ok = bits[at] == expected
        at += 1
    return data, ok and bits[at] == 1


class Line:
    """A cable between the host's port (`host` framing) and the device's UART (`device` framing)."""

    def __init__(self, device: str = "8N1", host: str = "8N1") -> None:
        self.device, self.host = Framing.parse(device), Framing.parse(host)

    def to_host(self, data: bytes) -> bytes:
        return bytes(sample(character_bits(b, self.device), self.host)[0] for b in data)

    def to_device(self, data: bytes) -> list[tuple[int, bool]]:
        return [sample(character_bits(b, self.host), self.device) for b in data]


# --- a device on a pty ----------------------------------------------------------------------------


class PtyDevice:
    """The device side of a pty. `path` is what the driver opens. Use `async with`."""

    def __init__(self, line: Line) -> None:
        self.line = line
        self._master: int | None = None
        self._slave: int | None = None
        self.path = ""
        self.sent = bytearray()  # what the device put on the wire, before the line model

    async def __aenter__(self) -> PtyDevice:
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave, self.path = master, slave, os.ttyname(slave)
        asyncio.get_running_loop().add_reader(master, self._on_readable)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        master, self._master = self._master, None
        if master is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(master)
        for fd in (master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._slave = None

    def send(self, data: bytes) -> None:
        if self._master is None:
            return
        self.sent += data
        view = memoryview(self.line.to_host(data))
        with contextlib.suppress(BlockingIOError, OSError):  # nobody reading: a real UART drops it too
            while view:
                view = view[os.write(self._master, view) :]

    def _on_readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError, OSError):
            return
        self.received(self.line.to_device(data))

    def received(self, chars: list[tuple[int, bool]]) -> None:
        """Characters from the host, each with whether its parity and stop bit were right."""


# --- MT-SICS --------------------------------------------------------------------------------------


@dataclass
class _Out:
    data: bytes
    ready: bool = True
    release: Literal["next", "manual"] | None = None
    lose_next: bool = False  # 8217: the W that releases it is lost on the line


class MtSicsBalance(PtyDevice):
    """A balance answering MT-SICS level 0/1 as the reference manual describes:

    - every command ends in CR LF; each is answered by one response, in the order received;
    - `@` (cancel): `I4 A "<SNR>"`, and every command awaiting a response is cancelled;
    - `I4`: `I4 A "<SNR>"`; `S`: `S S <weight> <unit>`, or `S I` when no stable value comes (the
      balance's own stability timeout, taken at once here), `S +` / `S -` out of range; `SI`: the
      weight now, `S S` or `S D`; `Z` / `ZI`: `Z A`, `Z I`, `Z +`, `Z -` / `ZI S`, `ZI D`; `T`:
      `T S <tare> <unit>` or `T I`; `TA`: `TA A <tare> <unit>`; `TAC`: `TAC A`;
    - a command the balance does not know: `ES`; one received with a parity or framing error: `ET`;
    - a weight is right-aligned in 10 characters, then a blank and the unit.

    The balance weighs when a command arrives; `gross`, `tare`, `stable`, `unit` are what it shows.
    """

    def __init__(
        self, *, line: Line | None = None, serial: str = "B123456789", unit: str = "kg", decimals: int = 3
    ) -> None:
        super().__init__(line or Line())
        self.serial = serial
        self.unit = unit
        self.decimals = decimals
        self.gross = Decimal(0)
        self.tare = Decimal(0)
        self.stable = True
        self.over = False
        self.received_lines: list[str] = []
        self._inbox = bytearray()
        self._bad = False  # a character of the line being received had a parity/framing error
        self._outbox: deque[_Out] = deque()
        self._hold: tuple[int, frozenset[str] | None, Literal["next", "manual"] | float] | None = None
        self.held = 0  # replies held so far
        self._held_event = asyncio.Event()
        self._printed: list[bytes] = []  # print-key lines to send in front of the next reply

    # the scene
    def put(self, gross: Decimal | str, *, stable: bool = True) -> None:
        self.gross, self.stable = Decimal(gross), stable

    def hold(
        self,
        count: int = 1,
        *,
        only: Iterable[str] | None = None,
        release: Literal["next", "manual"] | float = "next",
    ) -> None:
        """Hold the replies to the next `count` commands (those in `only`, if given) until `release`:
        "next" — the next command after them arrives; "manual" — `release()`; a number — that many
        seconds after each was weighed. Replies behind a held one wait for it."""
        self._hold = (count, frozenset(only) if only is not None else None, release)

    async def wait_held(self, count: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while self.held < count:
                await self._held_event.wait()
                self._held_event.clear()

    def print_key(self, *, when: Literal["now", "before-next-reply"] = "now") -> None:
        """The print/transfer key: the balance sends the weight it shows, unasked, as the S command's
        answer reads (`S S <weight> <unit>`, `S D …` while unstable — the manual's transfer output
        and SIR/ST lines look the same). "now": on the wire at once (behind any reply still held);
        "before-next-reply": weighed now, but on the wire just after the next command arrives, in
        front of its answer — the key pressed while the host's request was on its way."""
        line = f"S {'S' if self.stable else 'D'} {self._field(self.gross - self.tare)}".encode() + b"\r\n"
        if when == "now":
            self._unasked(line)
        else:
            self._printed.append(line)

    def _unasked(self, data: bytes) -> None:
        self._outbox.append(_Out(data))
        self._flush()

    def release(self) -> None:
        for out in self._outbox:
            out.ready = True
        self._flush()

    # the wire
    def received(self, chars: list[tuple[int, bool]]) -> None:
        for value, ok in chars:
            self._bad |= not ok
            self._inbox.append(value)
            if self._inbox.endswith(b"\r\n"):
                line, bad = bytes(self._inbox[:-2]), self._bad
                self._inbox.clear()
                self._bad = False
                self._command(line, bad)

    def _command(self, raw: bytes, bad: bool) -> None:
        for out in self._outbox:  # a command arrived: replies held until the next one go now
            if out.release == "next" and not self._collecting():
                out.ready = True
        text = raw.decode("latin-1")
        self.received_lines.append(f"<parity error> {text}" if bad else text)
        word, _, arg = text.partition(" ")
        for line in self._printed:
            self._unasked(line)
        self._printed.clear()
        if bad:
            reply = "ET"
        else:
            if text == "@":
                self._outbox.clear()  # "all commands awaiting responses are cancelled"
            reply = self._answer(word, arg)
        self._queue(word, reply)

    def _collecting(self) -> bool:
        return self._hold is not None and self._hold[0] > 0

    def _queue(self, command: str, reply: str) -> None:
        out = _Out(reply.encode("latin-1") + b"\r\n")
        hold = self._hold
        if hold is not None and hold[0] > 0 and (hold[1] is None or command in hold[1]):
            count, only, release = hold
            self._hold = (count - 1, only, release)
            out.ready = False
            if isinstance(release, float | int):
                asyncio.get_running_loop().call_later(float(release), self._ready, out)
            else:
                out.release = release
            self.held += 1
            self._held_event.set()
        self._outbox.append(out)
        self._flush()

    def _ready(self, out: _Out) -> None:
        out.ready = True
        self._flush()

    def _flush(self) -> None:
        while self._outbox and self._outbox[0].ready:
            self.send(self._outbox.popleft().data)

    # the balance
    def _field(self, value: Decimal) -> str:
        return f"{value.quantize(Decimal(1).scaleb(-self.decimals)):>10} {self.unit}"

    def _answer(self, word: str, arg: str) -> str:
        net = self.gross - self.tare
        if arg and word != "TA":
            return "ES"
        match word:
            case "@" | "I4":
                return f'I4 A "{self.serial}"'
            case "S":
                if self.over:
                    return "S +"
                return f"S S {self._field(net)}" if self.stable else "S I"
            case "SI":
                return "S +" if self.over else f"S {'S' if self.stable else 'D'} {self._field(net)}"
            case "Z":
                if self.over:
                    return "Z +"
                if not self.stable:
                    return "Z I"
                self.gross, self.tare = Decimal(0), Decimal(0)
                return "Z A"
            case "ZI":
                self.gross, self.tare = Decimal(0), Decimal(0)
                return f"ZI {'S' if self.stable else 'D'}"
            case "T":
                if not self.stable:
                    return "T I"
                self.tare = self.gross
                return f"T S {self._field(self.tare)}"
            case "TA":
                return f"TA A {self._field(self.tare)}"
            case "TAC":
                self.tare = Decimal(0)
                return "TAC A"
        return "ES"


# --- Toledo ---------------------------------------------------------------------------------------


class Toledo8217(PtyDevice):
    """A Toledo 8217 (as Odoo's IoT box drives it): `W` → `STX weight CR` when stable (`N` after the
    digits when net), else `STX ? status CR` (bit 0 motion, 1 over capacity, 2 under zero, 6 always
    1); `Z`, `T`, `C` are obeyed without an answer. A character received with a parity error is
    ignored (`answer_bad_parity` makes this indicator lenient instead). Default line: 7E1.

    "The same weigh data record is sent out of the serial port if the PRINT key is pressed on the
    scale's front panel": `print_key()`. Replies go out in the order asked; `hold()` keeps chosen
    ones back (a reply behind a held one waits for it), so no test depends on timing for a late one.
    """

    def __init__(self, *, line: Line | None = None, answer_bad_parity: bool = False) -> None:
        super().__init__(line or Line("7E1", "7E1"))
        self.answer_bad_parity = answer_bad_parity
        self.weight = Decimal("0.000")
        self.stable = True
        self.tare = Decimal(0)
        self.commands: list[str] = []
        self.ignored = 0
        self.replies = 0  # replies put on the wire
        self.held = 0  # replies held so far
        self._outbox: deque[_Out] = deque()
        self._hold: tuple[int, Literal["next", "manual"] | float, bool] | None = None
        self._print_with_next = False

    def print_key(self, *, with_next_reply: bool = False) -> None:
        """PRINT: the weigh data record, unasked — now, or right behind the next reply, in the same
        write (the key pressed as the indicator answered)."""
        if with_next_reply:
            self._print_with_next = True
        else:
            self._outbox.append(_Out(self._reply()))
            self._flush()

    def hold(
        self, count: int = 1, *, release: Literal["next", "manual"] | float, lose_next: bool = False
    ) -> None:
        """Hold the replies to the next `count` W's (each weighed when its W arrived) until `release`:
        "next" — the next W arrives; "manual" — `release()`; a number — that many seconds after it.
        `lose_next`: the W that releases them is itself lost on the line (never answered), so the
        late reply is the only one that comes for it."""
        self._hold = (count, release, lose_next)

    def release(self) -> None:
        for out in self._outbox:
            out.ready = True
        self._flush()

    def received(self, chars: list[tuple[int, bool]]) -> None:
        for value, ok in chars:
            if not ok and not self.answer_bad_parity:
                self.ignored += 1
                continue
            command = chr(value & 0x7F)
            self.commands.append(command)
            if command == "W":
                self._weigh()
            elif command == "T":
                self.tare = self.weight
            elif command == "C":
                self.tare = Decimal(0)

    def _weigh(self) -> None:
        lose = False
        for out in self._outbox:  # a W arrived: replies held until the next one go now
            if out.release == "next":
                out.ready, lose = True, lose or out.lose_next
        if lose:
            self.ignored += 1
            self._flush()
            return
        data = self._reply()
        if self._print_with_next:
            data += self._reply()  # the same record, in the same write
            self._print_with_next = False
        out = _Out(data)
        if self._hold is not None and self._hold[0] > 0:
            count, release, lose_next = self._hold
            self._hold = (count - 1, release, lose_next)
            out.ready, out.lose_next, self.held = False, lose_next, self.held + 1
            if isinstance(release, float | int):
                asyncio.get_running_loop().call_later(float(release), self._ready, out)
            else:
                out.release = release
        self._outbox.append(out)
        self._flush()

    def _ready(self, out: _Out) -> None:
        out.ready = True
        self._flush()

    def _flush(self) -> None:
        while self._outbox and self._outbox[0].ready:
            self.send(self._outbox.popleft().data)
            self.replies += 1

    def _reply(self) -> bytes:
        if not self.stable:
            return bytes((STX, ord("?"), 0x40 | 0x01, CR))
        net = self.weight - self.tare
        text = f"{net:>7}" + ("N" if self.tare else "")
        return bytes((STX,)) + text.encode("ascii") + bytes((CR,))


# SWC bits 0-2, from the Toledo "standard continuous output" status tables: 000 lb or kg (SWB bit 4
# says which), 001 grams, 010 metric tons; IND terminals add 011 ounces, 100 troy ounces,
# 101 pennyweight, 110 long tons, 111 custom units.
SWC_UNITS = {
    "g": 0b001,
    "t": 0b010,
    "oz": 0b011,
    "ozt": 0b100,
    "dwt": 0b101,
    "long ton": 0b110,
    "custom": 0b111,
}


def continuous_frame(
    weight: Decimal,
    *,
    decimals: int = 2,
    kg: bool = True,
    unit: str | None = None,
    tare: Decimal = Decimal(0),
    motion: bool = False,
    net: bool = False,
    not_zeroed: bool = False,
    expanded: bool = False,
    checksum: bool = False,
) -> bytes:
    """One Toledo continuous-output frame, from the format: STX, status words A, B, C, six weight
    digits, six tare digits (no sign, no decimal point), CR, and the optional checksum (the 2's
    complement of the 7-bit sum of STX..CR). SWA: bits 0-2 decimal point (010 none, 011 X.X, 100
    X.XX, 101 X.XXX), bits 3-4 increment (01 = ×1), bit 5 always 1. SWB: bit 0 net, 1 negative,
    2 out of range, 3 motion, 4 kg (lb = 0), 5 always 1, 6 power-up not zeroed. SWC: bits 0-2 the
    unit (`SWC_UNITS`; 000 for lb/kg), 3 print request, 4 expanded display (×10), 5 always 1.
    `unit` (a key of SWC_UNITS) sets SWC's unit code; `kg` is SWB bit 4 whatever the code."""
    swa = 0b0010_0000 | 0b01 << 3 | (2 + decimals)
    swb = 0b0010_0000 | net | (weight < 0) << 1 | motion << 3 | kg << 4 | not_zeroed << 6
    swc = 0b0010_0000 | (SWC_UNITS[unit] if unit is not None else 0) | expanded << 4
    counts = [int(abs(v).scaleb(decimals)) for v in (weight, tare)]
    frame = bytes((STX, swa, swb, swc)) + b"".join(b"%06d" % c for c in counts) + bytes((CR,))
    if checksum:
        frame += bytes(((-sum(b & 0x7F for b in frame)) & 0x7F,))
    return frame


class ToledoContinuous(PtyDevice):
    """An indicator streaming continuous output; default line 7E1 (the parity computed per character
    by `Line`). What the frames say is set on the attributes (`weight`, `decimals`, `unit`...);
    `corrupt_every` n flips a bit of a weight digit in every n-th frame, after its checksum was
    computed — noise on the line."""

    def __init__(self, *, line: Line | None = None, rate_hz: float = 50.0, checksum: bool = False) -> None:
        super().__init__(line or Line("7E1", "7E1"))
        self.rate_hz = rate_hz
        self.checksum = checksum
        self.weight = Decimal("0.00")
        self.decimals = 2
        self.kg = True
        self.unit: str | None = None
        self.motion = False
        self.not_zeroed = False
        self.expanded = False
        self.corrupt_every: int | None = None
        self.frames_sent = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ToledoContinuous:
        await super().__aenter__()
        self._task = asyncio.get_running_loop().create_task(self._stream())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await super().__aexit__(*exc)

    def frame(self) -> bytes:
        frame = continuous_frame(
            self.weight,
            decimals=self.decimals,
            kg=self.kg,
            unit=self.unit,
            motion=self.motion,
            not_zeroed=self.not_zeroed,
            expanded=self.expanded,
            checksum=self.checksum,
        )
        self.frames_sent += 1
        if self.corrupt_every and self.frames_sent % self.corrupt_every == 0:
            wire = bytearray(frame)
            wire[8] ^= 0x02  # a weight digit: '5' becomes '7', '0' becomes '2'
            frame = bytes(wire)
        return frame

    async def _stream(self) -> None:
        while True:
            self.send(self.frame())
            await asyncio.sleep(1 / self.rate_hz)


# --- a ScaleDriver on one of them -----------------------------------------------------------------

BOUND = 10.0  # generous upper bound for anything to happen; never a measured duration
TIMEOUT = 0.2  # the driver's reply_timeout_s in these tests


def aio(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 60))

    return run


@contextlib.asynccontextmanager
async def driving(device: PtyDevice, protocol: str, **config: Any) -> AsyncIterator[ScaleDriver]:
    """`device` on its pty and a running ScaleDriver on it (fast polls, TIMEOUT per reply)."""
    settings: dict[str, Any] = {
        "protocol": protocol,
        "poll_interval_s": 0.01,
        "reply_timeout_s": TIMEOUT,
        "backoff_max_s": 0.2,
    }
    async with device:
        driver = ScaleDriver("vendor", ScaleConfig(**(settings | {"url": device.path} | config)))
        task = asyncio.create_task(driver.run())
        try:
            yield driver
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def stable_since(driver: ScaleDriver, since: float) -> WeightReading:
    """The first stable reading measured at or after `since` (bounded)."""
    reading = await driver.wait_stable(BOUND, since=since)
    assert reading is not None, "no stable reading"
    return reading

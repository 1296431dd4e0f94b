"""Gate I/O modules as their vendors document them, over a line that can be made noisy.

Written from the vendors' Modbus tables and the Modbus specifications (Application Protocol v1.1b3,
Serial Line v1.02), not from firmware_sim, and without pymodbus: a misreading shared by our
simulator and our driver cannot hide here, and the line can lose or break exactly the answers a
test asks for.

- Moxa ioLogik E1212 (user's manual, Modbus/TCP address mappings): DO0–DO7 are coils 0x0000–0x0007
  (functions 1, 5, 15), DI0–DI15 are discrete inputs 0x0000–0x000F (function 2).
- Advantech ADAM-6050 (ADAM-6000 manual, Modbus mapping): DI0–DI11 at 00001–00012 and DO0–DO5 at
  00017–00022, i.e. protocol addresses 0–11 and 16–21, read with function 1 (the 0xxxx table holds
  both) and the DIs with function 2 as well; 40301 (holding register 300) is every DI as one word and
  40303 (302) every DO. Some firmware puts DO0 at 17: `do_address`.

Both keep a *communication watchdog*: with `watchdog_s` set, outputs fall to their safe value (off)
when no request has come for that long, as the modules do when the host is gone. `reboot()` is a
module restarting: every output back to its power-on value (off) and, on TCP, every connection
dropped.

A weight indicator (`indicator()`) is the same kind of module with holding registers only (a
register map in `Module.holding`); whether it answers a read that spans registers it does not
document (between the weight and the status word) differs between vendors: `gaps_readable`.

Layers: `Module` is the data model and answers PDUs (sans-I/O); `crc16`, `rtu_requests` and
`mbap_requests` frame them; `LineNoise` decides, seeded, what the line does to each request and
answer; `TcpModule` serves Modbus TCP (MBAP) on loopback and `RtuModule` serves Modbus RTU on the
master side of a pty pair, whose other side the driver opens as a serial port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import tty
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

# --- the modules' tables ------------------------------------------------------------------------------

ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE = 1, 2, 3
GATEWAY_NO_RESPONSE = 11


@dataclass(frozen=True)
class Layout:
    name: str
    di_count: int
    do_count: int
    do_address: int  # protocol address of DO0
    coils_hold_dis: bool = False  # function 1 reads DIs at their addresses too (ADAM's 0xxxx table)
    di_word: int | None = None  # holding register with every DI (ADAM 40301)
    do_word: int | None = None  # holding register with every DO (ADAM 40303)
    registers: bool = False  # a register map (`Module.holding`) is what it serves (an indicator)
    gaps_readable: bool = True  # registers: one not in the map reads 0 (else exception 02)


def e1212() -> Layout:
    return Layout("ioLogik E1212", di_count=16, do_count=8, do_address=0)


def adam6050(do_address: int = 16) -> Layout:
    return Layout(
        "ADAM-6050",
        di_count=12,
        do_count=6,
        do_address=do_address,
        coils_hold_dis=True,
        di_word=300,
        do_word=302,
    )


def indicator(*, gaps_readable: bool = True) -> Layout:
    """A Modbus weight indicator: holding registers (weight, status word) and nothing else."""
    return Layout(
        "weight indicator", di_count=0, do_count=0, do_address=0, registers=True, gaps_readable=gaps_readable
    )


def _pack_bits(bits: list[bool]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


class Module:
    """The module's inputs and outputs and its answer to each request PDU (function code + data)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.di = [False] * layout.di_count
        self.do = [False] * layout.do_count
        self.rises: Counter[int] = Counter()  # DO channel → times it went from off to on
        self.writes = 0  # write requests carried out
        self.handled: Counter[int] = Counter()  # function code → requests answered
        self.holding: dict[int, int] = {}  # an indicator's register map: address → 16-bit value
        self.reboots = 0

    # --- the tables -------------------------------------------------------------------------------
    def _do_channel(self, address: int) -> int | None:
        channel = address - self.layout.do_address
        return channel if 0 <= channel < self.layout.do_count else None

    def _coil(self, address: int) -> bool | None:
        """Function 1's view of one address: a DO, or (ADAM) a DI."""
        if (channel := self._do_channel(address)) is not None:
            return self.do[channel]
        if self.layout.coils_hold_dis and 0 <= address < self.layout.di_count:
            return self.di[address]
        return None

    def _set_do(self, channel: int, value: bool) -> None:
        if value and not self.do[channel]:
            self.rises[channel] += 1
        self.do[channel] = value

    def _word(self, bits: list[bool]) -> int:
        return sum(1 << i for i, bit in enumerate(bits) if bit)

    def _register(self, address: int) -> int | None:
        if address == self.layout.di_word:
            return self._word(self.di)
        if address == self.layout.do_word:
            return self._word(self.do)
        if self.layout.registers:
            if address in self.holding:
                return self.holding[address]
            return 0 if self.layout.gaps_readable else None
        return None

    def safe(self) -> None:
        """What the module's watchdog does: every DO off."""
        for channel in range(self.layout.do_count):
            self._set_do(channel, False)

    def restart(self) -> None:
        """Power cycle: every DO back to its power-on value, off."""
        self.safe()
        self.reboots += 1

    # --- requests ---------------------------------------------------------------------------------
    def answer(self, pdu: bytes) -> bytes:
        """A request PDU → the answer PDU (an exception answer for what the module does not have)."""
        if not pdu:
            return bytes([0x80, ILLEGAL_FUNCTION])
        function = pdu[0]
        try:
            body = self._answer(function, pdu[1:])
        except _Refused as refused:
            return bytes([function | 0x80, refused.code])
        self.handled[function] += 1
        return bytes([function]) + body

    def _answer(self, function: int, data: bytes) -> bytes:
        if (function in (1, 2, 3, 5, 6) and len(data) != 4) or (function in (15, 16) and len(data) < 5):
            raise _Refused(ILLEGAL_VALUE)
        if function in (1, 2, 3, 15, 16):
            address, count = int.from_bytes(data[0:2], "big"), int.from_bytes(data[2:4], "big")
        if function == 1:
            if not 1 <= count <= 2000:
                raise _Refused(ILLEGAL_VALUE)
            coils = [self._coil(a) for a in range(address, address + count)]
            if any(c is None for c in coils):
                raise _Refused(ILLEGAL_ADDRESS)
            packed = _pack_bits([bool(c) for c in coils])
            return bytes([len(packed)]) + packed
        if function == 2:
            if not 1 <= count <= 2000:
                raise _Refused(ILLEGAL_VALUE)
            if address + count > self.layout.di_count:
                raise _Refused(ILLEGAL_ADDRESS)
            packed = _pack_bits(self.di[address : address + count])
            return bytes([len(packed)]) + packed
        if function == 3:
            if not 1 <= count <= 125:
                raise _Refused(ILLEGAL_VALUE)
            words = [self._register(a) for a in range(address, address + count)]
            if any(w is None for w in words):
                raise _Refused(ILLEGAL_ADDRESS)
            return bytes([2 * count]) + b"".join(int(w or 0).to_bytes(2, "big") for w in words)
        if function == 5:
            address, value = int.from_bytes(data[0:2], "big"), int.from_bytes(data[2:4], "big")
            if value not in (0x0000, 0xFF00):
                raise _Refused(ILLEGAL_VALUE)
            if (channel := self._do_channel(address)) is None:
                raise _Refused(ILLEGAL_ADDRESS)
            self._set_do(channel, value == 0xFF00)
            self.writes += 1
            return data
        if function == 15:
            nbytes = data[4]
            if not 1 <= count <= 1968 or nbytes != (count + 7) // 8 or len(data) != 5 + nbytes:
                raise _Refused(ILLEGAL_VALUE)
            channels = [self._do_channel(a) for a in range(address, address + count)]
            if any(c is None for c in channels):
                raise _Refused(ILLEGAL_ADDRESS)
            for i, channel in enumerate(channels):
                assert channel is not None
                self._set_do(channel, bool(data[5 + i // 8] >> (i % 8) & 1))
            self.writes += 1
            return data[0:4]
        raise _Refused(ILLEGAL_FUNCTION)


class _Refused(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


# --- framing -------------------------------------------------------------------------------------------


def crc16(frame: bytes) -> bytes:
    """Modbus RTU CRC (polynomial 0xA001 reflected, start 0xFFFF), low byte first on the wire."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


def rtu_requests(buffer: bytearray) -> list[tuple[int, bytes] | None]:
    """Take whole RTU request frames off the front of `buffer`: (unit, PDU) each, or None for a frame
    that failed its CRC (a module ignores those). A function it cannot size empties the buffer: a
    real module resynchronises on the silence after the frame; a pty has no silence to offer."""
    out: list[tuple[int, bytes] | None] = []
    while len(buffer) >= 4:
        function = buffer[1]
        if function in (1, 2, 3, 4, 5, 6):
            size = 8
        elif function in (15, 16):
            if len(buffer) < 7:
                break
            size = 9 + buffer[6]
        else:
            del buffer[:]
            break
        if len(buffer) < size:
            break
        frame = bytes(buffer[:size])
        del buffer[:size]
        out.append((frame[0], frame[1:-2]) if crc16(frame[:-2]) == frame[-2:] else None)
    return out


def rtu_frame(unit: int, pdu: bytes) -> bytes:
    frame = bytes([unit]) + pdu
    return frame + crc16(frame)


def mbap_requests(buffer: bytearray) -> list[tuple[bytes, int, bytes]]:
    """Take whole MBAP frames off the front of `buffer`: (transaction and protocol id, unit, PDU)."""
    out = []
    while len(buffer) >= 7:
        length = int.from_bytes(buffer[4:6], "big")
        if len(buffer) < 6 + length:
            break
        frame = bytes(buffer[: 6 + length])
        del buffer[: 6 + length]
        out.append((frame[0:4], frame[6], frame[7:]))
    return out


def mbap_frame(ids: bytes, unit: int, pdu: bytes) -> bytes:
    return ids + (len(pdu) + 1).to_bytes(2, "big") + bytes([unit]) + pdu


# --- the line -----------------------------------------------------------------------------------------

Fate = Literal["ok", "corrupt", "drop_answer", "drop_request", "late", "busy", "malformed"]


@dataclass
class LineNoise:
    """What happens to each request on the line, decided in request order from a seeded generator:

    - "corrupt": carried out, answered with a broken CRC (RTU; on TCP the answer is lost instead),
    - "drop_answer": carried out, the answer lost,
    - "drop_request": the request lost (or broken: the module ignores it), not carried out.

    Only scripted (never drawn by the generator), what a module does now and then:

    - "late": carried out, answered `late_s` later (the module busy for a moment; it answers the
      requests it got in order, so the ones after it wait too),
    - "busy": not carried out, answered with exception 06 SERVER DEVICE BUSY,
    - "malformed": carried out, answered with one byte (bits) or register too few, the byte count
      saying so (a coil write: echoed for the next coil).

    `then(fate, function=…)` scripts the fate of the next request (with that function code, if
    given) ahead of the generator, for tests that need one given request hit.
    """

    seed: int = 1
    corrupt: float = 0.0
    drop_answer: float = 0.0
    drop_request: float = 0.0
    late_s: float = 0.0
    fates: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._script: deque[tuple[Fate, int | None]] = deque()

    def then(self, *fates: Fate, function: int | None = None) -> None:
        self._script.extend((fate, function) for fate in fates)

    @property
    def scripted(self) -> int:
        """Scripted fates not yet used."""
        return len(self._script)

    def next(self, function: int) -> Fate:
        fate: Fate
        if self._script and self._script[0][1] in (None, function):
            fate = self._script.popleft()[0]
        else:
            r = self._rng.random()
            if r < self.corrupt:
                fate = "corrupt"
            elif r < self.corrupt + self.drop_answer:
                fate = "drop_answer"
            elif r < self.corrupt + self.drop_answer + self.drop_request:
                fate = "drop_request"
            else:
                fate = "ok"
        self.fates[fate] += 1
        return fate


SERVER_DEVICE_BUSY = 6


def _malformed(answer: bytes) -> bytes:
    """A read's answer one byte (bits) or one register short, its byte count saying so; a coil
    write's echo naming the next coil."""
    function = answer[0]
    if function == 5 and len(answer) == 5:
        return (
            bytes([function])
            + ((int.from_bytes(answer[1:3], "big") + 1) % 65536).to_bytes(2, "big")
            + answer[3:]
        )
    if function not in (1, 2, 3, 4) or len(answer) < 2:
        return answer
    data = answer[2:]
    data = data[: max(0, len(data) - (2 if function in (3, 4) else 1))]
    return bytes([function, len(data)]) + data


UnitPolicy = Literal["silent", "gateway", "close"]


class _Served:
    """What both servers share: the module, the unit ids it answers, the noise, the watchdog."""

    def __init__(
        self,
        layout: Layout,
        *,
        units: Iterable[int] | None,
        noise: LineNoise | None,
        watchdog_s: float | None,
    ) -> None:
        self.module = Module(layout)
        self.units = None if units is None else frozenset(units)
        self.noise = noise or LineNoise()
        self.watchdog_s = watchdog_s
        self.muted = False  # the module is gone: nothing is answered (the line stays)
        self.requests = 0
        self.other_units: Counter[int] = Counter()  # requests for a unit id this module is not
        self._last = 0.0
        self._watchdog: asyncio.Task[None] | None = None
        self.watchdog_fired = 0

    def mute(self, on: bool = True) -> None:
        self.muted = on

    def _handle(self, unit: int, pdu: bytes) -> tuple[Fate, bytes | None]:
        """The fate of one request and, unless it was lost, the module's answer."""
        self.requests += 1
        self._last = asyncio.get_running_loop().time()
        fate = self.noise.next(pdu[0] if pdu else 0)
        if fate == "drop_request":
            return fate, None
        if self.units is not None and unit not in self.units:
            self.other_units[unit] += 1
            return fate, None
        if fate == "busy":
            return fate, bytes([(pdu[0] if pdu else 0) | 0x80, SERVER_DEVICE_BUSY])
        answer = self.module.answer(pdu)
        if fate == "malformed":
            answer = _malformed(answer)
        return fate, None if fate == "drop_answer" else answer

    def reboot(self) -> None:
        """The module restarts: outputs to their power-on value (off); TCP connections dropped."""
        self.module.restart()
        self._drop_connections()

    def _drop_connections(self) -> None:
        pass

    def _start_watchdog(self) -> None:
        if self.watchdog_s is not None and self._watchdog is None:
            self._last = asyncio.get_running_loop().time()
            self._watchdog = asyncio.create_task(self._watch(self.watchdog_s))

    async def _watch(self, limit: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(limit / 4)
            if loop.time() - self._last > limit and any(self.module.do):
                self.module.safe()
                self.watchdog_fired += 1

    async def _stop_watchdog(self) -> None:
        task, self._watchdog = self._watchdog, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class TcpModule(_Served):
    """Modbus TCP on 127.0.0.1. `other_unit` says what a request for another unit id gets: no
    answer ("silent"), exception 11 as a gateway would ("gateway"), or the connection closed."""

    def __init__(
        self,
        layout: Layout,
        *,
        port: int = 0,
        units: Iterable[int] | None = None,
        other_unit: UnitPolicy = "silent",
        noise: LineNoise | None = None,
        watchdog_s: float | None = None,
    ) -> None:
        super().__init__(layout, units=units, noise=noise, watchdog_s=watchdog_s)
        self.port = port
        self.other_unit = other_unit
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._start_watchdog()

    def _drop_connections(self) -> None:
        for writer in list(self._writers):
            writer.close()

    async def stop(self) -> None:
        """The module drops off the network: the listener and every connection closed (it still
        runs: its watchdog goes on). `start()` brings it back on the same port."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            if self._handlers:  # each ends on its closed connection
                await asyncio.wait(set(self._handlers), timeout=2)
            await self._server.wait_closed()
            self._server = None

    async def close(self) -> None:
        await self.stop()
        await self._stop_watchdog()

    async def __aenter__(self) -> TcpModule:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        buffer = bytearray()
        try:
            while data := await reader.read(4096):
                buffer += data
                for ids, unit, pdu in mbap_requests(buffer):
                    if self.muted:
                        continue
                    if self.units is not None and unit not in self.units and self.other_unit != "silent":
                        self.requests += 1
                        self.other_units[unit] += 1
                        if self.other_unit == "close":
                            return
                        writer.write(mbap_frame(ids, unit, bytes([pdu[0] | 0x80, GATEWAY_NO_RESPONSE])))
                        continue
                    _fate, answer = self._handle(unit, pdu)
                    if answer is not None:  # "corrupt" has no meaning on TCP: the answer is lost
                        if _fate == "corrupt":
                            continue
                        if _fate == "late":  # in order: nothing else on this connection meanwhile
                            await writer.drain()
                            await asyncio.sleep(self.noise.late_s)
                        writer.write(mbap_frame(ids, unit, answer))
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._handlers.discard(task)
            self._writers.discard(writer)
            writer.close()


QUEUED_TURNAROUND_S = 0.003  # a busy RTU module's answers queued behind a late one: this far apart


class RtuModule(_Served):
    """Modbus RTU on the master side of a pty pair; the driver opens `path` as its serial port.
    Only the unit ids in `units` answer (RTU: a unit never answers another's requests). Answers go
    in the order the requests came; behind a late one, each a few ms after the one before."""

    def __init__(
        self,
        layout: Layout,
        *,
        units: Iterable[int] = (1,),
        noise: LineNoise | None = None,
        watchdog_s: float | None = None,
    ) -> None:
        super().__init__(layout, units=units, noise=noise, watchdog_s=watchdog_s)
        self._master: int | None = None
        self._slave: int | None = None
        self.path = ""
        self._buffer = bytearray()
        self.broken_requests = 0
        self._free_at = 0.0  # loop time the answer last queued goes out: answers go in order

    async def start(self) -> None:
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave  # the slave stays open: no EIO between sessions
        self.path = os.ttyname(slave)
        asyncio.get_running_loop().add_reader(master, self._readable)
        self._start_watchdog()

    async def stop(self) -> None:
        if self._master is not None:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
            self._master = None
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None

    async def close(self) -> None:
        await self.stop()
        await self._stop_watchdog()

    async def __aenter__(self) -> RtuModule:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: no one has the port open right now
            return
        self._buffer += data
        for request in rtu_requests(self._buffer):
            if self.muted:
                continue
            if request is None:
                self.broken_requests += 1
                continue
            unit, pdu = request
            fate, answer = self._handle(unit, pdu)
            if answer is None:
                continue
            frame = bytearray(rtu_frame(unit, answer))
            if fate == "corrupt":
                frame[-1] ^= 0x01  # one bit of the CRC flipped on the way
            loop = asyncio.get_running_loop()
            now = loop.time()
            at = now
            if self._free_at > now:  # queued behind an answer not out yet: one at a time, in turn
                at = self._free_at + QUEUED_TURNAROUND_S
            if fate == "late":
                at += self.noise.late_s
            self._free_at = at
            if at <= loop.time():
                self._send(bytes(frame))
            else:  # a busy module: this answer late, and every one queued behind it after it
                loop.call_at(at, self._send, bytes(frame))

    def _send(self, frame: bytes) -> None:
        if self._master is not None:
            with contextlib.suppress(OSError):
                os.write(self._master, frame)

"""A weighing scale: serial port + protocol parser + supervisor, reporting WeightReading events.

Why one driver for three protocols: what the edge needs from a scale is the same — a weight in kg
as a Decimal, whether it is stable, over/under range, net — and so is the life around it
(reconnect, silence, noise). Only the conversation differs: MT-SICS and Toledo 8217 are polled
(one request at a time, each with a reply timeout), Toledo continuous output is listened to.

Health: a good reply or frame means UP. ES/ET/EL replies mean the scale is there but unhappy:
counted and DEGRADED. A missed reply or noise while UP is counted and DEGRADED too; `silent_after`
missed replies in a row (or no good frame for that many reply timeouts) mean the scale is gone:
the session ends, the supervisor marks it DOWN and reconnects, and the first good answer brings it
back UP by itself. An unplugged cable fails the read at once: DOWN, then the same recovery. A scale
that answers but cannot weigh — set to a unit with no kg value here, a continuous-output indicator
powered up and not zeroed since, or showing its expanded (×10) display — is DOWN with what to do,
and its readings carry no weight; the first good answer brings it back UP.

Late replies: MT-SICS and 8217 replies carry no request id, so a reply that comes after its timeout
could answer the next request (the parcel before's weight, stamped as measured after the scan). An
MT-SICS session starts out of step, and falls out of step whenever a reply does not come in time;
out of step, the driver sends I4 (the serial number) and drops every line until its answer — the
balance answers in order — before it asks anything else (`sics.MtSicsClient`).

Unsolicited lines: a print/transfer key, or a balance set to send on its own, puts `S S 5.000 kg` on
the wire unasked — the same line as an answer. Taken for one, every later reply would answer the
request after its own. So the driver never trusts the pairing on its own: before each request it
takes whatever arrived while nothing was outstanding (counted `unsolicited`, DEGRADED), and after
each reply it sends I4 and reads to its answer: one reply is due between a request and that marker,
and a second one means the line taken may not be the answer — the reading is dropped, counted,
DEGRADED, and the marker has put the conversation back in step (`_prove`). The 8217 has no such
command: see `_poll_8217`.

`wait_stable(deadline_s)` is the edge's one question: the first stable weight that arrives after
the call, or None when the deadline passes (the edge records NO_WEIGHT).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from devices.events import EventStream, WeightReading
from devices.health import DeviceError, Health, State, SupervisedDriver, Supervisor
from devices.protocols import mt_sics as sics
from devices.protocols import parity as seven_bit
from devices.protocols import toledo
from devices.protocols.need_data import NEED_DATA, NeedData
from devices.transports.serial_port import Parity, SerialPort, SerialSettings, StopBits

log = logging.getLogger(__name__)

_E = TypeVar("_E", covariant=True)
_A = TypeVar("_A")


class _Receiver(Protocol[_E]):
    """A sans-I/O parser (or client) the driver feeds: bytes in, events out until NEED_DATA."""

    def receive_data(self, data: bytes) -> None: ...

    def next_event(self) -> _E | NeedData: ...


ScaleProtocol = Literal["mt-sics", "toledo-8217", "toledo-continuous"]

# (bytesize, parity) when the configuration does not say: MT-SICS 8N1; the 8217 7E1 (the host
# sends, so the framing must match). Continuous: 8N1 — a 7E1 stream read as 8N1 still decodes
# (the parsers strip a consistent parity bit from every byte), but the health says so.
_FRAMING: dict[ScaleProtocol, tuple[Literal[7, 8], Parity]] = {
    "mt-sics": (8, "N"),
    "toledo-8217": (7, "E"),
    "toledo-continuous": (8, "N"),
}


class ScaleConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    protocol: ScaleProtocol
    url: str = Field(description="device path (/dev/ttyUSB0, a by-id link) or pyserial URL (socket://h:p)")
    baudrate: int = Field(9600, gt=0)
    bytesize: Literal[7, 8] | None = Field(None, description="None: the protocol's usual framing")
    parity: Parity | None = None
    stopbits: StopBits = 1
    poll_interval_s: float = Field(0.2, gt=0, description="between requests (MT-SICS, 8217)")
    reply_timeout_s: float = Field(1.0, gt=0, description="per request; per frame for continuous output")
    silent_after: int = Field(3, ge=1, description="missed replies in a row before the scale is DOWN")
    mt_sics_command: Literal["SI", "S"] = Field(
        "SI", description="SI reports motion as it happens; S makes the balance wait for stability"
    )
    unit: toledo.Unit8217 = Field("kg", description="toledo-8217 only: its replies carry no unit")
    resync_quiet_s: float | None = Field(
        None,
        gt=0,
        description="toledo-8217: after a missed or unasked reply, how long the line must stay quiet "
        "before the next W (longer than any late reply; None: 3 × reply_timeout_s)",
    )
    checksum: bool | None = Field(
        None,
        description="toledo-continuous: True, False, or None to detect (a checksum once seen to verify "
        "is required on every frame after; no frame is taken unverified until the stream shows none)",
    )
    backoff_max_s: float = Field(1.0, gt=0, description="longest wait between reconnect attempts")

    def serial_settings(self) -> SerialSettings:
        bytesize, parity = _FRAMING[self.protocol]
        return {
            "baudrate": self.baudrate,
            "bytesize": self.bytesize or bytesize,
            "parity": self.parity or parity,
            "stopbits": self.stopbits,
        }


class ScaleCommandError(DeviceError):
    """zero()/tare()/clear_tare() was refused (busy, out of range, not connected, no reply)."""


class ScaleDriver(SupervisedDriver):
    """`await driver.start()` (or `async with driver:`), then read `driver.events`, `driver.latest`,
    `driver.health`, or `await driver.wait_stable(3.0)`."""

    def __init__(self, name: str, config: ScaleConfig, *, events: EventStream | None = None) -> None:
        self.name = name
        self.config = config
        self.events = events if events is not None else EventStream()
        self.latest: WeightReading | None = None
        # ES, ET, EL, no_reply, late_reply, unsolicited, noise, checksum, unit, not_zeroed, expanded, refused
        self.counters: Counter[str] = Counter()
        self.supervisor = Supervisor(name, self._session, backoff_max=config.backoff_max_s)
        self._port: SerialPort | None = None
        self._lock = asyncio.Lock()  # one conversation at a time: polls and commands take turns
        self._waiters: list[tuple[asyncio.Future[WeightReading], float | None]] = []
        self._asked: float | None = None  # when the request being answered was sent (polled protocols)
        self._net = False  # MT-SICS replies do not say; known from our own tare commands
        self._dirty: str | None = None  # noise seen since the last good answer
        self._framing_fault: str | None = None  # this session: a 7-bit device read as 8 bits
        self._tx_parity: seven_bit.BitParity | None = None  # this session: what such a device expects
        self._bit7_run: tuple[seven_bit.BitParity | None, int] = (None, 0)  # parity seen, frames in a row
        self._client = sics.MtSicsClient()
        self._parser_8217 = toledo.Toledo8217Parser()
        self._quiet_first = True  # 8217: wait for a quiet line before the next W
        self._first: tuple[toledo.Weight8217, float] | None = None  # 8217: a weight to be repeated
        self._unproven = True  # 8217: a weight counts only when the next answer repeats it
        self._extra = {"device": name, "protocol": config.protocol}

    @property
    def health(self) -> Health:
        return self.supervisor.health

    async def run(self) -> None:
        """Forever: connect, converse, reconnect (the supervisor's loop)."""
        await self.supervisor.run()

    # --- readings -------------------------------------------------------------------------------
    async def wait_stable(self, deadline_s: float, *, since: float | None = None) -> WeightReading | None:
        """The first stable reading (with a weight) that arrives within `deadline_s`, else None.
        With `since` (monotonic), only a reading measured after it: one whose request went out (or
        whose frame began) at or after `since`, so a reply already on its way cannot answer."""
        waiter: asyncio.Future[WeightReading] = asyncio.get_running_loop().create_future()
        entry = (waiter, since)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(deadline_s):
                return await waiter
        except TimeoutError:
            return None
        finally:
            self._waiters.remove(entry)

    def _emit(
        self,
        kg: Decimal | None,
        *,
        stable: bool,
        overload: bool = False,
        underload: bool = False,
        net: bool = False,
        since: float | None = None,
    ) -> None:
        reading = WeightReading(
            self.name,
            kg,
            stable=stable and kg is not None,
            overload=overload,
            underload=underload,
            net=net,
            since=since if since is not None else self._asked,
        )
        self.latest = reading
        self.events.put(reading)
        if reading.stable:
            measured = reading.since if reading.since is not None else reading.at
            for waiter, since in self._waiters:
                if not waiter.done() and (since is None or measured >= since):
                    waiter.set_result(reading)

    # --- health bookkeeping ---------------------------------------------------------------------
    def _device_error(self, code: str) -> None:
        """The scale answered with an error: it is there, but not well."""
        self.counters[code] += 1
        log.debug("scale error reply", extra={**self._extra, "code": code})
        self.supervisor.fault(f"{code} reply")

    def _missed(self, reason: str) -> None:
        """No reply in time: counted; DEGRADED if the scale had been answering (silence that
        lasts is the session's business: it ends, and that is DOWN)."""
        self.counters["no_reply"] += 1
        log.debug("scale missed a reply", extra={**self._extra, "reason": reason})
        if self.supervisor.health.state in (State.UP, State.DEGRADED):
            self.supervisor.fault(reason)

    def _noise(self, kind: str, reason: str) -> None:
        """Bytes that were not a reply: counted, and held against the next good answer."""
        self.counters[kind] += 1
        log.debug("scale noise", extra={**self._extra, "kind": kind, "reason": reason})
        self._dirty = reason

    def _answered(self) -> None:
        """A good reply or frame: UP if the exchange was clean, DEGRADED if noise came with it or
        the port's framing is wrong for the scale. (Marking UP on every good answer would flap
        UP/DEGRADED, logging each time, on a line that is noisy all the time.)"""
        reason = self._dirty or self._framing_fault
        if reason is None:
            self.supervisor.seen()
        else:
            self.supervisor.fault(reason)
            self._dirty = None

    def _bit7(self, kind: seven_bit.BitParity | None) -> None:
        """A reply or frame decoded with a parity bit in bit 7 of its bytes: a 7-bit scale (7E1, say)
        read by a port — or a serial-to-network converter — that takes 8 data bits. The parsers
        decode it all the same; from now on commands go out with the scale's parity in bit 7 (which
        is what its UART expects on the wire), and the health says what to set, DEGRADED for as
        long as the session lasts. A local port set to 7 data bits strips the bit itself (a pty
        does not: no fault then). Two frames in a row must agree: one byte's bit 7 flipped by noise
        can, in a rare frame, look like parity once."""
        settings = self.config.serial_settings()
        local = "://" not in self.config.url
        last, run = self._bit7_run
        self._bit7_run = (kind, run + 1 if kind == last else 1)
        if kind is None or self._bit7_run[1] < 2 or (local and settings["bytesize"] == 7):
            return
        sends = {"E": "7E1", "O": "7O1", "M": "7M1 or 7N2"}[kind]
        if local:
            setting = f'bytesize = 7, parity = "{kind}"' + (" (or stopbits = 2)" if kind == "M" else "")
            reason = f"bytes with bit 7 set: port {_framing(settings)}, scale sends {sends}? set {setting}"
        else:
            reason = (
                f"bytes with bit 7 set: the converter at {self.config.url} reads 8 data bits, scale sends "
                f"{sends}? set the converter's serial port to {sends}"
            )
        if reason != self._framing_fault:
            log.warning("scale framing mismatch", extra={**self._extra, "reason": reason})
        self._framing_fault, self._tx_parity = reason, kind

    async def _write(self, port: SerialPort, data: bytes) -> None:
        await port.write(seven_bit.add(data, self._tx_parity) if self._tx_parity else data)

    def _silent(self, missed: int, late: int) -> str:
        """Why a polled scale is taken for gone, with what may explain it."""
        reason = f"silent: no reply to {missed} requests"
        if late:
            reason += f"; {late} came later than reply_timeout_s"
        settings = self.config.serial_settings()
        usual = _FRAMING[self.config.protocol]
        if "://" not in self.config.url and (settings["bytesize"], settings["parity"]) != usual:
            name = "an MT-SICS balance" if self.config.protocol == "mt-sics" else "a Toledo 8217"
            reason += f"; the port is {_framing(settings)}, {name} usually talks {usual[0]}{usual[1]}1"
        return reason

    async def _request(
        self,
        port: SerialPort,
        data: bytes,
        receiver: _Receiver[_E],
        answer: Callable[[_E], _A],
    ) -> _A | None:
        """Send `data`, then feed `receiver` from the port until `answer(event)` is not None — the
        reply — or reply_timeout_s has passed since the send (None; what to forget then is the
        caller's). `answer` returns None for the events that do not answer (counting them)."""
        await self._write(port, data)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.reply_timeout_s
        while True:
            event = receiver.next_event()
            if event is NEED_DATA:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                receiver.receive_data(await port.read(remaining))
            elif (reply := answer(event)) is not None:
                return reply

    # --- the session ----------------------------------------------------------------------------
    async def _session(self, supervisor: Supervisor) -> None:
        self._framing_fault = self._tx_parity = None  # found out again on each connection
        self._bit7_run = (None, 0)
        port = SerialPort(self.config.url, **self.config.serial_settings())
        await port.open()
        self._port = port
        try:
            if self.config.protocol == "toledo-continuous":
                await self._listen(port)
            else:
                await self._poll(port)
        finally:
            self._port = None
            await port.close()

    async def _poll(self, port: SerialPort) -> None:
        self._client = sics.MtSicsClient(in_step=False)  # a reply to the session before may be on its way
        self._parser_8217 = toledo.Toledo8217Parser()
        self._disturbed()  # for the 8217, the same: a reply to the session before may be on its way
        missed = 0
        late_before = self.counters["late_reply"]
        while True:
            async with self._lock:
                if self.config.protocol == "mt-sics":
                    answered = await self._poll_sics(port)
                else:
                    answered = await self._poll_8217(port)
            if answered:
                missed, late_before = 0, self.counters["late_reply"]
            else:
                missed += 1
                self._missed("no reply")
                if missed >= self.config.silent_after:
                    raise DeviceError(self._silent(missed, self.counters["late_reply"] - late_before))
            await asyncio.sleep(self.config.poll_interval_s)

    async def _listen(self, port: SerialPort) -> None:
        parser = toledo.ToledoContinuousParser(self.config.checksum)
        loop = asyncio.get_running_loop()
        timeout = self.config.reply_timeout_s
        last_good = loop.time()
        bad = 0  # frames with a bad checksum since the last good one
        self._asked = time.monotonic()  # a streamed frame describes the load after the one before it
        while True:
            data = await port.read(timeout)
            if data:
                parser.receive_data(data)
                while (event := parser.next_event()) is not NEED_DATA:
                    if isinstance(event, toledo.ContinuousFrame):
                        last_good, bad = loop.time(), 0
                        self._bit7(parser.parity)
                        self._frame(event)
                        self._asked = time.monotonic()
                    elif isinstance(event, toledo.ChecksumError):
                        bad += 1
                        self._noise("checksum", "bad checksum")
                    else:
                        self._noise("noise", "noise on the line")
            elif loop.time() - last_good > timeout:
                self._missed("no frames")
            if loop.time() - last_good > timeout * self.config.silent_after:
                reason = f"silent: no good frame for {timeout * self.config.silent_after:g} s"
                if bad:
                    reason += f"; {bad} with a bad checksum (noise, or the checksum setting changed?)"
                raise DeviceError(reason)

    def _frame(self, frame: toledo.ContinuousFrame) -> None:
        cannot = _cannot_weigh(frame)
        if cannot is not None:
            # the indicator is there (not silent), but what it shows is no weighing: DOWN with what
            # to do, and a reading without a weight, so the last good one is not taken for the load
            kind, reason = cannot
            self.counters[kind] += 1
            self.supervisor.down(reason)
            self._emit(None, stable=False, net=frame.net)
            return
        self._answered()
        if frame.out_of_range:
            negative = frame.weight < 0
            self._emit(None, stable=False, overload=not negative, underload=negative, net=frame.net)
        else:
            self._emit(frame.kg, stable=frame.stable, net=frame.net)

    # --- MT-SICS --------------------------------------------------------------------------------
    async def _sics(self, port: SerialPort, command: sics.Command) -> sics.Reply | None:
        """Send one command and wait for its reply; None if none came in time.

        First, whatever arrived while nothing was outstanding is read and dropped: a line nobody
        asked for is counted (`unsolicited`) and DEGRADED, never the answer to this command.
        Out of step — after a reply that did not come in time, a caller that went away mid-command,
        and at the start of every session — the client first sends I4 and reads until its answer:
        the balance answers in order, so every line before that answer is a late one (dropped and
        counted), and none after it can be. If I4 is not answered in time either, the command is not
        sent at all (None: the poll counts as missed)."""
        client = self._client
        try:
            self._sics_unasked(port)
            if not client.in_step and await self._sics_request(port, client.resync()) is None:
                return None
            data = client.send(command)
            self._asked = time.monotonic()
            reply = await self._sics_request(port, data)
            return None if isinstance(reply, sics.InStep) else reply
        except BaseException:
            client.abandon()  # cancelled or port lost mid-command: out of step, a reply may still come
            raise

    def _sics_unasked(self, port: SerialPort) -> None:
        """Lines that arrived while no command was outstanding (a print key, a balance set to send on
        its own, an answer to a command given up on): taken now, so none can answer the next
        command; late ones counted as late, the others as unsolicited."""
        data = port.read_pending()
        if not data:
            return
        client = self._client
        client.receive_data(data)
        while (event := client.next_event()) is not NEED_DATA:
            if isinstance(event, sics.Late):
                self._late(event.reply)
            elif isinstance(event, sics.Unsolicited):
                self._unsolicited(event.reply, "a line nobody asked for")
            elif isinstance(event, sics.Unparsed):
                self._noise("noise", "unexpected line")
            # InStep: the answer to an I4 given up on; the client is in step again

    async def _sics_request(
        self, port: SerialPort, data: bytes, extra: list[sics.Reply] | None = None
    ) -> sics.Reply | sics.InStep | None:
        """Send `data` (what the client returned for its outstanding command) and return the reply;
        None (and the client out of step) if it did not come within reply_timeout_s. Late lines are
        dropped and counted; noise is noise. With `extra` (proving a reply, `_prove`), a late line
        that is not a marker's answer is a line nobody asked for: collected there."""
        client = self._client

        def answer(event: sics.ClientEvent) -> sics.Reply | sics.InStep | None:
            if not isinstance(event, sics.Unparsed):
                self._bit7(client.parser.parity)
            if isinstance(event, sics.Late):
                if extra is not None and not sics.from_i4(event.reply):
                    extra.append(event.reply)
                else:
                    self._late(event.reply)
            elif isinstance(event, sics.Unsolicited):
                self._unsolicited(event.reply, "a line nobody asked for")
            elif isinstance(event, sics.Unparsed):
                self._noise("noise", "unexpected line")
            else:
                return event
            return None

        receiver: _Receiver[sics.ClientEvent] = client  # named: mypy cannot infer it through NeedData
        reply = await self._request(port, data, receiver, answer)
        if reply is None:
            client.abandon()
        return reply

    async def _prove(self, port: SerialPort) -> bool | None:
        """Prove that the reply just taken answered the request: send I4 and read to its answer.

        MT-SICS replies carry no request id and `S S 5.000 kg` answers any weight request — or none:
        a print/transfer key, or a balance set to send on its own, puts the same line on the wire
        unasked. Taken for the answer, it leaves every later reply one request behind. The balance
        answers in order, so between a request and the marker's answer exactly one reply is due: a
        second (more replies than requests) means the one taken may not be the answer. Then the
        reply is dropped (False), counted as `unsolicited`, DEGRADED — and the marker's answer has
        put the client back in step. None: the marker was not answered in time (out of step)."""
        client = self._client
        extra: list[sics.Reply] = []
        try:
            marker = await self._sics_request(port, client.resync(), extra)
        except BaseException:
            client.abandon()
            raise
        if marker is None:
            return None
        for reply in extra:
            self._unsolicited(reply, "a line nobody asked for came with a reply; reading dropped")
        return not extra

    def _late(self, reply: sics.Reply) -> None:
        self.counters["late_reply"] += 1
        log.debug("scale answered late; dropped", extra={**self._extra, "reply": repr(reply)})

    def _unsolicited(self, reply: object, what: str) -> None:
        """A reply (line or frame) that answers no request: counted, DEGRADED with the likely cause,
        never a reading."""
        self.counters["unsolicited"] += 1
        key = "print/transfer key" if self.config.protocol == "mt-sics" else "PRINT key"
        reason = f"{what} ({key}, or the scale set to send on its own?)"
        log.info("scale sent what nobody asked for; dropped", extra={**self._extra, "reply": repr(reply)})
        self.supervisor.fault(reason)

    async def _wait_for_quiet(self, port: SerialPort) -> None:
        """Toledo 8217 (which has no command to find its place with): a reply went missing or came
        unasked, and a late one may still come. Read and drop until the line has been quiet for
        `resync_quiet_s`; the next W goes out only then. A line that is never quiet that long within
        three times it (a device sending on its own) ends the session: DOWN, saying so."""
        loop = asyncio.get_running_loop()
        quiet = self._resync_quiet_s()
        give_up = loop.time() + 3 * quiet
        heard = loop.time()
        late = False
        while (now := loop.time()) - heard < quiet:
            if now >= give_up:
                raise DeviceError(
                    f"the line was never quiet for resync_quiet_s ({quiet:g} s) after a missed or unasked "
                    "reply: a device sending on its own (an indicator in continuous mode, a held PRINT key)?"
                )
            if await port.read(min(quiet - (now - heard), give_up - now)):
                heard, late = loop.time(), True
        if late:
            self.counters["late_reply"] += 1
            log.debug("scale answered late; dropped", extra=self._extra)
        self._parser_8217.clear()

    def _resync_quiet_s(self) -> float:
        quiet = self.config.resync_quiet_s
        return quiet if quiet is not None else 3 * self.config.reply_timeout_s

    async def _poll_sics(self, port: SerialPort) -> bool:
        reply = await self._sics(port, sics.Command(self.config.mt_sics_command))
        if reply is None:
            return False
        if isinstance(reply, sics.ErrorReply):
            self._device_error(reply.code)
            return True
        if not isinstance(reply, sics.Busy):  # every reading is proven to answer its request first
            proven = await self._prove(port)
            if proven is None:
                return False
            if not proven:
                return True  # answered, but which line answered is not known: no reading
        if isinstance(reply, sics.UnsupportedUnit):
            self._unusable(reply)
            return True  # answered: the balance is there, it is not silent
        self._answered()
        if isinstance(reply, sics.WeightReply):
            self._emit(reply.kg, stable=reply.stable, net=self._net)
        elif isinstance(reply, sics.Overload):
            self._emit(None, stable=False, overload=True, net=self._net)
        elif isinstance(reply, sics.Underload):
            self._emit(None, stable=False, underload=True, net=self._net)
        return True  # Busy: no weight this time, but the scale is there

    def _unusable(self, reply: sics.UnsupportedUnit) -> None:
        """The balance answers in a unit with no fixed kg value here (carats, pieces, newtons...):
        DOWN with the reason — the station cannot weigh — and a reading without a weight, so the
        last good one is not taken for the load now. UP again by itself once the unit is kg."""
        self.counters["unit"] += 1
        self.supervisor.down(_unit_refused(reply.unit))
        self._emit(None, stable=False, net=self._net)

    async def _sics_command(self, command: sics.Command) -> sics.Reply:
        async with self._lock:
            port = self._connected()
            reply = await self._sics(port, command)
        if reply is None:
            raise self._refused(command.value, "no reply")
        if isinstance(reply, sics.ErrorReply):
            self._device_error(reply.code)
            raise self._refused(command.value, f"{reply.code} reply")
        if isinstance(reply, sics.UnsupportedUnit):
            raise self._refused(command.value, _unit_refused(reply.unit))
        ok = getattr(reply, "ok", False)
        if not ok:
            raise self._refused(command.value, _SICS_REFUSALS.get(getattr(reply, "status", ""), repr(reply)))
        return reply

    # --- Toledo 8217 ----------------------------------------------------------------------------
    async def _poll_8217(self, port: SerialPort) -> bool:
        """One W and its reply. The 8217 has no command to find its place with, and its replies carry
        no request id, so a frame is paired with a W only when nothing else can be its answer:

        - Before each W, what arrived while no W was outstanding (a PRINT-key record, a frame that
          came in the same read as a reply) is taken and dropped: counted `unsolicited`, DEGRADED.
          A second frame in the read that brought the reply drops the reply too: which of the two
          answered is not known.
        - After a disturbance — a reply not in time, a frame nobody asked for, a new session — the
          next W waits until the line has been quiet for `resync_quiet_s` (3 × reply_timeout_s by
          default): a late reply lands, and is dropped, before it can answer.
        - After a disturbance, too, a weight counts only when the next answer repeats it, and is
          stamped as measured no earlier than the first of the two W's. A reply later still than the
          quiet period is one line: it cannot repeat itself, and the genuine answer to the W it met
          follows it as a frame nobody asked for — itself a disturbance.
        """
        parser = self._parser_8217
        self._8217_unasked(port)
        if self._quiet_first:
            await self._wait_for_quiet(port)
            self._quiet_first = False
        asked = self._asked = time.monotonic()
        receiver: _Receiver[toledo.Event8217] = parser  # named: mypy cannot infer it through NeedData
        event = await self._request(port, toledo.encode_8217("W"), receiver, self._8217_answer)
        if event is None:
            parser.clear()
            self._disturbed()
            return False
        seen = parser.parity
        if self._8217_unasked(port, with_reply=True):
            return True  # answered, but which frame answered is not known: no reading
        self._bit7(seen)
        self._answered()
        if isinstance(event, toledo.Status8217):
            self._first = None  # a run of equal weights is broken
            self._emit(
                None, stable=False, overload=event.over_capacity, underload=event.under_zero, net=event.net
            )
            return True
        since = asked
        if self._unproven:
            first, self._first = self._first, (event, asked)
            if first is None or first[0] != event:
                return True  # held: a weight counts once the next answer repeats it
            since, self._unproven, self._first = first[1], False, None
        self._emit(toledo.kg(event.value, self.config.unit), stable=True, net=event.net, since=since)
        return True

    def _8217_answer(self, event: toledo.Event8217) -> toledo.Weight8217 | toledo.Status8217 | None:
        """A weight or status answers the W; garbage is noise, and the reply may still come."""
        if isinstance(event, toledo.Garbage):
            self._noise("noise", "noise on the line")
            return None
        return event

    def _8217_unasked(self, port: SerialPort, *, with_reply: bool = False) -> int:
        """Frames that no W is waiting for — whatever the parser still holds and the port has queued
        — taken and dropped (counted, DEGRADED, a disturbance). `with_reply`: those that came right
        behind a reply. The number of frames."""
        parser = self._parser_8217
        parser.receive_data(port.read_pending())
        frames = 0
        while (event := parser.next_event()) is not NEED_DATA:
            if isinstance(event, toledo.Garbage):
                self._noise("noise", "noise on the line")
                continue
            frames += 1
            what = "a frame nobody asked for came with a reply; reading dropped" if with_reply else None
            self._unsolicited(event, what or "a frame nobody asked for")
        if not with_reply:
            parser.clear()  # a frame cut short here must not be completed by the reply to the next W
        if frames:
            self._disturbed()
        return frames

    def _disturbed(self) -> None:
        """8217: a reply went missing or came unasked (or a session starts): the pairing is not to
        be trusted until the line has been quiet, and a weight has been repeated."""
        self._quiet_first, self._unproven, self._first = True, True, None

    # --- commands -------------------------------------------------------------------------------
    def _connected(self) -> SerialPort:
        if self._port is None:
            raise self._refused("command", "not connected")
        return self._port

    def _refused(self, command: str, reason: str) -> ScaleCommandError:
        self.counters["refused"] += 1
        log.info("scale refused a command", extra={**self._extra, "command": command, "reason": reason})
        return ScaleCommandError(f"{self.name}: {command} refused: {reason}")

    async def _toledo_command(self, command: toledo.Command8217) -> None:
        """8217 and continuous indicators take Z/T/C and do not answer."""
        async with self._lock:
            await self._write(self._connected(), toledo.encode_8217(command))

    async def zero(self) -> None:
        """Zero the scale (when stable); raises ScaleCommandError if the scale refuses."""
        if self.config.protocol == "mt-sics":
            await self._sics_command(sics.Command.Z)
        else:
            await self._toledo_command("Z")
        self._net = False

    async def tare(self) -> Decimal | None:
        """Tare the current load; the tare in kg when the scale says (MT-SICS), else None."""
        if self.config.protocol != "mt-sics":
            await self._toledo_command("T")
            return None
        reply = await self._sics_command(sics.Command.T)
        tare = reply.kg if isinstance(reply, sics.TareReply) else None
        self._net = bool(tare)
        return tare

    async def clear_tare(self) -> None:
        if self.config.protocol == "mt-sics":
            await self._sics_command(sics.Command.TAC)
        else:
            await self._toledo_command("C")
        self._net = False


def _unit_refused(unit: str, device: str = "balance") -> str:
    """The reason a scale in `unit` cannot weigh; the unit as received, clipped (it may be anything
    a balance printed, or noise that looked like a unit)."""
    shown = unit if len(unit) <= _UNIT_SHOWN else unit[: _UNIT_SHOWN - 1] + "…"
    return f"unit {shown} not supported; set the {device} to kg"


_UNIT_SHOWN = 10  # characters of an unknown unit token shown in a health reason


def _cannot_weigh(frame: toledo.ContinuousFrame) -> tuple[str, str] | None:
    """(counter, reason) when a continuous-output frame says its number is no weighing; None when it
    may be one (motion and out of range are readings of their own)."""
    if frame.not_zeroed:
        return "not_zeroed", "powered up and not zeroed since: no weighing; zero the scale"
    if frame.expanded:
        return "expanded", "expanded (x10) display: not a weight; return the indicator to its normal display"
    if not frame.unit_known:
        return "unit", _unit_refused(frame.unit, "indicator")
    return None


def _framing(settings: SerialSettings) -> str:
    """`{"bytesize": 8, "parity": "N", "stopbits": 1}` → "8N1"."""
    return f"{settings['bytesize']}{settings['parity']}{settings['stopbits']:g}"


_SICS_REFUSALS = {"I": "busy or not stable", "+": "overload", "-": "underload"}

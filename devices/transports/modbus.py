"""One Modbus bus: a TCP endpoint or an RS-485 port, shared by every unit id on it.

A bus sends one request at a time (an asyncio.Lock around connect + request), because RS-485 is
half duplex and many TCP modules serve one request per connection anyway. pymodbus is asked for no
retries and no automatic reconnect: the bus asks again itself, so that it can say why, count it,
keep to a caller's deadline and never ask again what is not safe to ask twice.

A request that gets no answer, or a broken one, is asked again up to `retries` times (per request,
or as the caller says), holding the bus so that no other request comes between; each repeat is
counted (`retried`, `corrupt`) and reported to the `on_retry` listeners, which drivers turn into a
counted fault. Every request the drivers make is safe to repeat: reads, and writes of an absolute
value (function 5 writes ON or OFF, never "toggle"). On RTU an answer that fails its CRC is noticed
as soon as it is whole (not after the timeout) and asked again at once. A `deadline` (monotonic)
bounds all attempts: none starts after it and none waits past it. Failures, each a `DeviceError`
naming the bus, unit, function and address:

- `ModbusExceptionResponse`: the device answered with an exception code (it is alive: DEGRADED);
  an illegal function or address says the profile or address map is probably wrong,
- `ModbusTimeout`: no answer within `timeout` (`ModbusCorruptAnswer`: only a broken one;
  `ModbusGatewayNoAnswer`: a TCP gateway answered exception 10/11 for the unit behind it). After
  the last attempt the TCP connection is closed, since a module that stops answering on an open
  socket is usually gone (set `close_on_timeout=False` for a TCP→RS-485 gateway with several units
  behind it, where one dead unit must not drop the rest),
- `ModbusConnectionLost`, `ModbusWrongAnswer` (an answer to another request: on RTU a late one),
- `ModbusNotSent`: the caller's deadline had passed before the request went out,
- `ModbusConnectError`: cannot connect, and why (refused, unreachable, no such port).

An answer is checked against its request before it is taken: the function (an exception answer's
too), the unit, and its shape — exactly the bits or registers asked for, a write's echo of the
address written (the value is the read-back's to confirm). One that does not fit is
`ModbusMalformedAnswer`, asked again within the same budget as a lost answer: a module that garbled
one answer is not gone.

RTU has no transaction id, so an answer that comes after its request's timeout would be taken as
the answer to the next request. After any attempt whose answer may still come (no answer, an
answer to another request, a malformed one) the line is out of step until it is resynchronised: a
request that such an answer could pass for — after a lost answer, one of the same unit, function
and answer size (a write: the same coil); after an answer to another request or a malformed one,
any — waits, without holding the bus, until the line has been quiet for `late_window` (default:
one more timeout), and what arrived meanwhile is dropped (`stray`: bytes that came with no request
outstanding, or with or after an answer; counted, never taken). A request of another shape goes at
once (a diverter command does not wait out a lost DI poll's late window): a late answer cannot pass
its checks, and its own answer, whole and fitting, shows the line back in step (a module answers
in order). An answer later than the window could still be taken for the next request of the same
shape; drivers must not build one value from two requests that such an answer could swap (the
weight indicator reads weight and status in one request, see drivers/modbus_scale.py).

Each bus is independent: a dead module on one endpoint costs other buses nothing. Units sharing
an RS-485 line do share its time: a dead unit holds the line for one timeout per attempt, plus the
late window before the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerRTU, FramerType
from pymodbus.pdu import DecodePDU, ModbusPDU

from devices.health import DeviceError

log = logging.getLogger(__name__)


class TcpEndpoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["tcp"] = "tcp"
    host: str
    port: int = Field(502, ge=1, le=65535)
    close_on_timeout: bool = True

    @property
    def key(self) -> str:
        return f"tcp://{self.host}:{self.port}"


class RtuEndpoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["rtu"] = "rtu"
    port: str  # /dev/ttyUSB0, a pty path
    baudrate: int = 9600
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1

    @property
    def key(self) -> str:
        return f"rtu://{self.port}"


Endpoint = Annotated[TcpEndpoint | RtuEndpoint, Field(discriminator="kind")]

FUNCTION_NAMES = {
    1: "read coils",
    2: "read discrete inputs",
    3: "read holding registers",
    4: "read input registers",
    5: "write coil",
    6: "write register",
    15: "write coils",
    16: "write registers",
}


class _ClientOptions(TypedDict):
    """What every pymodbus client of ours is built with, TCP or RTU."""

    timeout: float
    retries: int
    reconnect_delay: float
    name: str
    trace_packet: Callable[[bool, bytes], bytes]
    trace_connect: Callable[[bool], None]


class ModbusRequestError(DeviceError):
    """A request failed; says which one, so a log line is enough to find the wiring or map error.
    `retryable`: no answer, or a broken one — asking again is sound and may well succeed."""

    retryable = False

    def __init__(self, bus: str, device_id: int, function: int, address: int, detail: str) -> None:
        self.bus, self.device_id, self.function, self.address = bus, device_id, function, address
        self.detail = detail
        name = FUNCTION_NAMES.get(function, f"function {function}")
        super().__init__(f"{bus} unit {device_id}: {name} at {address}: {detail}")

    def note(self, text: str) -> None:
        """Add to what the error says (how many attempts, what bounded them)."""
        self.detail = f"{self.detail} ({text})"
        self.args = (f"{self.args[0]} ({text})", *self.args[1:])


# what an exception code most likely means when it comes back at once (the device is alive)
_EXCEPTION_HINTS: dict[int, str] = {
    ExcCodes.ILLEGAL_FUNCTION: "the device has no such function: wrong profile or register table?",
    ExcCodes.ILLEGAL_ADDRESS: "the device has no such address: wrong profile or address map?",
}


def _exception_label(code: int) -> str:
    try:
        return ExcCodes(code).name
    except ValueError:
        return "UNKNOWN"


class ModbusExceptionResponse(ModbusRequestError):
    """The device answered, refusing the request (it is alive)."""

    def __init__(self, bus: str, device_id: int, function: int, address: int, code: int) -> None:
        self.code = code
        detail = f"exception {code} {_exception_label(code)}"
        if (hint := _EXCEPTION_HINTS.get(code)) is not None:
            detail = f"{detail} ({hint})"
        super().__init__(bus, device_id, function, address, detail)


class ModbusTimeout(ModbusRequestError):
    """No answer in time."""

    retryable = True


class ModbusCorruptAnswer(ModbusTimeout):
    """An answer came, but failed its CRC check (noise on the line)."""


class ModbusGatewayNoAnswer(ModbusTimeout):
    """A TCP gateway answered for the unit behind it: exception 10 (no path) or 11 (no answer).
    For a write that is the same as no answer: it may or may not have been carried out."""

    def __init__(self, bus: str, device_id: int, function: int, address: int, code: int) -> None:
        self.code = code
        super().__init__(
            bus,
            device_id,
            function,
            address,
            f"no answer: the gateway got none from unit {device_id}"
            f" (exception {code} {_exception_label(code)})",
        )


class ModbusConnectionLost(ModbusRequestError):
    """The connection dropped during the request (the next attempt reconnects)."""

    retryable = True


class ModbusWrongAnswer(ModbusRequestError):
    """An answer that is not to this request (RTU has no transaction id: a late answer to an earlier
    one can arrive in its place). Never taken: it would confirm a coil from a DI read."""

    retryable = True


class ModbusMalformedAnswer(ModbusRequestError):
    """An answer to this function that does not fit the request: too few (or too many) bits or
    registers, a write echo for another address. A module that garbled one answer, or on
    RTU a late answer to an earlier request of another size. Never taken; asked again."""

    retryable = True


class ModbusLineBusy(ModbusRequestError):
    """RTU: the line did not go quiet after a lost answer (within a few late windows), so nothing
    could be sent that the next answer would be known to belong to."""

    retryable = True


class ModbusNotSent(ModbusRequestError):
    """The caller's deadline had passed before the request went out: nothing was sent."""


class ModbusConnectError(DeviceError):
    """The bus cannot be opened; says why (refused, unreachable, no such serial port)."""


Call = Callable[[AsyncModbusTcpClient | AsyncModbusSerialClient], Awaitable[ModbusPDU]]
Check = Callable[[ModbusPDU], str | None]  # what is wrong with an answer's shape, or None
# what a late answer could pass for: (unit, function, answer bytes) or, for a write, (unit, 5, coil)
Shape = tuple[int, int, int]
RetryListener = Callable[[int, str], None]  # (unit id, why the request was asked again)

_SETTLE_WINDOWS = 4  # a line that is not quiet for one late window within this many is busy


class ModbusBus:
    def __init__(
        self,
        endpoint: TcpEndpoint | RtuEndpoint,
        *,
        timeout: float = 0.25,
        retries: int = 2,
        late_window: float | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.key = endpoint.key
        self.timeout = timeout
        self.retries = retries  # how many times a request with no (or a broken) answer is asked again
        # RTU: how long after a lost answer it may still come (the line must be quiet that long)
        self.late_window = timeout if late_window is None else late_window
        self._lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self.requests = 0  # requests sent (each attempt counts)
        self.failures = 0  # attempts that failed, for whatever reason
        self.retried = 0  # attempts that were a request asked again
        self.corrupt = 0  # answers that failed their CRC check
        self.connects = 0  # connections opened: a request that had to reconnect shows here
        self.malformed = 0  # answers that did not fit their request
        self.resyncs = 0  # RTU: times the line was let go quiet and flushed after a lost answer
        self.stray = 0  # RTU: received buffers that came with no request outstanding (dropped)
        self.out_of_step = 0  # RTU: attempts after which an answer may still come (+ strays seen)
        self._listeners: list[RetryListener] = []
        # RTU: a private framer tells a whole answer with a bad CRC from one still arriving
        self._rtu_check = FramerRTU(DecodePDU(False)) if isinstance(endpoint, RtuEndpoint) else None
        self._attempt: asyncio.Timeout | None = None  # the attempt waiting for its answer, if any
        self._corrupt_seen = False
        self._dropped = False
        self._answered = False  # RTU: this attempt's answer has arrived whole
        self._unsettled_at: float | None = None  # RTU: an answer may still come since then
        self._pending: set[Shape | None] = set()  # RTU: shapes it may be an answer to (None: any)

    def on_retry(self, listener: RetryListener) -> None:
        """Call `listener(device_id, reason)` each time a request is asked again."""
        self._listeners.append(listener)

    def _new_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        e = self.endpoint
        common: _ClientOptions = {
            "timeout": self.timeout,
            "retries": 0,
            "reconnect_delay": 0,
            "name": self.key,
            "trace_packet": self._trace_packet,
            "trace_connect": self._trace_connect,
        }
        if isinstance(e, TcpEndpoint):
            return AsyncModbusTcpClient(e.host, port=e.port, **common)
        return AsyncModbusSerialClient(
            e.port,
            framer=FramerType.RTU,
            baudrate=e.baudrate,
            bytesize=e.bytesize,
            parity=e.parity,
            stopbits=e.stopbits,
            **common,
        )

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        """pymodbus shows us every received buffer before its framer does. On RTU its framer drops
        an answer whose CRC fails and then waits out the timeout; we see the same answer whole and
        broken, and end the attempt now, so that asking again costs a round trip, not a timeout.
        Bytes with no request outstanding, or after the answer, or more than one answer's worth at
        once, are a late answer (pymodbus drops all but the first whole frame, silently): counted,
        and the line is resynchronised before the next request."""
        if sending or self._rtu_check is None:
            return data
        if self._attempt is None or self._answered:
            if data:
                self._stray()
            return data
        try:
            used, _unit, _tid, frame = self._rtu_check.decode(data)
        except Exception:  # garbage the framer's own pass will deal with
            return data
        if used and not frame and not self._corrupt_seen:
            self._corrupt_seen = True
            self._end_attempt_now()
        elif used and frame:
            self._answered = True
            if len(data) > len(frame) + 3:  # unit + PDU + CRC: bytes of another answer came with it
                self._stray()
        return data

    def _end_attempt_now(self) -> None:
        attempt = self._attempt
        if attempt is not None and not attempt.expired():
            with contextlib.suppress(RuntimeError):  # already on its way out
                attempt.reschedule(asyncio.get_running_loop().time())

    def _trace_connect(self, connected: bool) -> None:
        """The connection dropped: an attempt waiting for an answer on it ends now, not at its
        timeout (a module that closes the connection on a request it will not serve)."""
        if not connected and self._attempt is not None and not self._dropped:
            self._dropped = True
            self._end_attempt_now()

    def _unsettle(self, shape: Shape | None) -> None:
        """RTU: an answer to a request of `shape` (None: of any) may still come: resynchronise
        before a request it could pass for."""
        if self._rtu_check is not None:
            if self._unsettled_at is None:
                self.out_of_step += 1
            self._unsettled_at = time.monotonic()
            self._pending.add(shape)

    def _stray(self) -> None:
        """RTU: an answer no request was waiting for (pymodbus drops it): the line was out of step.
        It answers a request already pending, if any; otherwise, who knows which."""
        self.stray += 1
        if self._rtu_check is not None and not self._pending:
            self.out_of_step += 1
            self._pending.add(None)
        self._unsettled_at = time.monotonic()

    def _quiet_at(self, shape: Shape) -> float | None:
        """RTU: None if a request of `shape` may go now; else when the line will have been quiet for
        `late_window` since an answer that could pass for its own last might have come (strays
        push it on). Once it has been, the line is back in step: what pymodbus holds is flushed."""
        if self._unsettled_at is None or not self._pending & {shape, None}:
            return None
        quiet_at = self._unsettled_at + self.late_window
        if time.monotonic() < quiet_at:
            return quiet_at
        client = self._client
        if client is not None:
            client.ctx.recv_buffer = b""  # a partial late answer must not prefix the next one
        self._back_in_step()
        self.resyncs += 1
        return None

    def _back_in_step(self) -> None:
        self._unsettled_at = None
        self._pending.clear()

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def connect(self) -> None:
        """Open the connection if it is not open; ModbusConnectError (why) if it cannot be opened."""
        async with self._lock:
            await self._connect_locked()

    async def _connect_locked(self, deadline: float | None = None) -> None:
        if self.connected:
            return
        self._close_locked()
        self._client = self._new_client()
        limit = self.timeout * 2 + 0.5  # pymodbus has its own; never hang
        if deadline is not None:
            limit = min(limit, max(0.0, deadline - time.monotonic()))
        try:
            async with asyncio.timeout(limit):
                ok = await self._client.connect()
        except TimeoutError:
            ok = False
        if not ok:
            self._close_locked()
            raise ModbusConnectError(f"{self.key}: cannot connect: {await self._why_not_connected()}")
        self.connects += 1
        log.debug("modbus connected", extra={"bus": self.key})

    async def _why_not_connected(self) -> str:
        """pymodbus only says it failed: find out why, once, the cheap way."""
        e = self.endpoint
        if isinstance(e, RtuEndpoint):
            if not os.path.exists(e.port):
                return f"no such serial port {e.port}"
            return f"serial port {e.port} cannot be opened (in use, or no permission?)"
        try:
            async with asyncio.timeout(min(self.timeout * 2, 2.0)):
                _reader, writer = await asyncio.open_connection(e.host, e.port)
        except ConnectionRefusedError:
            return (
                f"connection refused by {e.host}:{e.port}"
                " (nothing listens there: wrong host or port, or the module is off)"
            )
        except TimeoutError:
            return f"no answer to a connection from {e.host}:{e.port} (unreachable, or filtered)"
        except OSError as exc:
            return f"{e.host}:{e.port}: {exc.strerror or exc}"
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return f"{e.host}:{e.port} took a plain connection but not the Modbus client's (try again)"

    def _close_locked(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def close(self) -> None:
        self._close_locked()

    async def _request(
        self,
        device_id: int,
        function: int,
        address: int,
        call: Call,
        *,
        retries: int | None = None,
        deadline: float | None = None,
        check: Check | None = None,
        shape: Shape | None = None,
    ) -> ModbusPDU:
        """Send the request, asking again (up to `retries` more times, never past `deadline`) while
        it gets no answer, a broken one or one that does not fit (`check`). The bus is held
        throughout: nothing comes between. On RTU a request waits (without holding the bus) for the
        line to be back in step after an earlier lost answer of its `shape`; asking the same request
        again does not (a late answer to it is an answer to it), but the next of that shape will.
        Nothing is sent, nor waited for, past `deadline`."""
        shape = (device_id, function, address) if shape is None else shape
        give_up = time.monotonic() + self.late_window * _SETTLE_WINDOWS
        while True:
            async with self._lock:
                if deadline is not None and time.monotonic() >= deadline:
                    raise ModbusNotSent(self.key, device_id, function, address, "its deadline had passed")
                quiet_at = self._quiet_at(shape)
                if quiet_at is None:
                    return await self._attempts(
                        device_id, function, address, call, retries, deadline, check, shape
                    )
            # the line must go quiet first: wait without holding the bus (other shapes may go)
            if deadline is not None and quiet_at > deadline:
                raise ModbusNotSent(
                    self.key,
                    device_id,
                    function,
                    address,
                    "the line was not back in step after a lost answer by its deadline",
                )
            if quiet_at > give_up:
                self.failures += 1
                raise ModbusLineBusy(
                    self.key,
                    device_id,
                    function,
                    address,
                    f"the line did not go quiet for {self.late_window:g} s after a lost answer",
                )
            await asyncio.sleep(quiet_at - time.monotonic())

    async def _attempts(
        self,
        device_id: int,
        function: int,
        address: int,
        call: Call,
        retries: int | None,
        deadline: float | None,
        check: Check | None,
        shape: Shape,
    ) -> ModbusPDU:
        """The request's attempts; the caller holds the bus throughout."""
        budget = self.retries if retries is None else retries
        attempt = 0
        while True:
            try:
                return await self._attempt_once(
                    device_id,
                    function,
                    address,
                    call,
                    deadline,
                    last=attempt >= budget,
                    check=check,
                    shape=shape,
                )
            except ModbusRequestError as exc:
                self.failures += 1
                out_of_time = deadline is not None and time.monotonic() >= deadline
                if not exc.retryable or attempt >= budget or out_of_time:
                    if (
                        isinstance(exc, ModbusTimeout)
                        and isinstance(self.endpoint, TcpEndpoint)
                        and self.endpoint.close_on_timeout
                    ):
                        self._close_locked()
                    if exc.retryable and deadline is not None:
                        exc.note(f"{attempt + 1} attempts within its deadline")
                    raise
                last: ModbusRequestError = exc
            attempt += 1
            self.retried += 1
            reason = f"{last} (asked again, {attempt} of {budget})"
            log.debug("modbus request asked again: %s", reason, extra={"bus": self.key})
            for listener in self._listeners:
                listener(device_id, reason)

    async def _attempt_once(
        self,
        device_id: int,
        function: int,
        address: int,
        call: Call,
        deadline: float | None,
        *,
        last: bool,
        check: Check | None = None,
        shape: Shape | None = None,
    ) -> ModbusPDU:
        await self._connect_locked(deadline)
        client = self._client
        assert client is not None
        self.requests += 1
        self._corrupt_seen = self._dropped = self._answered = False
        limit = self.timeout * 2 + 0.5  # pymodbus times out first; this only makes sure
        if deadline is not None:
            # near the deadline an attempt that may be asked again leaves time for one more: an
            # answer comes in milliseconds or not at all (a late one is to the same request)
            remaining = max(0.0, deadline - time.monotonic())
            limit = min(limit, remaining if last else remaining / 2)
        try:
            async with asyncio.timeout(limit) as attempt:
                self._attempt = attempt
                try:
                    response = await call(client)
                finally:
                    self._attempt = None
        except (ModbusIOException, TimeoutError) as exc:
            if self._dropped:
                self._close_locked()
                raise ModbusConnectionLost(
                    self.key, device_id, function, address, "the device closed the connection"
                ) from exc
            if self._corrupt_seen:  # our answer, whole and broken: nothing more is coming
                self.corrupt += 1
                raise ModbusCorruptAnswer(
                    self.key, device_id, function, address, "broken answer (CRC check failed)"
                ) from exc
            self._unsettle(shape)  # it may still come, and would answer the next request like it
            raise ModbusTimeout(self.key, device_id, function, address, "no answer") from exc
        except ConnectionException as exc:
            self._close_locked()
            raise ModbusConnectionLost(self.key, device_id, function, address, "connection lost") from exc
        except ModbusException as exc:
            raise ModbusRequestError(self.key, device_id, function, address, str(exc)) from exc
        answered = response.function_code & 0x7F
        if answered != function:
            self._unsettle(None)  # a late answer to another request: out of step, more may come
            raise ModbusWrongAnswer(
                self.key, device_id, function, address, f"answer is for function {answered}"
            )
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            if code in (ExcCodes.GATEWAY_PATH_UNAVIABLE, ExcCodes.GATEWAY_NO_RESPONSE):
                raise ModbusGatewayNoAnswer(self.key, device_id, function, address, code)
            raise ModbusExceptionResponse(self.key, device_id, function, address, code)
        if check is not None and (wrong := check(response)) is not None:
            self.malformed += 1
            self._unsettle(None)  # on RTU maybe a late answer to another: out of step, more may come
            raise ModbusMalformedAnswer(self.key, device_id, function, address, wrong)
        if self._pending and not self._pending & {shape, None}:
            # its own answer, whole and fitting, to a request no late answer could pass for: a
            # module answers in order, so every earlier answer has come (and was not taken) by now
            self._back_in_step()
        return response

    async def _logged(
        self,
        device_id: int,
        function: int,
        address: int,
        call: Call,
        retries: int | None,
        deadline: float | None,
        check: Check | None = None,
        shape: Shape | None = None,
    ) -> ModbusPDU:
        """Log each failure at debug (the device's supervisor logs the state change once)."""
        try:
            return await self._request(
                device_id,
                function,
                address,
                call,
                retries=retries,
                deadline=deadline,
                check=check,
                shape=shape,
            )
        except ModbusRequestError as exc:
            extra = {"bus": self.key, "device_id": device_id, "function": function, "address": address}
            log.debug("modbus request failed: %s", exc, extra=extra)
            raise

    async def _bits(
        self,
        device_id: int,
        function: int,
        address: int,
        count: int,
        call: Call,
        retries: int | None,
        deadline: float | None,
    ) -> list[bool]:
        nbytes = (count + 7) // 8

        def check(response: ModbusPDU) -> str | None:
            got = len(response.bits)  # pymodbus pads to whole bytes: 8 per byte of the answer
            return None if got == 8 * nbytes else f"{got // 8} bytes of bits, asked {count} bits"

        shape = (device_id, function, nbytes)
        response = await self._logged(device_id, function, address, call, retries, deadline, check, shape)
        return list(response.bits[:count])

    async def _registers(
        self,
        device_id: int,
        function: int,
        address: int,
        count: int,
        call: Call,
        retries: int | None,
        deadline: float | None,
    ) -> list[int]:
        def check(response: ModbusPDU) -> str | None:
            got = len(response.registers)
            return None if got == count else f"{got} registers, asked {count}"

        shape = (device_id, function, 2 * count)
        response = await self._logged(device_id, function, address, call, retries, deadline, check, shape)
        return list(response.registers)

    # --- the requests drivers use (each safe to ask again) -----------------------------------------
    # retries: None = the bus's; deadline: monotonic time after which nothing is sent or waited for
    async def read_coils(
        self,
        device_id: int,
        address: int,
        count: int = 1,
        *,
        retries: int | None = None,
        deadline: float | None = None,
    ) -> list[bool]:
        return await self._bits(
            device_id,
            1,
            address,
            count,
            lambda c: c.read_coils(address, count=count, device_id=device_id),
            retries,
            deadline,
        )

    async def read_discrete_inputs(
        self,
        device_id: int,
        address: int,
        count: int = 1,
        *,
        retries: int | None = None,
        deadline: float | None = None,
    ) -> list[bool]:
        return await self._bits(
            device_id,
            2,
            address,
            count,
            lambda c: c.read_discrete_inputs(address, count=count, device_id=device_id),
            retries,
            deadline,
        )

    async def read_holding_registers(
        self,
        device_id: int,
        address: int,
        count: int = 1,
        *,
        retries: int | None = None,
        deadline: float | None = None,
    ) -> list[int]:
        return await self._registers(
            device_id,
            3,
            address,
            count,
            lambda c: c.read_holding_registers(address, count=count, device_id=device_id),
            retries,
            deadline,
        )

    async def read_input_registers(
        self,
        device_id: int,
        address: int,
        count: int = 1,
        *,
        retries: int | None = None,
        deadline: float | None = None,
    ) -> list[int]:
        return await self._registers(
            device_id,
            4,
            address,
            count,
            lambda c: c.read_input_registers(address, count=count, device_id=device_id),
            retries,
            deadline,
        )

    async def write_coil(
        self,
        device_id: int,
        address: int,
        value: bool,
        *,
        retries: int | None = None,
        deadline: float | None = None,
    ) -> None:
        """Function 5: the coil to an absolute ON or OFF, so asking again cannot change the outcome
        (writing ON twice is one rising edge). The answer only says the module got the request:
        confirm by reading the coil back."""

        def check(response: ModbusPDU) -> str | None:  # the value is for the read-back to confirm
            return None if response.address == address else f"echo is for coil {response.address}"

        await self._logged(
            device_id,
            5,
            address,
            lambda c: c.write_coil(address, value, device_id=device_id),
            retries,
            deadline,
            check,
            (device_id, 5, address),
        )


class BusPool:
    """One `ModbusBus` per endpoint, so drivers for units on the same line share its lock."""

    def __init__(self, *, timeout: float = 0.25, retries: int = 2) -> None:
        self._timeout = timeout
        self._retries = retries
        self._buses: dict[str, ModbusBus] = {}

    def get(self, endpoint: TcpEndpoint | RtuEndpoint) -> ModbusBus:
        bus = self._buses.get(endpoint.key)
        if bus is None:
            bus = self._buses[endpoint.key] = ModbusBus(
                endpoint, timeout=self._timeout, retries=self._retries
            )
        return bus

    def close(self) -> None:
        for bus in self._buses.values():
            bus.close()
        self._buses.clear()

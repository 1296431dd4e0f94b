"""A gate I/O module (photo-eyes, loops, barrier switches in; barrier, diverter, stack light out).

One supervisor per module runs a session: connect, drive every output to its safe value, then poll
the DIs at `poll_hz` and turn changes into `InputChanged` events stamped with the monotonic time
the answer arrived. Failure handling follows the supervisor's three states:

- no answer (timeout) or connection lost → the session ends → DOWN within one `timeout_s`; the
  supervisor retries with backoff capped at 1 s, so a module that comes back is UP within ~1–2 s;
- an exception response (the module is alive but refuses) → DEGRADED, polling continues;
- a command whose read-back disagrees → DEGRADED and `OutputMismatch`.

Commands never hang: on a module that is not up they raise `DeviceError` at once, and every
request is bounded by the bus timeout. Outputs are confirmed by reading the coil back, because a
write acknowledgement only says the module received the request, not that the coil is there (a
forced output or a module in its safe mode acknowledges and ignores). Each output has its own lock,
so a 1 s barrier pulse does not hold up the stack light; requests still go one at a time per bus.

On Modbus TCP the outputs get a connection of their own (`command_connection`, on by default): a
module serves one request at a time per connection, so a diverter command that shares the polling
connection waits behind whatever DI poll is in flight — at 100 Hz that is several percent of all
commands, straight onto the decision's latency. The Moxa ioLogik E1200 series and most TCP modules
take several Modbus TCP connections; one that takes a single connection (it refuses the second,
closes it, never answers on it, or drops the first for it — each seen at the session's start) gets
its commands on the polling connection for that session (logged once; each session tries
again). The DI poll still decides the module's health; a command whose own connection fails raises
`DeviceError` (the station holds) and reconnects on the next command; each session starts on a
fresh command connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from pydantic import BaseModel, ConfigDict, Field

from devices.events import EventStream
from devices.health import DeviceError, State, SupervisedDriver, Supervisor
from devices.protocols.io_profiles import InputTracker, IOMap
from devices.transports.modbus import Endpoint, ModbusBus, ModbusExceptionResponse, TcpEndpoint

log = logging.getLogger(__name__)


class GateIOConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: Endpoint
    device_id: int = Field(1, ge=0, le=255)
    io: IOMap
    poll_hz: float = Field(50.0, gt=0, le=1000)
    timeout_s: float = Field(0.25, gt=0, le=10)  # per request; also how fast a dead module is DOWN
    emit_initial: bool = False  # see InputTracker
    command_connection: bool = Field(
        True, description="Modbus TCP: write outputs on a connection of their own, not behind DI polls"
    )


class OutputMismatch(DeviceError):
    """The coil read back differs from what was written."""


class GateIODriver(SupervisedDriver):
    def __init__(self, name: str, config: GateIOConfig, *, bus: ModbusBus | None = None) -> None:
        self.name = name
        self.config = config
        self._own_bus = bus is None
        self.bus = bus or ModbusBus(config.endpoint, timeout=config.timeout_s)
        tcp = isinstance(config.endpoint, TcpEndpoint)
        own_commands = self._own_bus and tcp and config.command_connection and bool(config.io.outputs)
        # the outputs' own connection, if any; `command_bus` is it or, for this session, `bus`
        self._command_connection = (
            ModbusBus(config.endpoint, timeout=config.timeout_s) if own_commands else None
        )
        self.command_bus = self.bus
        self._one_connection_logged = False
        self.events = EventStream()
        self.supervisor = Supervisor(name, self._session)
        self._tracker = InputTracker(name, config.io.inputs, emit_initial=config.emit_initial)
        self._outputs: dict[str, bool] = {}
        self._locks = {output: asyncio.Lock() for output in config.io.outputs}
        self._task: asyncio.Task[None] | None = None
        self.polls = 0
        # an output command that got no (or a broken) answer: the module may have carried it out or
        # not, so what the outputs are is unknown until a new session drives them safe, confirmed
        self._lost_command: str | None = None

    # --- state ---------------------------------------------------------------------------------------
    @property
    def inputs(self) -> dict[str, bool]:
        """Last polled value of every input (stale when the module is DOWN: check supervisor.health)."""
        return self._tracker.state

    @property
    def outputs(self) -> dict[str, bool]:
        """Last confirmed value of every output written since start (an output whose last command
        failed is left out: its state is not known)."""
        return dict(self._outputs)

    async def read_outputs(self, names: list[str]) -> dict[str, bool]:
        """Read the outputs `names` back from the module now (one request over their span)."""
        self._check_up()
        coils = {name: self.config.io.coil(name) for name in names}
        if not coils:
            return {}
        first, last = min(coils.values()), max(coils.values())
        try:
            bits = await self.command_bus.read_coils(self.config.device_id, first, last - first + 1)
        except ModbusExceptionResponse as exc:
            self.supervisor.fault(f"read back: {exc}")
            raise
        out = {name: bool(bits[address - first]) for name, address in coils.items()}
        self._outputs.update(out)
        return out

    # --- lifecycle (start/stop from SupervisedDriver) ------------------------------------------------
    async def _closed(self) -> None:
        if self._own_bus:
            self.bus.close()
        if self._command_connection is not None:
            self._command_connection.close()

    # --- the session ---------------------------------------------------------------------------------
    async def _session(self, sup: Supervisor) -> None:
        await self.bus.connect()
        self.command_bus = self.bus
        if self._command_connection is not None:
            await self._open_command_connection(self._command_connection)
        await self._drive_safe()
        profile = self.config.io.profile
        period = 1.0 / self.config.poll_hz
        next_at = time.monotonic()
        self._lost_command = None
        while True:
            if self._lost_command is not None:
                raise DeviceError(f"an output command went unanswered ({self._lost_command}): new session")
            try:
                bits = await self.bus.read_discrete_inputs(
                    self.config.device_id, profile.di_address, profile.di_count
                )
            except ModbusExceptionResponse as exc:
                sup.fault(str(exc))  # alive but refusing: keep polling
            else:
                at = time.monotonic()
                self.polls += 1
                sup.seen()
                for event in self._tracker.update(bits, at):
                    self.events.put(event)
            next_at += period
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (slow bus): do not burst to catch up
                next_at, delay = time.monotonic(), 0.0
            await asyncio.sleep(delay)

    async def _open_command_connection(self, spare: ModbusBus) -> None:
        """A fresh command connection for this session, proven before it is relied on: one request
        over it, then one over the polling connection, which must still be the same connection.
        A module that takes a single connection refuses the second at connect, accepts and closes
        it, never answers on it, or drops the older one for it; each fails one of those checks, and
        for this session the outputs share the polling connection (reopened if it was the one
        dropped). The next session — after any fault — tries again, so a module that only had a
        bad moment gets its command connection back."""
        spare.close()  # one left from an earlier session may be half-open
        unit, profile = self.config.device_id, self.config.io.profile
        first = self.config.io.coil(next(iter(self.config.io.outputs)))
        polling = self.bus.connects
        why = None
        try:
            await spare.connect()
            with contextlib.suppress(ModbusExceptionResponse):  # an answer, even a refusal, will do
                await spare.read_coils(unit, first, 1)
        except DeviceError as exc:
            why = str(exc)
        if why is None:
            try:
                with contextlib.suppress(ModbusExceptionResponse):
                    await self.bus.read_discrete_inputs(unit, profile.di_address, profile.di_count)
            except DeviceError as exc:
                why = f"polling connection failed once a second one was open: {exc}"
            else:
                if self.bus.connects != polling:  # it had to reconnect: the module had dropped it
                    why = "polling connection dropped when a second one opened"
        if why is None:
            self.command_bus = spare
            return
        spare.close()
        if not self._one_connection_logged:
            self._one_connection_logged = True
            log.warning(
                "module took only one connection; outputs share the polling connection",
                extra={"device": self.name, "error": why},
            )
        else:
            log.debug("outputs share the polling connection", extra={"device": self.name, "error": why})
        await self.bus.connect()  # a no-op unless the polling connection was the one dropped

    # --- commands ------------------------------------------------------------------------------------
    def _check_up(self) -> None:
        health = self.supervisor.health
        if health.state not in (State.UP, State.DEGRADED):
            raise DeviceError(f"{self.name} is {health.state.value}: {health.reason or 'not connected'}")

    def _lock(self, output: str) -> asyncio.Lock:
        try:
            return self._locks[output]
        except KeyError:
            raise KeyError(f"{self.name}: no output named {output!r}") from None

    async def set_output(self, name: str, value: bool) -> None:
        """Write the coil and read it back; DeviceError unless the module confirms `value`."""
        lock = self._lock(name)
        self._check_up()
        async with lock:
            await self._write_confirmed(name, value)

    async def pulse(self, name: str, seconds: float) -> None:
        """On, confirmed; wait; off, confirmed. The off is sent even if the caller is cancelled."""
        lock = self._lock(name)
        self._check_up()
        async with lock:
            try:
                await self._write_confirmed(name, True)
                await asyncio.sleep(seconds)
            finally:  # also after a failed "on": the write may have landed before the answer was lost
                await asyncio.shield(self._write_confirmed(name, False))

    async def safe_state(self) -> None:
        """Drive every output to its configured safe value (also done at the start of each session)."""
        self._check_up()
        await self._drive_safe()

    async def _drive_safe(self) -> None:
        failures = []
        for name, point in self.config.io.outputs.items():
            try:
                async with self._locks[name]:
                    await self._write_confirmed(name, point.safe)
            except DeviceError as exc:
                failures.append(str(exc))  # keep going: make every other output safe
        if failures:
            raise DeviceError(f"{self.name}: safe state not reached: " + "; ".join(failures))

    async def _write_confirmed(self, name: str, value: bool) -> None:
        address = self.config.io.coil(name)
        unit = self.config.device_id
        extra = {"device": self.name, "output": name, "value": value, "address": address}
        try:
            await self.command_bus.write_coil(unit, address, value)
            (actual,) = await self.command_bus.read_coils(unit, address, 1)
        except ModbusExceptionResponse as exc:
            self._outputs.pop(name, None)  # refused, or only the read-back was: not known any more
            self.supervisor.fault(f"{name}: {exc}")
            raise
        except DeviceError as exc:
            # no answer: the write may have been carried out (or may still be); the output's state is
            # not known, and the polls alone would keep the session UP with a command path that is
            # dead. End the session: the next one drives every output to its safe value, confirmed.
            self._outputs.pop(name, None)
            self._lost_command = f"{name}: {exc}"
            raise
        if actual != value:
            self._outputs[name] = actual
            reason = f"output {name!r} (coil {address}) reads {actual} after writing {value}"
            self.supervisor.fault(reason)
            log.warning("output not confirmed", extra=extra | {"actual": actual})
            raise OutputMismatch(f"{self.name}: {reason}")
        self._outputs[name] = value
        log.debug("output confirmed", extra=extra)

"""A gate I/O module (photo-eyes, loops, barrier switches in; barrier, diverter, stack light out).

One supervisor per module runs a session: connect, prove the module answers the configured unit id,
drive every output to its safe value, then poll the DIs at `poll_hz` and turn changes into
`InputChanged` events stamped with the monotonic time the answer arrived. Failure handling follows
the supervisor's three states:

- a poll with no answer, or a broken one (a bad CRC), is a counted fault (DEGRADED) and is asked
  again at once; `retries + 1` failed polls in a row — a module that is gone — end the session:
  DOWN within about (retries + 1) × `timeout_s`. A refused connection ends it at once. The
  supervisor retries with backoff capped at 1 s, so a module that comes back is UP within ~1–2 s;
- an exception response (the module is alive but refuses) → DEGRADED, polling continues;
- a command whose read-back disagrees → DEGRADED and `OutputMismatch`;
- outputs that change behind the driver's back (a module that restarted mid-pulse resets every
  coil): the outputs are read back in the poll loop — every `output_check_s` while any output is
  away from its safe value, ten times less often otherwise, and at once after the polling
  connection had to be reopened — and one that no longer reads what was last confirmed ends the
  session, whose successor drives every output safe; a pulse running on it ends as
  `PulseCutShort`, so the actuation record says it was cut short, not that it was whole.

Commands never hang: on a module that is not up they raise `DeviceError` at once, and every
request is bounded by the bus timeout and the caller's `deadline`. A command's write and read-back
are each asked again (up to `retries` times, never past the deadline) when the answer is lost or
broken; that is safe because each is a read or a write of an absolute value — a pulse is "on,
confirmed", a wait, then "off, confirmed", so asking its "on" again cannot fire it twice, and its
"off" is sent however the "on" ended. Outputs are confirmed by reading the coil back, because a write
acknowledgement only says the module received the request, not that the coil is there (a forced
output or a module in its safe mode acknowledges and ignores). A command that still has no confirmed
answer when its budget or deadline runs out, or whose write was acknowledged and whose read-back was
then refused (an exception answer), leaves its output unknown — it may have been carried out
— so the session ends and the next one drives every output to its safe value, confirmed (stations
learn of it as a new session). Each output has its own lock, so a 1 s barrier pulse does not hold up
the stack light; requests still go one at a time per bus.

At the start of a session the first poll shows what is wrong when nothing works: a connection that
is refused, a unit id that gets no answer (and which unit id does, if one of the usual ones does),
a gateway that gets none from the unit, or an address the module does not have (a wrong profile).

On Modbus TCP the outputs get a connection of their own (`command_connection`, on by default): a
module serves one request at a time per connection, so a diverter command that shares the polling
connection waits behind whatever DI poll is in flight — at 100 Hz that is several percent of all
commands, straight onto the decision's latency. The Moxa ioLogik E1200 series and most TCP modules
take several Modbus TCP connections; one that takes a single connection (it refuses the second,
closes it, never answers on it, or drops the first for it — each seen at the session's start, once
the polling connection has answered) gets its commands on the polling connection for that session
(logged once; each session tries again). The DI poll still decides the module's health; a command
whose own connection fails raises `DeviceError` (the station holds) and reconnects on the next
command; each session starts on a fresh command connection.
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
from devices.transports.modbus import (
    Endpoint,
    ModbusBus,
    ModbusConnectionLost,
    ModbusExceptionResponse,
    ModbusGatewayNoAnswer,
    ModbusNotSent,
    ModbusRequestError,
    ModbusTimeout,
    RtuEndpoint,
    TcpEndpoint,
)

log = logging.getLogger(__name__)


class GateIOConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: Endpoint
    device_id: int = Field(1, ge=0, le=255)
    io: IOMap
    poll_hz: float = Field(50.0, gt=0, le=1000)
    timeout_s: float = Field(0.25, gt=0, le=10)  # per attempt of a request
    retries: int = Field(
        2,
        ge=0,
        le=10,
        description="a request with no (or a broken) answer is asked again this many times; a module"
        " is DOWN after retries + 1 failed polls in a row (0: the first lost answer ends the session)",
    )
    emit_initial: bool = False  # see InputTracker
    command_connection: bool = Field(
        True, description="Modbus TCP: write outputs on a connection of their own, not behind DI polls"
    )
    output_check_s: float = Field(
        0.1,
        gt=0,
        le=60,
        description="read the outputs back this often while any is away from its safe value (10x this"
        " otherwise): one that changed behind the agent's back (a module restart) ends the session",
    )


class OutputMismatch(DeviceError):
    """The coil read back differs from what was written."""


class PulseCutShort(DeviceError):
    """A pulse's output was seen off before its time was up (the module reset its outputs)."""


class GateIODriver(SupervisedDriver):
    def __init__(self, name: str, config: GateIOConfig, *, bus: ModbusBus | None = None) -> None:
        self.name = name
        self.config = config
        self._own_bus = bus is None
        self.bus = bus or ModbusBus(config.endpoint, timeout=config.timeout_s, retries=config.retries)
        tcp = isinstance(config.endpoint, TcpEndpoint)
        own_commands = self._own_bus and tcp and config.command_connection and bool(config.io.outputs)
        # the outputs' own connection, if any; `command_bus` is it or, for this session, `bus`
        self._command_connection = (
            ModbusBus(config.endpoint, timeout=config.timeout_s, retries=config.retries)
            if own_commands
            else None
        )
        for each in (self.bus, self._command_connection):
            if each is not None:
                each.on_retry(self._retried)
        self.command_bus = self.bus
        self._one_connection_logged = False
        self.events = EventStream()
        self.supervisor = Supervisor(name, self._session)
        self._tracker = InputTracker(name, config.io.inputs, emit_initial=config.emit_initial)
        self._outputs: dict[str, bool] = {}
        self._locks = {output: asyncio.Lock() for output in config.io.outputs}
        self._task: asyncio.Task[None] | None = None
        self.polls = 0
        self.polls_asked_again = 0  # polls that got no (or a broken) answer and were asked again
        # an output command that got no (or a broken) answer, or outputs that changed behind our
        # back: what the outputs are is unknown until a new session drives them safe, confirmed
        self._lost_command: str | None = None
        # the output watch: writes in flight and started per output, pulses that may be cut short
        self._writing: dict[str, int] = dict.fromkeys(config.io.outputs, 0)
        self._generation: dict[str, int] = dict.fromkeys(config.io.outputs, 0)
        self._pulses: dict[str, asyncio.Future[str]] = {}
        self._checked_at = 0.0
        self._checked_connects = 0
        self.output_checks = 0
        self._answered = False  # the unit has answered in some session: silence now is not its id
        # until a session has driven the safe state, a fault is kept back: DEGRADED would let
        # stations command outputs that the safe state is about to overwrite
        self._starting = True
        self._held_faults: list[str] = []

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

    async def read_outputs(self, names: list[str], *, deadline: float | None = None) -> dict[str, bool]:
        """Read the outputs `names` back from the module now (one request over their span)."""
        self._check_up()
        coils = {name: self.config.io.coil(name) for name in names}
        if not coils:
            return {}
        first, last = min(coils.values()), max(coils.values())
        generation = dict(self._generation)
        try:
            bits = await self.command_bus.read_coils(
                self.config.device_id, first, last - first + 1, deadline=deadline
            )
        except ModbusExceptionResponse as exc:
            self._fault(f"read back: {exc}")
            raise
        out = {name: bool(bits[address - first]) for name, address in coils.items()}
        self._compare_outputs(out, generation)
        self._outputs.update(out)
        return out

    # --- lifecycle (start/stop from SupervisedDriver) ------------------------------------------------
    async def _closed(self) -> None:
        if self._own_bus:
            self.bus.close()
        if self._command_connection is not None:
            self._command_connection.close()

    # --- the session ---------------------------------------------------------------------------------
    def _fault(self, reason: str) -> None:
        """A counted fault (DEGRADED) — held back until this session has driven the safe state."""
        if self._starting:
            self._held_faults.append(reason)
        else:
            self.supervisor.fault(reason)

    def _retried(self, device_id: int, reason: str) -> None:
        """A request of ours was asked again (a lost or broken answer): a counted fault, not a loss."""
        if device_id == self.config.device_id:
            self._fault(reason)

    async def _session(self, sup: Supervisor) -> None:
        self._lost_command = None
        self._starting, self._held_faults = True, []
        await self.bus.connect()
        self.command_bus = self.bus
        await self._first_answer()
        if self._command_connection is not None:
            await self._open_command_connection(self._command_connection)
        await self._drive_safe()
        self._starting = False
        for reason in self._held_faults:
            sup.fault(reason)
        self._held_faults = []
        self._checked_at, self._checked_connects = time.monotonic(), self.bus.connects
        profile = self.config.io.profile
        period = 1.0 / self.config.poll_hz
        next_at = time.monotonic()
        missed = 0  # polls in a row with no (or a broken) answer
        while True:
            if self._lost_command is not None:
                raise DeviceError(f"outputs not known ({self._lost_command}): new session drives them safe")
            try:
                bits = await self.bus.read_discrete_inputs(
                    self.config.device_id, profile.di_address, profile.di_count, retries=0
                )
            except ModbusExceptionResponse as exc:
                sup.fault(self._explained(exc))  # alive but refusing: keep polling
            except ModbusRequestError as exc:
                if not exc.retryable:
                    raise
                missed += 1
                if missed > self.config.retries:  # the module is gone, not one answer
                    raise DeviceError(f"{exc} ({missed} polls in a row)") from exc
                self.polls_asked_again += 1
                sup.fault(f"{exc} (poll asked again)")
                continue  # at once: the bus lock lets a waiting command go first
            else:
                missed = 0
                at = time.monotonic()
                self.polls += 1
                sup.seen()
                for event in self._tracker.update(bits, at):
                    self.events.put(event)
                if self._check_due(at):
                    try:
                        await self._check_outputs()
                    except ModbusExceptionResponse as exc:
                        sup.fault(f"outputs read back: {self._explained(exc)}")
                    except ModbusRequestError as exc:
                        if not exc.retryable:
                            raise
                        sup.fault(f"outputs read back: {exc}")  # the DI poll answered: not a missed poll
                    if self._lost_command is not None:
                        continue
            next_at += period
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (slow bus): do not burst to catch up
                next_at, delay = time.monotonic(), 0.0
            await asyncio.sleep(delay)

    def _explained(self, exc: ModbusExceptionResponse) -> str:
        """An exception response, with the profile's map when it says 'no such address'."""
        if exc.code not in (1, 2):
            return str(exc)
        p = self.config.io.profile
        last_di, last_do = p.di_address + p.di_count - 1, p.do_address + p.do_count - 1
        return (
            f"{exc}; profile {p.name} reads DIs at {p.di_address}–{last_di} (function 2)"
            f" and DO coils at {p.do_address}–{last_do}: is this module a {p.name}?"
        )

    async def _first_answer(self) -> None:
        """The session's first request, on the polling connection: if nothing comes back, say what
        is wrong — the unit id (and which one answers), the gateway, the connection — rather than
        let a later check blame something else. Not a poll: nothing is UP before the safe state."""
        unit, profile = self.config.device_id, self.config.io.profile
        try:
            await self.bus.read_discrete_inputs(unit, profile.di_address, profile.di_count)
        except ModbusExceptionResponse as exc:
            self._fault(self._explained(exc))  # it answers: the rest of the session says more
        except (ModbusTimeout, ModbusConnectionLost) as exc:
            if self._answered:  # it has answered this unit id before: it is off, or the line is
                raise
            raise DeviceError(await self._no_answer(exc)) from exc
        self._answered = True

    async def _no_answer(self, exc: ModbusTimeout | ModbusConnectionLost) -> str:
        """Connected, but unit `device_id` gets no answer: does one of the usual unit ids?"""
        unit, profile, key = self.config.device_id, self.config.io.profile, self.bus.key
        if isinstance(exc, ModbusGatewayNoAnswer):  # a gateway said so itself
            return f"{exc}: is unit {unit} right, and the device behind the gateway on?"
        if isinstance(exc, ModbusConnectionLost):
            what = f"{key}: the module closed the connection at the first request for unit {unit}"
        else:
            what = f"no answer from unit {unit} at {key} ({exc.detail})"
        usual = (1,) if isinstance(self.config.endpoint, RtuEndpoint) else (1, 255)
        for other in (u for u in usual if u != unit):
            try:
                await self.bus.read_discrete_inputs(other, profile.di_address, profile.di_count, retries=0)
            except ModbusExceptionResponse:
                pass  # an answer all the same
            except DeviceError:
                continue
            return f"{what}; the module answers unit {other}: set device_id = {other}?"
        return f"{what}: wrong unit id (device_id), wiring or serial settings?"

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

    # --- the output watch ----------------------------------------------------------------------------
    def _check_due(self, now: float) -> bool:
        """Read the outputs back now? At once after the polling connection was reopened (a module
        that restarted drops its connections), often while an output is away from its safe value
        (a pulse, an open lane), now and then otherwise."""
        if not self.config.io.outputs:
            return False
        if self.bus.connects != self._checked_connects:
            return True
        away = any(
            self._outputs.get(name, point.safe) != point.safe
            for name, point in self.config.io.outputs.items()
        )
        every = self.config.output_check_s * (1 if away or self._pulses else 10)
        return now - self._checked_at >= every

    async def _check_outputs(self) -> None:
        """Read every output back (one request over their span) and compare it with what was last
        confirmed; an output being written meanwhile is left out. One that differs was changed behind
        our back: its pulse (if any) is cut short, and the session ends (the next drives all safe)."""
        self._checked_at, self._checked_connects = time.monotonic(), self.bus.connects
        coils = {name: self.config.io.coil(name) for name in self.config.io.outputs}
        first, last = min(coils.values()), max(coils.values())
        generation = dict(self._generation)
        bits = await self.bus.read_coils(self.config.device_id, first, last - first + 1, retries=0)
        self.output_checks += 1
        self._compare_outputs({name: bool(bits[a - first]) for name, a in coils.items()}, generation)

    def _compare_outputs(self, read: dict[str, bool], generation: dict[str, int]) -> None:
        """Outputs read back (by the watch or a station) against what was last confirmed; an output
        written since `generation` was taken (or being written) says nothing about a change."""
        changed = []
        for name, actual in read.items():
            known = self._outputs.get(name)
            if known is None or self._writing[name] or self._generation[name] != generation[name]:
                continue
            if actual != known:
                changed.append(f"{name} reads {actual}, last confirmed {known}")
                self._outputs[name] = actual
                pulse = self._pulses.get(name)
                if pulse is not None and not pulse.done():
                    pulse.set_result(f"{name} read back {actual} mid-pulse")
        if changed:
            why = "; ".join(changed)
            self._lost_command = f"outputs changed behind the agent's back (module restarted?): {why}"
            log.warning("outputs changed behind the agent's back", extra={"device": self.name, "error": why})

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

    async def set_output(self, name: str, value: bool, *, deadline: float | None = None) -> None:
        """Write the coil and read it back; DeviceError unless the module confirms `value` (by
        `deadline`, monotonic, if given: a lost answer is asked again only while there is time)."""
        lock = self._lock(name)
        self._check_up()
        async with lock:
            await self._write_confirmed(name, value, deadline)

    async def pulse(self, name: str, seconds: float) -> None:
        """On, confirmed; wait; off, confirmed. The off is sent even if the caller is cancelled.
        `PulseCutShort` if the output was seen off before its time was up (the output watch)."""
        lock = self._lock(name)
        self._check_up()
        async with lock:
            cut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            try:
                await self._write_confirmed(name, True)
                on_at = time.monotonic()
                self._pulses[name] = cut
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(seconds):
                        await asyncio.shield(cut)
                on_for = time.monotonic() - on_at
            finally:  # also after a failed "on": the write may have landed before the answer was lost
                self._pulses.pop(name, None)
                await asyncio.shield(self._write_confirmed(name, False))
            if cut.done():
                raise PulseCutShort(
                    f"{self.name}: pulse of {name} cut short after {on_for:.2f} s of"
                    f" {seconds:g} s: {cut.result()}"
                )

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
            except ModbusExceptionResponse as exc:
                failures.append(self._explained(exc))  # keep going: make every other output safe
            except DeviceError as exc:
                failures.append(str(exc))
        if failures:
            raise DeviceError(f"{self.name}: safe state not reached: " + "; ".join(failures))

    async def _write_confirmed(self, name: str, value: bool, deadline: float | None = None) -> None:
        address = self.config.io.coil(name)
        unit = self.config.device_id
        extra = {"device": self.name, "output": name, "value": value, "address": address}
        sent = False
        self._writing[name] += 1
        self._generation[name] += 1
        try:
            await self.command_bus.write_coil(unit, address, value, deadline=deadline)
            sent = True
            (actual,) = await self.command_bus.read_coils(unit, address, 1, deadline=deadline)
        except ModbusExceptionResponse as exc:
            self._outputs.pop(name, None)  # refused, or only the read-back was: not known any more
            self._fault(f"{name}: {self._explained(exc)}")
            if sent:  # written (acknowledged), then not confirmed: unknown, as below
                self._lost_command = f"{name}: written, then its read-back refused: {exc}"
            raise
        except ModbusNotSent:
            if sent:  # written, not confirmed: unknown, as below
                self._outputs.pop(name, None)
                self._lost_command = f"{name}: not confirmed by its deadline"
            raise  # not sent at all: nothing changed
        except DeviceError as exc:
            # no answer (after every attempt the budget or the deadline allowed): the write may have
            # been carried out (or may still be); the output's state is not known, and the polls
            # alone would keep the session UP with a command path that is dead. End the session:
            # the next one drives every output to its safe value, confirmed.
            self._outputs.pop(name, None)
            self._lost_command = f"{name}: {exc}"
            raise
        finally:
            self._writing[name] -= 1
        if actual != value:
            self._outputs[name] = actual
            reason = f"output {name!r} (coil {address}) reads {actual} after writing {value}"
            self._fault(reason)
            log.warning("output not confirmed", extra=extra | {"actual": actual})
            raise OutputMismatch(f"{self.name}: {reason}")
        self._outputs[name] = value
        log.debug("output confirmed", extra=extra)

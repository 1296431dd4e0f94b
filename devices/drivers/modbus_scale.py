"""A weight indicator over Modbus: poll the configured register map, report `WeightReading`s.

Same supervision as the gate I/O driver: a poll with no answer, or a broken one, is a counted fault
(DEGRADED) and is asked again at once; `retries + 1` such polls in a row, or a refused connection,
end the session (DOWN, then retried with backoff). An exception response or registers that do not
decode is DEGRADED and polling goes on. Over or under range is never a stable reading.

`latest` is refreshed on every poll; an event is put on `events` only when the reading changes
(weight, stability or a flag), so a steady scale at 10 Hz does not flood the agent.

`wait_stable()` waits for a stable, in-range reading taken after the call: a stable weight from
before the parcel landed is not this parcel's weight.

A reading is never built from answers that could belong to other requests. RTU has no transaction
id: an answer that comes after its request's timeout would be taken for the next request's. So:

- weight and status are read in one request when the map allows (`WeightMap.max_span`): an answer
  then always holds a weight with its own status word. An indicator that refuses the span (illegal
  address) is read apart from then on, with a warning;
- read apart, a poll reads the status word, the weight, then the status word again, and is used
  only if both status words agree (a swapped pair of answers shows as a disagreement);
- the bus resynchronises the line after any answer that may still come (devices/transports/
  modbus.py), and a poll is used only if the line stayed in step from the start of the poll before
  it to the end of its own: after a lost, late, malformed or unasked-for answer, the next poll's
  reading is dropped too, so an answer later than the bus's late window cannot pass as a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from pydantic import BaseModel, ConfigDict, Field

from devices.events import EventStream, WeightReading
from devices.health import DeviceError, Health, State, SupervisedDriver, Supervisor
from devices.protocols.modbus_weight import WeightDecodeError, WeightMap, decode
from devices.transports.modbus import Endpoint, ModbusBus, ModbusExceptionResponse, ModbusRequestError

ILLEGAL_ADDRESS = 2

log = logging.getLogger(__name__)


class ModbusScaleConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: Endpoint
    device_id: int = Field(1, ge=0, le=255)
    weight_map: WeightMap
    poll_hz: float = Field(10.0, gt=0, le=200)
    timeout_s: float = Field(0.25, gt=0, le=10)  # per attempt of a request
    retries: int = Field(
        2, ge=0, le=10, description="polls in a row with no (or a broken) answer before DOWN, less one"
    )


class ModbusScaleDriver(SupervisedDriver):
    def __init__(self, name: str, config: ModbusScaleConfig, *, bus: ModbusBus | None = None) -> None:
        self.name = name
        self.config = config
        self._own_bus = bus is None
        self.bus = bus or ModbusBus(config.endpoint, timeout=config.timeout_s, retries=config.retries)
        self.events = EventStream()
        self.supervisor = Supervisor(name, self._session)
        self.supervisor.subscribe(self._on_health)
        self.latest: WeightReading | None = None
        self._fresh = asyncio.Event()  # set, then replaced, on every reading and state change
        self._task: asyncio.Task[None] | None = None
        self.polls_asked_again = 0  # polls that got no (or a broken) answer and were asked again
        self.polls_not_used = 0  # polls answered, but not in step with the line: no reading taken
        self._apart = False  # the indicator refused weight and status as one span: read them apart
        self._step_mark: int | None = None  # the bus's out-of-step count when the last poll began

    # --- lifecycle (start/stop from SupervisedDriver) ------------------------------------------------
    async def _closed(self) -> None:
        if self._own_bus:
            self.bus.close()

    # --- the session ---------------------------------------------------------------------------------
    async def _read(self) -> dict[int, int] | None:
        """The weight and status registers of one poll, or None if its answers disagree."""
        m, unit = self.config.weight_map, self.config.device_id
        read = self.bus.read_holding_registers if m.table == "holding" else self.bus.read_input_registers
        blocks = m.read_blocks(apart=self._apart)
        if len(blocks) == 1:
            [(address, count)] = blocks
            try:
                words = await read(unit, address, count, retries=0)
            except ModbusExceptionResponse as exc:
                if exc.code != ILLEGAL_ADDRESS or len(m.read_blocks(apart=True)) == 1:
                    raise
                self._apart = True  # it will not serve the registers in between: read them apart
                log.warning(
                    "indicator refuses weight and status as one span; reading them apart",
                    extra={"device": self.name, "error": str(exc)},
                )
                return await self._read()
            return dict(zip(range(address, address + count), words, strict=True))
        # apart: status, weight, status again; a swapped pair of answers cannot agree with itself
        (status,) = await read(unit, m.status_address, 1, retries=0)
        words = await read(unit, m.weight_address, m.words, retries=0)
        (again,) = await read(unit, m.status_address, 1, retries=0)
        if again != status:
            return None
        return {
            m.status_address: status,
            **dict(zip(range(m.weight_address, m.weight_address + m.words), words, strict=True)),
        }

    async def _session(self, sup: Supervisor) -> None:
        await self.bus.connect()
        period = 1.0 / self.config.poll_hz
        next_at = time.monotonic()
        missed = 0  # polls in a row with no (or a broken) answer
        self._step_mark = None
        while True:
            asked = time.monotonic()
            mark = self.bus.out_of_step
            value = None
            try:
                regs = await self._read()
                # in step since the poll before this one began: a late answer it took shows by now
                in_step = self.bus.out_of_step == (mark if self._step_mark is None else self._step_mark)
                self._step_mark = mark
                if regs is None or not in_step:  # answered, but maybe not to these requests
                    self.polls_not_used += 1
                    log.debug("modbus scale poll not used (answers out of step)", extra={"device": self.name})
                else:
                    value = decode(self.config.weight_map, regs)
            except (ModbusExceptionResponse, WeightDecodeError) as exc:
                self._step_mark = mark
                sup.fault(str(exc))
            except ModbusRequestError as exc:
                self._step_mark = mark
                if not exc.retryable:
                    raise
                missed += 1
                if missed > self.config.retries:  # the indicator is gone, not one answer
                    raise DeviceError(f"{exc} ({missed} polls in a row)") from exc
                self.polls_asked_again += 1
                sup.fault(f"{exc} (poll asked again)")
                continue
            else:
                missed = 0
                sup.seen()
            if value is not None:
                reading = WeightReading(
                    self.name,
                    value.kg,
                    value.stable,
                    overload=value.overload,
                    underload=value.underload,
                    net=value.net,
                    at=time.monotonic(),
                    since=asked,
                )
                self._publish(reading)
            next_at += period
            delay = next_at - time.monotonic()
            if delay < 0:
                next_at, delay = time.monotonic(), 0.0
            await asyncio.sleep(delay)

    def _publish(self, reading: WeightReading) -> None:
        old, self.latest = self.latest, reading
        # every stable weight is a measurement a tracked parcel may own; others only when they change
        if reading.stable or old is None or _key(old) != _key(reading):
            self.events.put(reading)
        self._wake()

    def _on_health(self, _health: Health) -> None:
        self._wake()

    def _wake(self) -> None:
        self._fresh.set()
        self._fresh = asyncio.Event()

    # --- queries -------------------------------------------------------------------------------------
    def _check_up(self) -> None:
        health = self.supervisor.health
        if health.state not in (State.UP, State.DEGRADED):
            raise DeviceError(f"{self.name} is {health.state.value}: {health.reason or 'not connected'}")

    async def wait_stable(self, deadline_s: float, *, since: float | None = None) -> WeightReading | None:
        """The first stable, in-range reading measured after `since` (default: this call); None if
        none within `deadline_s` seconds; DeviceError if the indicator is or goes DOWN meanwhile."""
        self._check_up()
        since = time.monotonic() if since is None else since
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(deadline_s):
                while True:
                    reading = self.latest
                    if (
                        reading is not None
                        and (reading.since if reading.since is not None else reading.at) >= since
                        and reading.stable
                        and reading.kg is not None
                    ):
                        return reading
                    await self._fresh.wait()
                    self._check_up()
        return None


def _key(r: WeightReading) -> tuple[object, ...]:
    return (r.kg, r.stable, r.overload, r.underload, r.net)

"""A weight indicator over Modbus: poll the configured register map, report `WeightReading`s.

Same supervision as the gate I/O driver: a poll with no answer, or a broken one, is a counted fault
(DEGRADED) and is asked again at once; `retries + 1` such polls in a row, or a refused connection,
end the session (DOWN, then retried with backoff). An exception response or registers that do not
decode is DEGRADED and polling goes on. Over or under range is never a stable reading.

`latest` is refreshed on every poll; an event is put on `events` only when the reading changes
(weight, stability or a flag), so a steady scale at 10 Hz does not flood the agent.

`wait_stable()` waits for a stable, in-range reading taken after the call: a stable weight from
before the parcel landed is not this parcel's weight.
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

    # --- lifecycle (start/stop from SupervisedDriver) ------------------------------------------------
    async def _closed(self) -> None:
        if self._own_bus:
            self.bus.close()

    # --- the session ---------------------------------------------------------------------------------
    async def _read(self) -> dict[int, int]:
        m, unit = self.config.weight_map, self.config.device_id
        read = self.bus.read_holding_registers if m.table == "holding" else self.bus.read_input_registers
        regs: dict[int, int] = {}
        for address, count in m.read_blocks():
            words = await read(unit, address, count, retries=0)
            regs.update(zip(range(address, address + count), words, strict=True))
        return regs

    async def _session(self, sup: Supervisor) -> None:
        await self.bus.connect()
        period = 1.0 / self.config.poll_hz
        next_at = time.monotonic()
        missed = 0  # polls in a row with no (or a broken) answer
        while True:
            asked = time.monotonic()
            try:
                value = decode(self.config.weight_map, await self._read())
            except (ModbusExceptionResponse, WeightDecodeError) as exc:
                sup.fault(str(exc))
            except ModbusRequestError as exc:
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

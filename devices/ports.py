"""What the edge's stations use of a device: small Protocols, the typed seam between devices/ and edge/.

A station names its devices by role (scanner, scale, camera, I/O module) and is handed, for each, the
driver behind the name as the port its role needs. Drivers do not inherit from these: any object
with the members fits (`isinstance` works too, for the members' presence only).

- `Driver`: every driver — its name, its supervisor (health, and listeners to it), one event stream,
  and `start()` / `stop()`.
- `CodeSource` (a scanner): a driver whose events include `BarcodeRead` and `NoRead`; a station
  only listens to it.
- `WeightSource` (a serial or Modbus scale): `wait_stable(deadline_s, since=...)`, the first stable
  reading with a weight measured at or after `since`, or None when the deadline passes.
- `FrameSource` (a camera): `capture(trigger_at)`, the codes of the first frame at or after it.
- `OutputModule` (a gate I/O module: diverter lanes, barrier, and the switches read beside them):
  outputs written and confirmed by read-back, read back on demand, pulsed; the inputs' last values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from devices.events import CameraFrame, EventStream, WeightReading
from devices.health import Supervisor


@runtime_checkable
class Driver(Protocol):
    """A supervised device: `supervisor.health` says UP/DEGRADED/DOWN, `events` carries what it saw."""

    @property
    def name(self) -> str: ...

    @property
    def supervisor(self) -> Supervisor: ...

    @property
    def events(self) -> EventStream: ...

    async def start(self) -> None:
        """Run the device's supervisor (its sessions, reconnecting) as a task; returns at once."""
        ...

    async def stop(self) -> None:
        """Stop the supervisor and release what the driver owns."""
        ...


@runtime_checkable
class CodeSource(Driver, Protocol):
    """A scanner: its events are `BarcodeRead` for each code read and `NoRead` for a no-read."""


@runtime_checkable
class WeightSource(Driver, Protocol):
    """A scale, answering the one question a station asks of it."""

    async def wait_stable(self, deadline_s: float, *, since: float | None = None) -> WeightReading | None:
        """The first stable reading with a weight that arrives within `deadline_s`, measured at or
        after `since` (monotonic; a reply already on its way when `since` passed cannot answer), or
        None. A scale that is or goes DOWN may raise `DeviceError` instead."""
        ...


@runtime_checkable
class FrameSource(Driver, Protocol):
    """A camera, taking a frame on trigger."""

    async def capture(self, trigger_at: float | None = None) -> CameraFrame:
        """The codes decoded in the first frame grabbed at or after `trigger_at` (monotonic; None:
        now), with its evidence file. `DeviceError` if the camera is not up, `TimeoutError` if no
        frame comes in time."""
        ...


@runtime_checkable
class OutputModule(Driver, Protocol):
    """An I/O module driving outputs (diverter lanes, a barrier) and reading inputs (switches)."""

    @property
    def inputs(self) -> Mapping[str, bool]:
        """The last polled value of every input (stale while the module is DOWN)."""
        ...

    @property
    def outputs(self) -> Mapping[str, bool]:
        """The last confirmed value of every output written (an output whose last command failed
        is left out: its state is not known)."""
        ...

    async def set_output(self, name: str, value: bool, *, deadline: float | None = None) -> None:
        """Write the output and confirm it by read-back (by `deadline`, monotonic, if given);
        `DeviceError` unless the module confirms `value`."""
        ...

    async def read_outputs(self, names: list[str], *, deadline: float | None = None) -> dict[str, bool]:
        """The outputs `names` as read back from the module now (not as last written)."""
        ...

    async def pulse(self, name: str, seconds: float) -> None:
        """On, confirmed; `seconds`; off, confirmed — the off is sent even if the caller is
        cancelled. `DeviceError` if either is not confirmed or the pulse was cut short."""
        ...

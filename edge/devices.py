"""The agent's devices: built from configuration, run under their supervisors, events fanned out.

Every driver starts and stops the same way (devices.health.SupervisedDriver) and has one event
stream; the hub fans each stream out, so stations subscribe to the devices they use and several
stations may share one I/O module. A station asks the hub for a device as the port its role needs
(`devices.ports`): the configuration has already checked that the device's driver fits the role,
so a mismatch here is a bug, raised as TypeError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from devices.drivers.camera import CameraDriver
from devices.drivers.gateio import GateIODriver
from devices.drivers.id_reader import IdReaderDriver
from devices.drivers.modbus_scale import ModbusScaleDriver
from devices.drivers.mqtt_sensors import MqttSensorsDriver
from devices.drivers.scale import ScaleDriver
from devices.drivers.scanner import ScannerDriver
from devices.events import DeviceEvent
from devices.health import Health
from devices.ports import CodeSource, Driver, FrameSource, OutputModule, WeightSource
from edge.config import (
    CameraDevice,
    Device,
    GateIODevice,
    IdReaderDevice,
    ModbusScaleDevice,
    MqttSensorsDevice,
    ScaleDevice,
    ScannerDevice,
)
from kernel.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Handler = Callable[[DeviceEvent], None]


def build_driver(name: str, config: Device, *, evidence_dir: Path | None = None) -> Driver:
    """The driver for one configured device; a camera without an evidence directory of its own
    saves its evidence under `evidence_dir`."""
    if isinstance(config, ScannerDevice):
        return ScannerDriver(name, config)
    if isinstance(config, ScaleDevice):
        return ScaleDriver(name, config)
    if isinstance(config, ModbusScaleDevice):
        return ModbusScaleDriver(name, config)
    if isinstance(config, GateIODevice):
        return GateIODriver(name, config)
    if isinstance(config, CameraDevice):
        if config.evidence_dir is None and evidence_dir is not None:
            config = config.model_copy(update={"evidence_dir": evidence_dir})
        return CameraDriver(name, config)
    if isinstance(config, MqttSensorsDevice):
        return MqttSensorsDriver(name, config)
    if isinstance(config, IdReaderDevice):
        return IdReaderDriver(name, config)
    raise TypeError(f"no driver for {type(config).__name__}")


class DeviceHub:
    """The drivers by name: started and stopped together, each one's events handed to every
    handler subscribed to it (a handler that raises is logged and does not stop the others)."""

    def __init__(self, drivers: dict[str, Driver]) -> None:
        self.drivers = drivers
        self._handlers: dict[str, list[Handler]] = {name: [] for name in drivers}
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def from_config(cls, devices: dict[str, Device], *, evidence_dir: Path | None = None) -> DeviceHub:
        return cls(
            {name: build_driver(name, cfg, evidence_dir=evidence_dir) for name, cfg in devices.items()}
        )

    # --- a device as the port a station's role needs -------------------------------------------------
    def code_source(self, device: str) -> CodeSource:
        driver = self.drivers[device]
        if not isinstance(driver, CodeSource):
            raise TypeError(_not_a(device, driver, "code source"))
        return driver

    def weight_source(self, device: str) -> WeightSource:
        driver = self.drivers[device]
        if not isinstance(driver, WeightSource):
            raise TypeError(_not_a(device, driver, "weight source"))
        return driver

    def frame_source(self, device: str) -> FrameSource:
        driver = self.drivers[device]
        if not isinstance(driver, FrameSource):
            raise TypeError(_not_a(device, driver, "frame source"))
        return driver

    def output_module(self, device: str) -> OutputModule:
        driver = self.drivers[device]
        if not isinstance(driver, OutputModule):
            raise TypeError(_not_a(device, driver, "output module"))
        return driver

    # --- events and health ---------------------------------------------------------------------------
    def subscribe(self, device: str, handler: Handler) -> None:
        """Call `handler(event)` for every event `device` reports, from the hub's pump task."""
        self._handlers[device].append(handler)

    def health(self, device: str) -> Health:
        return self.drivers[device].supervisor.health

    def all_health(self) -> dict[str, Health]:
        return {name: d.supervisor.health for name, d in self.drivers.items()}

    async def start(self) -> None:
        for name, driver in self.drivers.items():
            await driver.start()
            self._tasks.append(asyncio.create_task(self._pump(name, driver), name=f"pump:{name}"))

    async def _pump(self, name: str, driver: Driver) -> None:
        async for event in driver.events:
            for handler in self._handlers[name]:
                try:
                    handler(event)
                except Exception:  # a station bug must not stop the device feeding the others
                    log.exception("station handler failed", extra={"device": name})

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        for driver in self.drivers.values():
            with contextlib.suppress(Exception):
                await driver.stop()


def _not_a(device: str, driver: Driver, port: str) -> str:
    return f"device {device!r} ({type(driver).__name__}) is not a {port}"


if TYPE_CHECKING:  # each driver is the port its role needs: checked by mypy, nothing runs
    _scanner: type[CodeSource] = ScannerDriver
    _scale: type[WeightSource] = ScaleDriver
    _modbus_scale: type[WeightSource] = ModbusScaleDriver
    _camera: type[FrameSource] = CameraDriver
    _io: type[OutputModule] = GateIODriver
    _sensors: type[Driver] = MqttSensorsDriver
    _id_reader: type[Driver] = IdReaderDriver

"""The agent's devices: built from configuration, run under their supervisors, events fanned out.

Every driver starts and stops the same way (devices.health.SupervisedDriver) and has one event
stream; the hub fans each stream out, so stations subscribe to the devices they use and several
stations may share one I/O module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from devices.drivers.camera import CameraDriver
from devices.drivers.gateio import GateIODriver
from devices.drivers.modbus_scale import ModbusScaleDriver
from devices.drivers.mqtt_sensors import MqttSensorsDriver
from devices.drivers.scale import ScaleDriver
from devices.drivers.scanner import ScannerDriver
from devices.events import DeviceEvent
from devices.health import Health
from edge.config import (
    CameraDevice,
    GateIODevice,
    ModbusScaleDevice,
    MqttSensorsDevice,
    ScaleDevice,
    ScannerDevice,
)
from kernel.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Handler = Callable[[DeviceEvent], None]


def build_driver(name: str, config: Any, *, evidence_dir: Any = None) -> Any:
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
    raise TypeError(f"no driver for {type(config).__name__}")


class DeviceHub:
    def __init__(self, drivers: dict[str, Any]) -> None:
        self.drivers = drivers
        self._handlers: dict[str, list[Handler]] = {name: [] for name in drivers}
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def from_config(cls, devices: dict[str, Any], *, evidence_dir: Any = None) -> DeviceHub:
        return cls(
            {name: build_driver(name, cfg, evidence_dir=evidence_dir) for name, cfg in devices.items()}
        )

    def subscribe(self, device: str, handler: Handler) -> None:
        self._handlers[device].append(handler)

    def health(self, device: str) -> Health:
        return self.drivers[device].supervisor.health

    def all_health(self) -> dict[str, Health]:
        return {name: d.supervisor.health for name, d in self.drivers.items()}

    async def start(self) -> None:
        for name, driver in self.drivers.items():
            await driver.start()
            self._tasks.append(asyncio.create_task(self._pump(name, driver), name=f"pump:{name}"))

    async def _pump(self, name: str, driver: Any) -> None:
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

"""The edge agent's settings: one TOML file (`bondgate edge run --config edge.toml`).

Devices are declared once under `[devices.<name>]` with a `driver` key and that driver's own
settings; stations refer to them by name. Everything is validated at start and every error names
the key (e.g. `stations.0.scanner: no device 'scaner1'`).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bondgate.config import KeyedProblems
from devices.drivers.camera import CameraConfig
from devices.drivers.gateio import GateIOConfig
from devices.drivers.modbus_scale import ModbusScaleConfig
from devices.drivers.mqtt_sensors import MqttSensorsConfig
from devices.drivers.scale import ScaleConfig
from devices.drivers.scanner import ScannerConfig
from devices.transports.mqtt import BrokerConfig
from edge.auth import is_password_hash


class ScannerDevice(ScannerConfig):
    driver: Literal["scanner"]


class ScaleDevice(ScaleConfig):
    driver: Literal["scale"]


class ModbusScaleDevice(ModbusScaleConfig):
    driver: Literal["modbus-scale"]


class GateIODevice(GateIOConfig):
    driver: Literal["gateio"]


class CameraDevice(CameraConfig):
    driver: Literal["camera"]


class MqttSensorsDevice(MqttSensorsConfig):
    driver: Literal["mqtt-sensors"]


Device = Annotated[
    ScannerDevice | ScaleDevice | ModbusScaleDevice | GateIODevice | CameraDevice | MqttSensorsDevice,
    Field(discriminator="driver"),
]


class _Station(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")

    def device_refs(self) -> dict[str, str | None]:
        return {}


class DiverterOutputs(BaseModel):
    """Which coil sends a parcel to which lane. At most one is on after a decision; all off is the
    hold lane, so a module that loses power (or is told its safe state) holds every parcel."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    release: str
    inspect: str | None = Field(None, description="inspection lane; without one INSPECT goes to hold")
    hold: str | None = Field(None, description="a coil for the hold lane, if it needs one")


class ConveyorStation(_Station):
    """Photo-eye → scan + stable weight + camera frame → decision → diverter, confirmed."""

    kind: Literal["conveyor"]
    io: str
    photo_eye: str = Field(description="input point on the I/O module")
    diverter: DiverterOutputs
    scanner: str
    scale: str | None = None
    camera: str | None = None
    window_s: float = Field(0.5, gt=0, description="scan/weight/frame belong to the parcel within this")
    deadline_s: float = Field(1.0, gt=0, description="decide by then, or HOLD (the diverter is that far)")

    def device_refs(self) -> dict[str, str | None]:
        return {"io": self.io, "scanner": self.scanner, "scale": self.scale, "camera": self.camera}


class ManualStation(_Station):
    """Handheld scanner + scale + screen; NOREAD typed by hand; overrides audited."""

    kind: Literal["manual"]
    scanner: str | None = None
    scale: str | None = None
    camera: str | None = None
    weight_deadline_s: float = Field(3.0, gt=0)

    def device_refs(self) -> dict[str, str | None]:
        return {"scanner": self.scanner, "scale": self.scale, "camera": self.camera}


class GateTrigger(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    device: str = Field(description="an I/O module or an MQTT sensors device")
    point: str = Field(description="input point name, or the MQTT sensor name (loop/gate)")


class GateStation(_Station):
    """A sensor triggers the check; the barrier opens on release (pulse) and its switch confirms."""

    kind: Literal["gate"]
    trigger: GateTrigger
    scanner: str
    camera: str | None = None
    scale: str | None = None
    io: str
    barrier: str = Field(description="output that opens the barrier while on")
    barrier_open: str | None = Field(None, description="input: barrier open switch (confirms the pulse)")
    pulse_s: float = Field(2.0, gt=0)
    window_s: float = Field(3.0, gt=0)
    confirm_timeout_s: float = Field(1.0, gt=0)

    def device_refs(self) -> dict[str, str | None]:
        return {
            "io": self.io,
            "scanner": self.scanner,
            "camera": self.camera,
            "scale": self.scale,
            "trigger.device": self.trigger.device,
        }


Station = Annotated[ConveyorStation | ManualStation | GateStation, Field(discriminator="kind")]


class CentralLink(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="central's base URL, e.g. https://central.example:8600")
    token: str = Field(min_length=8, description="this park's edge token")
    public_key: Path = Field(description="central's feed public key (PEM), from `bondgate central keys`")
    page_size: int = Field(5000, gt=0, le=5000)
    long_poll_s: float = Field(10.0, ge=0, le=60)
    batch_size: int = Field(500, gt=0, le=5000)
    send_every_s: float = Field(
        0.5,
        ge=0,
        le=60,
        description="the uplink waits this long after each upload, so events share a request",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL with a host")
        return url


class ToleranceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    absolute_kg: Decimal = Field(Decimal("0.1"), ge=0)
    percent: Decimal = Field(Decimal("5"), ge=0)


class LocalMqtt(BaseModel):
    model_config = ConfigDict(extra="forbid")
    broker: BrokerConfig
    topic_prefix: str = "bondgate"


class User(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    role: Literal["operator", "supervisor"]
    password_hash: str = Field(description="from `bondgate edge passwd` (scrypt)")

    @field_validator("password_hash")
    @classmethod
    def _scrypt(cls, value: str) -> str:
        if not is_password_hash(value):
            raise ValueError("not a password hash from `bondgate edge passwd` (scrypt$salt$digest)")
        return value


class LocalApi(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = Field(8700, ge=0, le=65535)
    users: list[User] = Field(default_factory=list)
    tls_cert: Path | None = Field(None, description="PEM certificate (chain) for HTTPS; with tls_key")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert, unencrypted")

    @model_validator(mode="after")
    def _tls_pair(self) -> LocalApi:
        if (self.tls_cert is None) != (self.tls_key is None):
            missing = "tls_key" if self.tls_key is None else "tls_cert"
            raise KeyedProblems([(f"api.{missing}", "give tls_cert and tls_key together, or neither")])
        return self

    @field_validator("users")
    @classmethod
    def _unique_names(cls, users: list[User]) -> list[User]:
        names = [u.name for u in users]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"user names must be unique: {', '.join(dupes)}")
        return users

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BONDGATE_EDGE_", env_nested_delimiter="__", extra="forbid")

    park_id: str
    edge_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    database: Path = Path("var/edge.db")
    evidence_dir: Path = Path("var/evidence")
    central: CentralLink
    tolerance: ToleranceSettings = Field(default_factory=ToleranceSettings)
    staleness_limit_s: float = Field(6 * 3600, gt=0, description="older cache → STALE_CACHE")
    stale_policy: Literal["hold", "allow"] = "hold"
    heartbeat_s: float = Field(30, gt=0)
    mqtt: LocalMqtt | None = None
    api: LocalApi = Field(default_factory=LocalApi)
    devices: dict[str, Device] = Field(default_factory=dict)
    stations: list[Station] = Field(default_factory=list)
    log_level: str = "INFO"

    @field_validator("log_level")
    @classmethod
    def _level(cls, level: str) -> str:
        if level.upper() not in logging.getLevelNamesMapping():
            raise ValueError(f"{level!r} is no log level (DEBUG, INFO, WARNING, ERROR, CRITICAL)")
        return level.upper()

    @model_validator(mode="after")
    def _references(self) -> EdgeSettings:
        """Every device a station names exists and is of the kind its role needs, and every I/O
        point it names is one of that device's points, used the right way round — checked here,
        at start, because a misnamed point would otherwise leave the station silently never
        deciding (or never opening)."""
        problems: list[tuple[str, str]] = []
        names = set()
        for i, station in enumerate(self.stations):
            if station.name in names:
                problems.append((f"stations.{i}.name", f"duplicate station {station.name!r}"))
            names.add(station.name)
            for role, ref in station.device_refs().items():
                key = f"stations.{i}.{role}"
                if ref is None:
                    continue
                device = self.devices.get(ref)
                if device is None:
                    problems.append((key, f"no device {ref!r} under [devices]"))
                elif device.driver not in ROLE_DRIVERS[role]:
                    wanted = " or ".join(ROLE_DRIVERS[role])
                    problems.append((key, f"device {ref!r} is a {device.driver}, not a {wanted}"))
            problems += _point_problems(f"stations.{i}", station, self.devices)
        if problems:
            raise KeyedProblems(problems)
        return self


# the drivers a device named in each station role may have
ROLE_DRIVERS: dict[str, tuple[str, ...]] = {
    "io": ("gateio",),
    "scanner": ("scanner",),
    "scale": ("scale", "modbus-scale"),
    "camera": ("camera",),
    "trigger.device": ("gateio", "mqtt-sensors"),
}


def _point_problems(prefix: str, station: _Station, devices: dict[str, Device]) -> list[tuple[str, str]]:
    """The I/O points (and trigger sensors) a station names, against its devices' own."""
    problems: list[tuple[str, str]] = []
    wanted: list[tuple[str, str, str]] = []  # (key, point, "input" | "output") on the station's io
    if isinstance(station, ConveyorStation):
        wanted.append(("photo_eye", station.photo_eye, "input"))
        for lane in ("release", "inspect", "hold"):
            point = getattr(station.diverter, lane)
            if point is not None:
                wanted.append((f"diverter.{lane}", point, "output"))
    elif isinstance(station, GateStation):
        wanted.append(("barrier", station.barrier, "output"))
        if station.barrier_open is not None:
            wanted.append(("barrier_open", station.barrier_open, "input"))
    station_io: str | None = getattr(station, "io", None)  # conveyors and gates have one
    io = devices.get(station_io) if station_io is not None else None
    if isinstance(io, GateIODevice) and station_io is not None:
        for key, point, kind in wanted:
            problem = _io_point(io, station_io, point, kind)
            if problem:
                problems.append((f"{prefix}.{key}", problem))
    if isinstance(station, GateStation):
        trigger = devices.get(station.trigger.device)
        key = f"{prefix}.trigger.point"
        if isinstance(trigger, GateIODevice):
            problem = _io_point(trigger, station.trigger.device, station.trigger.point, "input")
            if problem:
                problems.append((key, problem))
        elif isinstance(trigger, MqttSensorsDevice):
            sensors = {s.name: s for s in trigger.sensors}
            sensor = sensors.get(station.trigger.point)
            if sensor is None:
                problems.append(
                    (
                        key,
                        f"no sensor {station.trigger.point!r} on device {station.trigger.device!r}"
                        f" (has {', '.join(sensors)})",
                    )
                )
            elif sensor.type not in TRIGGER_SENSOR_TYPES:
                problems.append(
                    (
                        key,
                        f"sensor {sensor.name!r} is a {sensor.type} sensor; a trigger needs a"
                        f" {' or '.join(TRIGGER_SENSOR_TYPES)} sensor",
                    )
                )
    return problems


TRIGGER_SENSOR_TYPES = ("loop", "gate")  # what edge/stations/gate.py fires on (occupied / closed)


def _io_point(io: GateIODevice, device: str, point: str, kind: str) -> str | None:
    """Why `point` is not an `kind` ("input" or "output") of the I/O module `io`, or None."""
    own, other = (io.io.inputs, io.io.outputs) if kind == "input" else (io.io.outputs, io.io.inputs)
    if point in own:
        return None
    opposite = "output" if kind == "input" else "input"
    if point in other:
        return f"{point!r} on device {device!r} is an {opposite}, not an {kind}"
    has = ", ".join(own) or "none"
    return f"no {kind} {point!r} on device {device!r} (has {has})"

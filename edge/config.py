"""The edge agent's settings: one TOML file (`bondgate edge run --config edge.toml`).

Devices are declared once under `[devices.<name>]` with a `driver` key and that driver's own
settings; stations refer to them by name. Everything is validated at start and every error names
the key (e.g. `stations.0.scanner: no device 'scaner1'`).
"""

from __future__ import annotations

import logging
import math
import re
import ssl
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from devices.drivers.camera import CameraConfig
from devices.drivers.gateio import GateIOConfig
from devices.drivers.id_reader import IdReaderConfig
from devices.drivers.modbus_scale import ModbusScaleConfig
from devices.drivers.mqtt_sensors import MqttSensorsConfig
from devices.drivers.scale import ScaleConfig
from devices.drivers.scanner import ScannerConfig
from devices.transports.mqtt import BrokerConfig, check_topic_name, has_wildcard
from edge.auth import Role, is_password_hash
from edge.tracking import Layout, Zone
from kernel.config import KeyedProblems


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


class IdReaderDevice(IdReaderConfig):
    driver: Literal["id-reader"]


Device = Annotated[
    ScannerDevice
    | ScaleDevice
    | ModbusScaleDevice
    | GateIODevice
    | CameraDevice
    | MqttSensorsDevice
    | IdReaderDevice,
    Field(discriminator="driver"),
]


NAME_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"  # station and device names: they are MQTT topic levels


class _Station(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    name: str = Field(pattern=NAME_PATTERN)

    def device_refs(self) -> dict[str, str | None]:
        return {}


class DiverterOutputs(BaseModel):
    """Which coil sends a parcel to which lane. At most one is on after a decision; all off is the
    hold lane, so a module that loses power (or is told its safe state) holds every parcel."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    release: str
    inspect: str | None = Field(None, description="inspection lane; without one INSPECT goes to hold")
    hold: str | None = Field(None, description="a coil for the hold lane, if it needs one")


class Span(BaseModel):
    """A stretch of the belt, downstream of the photo-eye: in metres (with the line's belt speed) or
    in seconds measured on the line. For a device, `from` is where it first sees a parcel's leading
    edge and `to` where it last sees the trailing edge, plus the time it takes to report (a
    scanner's decoding and the bytes on the wire)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    from_m: float | None = None
    to_m: float | None = None
    from_s: float | None = None
    to_s: float | None = None

    @model_validator(mode="after")
    def _one_unit(self) -> Span:
        metres = (self.from_m, self.to_m)
        seconds = (self.from_s, self.to_s)
        if all(v is not None for v in metres) == all(v is not None for v in seconds) or any(
            v is None for v in (metres if self.from_m is not None else seconds)
        ):
            raise ValueError("give from_m and to_m, or from_s and to_s")
        start, end = metres if self.from_m is not None else seconds
        assert start is not None and end is not None
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise ValueError("to must be a number no smaller than from")
        return self

    @property
    def in_metres(self) -> bool:
        return self.from_m is not None

    def seconds(self, speed: float | None) -> tuple[float, float]:
        if self.from_s is not None and self.to_s is not None:
            return self.from_s, self.to_s
        assert speed is not None and self.from_m is not None and self.to_m is not None
        return self.from_m / speed, self.to_m / speed


class Tracking(BaseModel):
    """Where a conveyor line's devices are, so each parcel gets its own window per device
    (edge/tracking.py). Positions are downstream of the photo-eye, in metres with `belt_speed_m_s`
    or in seconds measured on the line."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    belt_speed_m_s: float | None = Field(None, gt=0, description="needed for positions in metres")
    scanner: Span = Field(description="the scan field (+ the scanner's reporting delay)")
    scale: Span | None = Field(None, description="the weighing platform; required with a scale")
    camera_m: float | None = Field(None, description="the camera's frame: leading edge this far")
    camera_s: float | None = None
    diverter: Span = Field(description="where the diverter acts on the parcel: decide before `from`")
    switch_s: float = Field(0.05, ge=0, description="the diverter's time to change lanes")
    dwell_s: float = Field(0.2, ge=0, description="the lane stays this long after the parcel passed")
    max_parcel_m: float | None = Field(None, gt=0, description="longer at the photo-eye: a jam, held")
    max_parcel_s: float | None = Field(None, gt=0)
    min_parcel_m: float | None = Field(
        None, gt=0, description="the shortest parcel: a shorter stall cannot hide one (default: margin_s)"
    )
    min_parcel_s: float | None = Field(None, gt=0)
    margin_s: float = Field(0.02, ge=0, le=1, description="timestamp uncertainty: each window widened")
    settle_s: float = Field(0.01, ge=0, le=1, description="after a window, for its readings to arrive")
    weight_spread_kg: Decimal = Field(Decimal("0.02"), ge=0, description="stable weights of one parcel")
    repeat_s: float = Field(30.0, ge=0, description="a code read for another parcel this recently holds")

    @model_validator(mode="after")
    def _units(self) -> Tracking:
        spans = {"scanner": self.scanner, "scale": self.scale, "diverter": self.diverter}
        needs_speed = [k for k, v in spans.items() if v is not None and v.in_metres]
        needs_speed += [
            k for k in ("camera_m", "max_parcel_m", "min_parcel_m") if getattr(self, k) is not None
        ]
        if needs_speed and self.belt_speed_m_s is None:
            raise ValueError(f"belt_speed_m_s is needed for positions in metres ({', '.join(needs_speed)})")
        if self.camera_m is not None and self.camera_s is not None:
            raise ValueError("give camera_m or camera_s, not both")
        if self.max_parcel_m is not None and self.max_parcel_s is not None:
            raise ValueError("give max_parcel_m or max_parcel_s, not both")
        if self.min_parcel_m is not None and self.min_parcel_s is not None:
            raise ValueError("give min_parcel_m or min_parcel_s, not both")
        return self

    def layout(self) -> Layout:
        speed = self.belt_speed_m_s
        scale = Zone(*self.scale.seconds(speed)) if self.scale is not None else None
        camera = self.camera_s if self.camera_m is None else self.camera_m / (speed or 1)
        longest = self.max_parcel_s if self.max_parcel_m is None else self.max_parcel_m / (speed or 1)
        shortest = self.min_parcel_s if self.min_parcel_m is None else self.min_parcel_m / (speed or 1)
        return Layout(
            scanner=Zone(*self.scanner.seconds(speed)),
            scale=scale,
            camera_s=camera,
            diverter=Zone(*self.diverter.seconds(speed)),
            switch_s=self.switch_s,
            dwell_s=self.dwell_s,
            margin_s=self.margin_s,
            settle_s=self.settle_s,
            max_parcel_s=longest if longest is not None else 2.0,
            min_parcel_s=shortest if shortest is not None else self.margin_s,
            weight_spread_kg=self.weight_spread_kg,
            repeat_s=self.repeat_s,
        )


class ConveyorStation(_Station):
    """Photo-eye → scan + stable weight + camera frame, each in the parcel's own window (a tracking
    model: `tracking`) → decision before the parcel reaches the diverter → diverter, confirmed."""

    kind: Literal["conveyor"]
    io: str
    photo_eye: str = Field(description="input point on the I/O module")
    diverter: DiverterOutputs
    scanner: str
    scale: str | None = None
    camera: str | None = None
    tracking: Tracking

    @model_validator(mode="before")
    @classmethod
    def _replaced_keys(cls, data: object) -> object:
        if isinstance(data, dict) and ({"window_s", "deadline_s"} & data.keys()):
            raise ValueError(
                "window_s and deadline_s were replaced by [stations.tracking]: the position of the"
                " scanner, scale, camera and diverter (see README, 'Conveyor tracking')"
            )
        return data

    @model_validator(mode="after")
    def _scale_zone(self) -> ConveyorStation:
        if self.scale is not None and self.tracking.scale is None:
            raise ValueError("tracking.scale: where the weighing platform is (the station has a scale)")
        if self.camera is not None and self.tracking.camera_m is None and self.tracking.camera_s is None:
            raise ValueError("tracking.camera_m or camera_s: where the camera takes its frame")
        try:
            layout = self.tracking.layout()
        except ValueError as exc:
            raise ValueError(f"tracking: {exc}") from None
        if layout.longest_decidable_s() <= 0:
            assert layout.diverter is not None
            reach = layout.diverter.start_s - layout.switch_s
            raise ValueError(
                "tracking.diverter: too close to the devices: a parcel reaches it (from - switch_s)"
                f" {reach:g} s after its leading edge passed the photo-eye, but its windows close only"
                f" {reach - layout.longest_decidable_s():g} s after its trailing edge did"
                " (the latest `to` + margin_s + settle_s, or + margin_s - from when a device is upstream)"
            )
        return self

    def device_refs(self) -> dict[str, str | None]:
        return {"io": self.io, "scanner": self.scanner, "scale": self.scale, "camera": self.camera}


class ManualStation(_Station):
    """Handheld scanner + scale + screen; NOREAD typed by hand; overrides audited."""

    kind: Literal["manual"]
    scanner: str | None = None
    scale: str | None = None
    camera: str | None = None
    weight_deadline_s: float = Field(3.0, gt=0, le=60)

    def device_refs(self) -> dict[str, str | None]:
        return {"scanner": self.scanner, "scale": self.scale, "camera": self.camera}


class GateTrigger(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
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
    pulse_s: float = Field(2.0, gt=0, le=60)
    window_s: float = Field(
        1.0, gt=0, le=60, description="reads and the weight belong to the vehicle this long; decided then"
    )
    read_before_s: float = Field(
        1.0,
        ge=0,
        le=60,
        description="a read this long before the trigger still counts (a label read on arrival)",
    )
    confirm_timeout_s: float = Field(1.0, gt=0, le=60)
    free_debounce_s: float = Field(
        0.3,
        ge=0,
        le=10,
        description="an MQTT trigger sensor free for less than this (by its ts) is the same vehicle",
    )

    def device_refs(self) -> dict[str, str | None]:
        return {
            "io": self.io,
            "scanner": self.scanner,
            "camera": self.camera,
            "scale": self.scale,
            "trigger.device": self.trigger.device,
        }


class SensorRef(BaseModel):
    """One sensor of an MQTT sensors device."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    device: str = Field(description="an mqtt-sensors device")
    sensor: str = Field(description="the name of one of its sensors")


class LanePoints(BaseModel):
    """A vehicle lane's I/O points on its module (names from the module's configuration)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    entry_loop: str = Field(description="input: a vehicle at the entry loop")
    platform_back: str = Field(description="input: the beam at the weighbridge's entry end is interrupted")
    platform_front: str = Field(description="input: the beam at the weighbridge's exit end is interrupted")
    safety_loop: str = Field(description="input: something under the barrier arm (wins over every command)")
    exit_loop: str = Field(description="input: a vehicle at the exit loop")
    barrier: str = Field(description="output: barrier open command, held (on opens, off closes)")
    barrier_open: str = Field(description="input: the arm's open limit switch (confirms the opening)")
    barrier_closed: str | None = Field(None, description="input: the arm's closed limit switch")


class GateToleranceSettings(BaseModel):
    """How far the weighbridge may differ from the note (vehicle_rules.GateTolerance). No public
    source fixes a figure: a park sets it no tighter than its bridge's in-service error (OIML R 76
    class III: about ±1 division to ±1.5 divisions in service; a 60 t bridge with 20 kg divisions is
    good to roughly ±20–60 kg)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    absolute_kg: Decimal = Field(Decimal("60"), ge=0, le=10000)
    percent: Decimal = Field(Decimal("0.5"), ge=0, le=100)
    override_absolute_kg: Decimal | None = Field(
        Decimal("300"),
        ge=0,
        le=100000,
        description="a supervisor may release a weight stop up to this far off",
    )
    override_percent: Decimal = Field(Decimal("2"), ge=0, le=100)
    plate_min_confidence: float = Field(0.9, ge=0, le=1)


class VehicleGateStation(_Station):
    """A customs vehicle gate lane (卡口): loops, a weighbridge, plate / card / container / seal readers
    and a barrier (edge/stations/vehicle_gate.py)."""

    kind: Literal["vehicle_gate"]
    io: str = Field(description="the lane's I/O module")
    points: LanePoints
    scale: str = Field(description="the weighbridge (any scale driver; Toledo continuous is usual)")
    card: str | None = Field(
        None, description="id reader of the note's vehicleIcNo (electronic plate / IC card)"
    )
    plate: SensorRef | None = None
    container: SensorRef | None = None
    seal: SensorRef | None = None
    seal_reader: str | None = Field(
        None, description="an id reader of the electronic seals (serial), instead of or beside the MQTT one"
    )
    loops: dict[Literal["entry_loop", "exit_loop"], SensorRef] = Field(
        default_factory=dict,
        description="the entry or exit loop as an MQTT loop detector (a `loop` sensor) instead of an I/O"
        " point; the beams and the safety loop stay on the I/O module",
    )
    camera: str | None = Field(
        None, description="a camera whose frame of each vehicle is kept (its hash sent)"
    )
    scanner: None = None
    lane_id: str | None = Field(
        None,
        max_length=64,
        description="the lane's id in plate / container / seal payloads (`lane`): reads naming another"
        " lane are ignored (set it where cameras or readers share a topic)",
    )
    direction: Literal["I", "E"] = Field("E", description="E: out of the area")
    gate: Literal["single", "first", "second"] = Field(
        "single", description="dual-gate parks: first or second"
    )
    tolerance: GateToleranceSettings = Field(default_factory=GateToleranceSettings)
    min_vehicle_kg: Decimal = Field(
        Decimal("500"), ge=0, description="less on the bridge is an empty platform"
    )
    collect_s: float = Field(
        5.0, gt=0, le=120, description="after a stable weight, wait this long at most for the readers"
    )
    confirm_timeout_s: float = Field(8.0, gt=0, le=60, description="for the open switch after the command")
    leave_timeout_s: float = Field(
        300.0, gt=0, le=3600, description="an open barrier closes after this if the lane is empty"
    )
    resume_read_s: float = Field(
        20.0,
        gt=0,
        le=600,
        description="after a restart, how long the lane waits to read again the plate or card of the vehicle"
        " its unfinished pass was for (taken up only for that vehicle)",
    )

    def device_refs(self) -> dict[str, str | None]:
        return {
            "io": self.io,
            "scale": self.scale,
            "card": self.card,
            "camera": self.camera,
            "plate.device": self.plate.device if self.plate else None,
            "container.device": self.container.device if self.container else None,
            "seal.device": self.seal.device if self.seal else None,
            "seal_reader": self.seal_reader,
            **{f"loops.{name}.device": ref.device for name, ref in self.loops.items()},
        }


Station = Annotated[
    ConveyorStation | ManualStation | GateStation | VehicleGateStation, Field(discriminator="kind")
]


def normalise_pin(pin: str) -> str:
    """A SHA-256 digest as lowercase hex, from hex with or without colons (as `openssl` prints it)."""
    text = pin.strip().lower().replace(":", "")
    if text.startswith(("sha256/", "sha256=")):
        text = text[7:]
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"not a SHA-256 digest in hex: {pin[:80]!r}")
    return text


_LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}  # one broker, whichever name it is reached by


class CentralLink(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="central's base URL, e.g. https://central.example:8600")
    token: str = Field(
        min_length=8, pattern=r"^[\x21-\x7e]+$", description="this park's edge token (printable ASCII)"
    )
    public_key: Path = Field(description="central's feed public key (PEM), from `bondgate central keys`")
    ca_file: Path | None = Field(
        None, description="PEM bundle of the CAs that may sign central's certificate (https only)"
    )
    pin_sha256: list[Annotated[str, AfterValidator(normalise_pin)]] = Field(
        default_factory=list,
        description="SHA-256 (hex) of central's certificate or of its public key; one must match (https)",
    )
    insecure_plain_http: bool = Field(
        False, description="accept a plain http:// URL to a host other than this machine (demo only)"
    )
    page_size: int = Field(5000, gt=0, le=5000)
    long_poll_s: float = Field(10.0, ge=0, le=60)
    batch_size: int = Field(500, gt=0, le=5000)
    alarm_after_s: float = Field(
        300,
        gt=0,
        le=86400,
        description="/healthz answers 503 while events wait or the feed has not been pulled this long",
    )
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
        try:
            parts.port  # noqa: B018 — raises on a port that is not a number in 0..65535
        except ValueError as exc:
            raise ValueError(f"{url!r}: {exc}") from None
        return url

    @field_validator("ca_file")
    @classmethod
    def _ca_bundle(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        try:
            context = ssl.create_default_context(cafile=str(value))
        except FileNotFoundError:
            raise ValueError(f"{value}: no such file") from None
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ValueError(f"{value}: not a PEM bundle of CA certificates ({exc})") from None
        if not context.get_ca_certs():
            raise ValueError(f"{value}: holds no CA certificate")
        return value

    @model_validator(mode="after")
    def _transport(self) -> CentralLink:
        """TLS settings need https; plaintext is for this machine unless accepted explicitly."""
        url = urlsplit(self.url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"url: {self.url!r} is not an http:// or https:// URL with a host")
        if url.scheme == "http":
            if self.ca_file is not None or self.pin_sha256:
                raise ValueError(
                    "ca_file and pin_sha256 need an https:// url; refusing to fall back to plain http"
                )
            if url.hostname not in _LOOPBACK and not self.insecure_plain_http:
                raise ValueError(
                    f"url: plain http to {url.hostname} (the edge token and the feed would travel"
                    " unprotected); use https:// — or, for a demo only, set insecure_plain_http = true"
                )
        return self


class ToleranceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    absolute_kg: Decimal = Field(Decimal("0.1"), ge=0)
    percent: Decimal = Field(Decimal("5"), ge=0)


class LocalMqtt(BaseModel):
    model_config = ConfigDict(extra="forbid")
    broker: BrokerConfig
    topic_prefix: str = Field("bondgate", min_length=1, max_length=64)

    @field_validator("topic_prefix")
    @classmethod
    def _publishable(cls, prefix: str) -> str:
        check_topic_name(prefix)  # every topic the agent publishes starts with it
        return prefix


class User(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    role: Role
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
    model_config = SettingsConfigDict(
        env_prefix="BONDGATE_EDGE_", env_nested_delimiter="__", extra="forbid", allow_inf_nan=False
    )

    park_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    edge_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    database: Path = Path("var/edge.db")
    evidence_dir: Path = Path("var/evidence")
    central: CentralLink
    tolerance: ToleranceSettings = Field(default_factory=ToleranceSettings)
    staleness_limit_s: float = Field(6 * 3600, gt=0, le=30 * 86400, description="older cache → STALE_CACHE")
    stale_policy: Literal["hold", "allow"] = "hold"
    heartbeat_s: float = Field(30, ge=0.01, le=3600)
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
        problems: list[tuple[str, str]] = self._device_names()
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
            if isinstance(station, ConveyorStation):
                problems += self._conveyor_scanner(i, station)
        problems += self._points_used_once()
        problems += self._client_ids()
        if problems:
            raise KeyedProblems(problems)
        return self

    def _device_names(self) -> list[tuple[str, str]]:
        """A device's name is a level of its MQTT health topic and a field of every log line about
        it: like a station's, 1-32 letters, digits, '_' or '-' (a '+' made paho refuse the topic,
        a NUL made the broker drop the agent's connection over and over)."""
        problems = []
        for name in self.devices:
            if not re.fullmatch(NAME_PATTERN, name):
                shown = repr(name[:80])  # a NUL or a line break shown escaped, not printed
                problems.append(
                    (
                        f"devices.{shown[1:-1]}",
                        f"device name {shown} is not 1-32 letters, digits, '_' or '-'"
                        " (it is part of MQTT topics)",
                    )
                )
        return problems

    def _client_ids(self) -> list[tuple[str, str]]:
        """Two of the agent's MQTT connections with one client id on one broker take the session
        from each other, for ever (the broker drops the older connection for the newer one)."""
        brokers: list[tuple[str, BrokerConfig]] = []
        if self.mqtt is not None:
            brokers.append(("mqtt.broker.client_id", self.mqtt.broker))
        for name, device in self.devices.items():
            if isinstance(device, MqttSensorsDevice):
                brokers.append((f"devices.{name}.broker.client_id", device.broker))
        problems = []
        first: dict[tuple[str, int, str], str] = {}
        for key, broker in brokers:
            if broker.client_id is None:
                continue  # a fresh random id per connection
            host = broker.host.lower().strip("[]")
            where = ("loopback" if host in _LOOPBACK_HOSTS else host, broker.effective_port, broker.client_id)
            other = first.setdefault(where, key)
            if other != key:
                problems.append(
                    (
                        key,
                        f"client id {broker.client_id!r} is also {other} on the same broker"
                        f" ({broker.address}): the two connections would take it from each other",
                    )
                )
        return problems

    def _points_used_once(self) -> list[tuple[str, str]]:
        """Each output drives one thing, and each photo-eye or trigger input serves one station: a
        release coil that is also another line's lane (or its own inspection lane, or a barrier)
        would open for the wrong parcel."""
        problems: list[tuple[str, str]] = []
        # (device, point, "in" | "out") → the first key that uses it (a point named as the wrong kind
        # is _point_problems' finding, not a second use)
        used: dict[tuple[str, str, str], str] = {}
        for i, station in enumerate(self.stations):
            points: list[tuple[str, str | None, str | None, str]] = []  # (key, device, point, kind)
            if isinstance(station, ConveyorStation):
                points.append(("photo_eye", station.io, station.photo_eye, "in"))
                for lane in ("release", "inspect", "hold"):
                    points.append((f"diverter.{lane}", station.io, getattr(station.diverter, lane), "out"))
            elif isinstance(station, GateStation):
                points += [
                    ("barrier", station.io, station.barrier, "out"),
                    ("trigger.point", station.trigger.device, station.trigger.point, "in"),
                ]
            elif isinstance(station, VehicleGateStation):
                points.append(("points.barrier", station.io, station.points.barrier, "out"))
                if "entry_loop" not in station.loops:
                    points.append(("points.entry_loop", station.io, station.points.entry_loop, "in"))
            for key, device, point, kind in points:
                if device is None or point is None:
                    continue
                full = f"stations.{i}.{key}"
                first = used.setdefault((device, point, kind), full)
                if first != full:
                    problems.append((full, f"{point!r} on device {device!r} is already {first}"))
        return problems

    def _conveyor_scanner(self, i: int, station: ConveyorStation) -> list[tuple[str, str]]:
        """A conveyor places every read in a parcel's window itself: its scanner must report every
        read (a scanner that drops a repeated code would hide a second label) and serve no other
        station (whose reads would land in the line's windows)."""
        problems: list[tuple[str, str]] = []
        key = f"stations.{i}.scanner"
        device = self.devices.get(station.scanner)
        if isinstance(device, ScannerDevice) and device.dedupe_window_s > 0:
            problems.append(
                (
                    key,
                    f"device {station.scanner!r} drops repeated codes (dedupe_window_s ="
                    f" {device.dedupe_window_s:g}); a conveyor's scanner needs 0",
                )
            )
        for j, other in enumerate(self.stations):
            if j != i and station.scanner in other.device_refs().values():
                problems.append(
                    (
                        key,
                        f"device {station.scanner!r} also serves stations.{j} ({other.name});"
                        " a conveyor's scanner must be its own",
                    )
                )
        return problems


# the drivers a device named in each station role may have
ROLE_DRIVERS: dict[str, tuple[str, ...]] = {
    "io": ("gateio",),
    "scanner": ("scanner",),
    "scale": ("scale", "modbus-scale"),
    "camera": ("camera",),
    "trigger.device": ("gateio", "mqtt-sensors"),
    "card": ("id-reader",),
    "plate.device": ("mqtt-sensors",),
    "container.device": ("mqtt-sensors",),
    "seal.device": ("mqtt-sensors",),
    "seal_reader": ("id-reader",),
    "loops.entry_loop.device": ("mqtt-sensors",),
    "loops.exit_loop.device": ("mqtt-sensors",),
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
    elif isinstance(station, VehicleGateStation):
        for name, value in station.points.model_dump().items():
            if value is not None and name not in station.loops:
                wanted.append((f"points.{name}", value, "output" if name == "barrier" else "input"))
        problems += _sensor_refs(prefix, station, devices)
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
            elif has_wildcard(sensor.topic):
                # the gate keeps one free/occupied level: a filter covering several loops would mix
                # them (another loop's vehicle starting a check here, this one's arrival unseen)
                problems.append(
                    (
                        key,
                        f"sensor {sensor.name!r} on device {station.trigger.device!r} subscribes to"
                        f" {sensor.topic!r}, a wildcard filter; a gate trigger must be one sensor on one"
                        " topic (give this loop a sensor of its own with its full topic)",
                    )
                )
    return problems


def _sensor_refs(
    prefix: str, station: VehicleGateStation, devices: dict[str, Device]
) -> list[tuple[str, str]]:
    """Each reader a vehicle gate names is a sensor of its device, of the type its role reads; and a
    lane that takes plate, container or seal reads over MQTT names its `lane_id`, so a read for
    another lane (a shared topic, a misrouted camera) is never taken for this one."""
    problems = []
    if station.lane_id is None and any(
        r is not None for r in (station.plate, station.container, station.seal)
    ):
        problems.append(
            (
                f"{prefix}.lane_id",
                "a lane reading plates, containers or seals over MQTT needs its lane_id (the `lane` its"
                " cameras and readers put in their payloads)",
            )
        )
    refs = [
        (role, getattr(station, role), wanted)
        for role, wanted in (("plate", "plate"), ("container", "container"), ("seal", "seal"))
    ]
    refs += [(f"loops.{name}", ref, "loop") for name, ref in station.loops.items()]
    for role, ref, wanted in refs:
        device = devices.get(ref.device) if ref is not None else None
        if ref is None or not isinstance(device, MqttSensorsDevice):
            continue  # no such role, or no such device (said under device_refs)
        sensors = {s.name: s for s in device.sensors}
        sensor = sensors.get(ref.sensor)
        if sensor is None:
            problems.append(
                (
                    f"{prefix}.{role}.sensor",
                    f"no sensor {ref.sensor!r} on device {ref.device!r} (has {', '.join(sensors)})",
                )
            )
        elif sensor.type != wanted:
            problems.append(
                (
                    f"{prefix}.{role}.sensor",
                    f"sensor {ref.sensor!r} is a {sensor.type} sensor, not a {wanted}",
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

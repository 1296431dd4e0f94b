"""The edge agent's settings: one TOML file (`bondgate edge run --config edge.toml`).

Devices are declared once under `[devices.<name>]` with a `driver` key and that driver's own
settings; stations refer to them by name. Everything is validated at start and every error names
the key (e.g. `stations.0.scanner: no device 'scaner1'`).
"""

from __future__ import annotations

import ssl
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from devices.drivers.camera import CameraConfig
from devices.drivers.gateio import GateIOConfig
from devices.drivers.modbus_scale import ModbusScaleConfig
from devices.drivers.mqtt_sensors import MqttSensorsConfig
from devices.drivers.scale import ScaleConfig
from devices.drivers.scanner import ScannerConfig
from devices.transports.mqtt import BrokerConfig


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


def normalise_pin(pin: str) -> str:
    """A SHA-256 digest as lowercase hex, from hex with or without colons (as `openssl` prints it)."""
    text = pin.strip().lower().replace(":", "")
    if text.startswith(("sha256/", "sha256=")):
        text = text[7:]
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"not a SHA-256 digest in hex: {pin[:80]!r}")
    return text


_LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}


class CentralLink(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="central's base URL, e.g. https://central.example:8600")
    token: str = Field(min_length=8, description="this park's edge token")
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
    send_every_s: float = Field(
        0.5,
        ge=0,
        le=60,
        description="the uplink waits this long after each upload, so events share a request",
    )

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
    topic_prefix: str = "bondgate"


class User(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    role: Literal["operator", "supervisor"]
    password_hash: str = Field(description="from `bondgate edge passwd` (scrypt)")


class LocalApi(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = Field(8700, ge=0, le=65535)
    users: list[User] = Field(default_factory=list)


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

    @model_validator(mode="after")
    def _references(self) -> EdgeSettings:
        problems = []
        names = set()
        for i, station in enumerate(self.stations):
            if station.name in names:
                problems.append(f"stations.{i}.name: duplicate station {station.name!r}")
            names.add(station.name)
            for key, ref in station.device_refs().items():
                if ref is not None and ref not in self.devices:
                    problems.append(f"stations.{i}.{key}: no device {ref!r} under [devices]")
        if problems:
            raise ValueError("; ".join(problems))
        return self

"""MQTT sensors (gate/door sensors, loop detectors, plate-recognition cameras) as device events.

Each configured sensor is a topic filter (wildcards allowed) and a payload type. Valid payloads
become `SensorMessage` events — `device` is the sensor's name, `at` the monotonic time paho handed
the message over — in `driver.events`. A malformed payload is a sensor's problem, not the broker's:
it is counted in `driver.rejected[sensor]`, its reason kept in `driver.last_rejection[sensor]`, and
logged once per burst (the first one, then at most one summary per `log_every_s` with the number
suppressed), so a sensor spraying garbage at 100 Hz neither fills the log nor stops the others.

Health is the broker connection, kept by one supervisor: UP once connected and every subscription is
acknowledged, DEGRADED if the broker refused a subscription (an ACL), DOWN with the cause (connection
refused, "Not authorized", a TLS failure) otherwise. paho reconnects by itself (0.1 s doubling to
1 s) and re-subscribes in `on_connect`; the supervisor only mirrors that, so a broker that comes back
is UP again within about 2 s without anyone restarting the driver.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from devices.events import EventStream, SensorMessage
from devices.health import DeviceError, SupervisedDriver, Supervisor
from devices.protocols.sensor_payloads import PayloadError, SensorType, decode
from devices.transports.mqtt import BrokerConfig, Handler, MqttConnection, MqttMessage, check_topic_filter

log = logging.getLogger(__name__)


class SensorSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    type: SensorType
    topic: str  # a filter: "park/gate/+/state" covers every gate
    qos: int = Field(1, ge=0, le=2)

    @field_validator("topic")
    @classmethod
    def _valid_filter(cls, topic: str) -> str:
        check_topic_filter(topic)
        return topic


class MqttSensorsConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    broker: BrokerConfig
    sensors: list[SensorSpec] = Field(min_length=1)
    connect_timeout_s: float = Field(5.0, gt=0)  # DOWN if not connected by then (or at the first refusal)
    log_every_s: float = Field(60.0, ge=0)  # rejected payloads: one log line per sensor per this

    @field_validator("sensors")
    @classmethod
    def _unique_names(cls, sensors: list[SensorSpec]) -> list[SensorSpec]:
        names = [s.name for s in sensors]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"sensor names must be unique: {', '.join(dupes)}")
        return sensors


@dataclass
class _Burst:
    """Log the first rejection, then at most one line per `every` seconds saying how many were hidden."""

    every: float
    last_logged: float | None = None
    suppressed: int = 0

    def should_log(self, now: float) -> tuple[bool, int]:
        if self.last_logged is None or now - self.last_logged >= self.every:
            hidden, self.suppressed, self.last_logged = self.suppressed, 0, now
            return True, hidden
        self.suppressed += 1
        return False, 0


class MqttSensorsDriver(SupervisedDriver):
    def __init__(
        self, name: str, config: MqttSensorsConfig, *, connection: MqttConnection | None = None
    ) -> None:
        self.name = name
        self.config = config
        self._own_connection = connection is None
        self.connection = connection or MqttConnection(config.broker, name=name)
        self.events = EventStream()
        # paho does the reconnecting and a session only waits on it, so a short supervisor backoff is
        # cheap and keeps "broker back → UP" within paho's delay (≤ 1 s) plus 0.25 s
        self.supervisor = Supervisor(name, self._session, backoff_max=0.25)
        self.accepted: dict[str, int] = {s.name: 0 for s in config.sensors}
        self.rejected: dict[str, int] = {s.name: 0 for s in config.sensors}
        self.last_rejection: dict[str, PayloadError] = {}
        self._bursts = {s.name: _Burst(config.log_every_s) for s in config.sensors}
        self._task: asyncio.Task[None] | None = None
        for spec in config.sensors:
            self.connection.subscribe(spec.topic, self._handler(spec), qos=spec.qos)

    # --- lifecycle (start/stop from SupervisedDriver) ------------------------------------------------
    async def _closed(self) -> None:
        if self._own_connection:
            await self.connection.stop()

    # --- the session: mirror the connection ---------------------------------------------------------
    async def _session(self, sup: Supervisor) -> None:
        await self.connection.start()  # MqttSetupError (bad TLS files) → DOWN, retried, never plaintext
        await self.connection.wait_ready(self.config.connect_timeout_s)
        if refused := self.connection.refused_subscriptions:
            sup.fault("subscription refused: " + ", ".join(f"{t} ({c})" for t, c in refused.items()))
        else:
            sup.seen()
        raise DeviceError(await self.connection.wait_lost())

    # --- messages ------------------------------------------------------------------------------------
    def _handler(self, spec: SensorSpec) -> Handler:
        def handle(message: MqttMessage) -> None:
            try:
                payload = decode(spec.type, message.topic, message.payload)
            except PayloadError as exc:
                self._reject(spec, exc, message)
                return
            self.accepted[spec.name] += 1
            self.events.put(SensorMessage(spec.name, spec.type.value, message.topic, payload, at=message.at))

        return handle

    def _reject(self, spec: SensorSpec, exc: PayloadError, message: MqttMessage) -> None:
        self.rejected[spec.name] += 1
        self.last_rejection[spec.name] = exc
        should, hidden = self._bursts[spec.name].should_log(message.at)
        if should:
            log.warning(
                "sensor payload rejected",
                extra={
                    "device": self.name,
                    "sensor": spec.name,
                    "topic": message.topic,
                    "kind": exc.kind,
                    "reason": exc.reason,
                    "bytes": len(message.payload),
                    "suppressed": hidden,
                    "rejected": self.rejected[spec.name],
                },
            )

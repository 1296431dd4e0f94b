"""MQTT sensors (gate/door sensors, loop detectors, plate-recognition cameras) as device events.

Each configured sensor is a topic filter (wildcards allowed) and a payload type. Valid payloads
become `SensorMessage` events — `device` is the sensor's name, `at` the monotonic time paho handed
the message over — in `driver.events`. A malformed payload is a sensor's problem, not the broker's:
it is counted in `driver.rejected[sensor]`, its reason kept in `driver.last_rejection[sensor]`, and
logged once per burst (the first one, then at most one summary per `log_every_s` with the number
suppressed), so a sensor spraying garbage at 100 Hz neither fills the log nor stops the others.

Only a message that happens now is an event — a loop or gate edge that starts a check or opens a
barrier. Two kinds of valid message are not:
- A retained message (the broker sends one per topic on every subscribe, so on every reconnect) is
  the sensor's last known state, kept in `driver.known[topic]` and counted in `driver.retained`,
  never an event: a loop left `{"occupied": true}` must not look like a new vehicle each time the
  agent reconnects. (A sensor that publishes with retain while we are subscribed is live: the broker
  delivers it without the flag, and it is an event like any other.)
- A message whose own `ts` is older than `max_age_s` (a QoS 1 message that waited at the broker, a
  sensor replaying its buffer), or dated more than `max_ahead_s` ahead of this machine's clock (a
  sensor clock that runs fast, or a forged time), is counted in `driver.stale`, logged once per
  burst like a malformed one, and makes the device DEGRADED ("stale sensor message on '…' (12.3 s
  old)") until that sensor sends a timely message. A message without `ts` is refused as malformed.
  An old message still updates the known state if it is the newest the driver has; one dated ahead
  never does (it would mask every later one).

Health is the broker connection, kept by one supervisor: UP once connected and every subscription is
acknowledged, DEGRADED if the broker refused a subscription (an ACL) or a sensor's messages are
untimely, DOWN with the cause (connection refused, "Not authorized", a TLS failure) otherwise. paho
reconnects by itself (0.1 s doubling to 1 s) and re-subscribes in `on_connect`; the supervisor only
mirrors that, so a broker that comes back is UP again within about 2 s without anyone restarting the
driver.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from devices.events import EventStream, SensorMessage
from devices.health import DeviceError, State, SupervisedDriver, Supervisor
from devices.protocols.sensor_payloads import PayloadError, SensorPayload, SensorType, age_s, decode, untimely
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
    # a message whose own `ts` is older than this (or this far ahead of our clock) is no event
    max_age_s: float = Field(5.0, gt=0, le=86400, allow_inf_nan=False)
    max_ahead_s: float = Field(2.0, ge=0, le=86400, allow_inf_nan=False)

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


MAX_KNOWN_TOPICS = 1024  # a wildcard sensor's topics are remembered up to this many, oldest dropped


@dataclass(frozen=True)
class KnownState:
    """The newest valid message of a topic, event or not."""

    sensor: str
    payload: SensorPayload
    retained: bool  # from the broker's store on (re)subscribe, not seen live
    at: float  # time.monotonic() when it was received


class MqttSensorsDriver(SupervisedDriver):
    def __init__(
        self,
        name: str,
        config: MqttSensorsConfig,
        *,
        connection: MqttConnection | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.config = config
        self._wall_clock = wall_clock  # what a message's `ts` is compared with
        self._own_connection = connection is None
        self.connection = connection or MqttConnection(config.broker, name=name)
        self.events = EventStream()
        # paho does the reconnecting and a session only waits on it, so a short supervisor backoff is
        # cheap and keeps "broker back → UP" within paho's delay (≤ 1 s) plus 0.25 s
        self.supervisor = Supervisor(name, self._session, backoff_max=0.25)
        self.accepted: dict[str, int] = {s.name: 0 for s in config.sensors}
        self.rejected: dict[str, int] = {s.name: 0 for s in config.sensors}
        self.last_rejection: dict[str, PayloadError] = {}
        self.retained: dict[str, int] = {s.name: 0 for s in config.sensors}  # kept as state, no event
        self.stale: dict[str, int] = {s.name: 0 for s in config.sensors}  # too old or dated ahead
        self.known: dict[str, KnownState] = {}  # by topic
        self._untimely: dict[str, str] = {}  # sensor → why its latest live message was no event
        self._bursts = {s.name: _Burst(config.log_every_s) for s in config.sensors}
        self._stale_bursts = {s.name: _Burst(config.log_every_s) for s in config.sensors}
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
        self._report(sup)
        raise DeviceError(await self.connection.wait_lost())

    def _report(self, sup: Supervisor) -> None:
        if refused := self.connection.refused_subscriptions:
            sup.fault("subscription refused: " + ", ".join(f"{t} ({c})" for t, c in refused.items()))
        elif self._untimely:
            sup.fault(next(reversed(self._untimely.values())))  # the latest sensor to go untimely
        else:
            sup.seen()

    # --- messages ------------------------------------------------------------------------------------
    def _handler(self, spec: SensorSpec) -> Handler:
        def handle(message: MqttMessage) -> None:
            try:
                payload = decode(spec.type, message.topic, message.payload)
            except PayloadError as exc:
                self._reject(spec, exc, message)
                return
            now = self._wall_clock()
            ahead = age_s(payload, now) < -self.config.max_ahead_s
            if not ahead:
                self._remember(spec, message, payload)
            if message.retain:  # the broker's memory, sent because we (re)subscribed: no event
                self.retained[spec.name] += 1
                return
            why = untimely(
                payload,
                message.topic,
                now,
                max_age_s=self.config.max_age_s,
                max_ahead_s=self.config.max_ahead_s,
            )
            if why is not None:
                self._stale(spec, why, message)
                return
            self.accepted[spec.name] += 1
            self._timely(spec)
            self.events.put(SensorMessage(spec.name, spec.type.value, message.topic, payload, at=message.at))

        return handle

    def _remember(self, spec: SensorSpec, message: MqttMessage, payload: SensorPayload) -> None:
        known = self.known.get(message.topic)
        if known is not None and known.payload.ts > payload.ts:
            return  # an older message arriving late never replaces what is known
        if known is None and len(self.known) >= MAX_KNOWN_TOPICS:
            del self.known[next(iter(self.known))]
        self.known.pop(message.topic, None)  # re-inserted last: the dict stays oldest first
        self.known[message.topic] = KnownState(spec.name, payload, message.retain, message.at)

    def _stale(self, spec: SensorSpec, why: str, message: MqttMessage) -> None:
        self.stale[spec.name] += 1
        should, hidden = self._stale_bursts[spec.name].should_log(message.at)
        if should:
            log.warning(
                "stale sensor message ignored",
                extra={
                    "device": self.name,
                    "sensor": spec.name,
                    "topic": message.topic,
                    "reason": why,
                    "suppressed": hidden,
                    "stale": self.stale[spec.name],
                },
            )
        if spec.name not in self._untimely or should:  # the health reason follows the log, not each message
            self._untimely.pop(spec.name, None)
            self._untimely[spec.name] = why  # last in: the one health names
            self._report(self.supervisor)

    def _timely(self, spec: SensorSpec) -> None:
        if self._untimely.pop(spec.name, None) is not None:
            self._report(self.supervisor)
        elif self.supervisor.health.state == State.UP:
            self.supervisor.seen()  # last seen: the last good message

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

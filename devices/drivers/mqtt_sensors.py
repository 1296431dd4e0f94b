"""MQTT sensors (gate/door, loop, plate, container-number and seal readers) as device events.

Each configured sensor is a topic filter (wildcards allowed) and a payload type. Valid payloads
become `SensorMessage` events — `device` is the sensor's name, `at` the monotonic time paho handed
the message over — in `driver.events`. A malformed payload is a sensor's problem, not the broker's:
it is counted in `driver.rejected[sensor]`, its reason kept in `driver.last_rejection[sensor]`, and
logged once per burst (the first one, then at most one summary per `log_every_s` with the number
suppressed), so a sensor spraying garbage at 100 Hz neither fills the log nor stops the others.

Every valid message that is the newest known for its topic (by its own `ts`) is a `SensorMessage`,
kept in `driver.known[topic]`; only one that happens now is *live* (`live=True`) — a loop or gate
edge that may start a check or open a barrier. The others carry the sensor's state, never an event:
- A retained message (the broker sends one per topic on every subscribe, so on every reconnect),
  counted in `driver.retained`: a loop left `{"occupied": true}` must not look like a new vehicle
  each time the agent reconnects, but a loop that went free while the agent was away is free. (A
  sensor that publishes with retain while we are subscribed is live: the broker delivers it without
  the flag.)
- A message whose own `ts` is older than `max_age_s` (a QoS 1 message that waited at the broker, a
  sensor replaying its buffer), counted in `driver.stale`, logged once per burst, and a standing
  condition on the device's health: DEGRADED ("stale sensor message on '…' (12.3 s old)") until that
  sensor sends a timely message.
A message dated more than `max_ahead_s` ahead of this machine's clock (a sensor clock that runs
fast, or a forged time) is stale too, but never becomes the known state (it would mask every later
one). A message no newer than the one known for its topic — a QoS 1 re-send (DUP) that arrives after
the message that followed it, a replay — is no message at all: counted in `driver.out_of_order`
(older `ts`) or `driver.duplicates` (the same `ts`), logged once per burst. Sensors must therefore
date each message, to the millisecond, from an NTP-synchronised clock. A message without `ts` is
refused as malformed, and a malformed one is a fault of the device: DEGRADED, naming the sensor and
topic, until that sensor sends a valid message (a loop whose firmware sends a time without a zone
is blind, and must not look UP).

Health is the broker connection, kept by one supervisor: UP once connected and every subscription is
acknowledged, DEGRADED while the broker refuses a subscription (an ACL) or a sensor's latest message
was untimely or malformed (standing conditions, `Supervisor.set_condition`), DOWN with the cause (connection
refused, "Not authorized", a TLS failure) otherwise. paho reconnects by itself (0.1 s doubling to
1 s) and re-subscribes in `on_connect`; the supervisor only mirrors that, so a broker that comes back
is UP again within about 2 s without anyone restarting the driver. Topics in log lines and health
reasons are clipped (a topic may be 64 KiB long).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from devices.events import EventStream, SensorMessage
from devices.health import DeviceError, State, SupervisedDriver, Supervisor
from devices.log_limit import LogLimit
from devices.protocols.sensor_payloads import PayloadError, SensorPayload, SensorType, age_s, decode, untimely
from devices.transports.mqtt import (
    BrokerConfig,
    Handler,
    MqttConnection,
    MqttMessage,
    check_topic_filter,
    clip,
    has_wildcard,
)

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


MAX_KNOWN_TOPICS = 1024  # topics remembered; beyond it a wildcard sensor's oldest topic is dropped


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
        self.out_of_order: dict[str, int] = {s.name: 0 for s in config.sensors}  # older than known
        self.duplicates: dict[str, int] = {s.name: 0 for s in config.sensors}  # as old as known
        self.known: dict[str, KnownState] = {}  # by topic, the oldest first
        self._wildcard = {s.name: has_wildcard(s.topic) for s in config.sensors}
        self._untimely: set[str] = set()  # sensors whose latest live message was untimely
        self._malformed: set[str] = set()  # sensors whose latest message was refused
        self._bursts = {s.name: LogLimit(config.log_every_s) for s in config.sensors}
        self._stale_bursts = {s.name: LogLimit(config.log_every_s) for s in config.sensors}
        self._order_bursts = {s.name: LogLimit(config.log_every_s) for s in config.sensors}
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
            listed = ", ".join(f"{clip(t, 80)} ({c})" for t, c in refused.items())
            sup.set_condition("subscriptions", clip(f"subscription refused: {listed}", 400))
        else:
            sup.clear_condition("subscriptions")
        sup.seen()  # DEGRADED while a condition stands (a stale sensor, a refused subscription)

    def details(self) -> dict[str, Any]:
        """What /api/devices shows besides health: each sensor's counters and last rejection."""
        return {
            "sensors": {
                s.name: {
                    "accepted": self.accepted[s.name],
                    "rejected": self.rejected[s.name],
                    "retained": self.retained[s.name],
                    "stale": self.stale[s.name],
                    "out_of_order": self.out_of_order[s.name],
                    "duplicates": self.duplicates[s.name],
                    "last_rejection": clip(str(e), 200) if (e := self.last_rejection.get(s.name)) else None,
                }
                for s in self.config.sensors
            },
            "conditions": list(self.supervisor.conditions.values()),
        }

    # --- messages ------------------------------------------------------------------------------------
    def _handler(self, spec: SensorSpec) -> Handler:
        def handle(message: MqttMessage) -> None:
            try:
                payload = decode(spec.type, message.topic, message.payload)
            except PayloadError as exc:
                self._reject(spec, exc, message)
                return
            if spec.name in self._malformed:  # a valid message again: its firmware can be read
                self._malformed.discard(spec.name)
                self.supervisor.clear_condition(f"malformed:{spec.name}")
            now = self._wall_clock()
            why = untimely(
                payload,
                message.topic,
                now,
                max_age_s=self.config.max_age_s,
                max_ahead_s=self.config.max_ahead_s,
            )
            if age_s(payload, now) < -self.config.max_ahead_s:  # never the known state: it would mask
                if message.retain:  # every later message
                    self.retained[spec.name] += 1
                else:
                    self._stale(spec, why or "dated ahead", message)
                return
            known = self.known.get(message.topic)
            if known is not None and payload.ts <= known.payload.ts:
                if message.retain:  # the broker's copy of what is known (or older): no news
                    self.retained[spec.name] += 1
                else:
                    self._out_of_order(spec, message, payload, known)
                return
            self._remember(spec, message, payload)
            live = not message.retain and why is None
            if message.retain:  # the broker's memory, sent because we (re)subscribed: state only
                self.retained[spec.name] += 1
            elif why is not None:
                self._stale(spec, why, message)
            else:
                self.accepted[spec.name] += 1
                self._timely(spec)
            self.events.put(
                SensorMessage(spec.name, spec.type.value, message.topic, payload, at=message.at, live=live)
            )

        return handle

    def _remember(self, spec: SensorSpec, message: MqttMessage, payload: SensorPayload) -> None:
        if message.topic not in self.known and len(self.known) >= MAX_KNOWN_TOPICS:
            # drop a wildcard sensor's oldest topic: a sensor of one topic is never forgotten, so a
            # flood of topics cannot make an old re-send of a trigger's message new again
            victim = next((t for t, k in self.known.items() if self._wildcard.get(k.sensor, True)), None)
            if victim is not None:
                del self.known[victim]
        self.known.pop(message.topic, None)  # re-inserted last: the dict stays oldest first
        self.known[message.topic] = KnownState(spec.name, payload, message.retain, message.at)

    def _out_of_order(
        self, spec: SensorSpec, message: MqttMessage, payload: SensorPayload, known: KnownState
    ) -> None:
        same = payload.ts == known.payload.ts
        counter = self.duplicates if same else self.out_of_order
        counter[spec.name] += 1
        should, hidden = self._order_bursts[spec.name].should_log(message.at)
        if should:
            log.warning(
                "duplicate sensor message ignored" if same else "out-of-order sensor message ignored",
                extra={
                    "device": self.name,
                    "sensor": spec.name,
                    "topic": clip(message.topic),
                    "ts": payload.ts.isoformat(),
                    "known_ts": known.payload.ts.isoformat(),
                    "suppressed": hidden,
                    "duplicates": self.duplicates[spec.name],
                    "out_of_order": self.out_of_order[spec.name],
                },
            )

    def _stale(self, spec: SensorSpec, why: str, message: MqttMessage) -> None:
        self.stale[spec.name] += 1
        should, hidden = self._stale_bursts[spec.name].should_log(message.at)
        if should:
            log.warning(
                "stale sensor message ignored",
                extra={
                    "device": self.name,
                    "sensor": spec.name,
                    "topic": clip(message.topic),
                    "reason": why,
                    "suppressed": hidden,
                    "stale": self.stale[spec.name],
                },
            )
        if spec.name not in self._untimely or should:  # the health reason follows the log, not each message
            self._untimely.add(spec.name)
            self.supervisor.set_condition(f"untimely:{spec.name}", why)

    def _timely(self, spec: SensorSpec) -> None:
        if spec.name in self._untimely:
            self._untimely.discard(spec.name)
            self.supervisor.clear_condition(f"untimely:{spec.name}")
        if self.supervisor.health.state in (State.UP, State.DEGRADED):
            self.supervisor.seen()  # last seen: the last good message (UP once nothing stands)

    def _reject(self, spec: SensorSpec, exc: PayloadError, message: MqttMessage) -> None:
        self.rejected[spec.name] += 1
        self.last_rejection[spec.name] = exc
        reason = f"{spec.name}: payload on {clip(message.topic, 80)!r} rejected: {exc.reason}"
        if self.supervisor.health.state in (State.UP, State.DEGRADED):  # a sensor's fault, not the link's
            self.supervisor.fault(reason)
        should, hidden = self._bursts[spec.name].should_log(message.at)
        if spec.name not in self._malformed or should:  # DEGRADED until it sends a valid one
            self._malformed.add(spec.name)
            self.supervisor.set_condition(f"malformed:{spec.name}", reason)
        if should:
            log.warning(
                "sensor payload rejected",
                extra={
                    "device": self.name,
                    "sensor": spec.name,
                    "topic": clip(message.topic),
                    "kind": exc.kind,
                    "reason": exc.reason,
                    "bytes": len(message.payload),
                    "suppressed": hidden,
                    "rejected": self.rejected[spec.name],
                },
            )

"""An MQTT connection for asyncio over paho-mqtt 2.x: subscribe with handlers, publish and await.

A pipe only, general on purpose: sensor drivers subscribe through it, and the edge agent publishes
decisions and retained state through the same class. paho runs its network loop in its own thread
(`loop_start`); every callback is handed to the event loop with `call_soon_threadsafe`, so handlers
and state changes run on the loop and nothing here blocks it.

Why it is built this way:
- Subscriptions are re-made in `on_connect`, so they survive reconnects and broker restarts (a clean
  session forgets them). The connection counts as *ready* only when every SUBACK is in: a message
  published by another client after `ready` is certain to reach us.
- paho reconnects by itself with `reconnect_delay_set(min, max)` (0.1 s doubling to 1 s by default),
  so a broker that comes back is used again within about a second. Each failed attempt is reported
  with its cause (connection refused, "Not authorized", certificate verify failed); a subclass of
  paho's client records the exception, which paho's own `on_connect_fail` does not pass on.
- TLS is all or nothing: when `tls` is configured, a missing or bad CA/cert/key raises
  `MqttSetupError` from `start()`, and a failed handshake is a failed connection. There is no
  plaintext fallback (the ThingsBoard gateway's users learned why).
- `publish()` returns when the broker has acknowledged (QoS 1/2) or the message was written (QoS 0),
  tracked by message id from `on_publish`. Unsent QoS ≥ 1 messages live in paho's memory only: they
  are re-sent after a reconnect but lost if the process dies, so callers that must not lose a message
  keep their own outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from devices.health import DeviceError

log = logging.getLogger(__name__)


class TlsConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    ca: Path | None = None  # None: the system's trusted CAs
    cert: Path | None = None  # client certificate (mutual TLS), with `key`
    key: Path | None = None
    check_hostname: bool = True

    @model_validator(mode="after")
    def _cert_and_key(self) -> TlsConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("tls: give both cert and key, or neither")
        return self


class BrokerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=1, le=65535)  # None: 8883 with TLS, else 1883
    username: str | None = None
    password: SecretStr | None = None
    tls: TlsConfig | None = None
    client_id: str | None = None  # None: a fresh "bondgate-…" id per connection
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    keepalive_s: int = Field(15, ge=2, le=3600)  # how fast a silently dead broker is noticed (×1.5)
    reconnect_min_s: float = Field(0.1, gt=0, le=60)
    reconnect_max_s: float = Field(1.0, gt=0, le=600)

    @model_validator(mode="after")
    def _password_needs_user(self) -> BrokerConfig:
        if self.password is not None and self.username is None:
            raise ValueError("password given without username")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or (8883 if self.tls else 1883)

    @property
    def address(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.effective_port}"


class MqttSetupError(DeviceError):
    """The connection cannot even be attempted as configured (bad TLS files): no fallback."""


@dataclass(frozen=True)
class MqttMessage:
    topic: str
    payload: bytes
    qos: int
    # set only on a message the broker sent from its store because we (re)subscribed — a live one
    # arrives without it (we never ask for MQTT 5's retain-as-published): state, not an event
    retain: bool
    at: float  # time.monotonic() when paho handed it over


Handler = Callable[[MqttMessage], None]


@dataclass(frozen=True)
class Outgoing:
    """A message this connection sends by itself: its will (the broker publishes it when the
    connection ends without a DISCONNECT: a crash, a power cut, a cable pulled), or its birth (sent
    on every connect, first, before anything queued)."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True)
class _Subscription:
    topic: str
    qos: int
    handler: Handler


class _Client(mqtt.Client):
    """paho's client, remembering why the last connection attempt failed."""

    last_connect_error: BaseException | None = None

    def reconnect(self) -> MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as exc:  # includes ssl.SSLError and socket timeouts
            self.last_connect_error = exc
            raise


class MqttConnection:
    def __init__(
        self,
        config: BrokerConfig,
        *,
        name: str = "mqtt",
        will: Outgoing | None = None,
        birth: Callable[[], Outgoing] | None = None,
    ) -> None:
        if will is not None:
            check_topic_name(will.topic)
        self.config = config
        self.name = name
        self._will = will
        self._birth = birth  # called in paho's thread on every successful connect
        self._subs: list[_Subscription] = []
        self._client: _Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = False
        self._connected = False  # CONNACK success seen; ready once the SUBACKs are in too
        self.reason = "not started"
        self.failures = 0  # failed attempts and lost connections since start
        self._changed = asyncio.Event()
        self._suback_pending: dict[int, str] = {}  # SUBSCRIBE message id → topic filter
        self._published: dict[int, asyncio.Future[None]] = {}
        self.refused_subscriptions: dict[str, str] = {}

    # --- state ---------------------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._client is not None

    @property
    def ready(self) -> bool:
        """Connected, with every subscription acknowledged."""
        return self._ready

    async def wait_ready(self, timeout: float) -> None:
        """Return once ready; DeviceError with the cause as soon as an attempt fails (or on timeout)."""
        failures = self.failures
        try:
            async with asyncio.timeout(timeout):
                while not self._ready:
                    await self._wait_change()
                    if self.failures != failures:
                        raise DeviceError(self.reason)
        except TimeoutError:
            raise DeviceError(f"{self.reason} (not connected after {timeout:g} s)") from None

    async def wait_lost(self) -> str:
        """Wait while ready; return the reason once the connection is lost."""
        while self._ready:
            await self._wait_change()
        return self.reason

    async def _wait_change(self) -> None:
        await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # --- subscriptions -------------------------------------------------------------------------------
    def subscribe(self, topic: str, handler: Handler, *, qos: int = 1) -> None:
        """Call `handler(message)` on the event loop for each message matching `topic` (wildcards
        allowed); the subscription is made now if connected and again after every reconnect."""
        check_topic_filter(topic)
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, not {qos}")
        self._subs.append(_Subscription(topic, qos, handler))
        if self._client is not None and self._connected:
            self._send_subscribe(topic, qos)

    async def wait_subscribed(self, timeout: float) -> None:
        """Wait until connected and every subscription made so far is acknowledged by the broker."""
        try:
            async with asyncio.timeout(timeout):
                while not self._ready or self._suback_pending:
                    await self._wait_change()
        except TimeoutError:
            raise DeviceError(f"{self.name}: subscriptions not acknowledged ({self.reason})") from None

    def _send_subscribe(self, topic: str, qos: int) -> None:
        assert self._client is not None
        result, mid = self._client.subscribe(topic, qos)
        if result == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None:
            self._suback_pending[mid] = topic  # on_subscribe reaches the loop later: no race

    # --- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Configure and start connecting in paho's thread; returns at once (see `wait_ready`).
        Raises MqttSetupError if TLS is configured and cannot be set up."""
        if self._client is not None:
            return
        self._loop = asyncio.get_running_loop()
        client = self._make_client()
        self.reason = f"connecting to {self.config.address}"
        client.connect_async(self.config.host, self.config.effective_port, keepalive=self.config.keepalive_s)
        client.loop_start()
        self._client = client

    def _make_client(self) -> _Client:
        cfg = self.config
        client_id = cfg.client_id or f"bondgate-{uuid.uuid4().hex[:12]}"
        protocol = MQTTProtocolVersion.MQTTv5 if cfg.protocol == "5" else MQTTProtocolVersion.MQTTv311
        client = _Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password.get_secret_value() if cfg.password else None)
        if cfg.tls is not None:
            _setup_tls(client, cfg.tls)
        # paho annotates these int, but takes (and sleeps) float seconds: 0.1 s is the default here
        client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)  # type: ignore[arg-type]
        if self._will is not None:
            will = self._will
            client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        self._ready = self._connected = False
        self.reason = "stopped"
        for future in self._published.values():
            if not future.done():
                future.set_exception(
                    DeviceError(f"{self.name}: connection stopped before the broker acknowledged")
                )
        self._published.clear()
        self._notify()

    async def __aenter__(self) -> MqttConnection:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- publishing ----------------------------------------------------------------------------------
    async def publish(
        self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False, timeout: float = 5.0
    ) -> None:
        """Publish and wait for the broker's acknowledgement (QoS 1/2) or the write (QoS 0).

        While disconnected, a QoS ≥ 1 message waits in paho's queue and goes out after reconnecting;
        if `timeout` passes first, DeviceError is raised but the message may still be delivered later
        (at least once, not exactly once). A QoS 0 message while disconnected fails at once."""
        client = self._client
        if client is None:
            raise DeviceError(f"{self.name}: not started")
        check_topic_name(topic)  # ValueError, before paho queues what the broker would drop us for
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN) or (
            info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and qos == 0
        ):
            raise DeviceError(f"{self.name}: publish to {topic!r} failed: {mqtt.error_string(info.rc)}")
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS and info.is_published():  # (raises on NO_CONN)
            return
        # on_publish reaches the loop through call_soon_threadsafe, so it cannot run before this line
        future = self._published[info.mid] = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            raise DeviceError(
                f"{self.name}: publish to {topic!r} not acknowledged within {timeout:g} s ({self.reason})"
            ) from None
        finally:
            self._published.pop(info.mid, None)

    # --- paho callbacks (paho's thread) --------------------------------------------------------------
    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed while paho was still running
                loop.call_soon_threadsafe(callback, *args)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:
            self._post(self._attempt_failed, f"broker {self.config.address} refused the connection: {rc}")
            return
        if self._birth is not None:
            try:  # first on the new connection: ahead of whatever waited in paho's queue
                birth = self._birth()
                check_topic_name(birth.topic)
                client.publish(birth.topic, birth.payload, qos=birth.qos, retain=birth.retain)
            except Exception:  # an exception here would end paho's network thread
                log.exception("mqtt birth message not sent", extra={"device": self.name})
        subs = list(self._subs)  # subscribe() may append on the loop meanwhile: see _connected_now
        mids = {}
        for sub in subs:  # re-subscribe on every connect: a clean session forgot them
            result, mid = client.subscribe(sub.topic, sub.qos)
            if result == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None:
                mids[mid] = sub.topic
        self._post(self._connected_now, mids, len(subs))

    def _on_connect_fail(self, client: mqtt.Client, _u: Any) -> None:
        exc = client.last_connect_error if isinstance(client, _Client) else None
        cause = f"{type(exc).__name__}: {exc}" if exc is not None else "connection failed"
        self._post(self._attempt_failed, f"cannot connect to {self.config.address}: {cause}")

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self._post(self._lost, f"connection to {self.config.address} lost ({rc})")

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, codes: list[ReasonCode], _p: Any) -> None:
        self._post(self._suback, mid, [(code.is_failure, str(code)) for code in codes])

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        message = MqttMessage(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), time.monotonic())
        self._post(self._deliver, message)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, _rc: ReasonCode, _p: Any) -> None:
        self._post(self._ack, mid)

    # --- the same events, on the event loop ----------------------------------------------------------
    def _connected_now(self, mids: dict[int, str], subscribed: int) -> None:
        if self._client is None:
            return
        self._connected = True
        self._suback_pending = mids
        self.refused_subscriptions.clear()
        for sub in self._subs[subscribed:]:  # added between paho's on_connect and now
            self._send_subscribe(sub.topic, sub.qos)
        if not self._suback_pending:
            self._become_ready()

    def _suback(self, mid: int, codes: list[tuple[bool, str]]) -> None:
        topic = self._suback_pending.pop(mid, None)
        if topic is None:
            return  # from before a reconnect
        for failed, code in codes:
            if failed:  # e.g. an ACL: the sensor is blind until someone fixes the broker
                self.refused_subscriptions[topic] = code
                log.error("subscription refused", extra={"device": self.name, "topic": topic, "reason": code})
        if self._ready:
            self._notify()  # a subscription added while connected: see wait_subscribed
        elif not self._suback_pending:
            self._become_ready()

    def _become_ready(self) -> None:
        self._ready = True
        self.reason = f"connected to {self.config.address}"
        log.info("mqtt connected", extra={"device": self.name, "broker": self.config.address})
        self._notify()

    def _attempt_failed(self, reason: str) -> None:
        if self._client is None:
            return
        self.failures += 1
        if reason != self.reason:
            log.warning("mqtt connection failed", extra={"device": self.name, "reason": reason})
        self.reason = reason
        self._notify()

    def _lost(self, reason: str) -> None:
        if self._client is None or not self._connected:
            return  # the disconnect that follows a refused CONNACK: keep the refusal as the reason
        self._connected = self._ready = False
        self.failures += 1
        self.reason = reason
        log.warning("mqtt connection lost", extra={"device": self.name, "reason": reason})
        self._notify()

    def _deliver(self, message: MqttMessage) -> None:
        for sub in self._subs:
            if mqtt.topic_matches_sub(sub.topic, message.topic):
                try:
                    sub.handler(message)
                except Exception:  # one bad handler must not starve the others or kill paho's thread
                    extra = {"device": self.name, "topic": clip(message.topic)}
                    log.exception("mqtt handler failed", extra=extra)

    def _ack(self, mid: int) -> None:
        future = self._published.get(mid)
        if future is not None and not future.done():
            future.set_result(None)


def clip(text: str, limit: int = 200) -> str:
    """`text` cut to `limit` characters + "…" (topics and payload excerpts in log lines: a topic may
    be 64 KiB long)."""
    return text if len(text) <= limit else text[:limit] + "…"


def has_wildcard(topic: str) -> bool:
    """A filter with `+` or `#` (it may match more than one topic)."""
    return "+" in topic or "#" in topic


def check_topic_name(topic: str) -> None:
    """Refuse a topic a message cannot be published to: empty, over 65,535 bytes, not encodable, with
    a NUL (the broker drops the connection for it, and paho would send it again after every
    reconnect) or a wildcard (paho raises). ValueError names it, clipped."""
    try:
        size = len(topic.encode())
    except UnicodeEncodeError:
        raise ValueError(f"invalid topic {clip(topic, 80)!r}: not encodable as UTF-8") from None
    if not topic or size > 65535 or "\x00" in topic or has_wildcard(topic):
        raise ValueError(f"invalid topic {clip(topic, 80)!r}: empty, too long, a NUL, '+' or '#'")


def check_topic_filter(topic: str) -> None:
    """Refuse filters the broker would reject (and drop the connection for)."""
    if not topic or len(topic.encode()) > 65535 or "\x00" in topic:
        raise ValueError(f"invalid topic filter {topic!r}")
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"invalid topic filter {topic!r}: '#' must be a whole last level")
        if "+" in level and level != "+":
            raise ValueError(f"invalid topic filter {topic!r}: '+' must be a whole level")


def _setup_tls(client: mqtt.Client, tls: TlsConfig) -> None:
    for label, path in (("CA", tls.ca), ("certificate", tls.cert), ("key", tls.key)):
        if path is not None and not path.is_file():
            raise MqttSetupError(f"TLS {label} file {path} not found")
    try:
        client.tls_set(
            ca_certs=str(tls.ca) if tls.ca else None,
            certfile=str(tls.cert) if tls.cert else None,
            keyfile=str(tls.key) if tls.key else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        client.tls_insecure_set(not tls.check_hostname)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise MqttSetupError(f"TLS setup failed: {type(exc).__name__}: {exc}") from exc

"""MQTT sensors on a broker: gate/door sensors, loop detectors, a plate-recognition camera, and a
vehicle gate's container-number recognition and electronic seal reader.

Publishes exactly what `devices.protocols.sensor_payloads` accepts (ISO 8601 times with a zone, or
Unix seconds), and on demand what it must refuse: bad JSON, wrong types, a missing field, a naive
time, a payload over the size limit, binary garbage. It talks to the broker with paho directly, not
through `devices.transports.mqtt`, so a bug in our transport cannot hide itself in the tests.

Topics, under a prefix (default `bondgate/sim`): `<prefix>/gate/<name>/state`,
`<prefix>/loop/<name>`, `<prefix>/plate/<lane>`, `<prefix>/container/<lane>`, `<prefix>/seal/<lane>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import paho.mqtt.client as mqtt
import typer
from paho.mqtt.enums import CallbackAPIVersion

from devices.protocols.sensor_payloads import (
    MAX_PAYLOAD,
    ContainerResult,
    GateSensor,
    GateState,
    LoopDetector,
    PlateResult,
    SealRead,
    encode,
)

log = logging.getLogger(__name__)

Malformed = Literal["bad_json", "wrong_type", "missing_field", "naive_time", "not_object", "huge", "binary"]
MALFORMED: tuple[Malformed, ...] = (
    "bad_json", "wrong_type", "missing_field", "naive_time", "not_object", "huge", "binary",
)  # fmt: skip


def malformed_payload(kind: Malformed) -> bytes:
    """A payload every sensor type must refuse, of the given kind."""
    if kind == "bad_json":
        return b'{"occupied": true, "ts": '
    if kind == "wrong_type":
        return b'{"state": 1, "occupied": "yes", "plate": 42, "confidence": "high", "lane": 1, "ts": true}'
    if kind == "missing_field":
        return b"{}"
    if kind == "naive_time":
        return b'{"state": "open", "occupied": true, "ts": "2024-05-01T08:00:00"}'
    if kind == "not_object":
        return b'["open", true]'
    if kind == "huge":
        return b'{"pad": "' + b"x" * (MAX_PAYLOAD + 1) + b'"}'
    if kind == "binary":
        return os.urandom(64) + b"\xff\xfe\x00"
    raise ValueError(f"unknown malformed kind {kind!r}")


class MqttSensorSim:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        username: str | None = None,
        password: str | None = None,
        prefix: str = "bondgate/sim",
    ) -> None:
        self.host, self.port, self.prefix = host, port, prefix
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-{uuid.uuid4().hex[:8]}")
        if username is not None:
            self._client.username_pw_set(username, password)
        self._connected = threading.Event()
        self._client.on_connect = self._on_connect
        self.sent = 0
        self._last_ts = 0.0

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not rc.is_failure:
            self._connected.set()

    # --- topics --------------------------------------------------------------------------------------
    def gate_topic(self, name: str = "gate1") -> str:
        return f"{self.prefix}/gate/{name}/state"

    def loop_topic(self, name: str = "loop1") -> str:
        return f"{self.prefix}/loop/{name}"

    def plate_topic(self, lane: str = "in-1") -> str:
        return f"{self.prefix}/plate/{lane}"

    def container_topic(self, lane: str = "in-1") -> str:
        return f"{self.prefix}/container/{lane}"

    def seal_topic(self, lane: str = "in-1") -> str:
        return f"{self.prefix}/seal/{lane}"

    # --- connection ----------------------------------------------------------------------------------
    async def connect(self, timeout: float = 5.0) -> None:
        await asyncio.to_thread(self._client.connect, self.host, self.port, 30)
        self._client.loop_start()
        if not await asyncio.to_thread(self._connected.wait, timeout):
            raise ConnectionError(f"simulator not connected to {self.host}:{self.port}")

    async def close(self) -> None:
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    async def __aenter__(self) -> MqttSensorSim:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- sending -------------------------------------------------------------------------------------
    async def publish_raw(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish and wait until the broker acknowledged (QoS 1)."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        await asyncio.to_thread(info.wait_for_publish, 5.0)
        if not info.is_published():
            raise ConnectionError(f"publish to {topic} not acknowledged")
        self.sent += 1

    async def gate(
        self, state: GateState, *, name: str = "gate1", ts: datetime | None = None, retain: bool = False
    ) -> None:
        message = GateSensor(state=state, ts=ts or _now())
        await self.publish_raw(self.gate_topic(name), encode(message), retain=retain)

    async def loop(self, occupied: bool, *, name: str = "loop1", epoch: bool = True) -> None:
        """Loop detectors often send Unix seconds: `epoch=True` sends `ts` as a number."""
        ts = self.next_ts()
        if epoch:
            payload = json.dumps({"occupied": occupied, "ts": ts}).encode()
        else:
            payload = encode(LoopDetector(occupied=occupied, ts=datetime.fromtimestamp(ts, UTC)))
        await self.publish_raw(self.loop_topic(name), payload)

    def next_ts(self) -> float:
        """Now in Unix seconds to the millisecond, later than every `ts` sent before: as a sensor
        must date its messages (two in one millisecond would look like a re-send of one)."""
        self._last_ts = max(round(time.time(), 3), round(self._last_ts + 0.001, 3))
        return self._last_ts

    async def plate(
        self, plate: str, *, lane: str = "in-1", confidence: float = 0.95, image_url: str | None = None
    ) -> None:
        message = PlateResult(plate=plate, confidence=confidence, lane=lane, ts=_now(), image_url=image_url)
        await self.publish_raw(self.plate_topic(lane), encode(message))

    async def container(
        self,
        numbers: tuple[str, ...] | list[str],
        *,
        lane: str = "in-1",
        confidence: float = 0.9,
        image_url: str | None = None,
        types: tuple[str, ...] = (),
    ) -> ContainerResult:
        """What container-number recognition read (0–2 numbers, as read: no check digit is checked),
        with the boxes' size-type codes when it reads them too."""
        message = ContainerResult(
            numbers=tuple(numbers),
            types=tuple(types),
            confidence=confidence,
            lane=lane,
            ts=_now(),
            image_url=image_url,
        )
        await self.publish_raw(self.container_topic(lane), encode(message))
        return message

    async def seal(
        self, ids: tuple[str, ...] | list[str], *, lane: str = "in-1", customs_form: bool = False
    ) -> SealRead:
        """The seal ids read (0–2); `customs_form` sends them as the customs gate does, `"A|B"`."""
        message = SealRead(ids=tuple(ids), lane=lane, ts=_now())
        if customs_form:
            payload = json.dumps({"ids": "|".join(ids), "lane": lane, "ts": message.ts.isoformat()}).encode()
        else:
            payload = encode(message)
        await self.publish_raw(self.seal_topic(lane), payload)
        return message

    async def malformed(self, kind: Malformed, topic: str) -> bytes:
        payload = malformed_payload(kind)
        await self.publish_raw(topic, payload)
        return payload


def _now() -> datetime:
    return datetime.now(UTC)


PLATES = ("粤B12345", "粤BD54321", "港A1234", "澳M5678", "粤Z1234港")


async def scenario(sim: MqttSensorSim, *, interval: float, count: int, malformed_every: int) -> None:
    """A truck at a gate, over and over: loop occupied, plate read, gate opens, loop free, gate closes."""
    steps: list[Any] = [
        lambda: sim.loop(True),
        lambda: sim.plate(random.choice(PLATES), confidence=round(random.uniform(0.8, 1.0), 2)),
        lambda: sim.gate("opening"),
        lambda: sim.gate("open"),
        lambda: sim.loop(False),
        lambda: sim.gate("closing"),
        lambda: sim.gate("closed"),
    ]
    n = step = 0
    while count <= 0 or n < count:
        n += 1
        if malformed_every > 0 and n % malformed_every == 0:  # in between: the truck's cycle stays whole
            kind = random.choice(MALFORMED)
            await sim.malformed(kind, sim.loop_topic())
            log.info("sent malformed payload", extra={"kind": kind})
        else:
            await steps[step % len(steps)]()
            step += 1
        await asyncio.sleep(interval)


def command(
    host: Annotated[str, typer.Option(help="broker address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="broker port")] = 1883,
    username: Annotated[str | None, typer.Option(help="broker username")] = None,
    password: Annotated[
        str | None, typer.Option(help="broker password", envvar="BONDGATE_SIM_MQTT_PASSWORD")
    ] = None,
    prefix: Annotated[str, typer.Option(help="topic prefix")] = "bondgate/sim",
    interval: Annotated[float, typer.Option(help="seconds between messages")] = 1.0,
    count: Annotated[int, typer.Option(help="messages to send (0 = until Ctrl-C)")] = 0,
    malformed_every: Annotated[int, typer.Option(help="every Nth message is malformed (0 = never)")] = 0,
) -> None:
    """Publish simulated gate, loop and plate-camera messages to an MQTT broker."""

    async def main() -> None:
        async with MqttSensorSim(host, port, username=username, password=password, prefix=prefix) as sim:
            await scenario(sim, interval=interval, count=count, malformed_every=malformed_every)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())

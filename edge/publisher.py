"""Local MQTT: each decision (QoS 1) and retained station and device state, for HMIs and PLCs.

MQTT is never the durable record (paho keeps unsent messages in memory only): the outbox is. So
publishing is best effort with a bounded queue; a broker outage loses screen updates, not events.

Topics (prefix `bondgate` by default):
| topic | QoS | retained | payload |
|---|---|---|---|
| `<prefix>/<park>/<station>/decision` | 1 | no | the decision: verdict, codes, reason, weights… |
| `<prefix>/<park>/<station>/state` | 1 | yes | {station, kind, state, faults, last_decision} |
| `<prefix>/<park>/device/<device>/health` | 1 | yes | {device, state, reason, errors} |
| `<prefix>/<park>/agent/status` | 1 | yes | {online, park, edge, since} |

`agent/status` says whether the retained state above is current: `{"online": true, "since": …}` is
published first on every connect, `{"online": false, …}` on an orderly stop, and the broker
publishes the same (the connection's *will*) when the agent vanishes without saying goodbye: at once
when the process dies (a SIGKILL, a crash: its socket closes), after 1.5 × `keepalive_s` when the
machine or the network does (a power cut, a cable pulled).

A message that cannot be published (a topic the broker would refuse, anything paho raises) is logged
(rate-limited) and counted in `failed`; it never ends the publishing task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from devices.health import DeviceError, Health
from devices.transports.mqtt import MqttConnection, Outgoing, clip
from edge.checker import DecisionRecord
from edge.config import LocalMqtt
from edge.stations.base import StationView
from kernel.tasks import cancel_and_wait
from kernel.timefmt import iso_now

log = logging.getLogger(__name__)


def decision_payload(record: DecisionRecord) -> dict[str, Any]:
    return {
        "decision_id": record.decision_id,
        "station": record.station,
        "code": record.code,
        "verdict": record.verdict.value,
        "codes": list(record.codes),
        "reason": record.reason,
        "weight_kg": None if record.weight_kg is None else format(record.weight_kg, "f"),
        "declared_kg": None if record.declared_kg is None else format(record.declared_kg, "f"),
        "goods": record.goods,
        "operator": record.operator,
        "created_at": record.created_at,
    }


FAILURE_LOG_EVERY_S = 60.0  # a publish that fails for a reason of its own: one log line per this


class Publisher:
    def __init__(self, config: LocalMqtt, *, park_id: str, edge_id: str | None = None) -> None:
        self.prefix = f"{config.topic_prefix}/{park_id}"
        self.status_topic = f"{self.prefix}/agent/status"
        self._who = {"park": park_id, "edge": edge_id}
        gone = {"online": False, **self._who, "reason": "connection lost without a goodbye (the will)"}
        self.connection = MqttConnection(
            config.broker,
            name="edge-publisher",
            will=Outgoing(self.status_topic, json.dumps(gone).encode(), qos=1, retain=True),
            birth=self._online,
        )
        self._queue: asyncio.Queue[tuple[str, bytes, bool]] = asyncio.Queue(maxsize=1000)
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.published = 0
        self.failed = 0  # publishes that raised (a topic paho or the broker refuses, a bug)
        self._failure_logged: float | None = None
        self._failures_not_logged = 0

    def _online(self) -> Outgoing:
        """The birth message, made in paho's thread on each connect."""
        body = {"online": True, **self._who, "since": iso_now()}
        return Outgoing(self.status_topic, json.dumps(body).encode(), qos=1, retain=True)

    @property
    def running(self) -> bool:
        """False once the publishing task has ended other than by stop() (it should never)."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        await self.connection.start()
        self._task = asyncio.create_task(self._run(), name="mqtt-publisher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait([task])
        # an orderly stop sends no will: say it ourselves, if the broker is there to hear it
        body = {"online": False, **self._who, "since": iso_now(), "reason": "stopped"}
        with contextlib.suppress(DeviceError, TimeoutError, ValueError):
            await self.connection.publish(
                self.status_topic, json.dumps(body).encode(), qos=1, retain=True, timeout=2
            )
        await self.connection.stop()

    def _put(self, topic: str, payload: dict[str, Any], retain: bool) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait((topic, json.dumps(payload, ensure_ascii=False).encode(), retain))

    def decision(self, record: DecisionRecord) -> None:
        self._put(f"{self.prefix}/{record.station}/decision", decision_payload(record), False)

    def station_state(self, view: StationView) -> None:
        self._put(
            f"{self.prefix}/{view.name}/state",
            {
                "station": view.name,
                "kind": view.kind,
                "state": view.state.value,
                "faults": view.faults,
                "last_decision": decision_payload(view.last) if view.last else None,
            },
            True,
        )

    def device_health(self, device: str, health: Health) -> None:
        self._put(
            f"{self.prefix}/device/{device}/health",
            {"device": device, "state": health.state.value, "reason": health.reason, "errors": health.errors},
            True,
        )

    async def _run(self) -> None:
        while True:
            topic, payload, retain = await self._queue.get()
            try:
                await self.connection.publish(topic, payload, qos=1, retain=retain, timeout=5)
                self.published += 1
            except (DeviceError, TimeoutError) as exc:
                self.dropped += 1
                log.debug("mqtt publish dropped", extra={"topic": clip(topic), "error": str(exc)})
            except Exception as exc:  # a topic paho refuses (ValueError), a bug: lose this one only
                self.failed += 1
                self._log_failure(topic, exc)

    def _log_failure(self, topic: str, exc: Exception) -> None:
        now = time.monotonic()
        if self._failure_logged is not None and now - self._failure_logged < FAILURE_LOG_EVERY_S:
            self._failures_not_logged += 1
            return
        self._failure_logged = now
        log.error(
            "mqtt publish failed",
            extra={
                "topic": clip(topic),
                "error": clip(f"{type(exc).__name__}: {exc}"),
                "failed": self.failed,
                "not_logged": self._failures_not_logged,
            },
        )
        self._failures_not_logged = 0

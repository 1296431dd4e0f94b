"""A gate triggered by an MQTT loop detector: a vehicle is the loop going from free to occupied, not
every message that says "occupied". Loop detectors repeat their state (a heartbeat, a second message
on a flicker); before, each repeat while the barrier was open for a vehicle was taken as a second
vehicle behind it (TAILGATING, barrier closed on the first). Real agent, real Mosquitto, the park's
devices simulated over their real protocols."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.api import create_app
from firmware_sim.mqtt_sensor import MqttSensorSim
from testkit.central_server import run_central
from testkit.mosquitto import Broker
from testkit.park import running_park, wait_until
from tests.edge.stations.test_reads_and_weights_belong import declare


def _loop_triggered(port: int) -> Any:
    def adjust(data: dict[str, Any]) -> None:
        data["devices"]["loops"] = {
            "driver": "mqtt-sensors",
            "broker": {"host": "127.0.0.1", "port": port},
            "sensors": [{"name": "loop1", "type": "loop", "topic": "bondgate/sim/loop/loop1"}],
        }
        gate = next(s for s in data["stations"] if s["name"] == "gate-1")
        gate["trigger"] = {"device": "loops", "point": "loop1"}

    return adjust


def test_a_loop_repeating_occupied_is_one_vehicle_and_a_new_arrival_is_the_next(
    tmp_path: Path, mosquitto: Broker
) -> None:
    with run_central(tmp_path / "central") as central:
        first, second = declare(central, 2)

        async def scenario() -> int:
            async with (
                running_park(
                    tmp_path, central, gate_pulse_s=2.0, adjust=_loop_triggered(mosquitto.port)
                ) as park,
                MqttSensorSim(port=mosquitto.port) as loop,
            ):
                agent = park.agent
                await wait_until(lambda: agent.store.count_clearances() == 2, what="first sync")
                gate = agent.stations["gate-1"]
                await loop.loop(True)
                park.gate_scanner.scan(first)
                await wait_until(lambda: park.io.output("barrier"), what="barrier opening")
                await loop.loop(True)  # the detector repeats its state: the same vehicle
                await loop.loop(True)
                await loop.loop(False)  # it has driven through
                await wait_until(lambda: park.io.output("barrier") is False, what="barrier closed")
                await wait_until(lambda: not gate._busy, what="what the barrier did recorded")
                await wait_until(lambda: agent.store.backlog()["size"] == 0, what="first vehicle recorded")
                await loop.loop(True)  # the next vehicle
                park.gate_scanner.scan(second)
                await wait_until(lambda: gate.decisions == 2, what="the second vehicle decided")
                await wait_until(lambda: agent.store.backlog()["size"] == 0, what="outbox drained")
                return gate.decisions

        assert asyncio.run(scenario()) == 2
    with sqlite3.connect(tmp_path / "edge.db") as conn:
        rows = conn.execute(
            "SELECT code, verdict, codes, actuation_detail FROM decisions"
            " WHERE station = 'gate-1' ORDER BY id"
        ).fetchall()
    assert [r[:3] for r in rows] == [(first, "RELEASE", "[]"), (second, "RELEASE", "[]")]
    assert "closed early" not in rows[0][3]  # the repeats did not cut the first vehicle's pulse short


# --- outside findings: the trigger's level, re-sends, flicker, devices lost --------------------------
LOOP = "bondgate/sim/loop/loop1"


def _loops(
    port: int, *, broker: dict[str, Any] | None = None, max_age_s: float = 5.0, **gate_keys: Any
) -> Any:
    """The gate triggered by loop1 over MQTT; `gate_keys` adjust the gate station (read_before_s 0:
    a label is read after the trigger in these tests, and an outage before it is no part of it)."""

    def adjust(data: dict[str, Any]) -> None:
        _loop_triggered(port)(data)
        data["devices"]["loops"]["broker"].update(broker or {})
        data["devices"]["loops"]["max_age_s"] = max_age_s
        gate = next(s for s in data["stations"] if s["name"] == "gate-1")
        gate.update({"read_before_s": 0.0, **gate_keys})

    return adjust


def loop_payload(occupied: bool, ts: float) -> bytes:
    return json.dumps({"occupied": occupied, "ts": round(ts, 3)}).encode()


def _gate_rows(tmp_path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(tmp_path / "edge.db") as conn:
        return conn.execute(
            "SELECT code, verdict, codes, actuation, actuation_detail FROM decisions"
            " WHERE station = 'gate-1' ORDER BY id"
        ).fetchall()


async def _released(park: Any, loop: MqttSensorSim, code: str, *, ts: float | None = None) -> float:
    """A vehicle onto the loop (occupied, live) with a cleared label; returns its `ts`."""
    gate = park.agent.stations["gate-1"]
    decided = gate.decisions
    t0 = loop.next_ts() if ts is None else ts
    await loop.publish_raw(LOOP, loop_payload(True, t0))
    await _scan_once_checking(park, code)
    await wait_until(lambda: gate.decisions > decided, what="the vehicle decided")
    return t0


async def _scan_once_checking(park: Any, code: str) -> None:
    """The label read once the agent has the vehicle (read_before_s is 0 here)."""
    gate = park.agent.stations["gate-1"]
    await wait_until(lambda: gate.view.state.value == "CHECKING", what="the vehicle being checked")
    park.gate_scanner.scan(code)


async def _settled(park: Any) -> None:
    """The barrier closed and every record (the actuation too) written and sent."""
    gate = park.agent.stations["gate-1"]
    await wait_until(lambda: park.io.output("barrier") is False and not gate._busy, what="barrier closed")
    await wait_until(lambda: park.agent.store.backlog()["size"] == 0, what="outbox drained")


def _take_session(port: int, client_id: str, *publish: tuple[str, bytes]) -> None:
    """Another client connects with the agent's client id (the broker drops the agent's connection),
    publishes `publish` retained, and leaves: what the agent finds when it is back."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.connect("127.0.0.1", port, 30)
    client.loop_start()
    try:
        for topic, payload in publish:
            client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_free_that_arrives_stale_still_frees_the_loop_for_the_next_vehicle(
    tmp_path: Path, mosquitto: Broker
) -> None:
    """Outside finding (s1 a): the loop's "free" reached the agent only stale (its `ts` older than
    max_age_s: it waited in the sensor's buffer): the gate kept the loop occupied and the next vehicle
    got no decision at all. /api/devices shows the sensor's counters."""
    with run_central(tmp_path / "central") as central:
        first, second = declare(central, 2)

        async def scenario() -> dict[str, Any]:
            adjust = _loops(mosquitto.port, max_age_s=1.0)
            async with (
                running_park(tmp_path, central, gate_pulse_s=1.2, adjust=adjust) as park,
                MqttSensorSim(port=mosquitto.port) as loop,
            ):
                agent = park.agent
                await wait_until(lambda: agent.store.count_clearances() == 2, what="first sync")
                t0 = await _released(park, loop, first)
                await _settled(park)  # window 0.5 s + pulse 1.2 s: the free below is newer than t0
                free_ts = time.time() - 1.5
                assert free_ts > t0
                await loop.publish_raw(LOOP, loop_payload(False, free_ts))  # stale: state only
                driver = agent.hub.drivers["loops"]
                await wait_until(lambda: driver.stale["loop1"] == 1, what="the stale free received")
                await _released(park, loop, second)  # the next vehicle: an arrival
                await _settled(park)
                transport = httpx.ASGITransport(app=create_app(agent))
                async with httpx.AsyncClient(transport=transport, base_url="http://edge") as api:
                    login = await api.post("/api/login", json={"name": "olga", "password": "olga-pass"})
                    token = login.json()["token"]
                    devices = await api.get("/api/devices", headers={"Authorization": f"Bearer {token}"})
                return devices.json()["loops"]

        loops = asyncio.run(scenario())
    assert [r[:3] for r in _gate_rows(tmp_path)] == [(first, "RELEASE", "[]"), (second, "RELEASE", "[]")]
    counters = loops["details"]["sensors"]["loop1"]
    assert (counters["accepted"], counters["stale"], counters["rejected"]) == (2, 1, 0)


def test_a_free_that_comes_back_retained_after_a_reconnect_frees_the_loop(
    tmp_path: Path, mosquitto: Broker
) -> None:
    """Outside finding (s1 b): the vehicle left the loop while the agent's connection was down; the
    sensor's "free" reached the agent only as the broker's retained message on re-subscribe, and the
    gate kept the loop occupied: the next vehicle got no decision."""
    with run_central(tmp_path / "central") as central:
        first, second = declare(central, 2)

        async def scenario() -> None:
            # the agent reconnects 1 s after losing its session: the retained free is there by then
            broker = {"client_id": "loops-under-test", "reconnect_min_s": 1.0}
            adjust = _loops(mosquitto.port, broker=broker)
            async with (
                running_park(tmp_path, central, adjust=adjust) as park,
                MqttSensorSim(port=mosquitto.port) as loop,
            ):
                agent = park.agent
                driver = agent.hub.drivers["loops"]
                await wait_until(lambda: agent.store.count_clearances() == 2, what="first sync")
                await _released(park, loop, first)
                await _settled(park)
                failures = driver.connection.failures
                free = loop_payload(False, loop.next_ts())
                await asyncio.to_thread(_take_session, mosquitto.port, "loops-under-test", (LOOP, free))
                await wait_until(lambda: driver.connection.failures > failures, what="the agent cut off")
                await wait_until(lambda: driver.supervisor.health.state.value == "UP", what="back")
                await wait_until(lambda: LOOP in driver.known and driver.retained["loop1"] == 1, what="state")
                assert driver.known[LOOP].retained and not driver.known[LOOP].payload.occupied
                await _released(park, loop, second)
                await _settled(park)

        asyncio.run(scenario())
    assert [r[:3] for r in _gate_rows(tmp_path)] == [(first, "RELEASE", "[]"), (second, "RELEASE", "[]")]


def test_a_vehicle_following_after_a_stale_free_while_the_barrier_is_open_is_tailgating(
    tmp_path: Path, mosquitto: Broker
) -> None:
    """Outside finding (s10 b): A released, the barrier open; A's "free" arrives stale, then B drives
    onto the loop: B passed unrecorded with the barrier open for A's whole pulse."""
    with run_central(tmp_path / "central") as central:
        [first] = declare(central, 1)

        async def scenario() -> None:
            adjust = _loops(mosquitto.port, max_age_s=1.0, window_s=1.5)
            async with (
                running_park(tmp_path, central, gate_pulse_s=30.0, adjust=adjust) as park,
                MqttSensorSim(port=mosquitto.port) as loop,
            ):
                agent = park.agent
                gate = agent.stations["gate-1"]
                await wait_until(lambda: agent.store.count_clearances() == 1, what="first sync")
                t0 = await _released(park, loop, first)
                io = agent.hub.drivers["io1"]
                await wait_until(lambda: io.inputs.get("barrier_open"), what="barrier seen open")
                free_ts = time.time() - 1.2  # A has left: its free, stale (the window was 1.5 s)
                assert free_ts > t0
                await loop.publish_raw(LOOP, loop_payload(False, free_ts))
                await loop.loop(True)  # B, live
                await wait_until(lambda: gate.decisions == 2, what="B recorded")
                await _settled(park)  # closed long before the 30 s pulse would have ended

        asyncio.run(scenario())
    rows = _gate_rows(tmp_path)
    assert [r[:4] for r in rows] == [
        (first, "RELEASE", "[]", "confirmed"),
        (None, "HOLD", '["NO_READ","TAILGATING"]', "confirmed"),
    ]
    assert "closed early: a second arrival" in rows[0][4]


def test_a_resent_occupied_after_the_free_is_no_second_vehicle(tmp_path: Path, mosquitto: Broker) -> None:
    """Outside finding (s3 a): a QoS 1 re-send of the loop's "occupied" arriving after its "free" was
    taken as a second vehicle: TAILGATING, and the barrier closed early on a cleared vehicle."""
    with run_central(tmp_path / "central") as central:
        [first] = declare(central, 1)

        async def scenario() -> None:
            async with (
                running_park(tmp_path, central, gate_pulse_s=2.0, adjust=_loops(mosquitto.port)) as park,
                MqttSensorSim(port=mosquitto.port) as loop,
            ):
                agent = park.agent
                await wait_until(lambda: agent.store.count_clearances() == 1, what="first sync")
                t0 = await _released(park, loop, first)
                await wait_until(lambda: park.io.output("barrier"), what="barrier opening")
                await loop.publish_raw(LOOP, loop_payload(False, t0 + 0.2))
                await loop.publish_raw(LOOP, loop_payload(True, t0))  # the re-send of the first message
                driver = agent.hub.drivers["loops"]
                await wait_until(lambda: driver.out_of_order["loop1"] == 1, what="the re-send dropped")
                await _settled(park)

        asyncio.run(scenario())
    rows = _gate_rows(tmp_path)
    assert [r[:4] for r in rows] == [(first, "RELEASE", "[]", "confirmed")]
    assert "closed early" not in rows[0][4]


def test_a_loop_flicker_is_one_vehicle_and_a_real_gap_is_the_next(tmp_path: Path, mosquitto: Broker) -> None:
    """Outside finding (s9): occupied / free / occupied within 100 ms (by the sensor's ts: a trailer's
    drawbar gap) gave two decisions, the second a HOLD for TAILGATING."""
    with run_central(tmp_path / "central") as central:
        first, second = declare(central, 2)

        async def scenario() -> int:
            async with (
                running_park(tmp_path, central, adjust=_loops(mosquitto.port)) as park,
                MqttSensorSim(port=mosquitto.port) as loop,
            ):
                agent = park.agent
                gate = agent.stations["gate-1"]
                await wait_until(lambda: agent.store.count_clearances() == 2, what="first sync")
                t = time.time()
                for occupied, dt in ((True, 0.0), (False, 0.05), (True, 0.1)):
                    await loop.publish_raw(LOOP, loop_payload(occupied, t + dt))
                await _scan_once_checking(park, first)
                await wait_until(lambda: gate.decisions == 1, what="the vehicle decided")
                await _settled(park)
                assert gate.decisions == 1 and gate.flickers == 1
                await loop.publish_raw(LOOP, loop_payload(False, t + 0.2))  # it has driven off
                await _released(park, loop, second)  # free since t + 0.2, by far longer than 0.3 s
                await _settled(park)
                return gate.decisions

        assert asyncio.run(scenario()) == 2
    rows = _gate_rows(tmp_path)
    assert [r[:4] for r in rows] == [
        (first, "RELEASE", "[]", "confirmed"),
        (second, "RELEASE", "[]", "confirmed"),
    ]
    assert "closed early" not in rows[0][4]


def test_the_trigger_device_lost_while_the_barrier_is_open_closes_it(
    tmp_path: Path, mosquitto: Broker
) -> None:
    """Outside finding (s4 a): the broker died with the barrier open; the trigger sensor (what sees a
    vehicle following) was DOWN, yet the barrier stayed open for the rest of its pulse and the record
    said "opened … and closed"."""
    with run_central(tmp_path / "central") as central:
        [first] = declare(central, 1)

        async def scenario() -> None:
            async with (
                running_park(tmp_path, central, gate_pulse_s=30.0, adjust=_loops(mosquitto.port)) as park,
                MqttSensorSim(port=mosquitto.port) as loop,
            ):
                agent = park.agent
                await wait_until(lambda: agent.store.count_clearances() == 1, what="first sync")
                await _released(park, loop, first)
                io = agent.hub.drivers["io1"]
                await wait_until(lambda: io.inputs.get("barrier_open"), what="barrier seen open")
                mosquitto.stop()
                await wait_until(lambda: park.io.output("barrier") is False, what="barrier closed")
                await _settled(park)

        asyncio.run(scenario())
    [row] = _gate_rows(tmp_path)
    assert row[:4] == (first, "RELEASE", "[]", "confirmed")
    assert row[4] == "barrier opened, closed early: loops lost"


def test_a_vehicle_whose_trigger_device_was_down_in_its_window_is_held(
    tmp_path: Path, mosquitto: Broker
) -> None:
    """Outside finding (s4 b): the sensors' broker connection lost and back inside a vehicle's window,
    UP again by the decision: the vehicle was released as if it had been fully seen."""
    with run_central(tmp_path / "central") as central:
        [first] = declare(central, 1)

        async def scenario() -> None:
            broker = {"client_id": "loops-under-test"}
            adjust = _loops(mosquitto.port, broker=broker, window_s=3.0)
            async with (
                running_park(tmp_path, central, adjust=adjust) as park,
                MqttSensorSim(port=mosquitto.port) as loop,
            ):
                agent = park.agent
                gate = agent.stations["gate-1"]
                driver = agent.hub.drivers["loops"]
                await wait_until(lambda: agent.store.count_clearances() == 1, what="first sync")
                await loop.loop(True)
                await _scan_once_checking(park, first)
                failures = driver.connection.failures
                await asyncio.to_thread(_take_session, mosquitto.port, "loops-under-test")
                await wait_until(lambda: driver.connection.failures > failures, what="the agent cut off")
                await wait_until(lambda: driver.supervisor.health.state.value == "UP", what="back")
                assert gate.decisions == 0  # back before the window closed (3 s)
                await wait_until(lambda: gate.decisions == 1, what="the vehicle decided")
                await _settled(park)

        asyncio.run(scenario())
    [row] = _gate_rows(tmp_path)
    assert row[:4] == (first, "HOLD", '["DEVICE_FAULT"]', "confirmed")

"""A gate triggered by an MQTT loop detector: a vehicle is the loop going from free to occupied, not
every message that says "occupied". Loop detectors repeat their state (a heartbeat, a second message
on a flicker); before, each repeat while the barrier was open for a vehicle was taken as a second
vehicle behind it (TAILGATING, barrier closed on the first). Real agent, real Mosquitto, the park's
devices simulated over their real protocols."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from firmware_sim.mqtt_sensor import MqttSensorSim
from tests.edge.test_reads_and_weights_belong import declare
from tests.support.central_server import run_central
from tests.support.mosquitto import Broker
from tests.support.park import running_park, wait_until


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

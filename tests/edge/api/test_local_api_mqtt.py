"""The edge's local HTTP API (logins, roles, typed codes, overrides) on a real uvicorn, and the
decisions and retained state it publishes on a real Mosquitto, read back with mosquitto_sub."""

from __future__ import annotations

import asyncio
import json
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import uvicorn
from paho.mqtt.enums import CallbackAPIVersion

from devices.health import Health, State
from devices.transports.mqtt import BrokerConfig
from edge.api import create_app
from edge.config import LocalMqtt
from edge.publisher import Publisher
from testkit import factories
from testkit.central_server import run_central
from testkit.mosquitto import Broker
from testkit.park import put_on_bench, running_park, wait_until
from testkit.processes import agent_process, edge_config, write_edge_config


def declare(central, n: int) -> list[factories.DocumentSet]:  # type: ignore[no-untyped-def]
    sets = factories.document_set(n)
    batch = {"documents": [d.model_dump(mode="json") for s in sets for d in s.documents]}
    central.client("enterprise").post("/api/v1/documents", json=batch).raise_for_status()
    return sets


def test_api_logins_roles_typed_codes_and_overrides(tmp_path: Path, mosquitto) -> None:  # type: ignore[no-untyped-def]
    with run_central(tmp_path / "central") as central:
        sets = declare(central, 2)
        mqtt = {"broker": {"host": mosquitto.host, "port": mosquitto.port}}

        async def scenario() -> list[str]:
            async with running_park(tmp_path, central, mqtt=mqtt) as park:
                agent = park.agent
                await wait_until(lambda: agent.store.count_clearances() == 2, what="sync")
                server = uvicorn.Server(
                    uvicorn.Config(
                        create_app(agent), host="127.0.0.1", port=0, log_config=None, lifespan="off"
                    )
                )
                task = asyncio.create_task(server.serve())
                await wait_until(lambda: server.started, what="api up")
                port = server.servers[0].sockets[0].getsockname()[1]
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api:
                    assert (await api.get("/api/stations")).status_code == 401
                    bad = await api.post("/api/login", json={"name": "olga", "password": "nope"})
                    assert bad.status_code == 401
                    olga = (
                        await api.post("/api/login", json={"name": "olga", "password": "olga-pass"})
                    ).json()
                    sam = (await api.post("/api/login", json={"name": "sam", "password": "sam-pass"})).json()
                    as_olga = {"Authorization": f"Bearer {olga['token']}"}
                    as_sam = {"Authorization": f"Bearer {sam['token']}"}
                    # a label that will not scan: the operator types the code; the bench scale is empty
                    await put_on_bench(park, Decimal("2.5"))
                    typed = await api.post(
                        "/api/stations/bench-1/code",
                        headers=as_olga,
                        json={"code": sets[0].waybill.logisticsNo},
                    )
                    held = typed.json()
                    assert held["verdict"] == "HOLD" and held["codes"] == ["WEIGHT_MISMATCH"]
                    assert held["operator"] == "olga"
                    queue = (await api.get("/api/discrepancies", headers=as_olga)).json()
                    assert queue[0]["decision_id"] == held["decision_id"]
                    # an operator may not override; a supervisor may, with a reason, and it is audited
                    body = {
                        "decision_id": held["decision_id"],
                        "reason": "scale plate dirty, reweighed by hand",
                    }
                    refused = await api.post("/api/stations/bench-1/override", headers=as_olga, json=body)
                    assert refused.status_code == 403
                    # two supervisors' clicks at once: one override, the other refused (both passed once)
                    both = await asyncio.gather(
                        api.post("/api/stations/bench-1/override", headers=as_sam, json=body),
                        api.post("/api/stations/bench-1/override", headers=as_sam, json=body),
                    )
                    assert sorted(r.status_code for r in both) == [200, 409], [r.text for r in both]
                    done = next(r for r in both if r.status_code == 200).json()
                    assert done["verdict"] == "RELEASE" and "sam" in done["operator"]
                    # hostile inputs are a 422, not a 500
                    huge = await api.get("/api/discrepancies", headers=as_olga, params={"limit": "1e20"})
                    assert huge.status_code == 422
                    surrogate = await api.post(
                        "/api/stations/bench-1/code",
                        headers=as_olga,
                        content=b'{"code": "SF\\ud800"}',
                    )
                    assert surrogate.status_code == 422
                    # a reason that cannot be stored is refused, and the refusal itself can be written
                    # (the 422 echoed the lone surrogate and failed as a 500: outside attack, issue 12)
                    bad_reason = await api.post(
                        "/api/stations/bench-1/override",
                        headers={**as_sam, "content-type": "application/json"},
                        content=b'{"decision_id": "d-1", "reason": "reweighed \\ud800 by hand"}',
                    )
                    assert bad_reason.status_code == 422, bad_reason.text
                    assert "\ufffd" in bad_reason.text or "\\ufffd" in bad_reason.text
                    queue = (await api.get("/api/discrepancies", headers=as_olga)).json()
                    assert all(q["decision_id"] != held["decision_id"] for q in queue)
                    # a customs finding cannot be overridden
                    await put_on_bench(park, Decimal("0.8"))
                    unknown = (
                        await api.post(
                            "/api/stations/bench-1/code", headers=as_olga, json={"code": "NOT-DECLARED-1"}
                        )
                    ).json()
                    assert unknown["codes"] == ["NOT_FOUND"]
                    no = await api.post(
                        "/api/stations/bench-1/override",
                        headers=as_sam,
                        json={"decision_id": unknown["decision_id"], "reason": "I know it"},
                    )
                    assert no.status_code == 409
                    status = (await api.get("/api/status", headers=as_olga)).json()
                    assert status["sync"]["records"] == 2
                    assert status["store"]["checkpoints"]["failures"] == 0
                    devices = (await api.get("/api/devices", headers=as_olga)).json()
                    assert devices["bench_scale"]["state"] == "UP"
                    metrics = await api.get("/metrics")
                    assert "bondgate_edge_outbox_events" in metrics.text
                await wait_until(lambda: agent.publisher.published >= 4, what="mqtt publishes")
                await wait_until(lambda: agent.store.backlog()["size"] == 0, what="outbox drained")
                server.should_exit = True
                await task
                return [held["decision_id"], done["decision_id"], unknown["decision_id"]]

        ids = asyncio.run(scenario())
        # the retained station state is there for a screen that connects later
        out = subprocess.run(
            [
                "mosquitto_sub",
                "-h",
                mosquitto.host,
                "-p",
                str(mosquitto.port),
                "-t",
                "bondgate/P1/bench-1/state",
                "-C",
                "1",
                "-W",
                "5",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        )
        state = json.loads(out.stdout)
        assert state["last_decision"]["decision_id"] == ids[2] and state["state"] == "HOLD"
        assert state["last_decision"]["codes"] == ["NOT_FOUND"]
        events = central.client("officer").get("/api/v1/parks/P1/report").json()
        assert events["released_without_clearance"]["total"] == 0


# --- the agent's own status: online, or gone (outside finding s7) ------------------------------------
def test_screens_see_the_agent_gone_when_it_is_killed_and_back_when_it_restarts(
    tmp_path: Path, mosquitto: Broker
) -> None:
    """Before, the agent set no will: after a SIGKILL a screen still saw every device UP and the
    station's last state as current, for ever. Now `bondgate/<park>/agent/status` (retained) says
    online on every connect, and the broker itself says offline when the connection ends without a
    goodbye (the will); an orderly stop says so too."""
    statuses: list[dict[str, Any]] = []
    screen = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="screen-under-test")
    screen.on_message = lambda _c, _u, msg: statuses.append(json.loads(msg.payload))
    screen.connect(mosquitto.host, mosquitto.port, 30)
    screen.subscribe("bondgate/P1/agent/status", qos=1)
    screen.loop_start()

    async def seen(online: bool, count: int) -> dict[str, Any]:
        await wait_until(lambda: len(statuses) >= count, what=f"status #{count}")
        assert statuses[count - 1]["online"] is online, statuses
        return statuses[count - 1]

    async def scenario(agent: Any) -> None:
        agent.start()
        await agent.started()
        first = await seen(True, 1)
        assert (first["park"], first["edge"]) == ("P1", "edge-p1") and first["since"]
        agent.kill()  # SIGKILL: no goodbye, the kernel closes the socket
        gone = await seen(False, 2)
        assert "will" in gone["reason"]
        agent.start()
        await agent.started()
        await seen(True, 3)
        agent.terminate()
        assert (await seen(False, 4))["reason"] == "stopped"

    try:
        with run_central(tmp_path / "central") as central:
            data = edge_config(
                tmp_path,
                central,
                devices={},
                stations=[],
                mqtt={"broker": {"host": mosquitto.host, "port": mosquitto.port}},
            )
            config = write_edge_config(tmp_path / "edge.toml", data)
            with agent_process(config, tmp_path / "agent.log") as agent:
                asyncio.run(asyncio.wait_for(scenario(agent), 120))
    finally:
        screen.loop_stop()
        screen.disconnect()


def test_a_publish_that_raises_is_counted_and_never_ends_the_publisher(mosquitto: Broker) -> None:
    """Outside finding (s6): a health topic paho refused (a device named "gate+scanner") raised
    ValueError in the publisher's task, which died silently: nothing was published again. A NUL in a
    topic made the broker drop the connection, and paho sent it again after every reconnect."""

    async def scenario() -> None:
        publisher = Publisher(
            LocalMqtt(broker=BrokerConfig(host=mosquitto.host, port=mosquitto.port)), park_id="P1"
        )
        await publisher.start()
        try:
            await publisher.connection.wait_ready(10)
            health = Health("x", State.UP)
            publisher.device_health("gate+scanner", health)
            publisher.device_health("gate\x00scanner", health)
            publisher.device_health("gate_scanner", health)
            await wait_until(lambda: publisher.published >= 1, what="the good one published")
            assert publisher.failed == 2 and publisher.running
            assert publisher.connection.failures == 0  # never dropped by the broker
        finally:
            await publisher.stop()

    asyncio.run(scenario())

"""Every long-lived task of the agent runs supervised (issue 9 C.2).

The agent runs as a real process with its database on a tiny filesystem of its own
(testkit/tiny_disk.py). A fake central in front of the real one fills that filesystem at the
moment the real central has acknowledged an upload, so the edge's acknowledging commit fails with
SQLITE_FULL — for real, no mock. The uplink task must not die silently: it is DOWN in /api/status,
/healthz answers 503 naming it, one log line says so; once space is back it is restarted, the outbox
drains again and one log line says it recovered. Where user namespaces are not available that test
is skipped; the second one needs nothing: SQLite's own page limit on the agent's writer connection
fills the database for the heartbeat, in process.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bondgate.processes import free_port
from edge.agent import Agent
from edge.api import create_app
from edge.auth import hash_password
from edge.config import EdgeSettings
from kernel.config import toml_dumps
from kernel.wire import public_key_pem
from testkit.central_server import RunningCentral
from testkit.fake_central import Answer, Request, fake_central
from testkit.park import wait_until
from testkit.processes import AgentProcess, agent_process, edge_config, write_edge_config
from testkit.tiny_disk import TinyDisk, WalPin, unavailable

FAILED, RECOVERED = "task failed; restarting it with backoff", "task recovered"


def central_last_seq(central: RunningCentral) -> int:
    with central.client("officer") as officer:
        edges = officer.get("/api/v1/parks/P1/edges").raise_for_status().json()
    return next((e["last_seq"] for e in edges if e["edge_id"] == "edge-p1"), 0)


def log_lines(agent: AgentProcess, msg: str, task: str) -> list[dict[str, Any]]:
    return [r for r in agent.records() if r.get("msg") == msg and r.get("task") == task]


@pytest.mark.timeout(120)
def test_disk_full_when_central_acknowledges_leaves_the_uplink_down_visibly_and_it_recovers(
    tmp_path: Path, central: RunningCentral
) -> None:
    if (why := unavailable()) is not None:
        pytest.skip(why)
    disk = TinyDisk(tmp_path / "disk")
    fill_at_ack = threading.Event()
    filled = threading.Event()

    def in_front(request: Request, forward: Any) -> Answer:
        answer = forward()  # the real central stores the events and answers
        events = request.method == "POST" and request.path.endswith("/events")
        if events and answer.status == 200 and fill_at_ack.is_set() and not filled.is_set():
            disk.fill()  # full just before the edge hears the acknowledgement
            filled.set()
        return answer

    with fake_central(in_front, forward_to=central.url) as proxy:
        api_port = free_port()
        data = edge_config(
            tmp_path,
            central,
            devices={},
            stations=[],
            database=disk.mount_point / "edge.db",
            heartbeat_s=0.3,
            api={
                "host": "127.0.0.1",
                "port": api_port,
                "users": [{"name": "olga", "role": "operator", "password_hash": hash_password("olga-pass")}],
            },
        )
        data["central"]["url"] = proxy.url
        config = write_edge_config(tmp_path / "edge.toml", data)
        with agent_process(config, tmp_path / "agent.log", wrap=disk.wrap()) as agent:
            agent.start()
            disk.pid = agent.pid
            asyncio.run(_scenario(agent, central, disk, fill_at_ack, filled, f"http://127.0.0.1:{api_port}"))


async def _scenario(
    agent: AgentProcess,
    central: RunningCentral,
    disk: TinyDisk,
    fill_at_ack: threading.Event,
    filled: threading.Event,
    api_url: str,
) -> None:
    await agent.started()
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as api:
        await wait_until(lambda: central_last_seq(central) >= 2, timeout=30, what="heartbeats delivered")
        assert (await api.get("/healthz")).status_code == 200
        login = await api.post("/api/login", json={"name": "olga", "password": "olga-pass"})
        headers = {"Authorization": f"Bearer {login.json()['token']}"}

        pin = await asyncio.to_thread(WalPin, disk, "edge.db")
        try:
            fill_at_ack.set()
            await wait_until(filled.is_set, timeout=30, what="the disk filled at an acknowledgement")

            async def unhealthy() -> dict[str, Any] | None:
                answer = await api.get("/healthz")
                return answer.json() if answer.status_code == 503 else None

            health = await _until_async(unhealthy, timeout=30, what="/healthz 503")
            [reason] = [r for r in health["reasons"] if r.startswith("task uplink down")]
            assert "database or disk is full" in reason
            assert health["status"] == "unhealthy"
            status = (await api.get("/api/status", headers=headers)).json()
            uplink = status["tasks"]["uplink"]
            assert uplink["state"] == "DOWN" and "database or disk is full" in uplink["last_error"]
            assert len(log_lines(agent, FAILED, "uplink")) == 1
            # the events central took are still in the outbox: they will be sent again
            assert central_last_seq(central) > status["uplink"]["acked_seq"]
            assert status["uplink"]["size"] > 0
        finally:
            pin.close()
            disk.free()

        # space again: the uplink is restarted, the outbox drains, and the agent says it recovered
        target = status["uplink"]["last_seq"]

        async def drained() -> bool:
            uplink = (await api.get("/api/status", headers=headers)).json()["uplink"]
            return uplink["acked_seq"] >= target and central_last_seq(central) >= target

        await _until_async(drained, timeout=60, what="the outbox drained again")

        async def healthy() -> bool:
            return (await api.get("/healthz")).status_code == 200

        await _until_async(healthy, timeout=30, what="/healthz 200 again")
        assert len(log_lines(agent, FAILED, "uplink")) == 1  # one line for the outage, not one per retry
        assert len(log_lines(agent, RECOVERED, "uplink")) == 1
        status = (await api.get("/api/status", headers=headers)).json()
        assert status["tasks"]["uplink"]["state"] == "UP" and status["tasks"]["uplink"]["failures"] >= 1
    assert agent.terminate() == 0, agent.tail()


async def _until_async(check: Any, *, timeout: float, what: str) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            if value := await check():
                return value
            await asyncio.sleep(0.05)
    raise AssertionError(what)


def test_a_full_database_takes_the_heartbeat_down_visibly_and_it_recovers(tmp_path: Path) -> None:
    """In process, without a tiny filesystem: the agent's own writer connection may grow the database
    no further (SQLite's max_page_count, a real SQLITE_FULL), central is away so nothing is deleted,
    and the heartbeat's next commit fails. It is DOWN, /healthz says why; given room, it recovers."""
    key = tmp_path / "central-feed.pem"
    key.write_text(public_key_pem(Ed25519PrivateKey.generate().public_key()))
    settings = EdgeSettings(
        park_id="P1",
        edge_id="edge-p1",
        database=tmp_path / "edge.db",
        evidence_dir=tmp_path / "evidence",
        heartbeat_s=0.02,
        central={"url": f"http://127.0.0.1:{free_port()}", "token": "bg_unused_token", "public_key": key},
    )

    async def scenario() -> None:
        agent = Agent(settings)
        agent.tasks.settle_s = 0.5
        await agent.start()
        server = uvicorn.Server(
            uvicorn.Config(create_app(agent), host="127.0.0.1", port=0, log_config=None, lifespan="off")
        )
        serving = asyncio.create_task(server.serve())
        try:
            await wait_until(lambda: server.started, what="api up")
            port = server.servers[0].sockets[0].getsockname()[1]
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api:
                assert (await api.get("/healthz")).status_code == 200
                pages = await agent.store.write(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
                await agent.store.write(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))

                async def unhealthy() -> dict[str, Any] | None:
                    answer = await api.get("/healthz")
                    return answer.json() if answer.status_code == 503 else None

                health = await _until_async(unhealthy, timeout=30, what="/healthz 503")
                [reason] = health["reasons"]
                assert reason.startswith("task heartbeat down") and "database or disk is full" in reason
                await agent.store.write(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))

                async def healthy() -> bool:
                    return (await api.get("/healthz")).status_code == 200

                await _until_async(healthy, timeout=30, what="/healthz 200 again")
                heartbeat = agent.tasks.health()["heartbeat"]
                assert heartbeat.state.value == "UP" and heartbeat.failures >= 1
        finally:
            server.should_exit = True
            await serving
            await agent.stop()

    asyncio.run(scenario())


def test_healthz_says_so_when_nothing_is_delivered_or_pulled_for_too_long(tmp_path: Path) -> None:
    """Central unreachable (or refusing, lying, a wrong token): the agent decides on, but /healthz —
    200 all along before — answers 503 once events have waited, and the feed gone unpulled, longer
    than [central] alarm_after_s."""
    from testkit.standalone_edge import api_url, offline_central, standalone_config

    with offline_central() as url:
        data = standalone_config(tmp_path, url, heartbeat_s=0.2, central={"alarm_after_s": 1.0})
        config = tmp_path / "edge.toml"
        config.write_text(toml_dumps(data), encoding="utf-8")
        with agent_process(config, tmp_path / "agent.log") as agent:
            agent.start()

            async def probe() -> dict[str, Any]:
                base = await api_url(agent)
                async with httpx.AsyncClient(base_url=base, timeout=10) as api:

                    async def unhealthy() -> dict[str, Any] | None:
                        answer = await api.get("/healthz")
                        both = "not delivered" in answer.text and "feed last pulled" in answer.text
                        return answer.json() if answer.status_code == 503 and both else None

                    deadline = asyncio.get_running_loop().time() + 30
                    while (found := await unhealthy()) is None:
                        assert asyncio.get_running_loop().time() < deadline, "no 503 from /healthz"
                        await asyncio.sleep(0.1)
                    return found

            health = asyncio.run(probe())
    reasons = " | ".join(health["reasons"])
    assert "event(s) not delivered" in reasons and "clearance feed last pulled never" in reasons

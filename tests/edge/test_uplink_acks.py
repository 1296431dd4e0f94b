"""The uplink trusts nothing it did not send (issue 9 C.1).

A fake central (a real HTTP server written here, testkit/fake_central.py) answers uploads the
way an impostor, a broken proxy or a restored central would; the real edge code must delete nothing
it cannot prove central holds, count and log the refusal, show it in its status, and still deliver
everything to the real central afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bondgate.processes import free_port
from edge import acks
from edge.auth import hash_password
from edge.store import Store, new_event
from edge.uplink import AckRefused, EventsRefused, Uplink
from kernel.wire import EventBody, EventKind
from testkit.central_server import RunningCentral, run_central
from testkit.fake_central import Answer, Request, fake_central
from testkit.processes import AgentProcess, agent_process, edge_config, write_edge_config

EDGE = "edge-p1"  # the edge id the test token is bound to


def add_events(store: Store, n: int) -> None:
    def work(conn):  # type: ignore[no-untyped-def]
        for i in range(n):
            new_event(
                conn,
                edge_id=EDGE,
                kind=EventKind.HEARTBEAT,
                station=None,
                body=EventBody(backlog=i),
                occurred_at=datetime.now(UTC),
            )

    store.write_sync(work)


def outbox_seqs(store: Store) -> list[int]:
    return [seq for seq, _ in store.pending_rows(10_000)]


def upload_once(
    store: Store, url: str, token: str = "t", batch_size: int = 500
) -> tuple[Uplink, BaseException | None]:
    async def run() -> tuple[Uplink, BaseException | None]:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
            uplink = Uplink(store=store, client=client, park_id="P1", edge_id=EDGE, batch_size=batch_size)
            try:
                await uplink.send_once()
            except (AckRefused, EventsRefused) as exc:
                return uplink, exc
            return uplink, None

    return asyncio.run(run())


def drain_to(store: Store, url: str, token: str) -> None:
    async def run() -> None:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
            await Uplink(store=store, client=client, park_id="P1", edge_id=EDGE, batch_size=7).drain()

    asyncio.run(run())


def answering(body: Any, status: int = 200) -> Callable[[Request, Callable[[], Answer]], Answer]:
    return lambda request, forward: Answer(status, body)


# --- the tester's finding, end to end ---------------------------------------------------------


def test_an_ack_of_a_billion_deletes_nothing_and_the_real_central_still_takes_the_chain(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path / "edge.db")
    add_events(store, 10)
    lie = answering({"acked_seq": 10**9, "stored": 10, "duplicates": 0, "refused": []})
    with fake_central(lie) as fake, caplog.at_level(logging.ERROR, logger="edge.uplink"):
        uplink, error = upload_once(store, fake.url)
    assert isinstance(error, AckRefused)
    assert outbox_seqs(store) == list(range(1, 11))  # nothing deleted
    assert store.backlog()["acked_seq"] == 0
    assert uplink.status.acks_refused == 1 and uplink.status.sent == 0
    assert "beyond this edge's chain" in (uplink.status.last_ack_problem or "")
    [logged] = [r for r in caplog.records if "answer refused" in r.getMessage()]
    assert "10" in logged.problem  # type: ignore[attr-defined]
    # the real central was never lied to about this edge: it takes the whole chain, once
    with run_central(tmp_path / "c") as central:
        drain_to(store, central.url, central.tokens["edge"])
        [edge] = central.client("officer").get("/api/v1/parks/P1/edges").json()
    assert (edge["edge_id"], edge["last_seq"]) == (EDGE, 10)
    assert outbox_seqs(store) == [] and store.backlog()["acked_seq"] == 10
    store.close()


# --- every other lie, each against the same outbox ------------------------------------------------

LIES = [
    pytest.param(b"<html>gateway</html>", "not an acknowledgement", id="not-json"),
    pytest.param([1, 2], "not an acknowledgement", id="a-list"),
    pytest.param({}, "acked_seq", id="no-acked-seq"),
    pytest.param({"acked_seq": "10"}, "acked_seq", id="acked-seq-a-string"),
    pytest.param({"acked_seq": True}, "acked_seq", id="acked-seq-a-bool"),
    pytest.param({"acked_seq": -1}, "acked_seq", id="negative"),
    pytest.param({"acked_seq": 2**70}, "beyond this edge's chain", id="huge"),
    pytest.param({"acked_seq": 11}, "beyond this edge's chain", id="one-past-the-head"),
    pytest.param({"acked_seq": 3}, "goes backwards", id="backwards"),
    pytest.param({"acked_seq": 4}, "took none", id="nothing-taken-nothing-refused"),
    pytest.param({"acked_seq": 10, "epoch": 2}, "epoch 2", id="another-epoch"),
    pytest.param(
        {"acked_seq": 10, "refused": [{"seq": 99, "reason": "x", "code": "conflict"}]},
        "did not carry",
        id="refuses-what-was-not-sent",
    ),
    pytest.param({"acked_seq": 10, "refused": "none"}, "refused", id="refused-not-a-list"),
]


@pytest.mark.parametrize(("lie", "why"), LIES)
def test_an_answer_that_claims_what_the_request_did_not_carry_deletes_nothing(
    tmp_path: Path, lie: Any, why: str
) -> None:
    """Seqs 1..4 were acknowledged earlier; the request carries 5..10 and the answer lies."""
    store = Store(tmp_path / "edge.db")
    add_events(store, 10)
    store.write_sync(lambda conn: Store.acknowledge(conn, 4))
    with fake_central(answering(lie)) as fake:
        uplink, error = upload_once(store, fake.url)
        [posted] = fake.posted_events()
    assert [e["seq"] for e in posted.json()["events"]] == list(range(5, 11))
    assert isinstance(error, AckRefused), error
    assert why in str(error)
    assert outbox_seqs(store) == list(range(5, 11)) and store.backlog()["acked_seq"] == 4
    assert uplink.status.acks_refused == 1 and uplink.status.last_ack_problem == str(error)
    store.close()


def test_refused_events_are_kept_even_under_a_higher_ack(tmp_path: Path) -> None:
    """Central holds a different event at seq 4 (a conflict) and acknowledges up to 10: only 1..3,
    which it took, leave; 4..10 stay, and the refusal is shown until central takes events again."""
    store = Store(tmp_path / "edge.db")
    add_events(store, 10)
    refusal = {"seq": 4, "reason": "seq 4 is stored with another hash", "code": "conflict"}
    later = [{"seq": s, "reason": "follows refused seq 4", "code": "conflict"} for s in range(5, 11)]
    with fake_central(answering({"acked_seq": 10, "refused": [*later, refusal]})) as fake:
        uplink, error = upload_once(store, fake.url)
    assert isinstance(error, EventsRefused) and "seq 4 (conflict)" in str(error)
    assert outbox_seqs(store) == list(range(4, 11)) and store.backlog()["acked_seq"] == 3
    assert uplink.status.central_refusal is not None and uplink.status.central_refusal.seq == 4
    assert uplink.status.refused == 7 and uplink.status.acks_refused == 0
    store.close()


def test_an_ack_past_the_request_but_within_the_chain_deletes_only_what_was_carried(tmp_path: Path) -> None:
    """After acknowledgements were lost (they are committed without an fsync), central holds more of
    the chain than a request carries: the edge deletes what that request carried, and the next one
    is answered as duplicates."""
    store = Store(tmp_path / "edge.db")
    add_events(store, 10)
    with fake_central(answering({"acked_seq": 10, "duplicates": 4})) as fake:
        uplink, error = upload_once(store, fake.url, batch_size=4)
    assert error is None
    assert outbox_seqs(store) == list(range(5, 11)) and store.backlog()["acked_seq"] == 4
    assert uplink.status.acks_beyond_request == 1 and uplink.status.acks_refused == 0
    store.close()


def test_a_lying_central_does_not_stop_the_uplink(tmp_path: Path) -> None:
    """`run()` treats a refused answer as a failing link: it backs off, says why, and keeps trying."""
    store = Store(tmp_path / "edge.db")
    add_events(store, 3)

    async def scenario(url: str) -> Uplink:
        async with httpx.AsyncClient(base_url=url) as client:
            uplink = Uplink(
                store=store, client=client, park_id="P1", edge_id=EDGE, backoff_initial=0.01, backoff_max=0.05
            )
            task = asyncio.create_task(uplink.run())
            async with asyncio.timeout(20):
                while uplink.status.acks_refused < 3:
                    await asyncio.sleep(0.01)
            assert not task.done()
            task.cancel()
            return uplink

    with fake_central(answering({"acked_seq": 10**9})) as fake:
        uplink = asyncio.run(scenario(fake.url))
    assert uplink.status.consecutive_failures >= 3
    assert "AckRefused" in (uplink.status.last_error or "")
    assert outbox_seqs(store) == [1, 2, 3]
    store.close()


# --- the rules themselves -------------------------------------------------------------------------

SENT = acks.Sent(first=5, last=10, epoch=1, acked_before=4, head=12)


@pytest.mark.parametrize(
    ("answer", "through", "beyond"),
    [
        ({"acked_seq": 10}, 10, False),
        ({"acked_seq": 7}, 7, False),  # central took part of it (a gap after 7 is refused below)
        ({"acked_seq": 12}, 10, True),  # more than carried, within the chain: only what was carried
        ({"acked_seq": 10, "refused": [{"seq": 8}]}, 7, False),
        ({"acked_seq": 4, "refused": [{"seq": 5}]}, None, False),
        ({"acked_seq": 10, "epoch": 1, "extra": "ignored"}, 10, False),
    ],
)
def test_what_an_answer_may_delete(answer: dict[str, Any], through: int | None, beyond: bool) -> None:
    verdict = acks.judge(SENT, json.dumps(answer).encode())
    assert verdict.problem is None
    assert (verdict.delete_through, verdict.beyond_request) == (through, beyond)


# --- the agent as a real process against an impostor, then the real central -----------------------


def test_an_agent_facing_a_lying_central_keeps_every_event_says_so_and_delivers_later(
    tmp_path: Path, central: RunningCentral
) -> None:
    """The agent process talks to a fake central that first acknowledges 10^9, then refuses every
    event; nothing leaves the outbox, /api/status counts and shows it, /healthz names the refusal.
    Put in front of the real central, the same agent delivers the whole chain, once."""
    phase = {"now": "lie"}

    def impostor(request: Request, forward: Callable[[], Answer]) -> Answer:
        if phase["now"] == "real" or not request.path.endswith("/events"):
            return forward()  # the feed and the chain view are the real central's
        events = request.json()["events"]
        if phase["now"] == "lie":
            return Answer(200, {"acked_seq": 10**9, "stored": len(events), "duplicates": 0, "refused": []})
        refused = [{"seq": e["seq"], "reason": "not yours", "code": "conflict"} for e in events]
        return Answer(200, {"acked_seq": 0, "stored": 0, "duplicates": 0, "refused": refused})

    with fake_central(impostor, forward_to=central.url) as fake:
        api_port = free_port()
        data = edge_config(
            tmp_path,
            central,
            devices={},
            stations=[],
            heartbeat_s=0.2,
            api={
                "host": "127.0.0.1",
                "port": api_port,
                "users": [{"name": "olga", "role": "operator", "password_hash": hash_password("olga-pass")}],
            },
        )
        data["central"]["url"] = fake.url
        config = write_edge_config(tmp_path / "edge.toml", data)
        with agent_process(config, tmp_path / "agent.log") as agent:
            agent.start()
            asyncio.run(_against_an_impostor(agent, central, phase, f"http://127.0.0.1:{api_port}"))
            assert agent.terminate() == 0, agent.tail()


async def _against_an_impostor(
    agent: AgentProcess, central: RunningCentral, phase: dict[str, str], api_url: str
) -> None:
    await agent.started()
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as api:
        headers = await _operator(api)

        async def uplink() -> dict[str, Any]:
            return (await api.get("/api/status", headers=headers)).json()["uplink"]

        await _until(lambda: _at_least(uplink, "acks_refused", 3), "answers refused")
        status = await uplink()
        assert "beyond this edge's chain" in status["last_ack_problem"]
        assert status["acked_seq"] == 0 and status["size"] == status["last_seq"] >= 3  # nothing deleted
        assert agent.find("central's answer refused; nothing deleted from the outbox") is not None

        phase["now"] = "refuse"

        async def refused() -> bool:
            answer = await api.get("/healthz")
            return answer.status_code == 503 and any("(conflict)" in r for r in answer.json()["reasons"])

        await _until(refused, "/healthz naming central's refusal")
        status = await uplink()
        assert status["central_refusal"]["code"] == "conflict" and status["acked_seq"] == 0

        phase["now"] = "real"

        async def delivered() -> bool:
            status = await uplink()
            with central.client("officer") as officer:
                edges = officer.get("/api/v1/parks/P1/edges").raise_for_status().json()
            held = edges[0]["last_seq"] if edges else 0
            return status["acked_seq"] >= 3 and held >= status["acked_seq"]

        await _until(delivered, "the chain delivered to the real central")
        await _until(lambda: _healthy(api), "/healthz 200")
    with central.client("officer") as officer:
        events = officer.get("/api/v1/parks/P1/edges/edge-p1/events", params={"limit": 5000}).json()
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1))  # the whole chain from seq 1, once each


async def _operator(api: httpx.AsyncClient) -> dict[str, str]:
    async def listening() -> bool:
        try:
            await api.get("/healthz")
        except httpx.TransportError:
            return False
        return True

    await _until(listening, "the agent's API")
    login = await api.post("/api/login", json={"name": "olga", "password": "olga-pass"})
    return {"Authorization": f"Bearer {login.raise_for_status().json()['token']}"}


async def _at_least(status: Callable[[], Any], key: str, n: int) -> bool:
    return (await status())[key] >= n


async def _healthy(api: httpx.AsyncClient) -> bool:
    return (await api.get("/healthz")).status_code == 200


async def _until(check: Callable[[], Any], what: str, timeout: float = 30) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None

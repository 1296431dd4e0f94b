"""Re-provisioning an edge whose database was lost or restored (issue 9 C.3).

End to end with a real central and the agent as a real process: the agent's database is restored from
an older copy, the agent says so plainly at start (log, /healthz, /api/status) instead of being
refused silently for ever; an officer re-provisions the edge at central (CLI), the edge starts its
next epoch (`bondgate edge reprovision`), and central takes it — every event the restored database
made reaches central once, the old chain stays stored and readable, nothing counts as released twice.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from bondgate.processes import free_port
from edge import chain
from edge.auth import hash_password
from edge.reprovision import ReprovisionRefused, reprovision
from edge.store import Store, new_event
from edge.uplink import Uplink
from firmware_sim.scanner import ScannerSim
from kernel.timefmt import utc_now
from kernel.wire import EventBody, EventKind
from testkit.central_server import RunningCentral
from testkit.park import wait_until
from testkit.processes import (
    ROOT,
    agent_process,
    edge_cli,
    edge_config,
    write_edge_config,
)
from tests.integration.test_faults import declare, query

CONFLICT_LOG = "this database's event chain conflicts with central's"


def chain_row(edge_db: Path) -> tuple[int, int, int, int]:
    """(epoch, last_seq, acked_seq, outbox size) of the agent's chain, read from outside."""
    [row] = query(edge_db, "SELECT epoch, last_seq, acked_seq, (SELECT COUNT(*) FROM outbox) FROM chain")
    return row


def central_edge(central: RunningCentral, edge: str = "edge-p1") -> dict[str, Any]:
    with central.client("officer") as officer:
        return officer.get(f"/api/v1/parks/P1/edges/{edge}").raise_for_status().json()


def central_chain_events(central: RunningCentral, epoch: int) -> list[dict[str, Any]]:
    with central.client("officer") as officer:
        answer = officer.get("/api/v1/parks/P1/edges/edge-p1/events", params={"epoch": epoch, "limit": 5000})
        return answer.raise_for_status().json()


def delivered(edge_db: Path, central: RunningCentral) -> bool:
    try:
        epoch, last_seq, acked, outbox = chain_row(edge_db)
    except sqlite3.OperationalError:  # a locked moment: not yet
        return False
    with central.client("officer") as officer:
        answer = officer.get("/api/v1/parks/P1/edges/edge-p1")
    if answer.status_code == 404:  # no event reached central yet
        return False
    view = answer.raise_for_status().json()
    return outbox == 0 and acked == last_seq and (view["epoch"], view["last_seq"]) == (epoch, last_seq)


def central_cli(central: RunningCentral, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp / "central.toml"
    config.write_text(
        f'database = "{central.settings.database}"\nsigning_key = "{central.settings.signing_key}"\n'
    )
    return subprocess.run(
        [sys.executable, "-m", "bondgate.cli", "central", *args, "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.timeout(180)
def test_a_restored_database_is_told_plainly_and_reprovisioning_lets_central_take_it_again(
    tmp_path: Path, central: RunningCentral
) -> None:
    sets = declare(central, 2)
    codes = [s.waybill.logisticsNo for s in sets]
    asyncio.run(_restored_database(tmp_path, central, codes))


async def _restored_database(tmp: Path, central: RunningCentral, codes: list[str]) -> None:
    edge_db = tmp / "edge.db"
    api_port = free_port()
    async with ScannerSim(link=tmp / "hand_scanner") as scanner:
        data = edge_config(
            tmp,
            central,
            devices={"hand_scanner": {"driver": "scanner", "url": scanner.url, "dedupe_window_s": 0.0}},
            stations=[{"name": "bench-1", "kind": "manual", "scanner": "hand_scanner"}],
            api={
                "host": "127.0.0.1",
                "port": api_port,
                "users": [{"name": "olga", "role": "operator", "password_hash": hash_password("olga-pass")}],
            },
        )
        config = write_edge_config(tmp / "edge.toml", data)
        with agent_process(config, tmp / "agent.log") as agent:
            # 1. the agent runs and delivers; a copy of its database is taken (the backup)
            agent.start()
            await agent.started()
            await wait_until(
                lambda: query(edge_db, "SELECT COUNT(*) FROM clearances")[0][0] == 2, 30, "first sync"
            )
            await wait_until(lambda: delivered(edge_db, central), 30, "first events delivered")
            assert agent.terminate() == 0
            backup = tmp / "backup.db"
            with sqlite3.connect(edge_db) as live, sqlite3.connect(backup) as copy:
                live.backup(copy)
            backed_up_seq = chain_row(backup)[1]

            # 2. it goes on: parcel 0 leaves, central holds more than the backup
            agent.start()
            await agent.started()
            await agent.wait_for_log("device up", device="hand_scanner", timeout=30)
            scanner.scan(codes[0])
            await wait_until(
                lambda: query(edge_db, "SELECT COUNT(*) FROM releases")[0][0] == 1, 30, "release"
            )
            await wait_until(lambda: delivered(edge_db, central), 30, "release delivered")
            assert agent.terminate() == 0
            old_chain_end = central_edge(central)["last_seq"]
            assert old_chain_end > backed_up_seq

            # 3. the database is restored from the backup: the agent says so at start, plainly
            for suffix in ("", "-wal", "-shm"):
                Path(f"{edge_db}{suffix}").unlink(missing_ok=True)
            shutil.copy(backup, edge_db)
            agent.start()
            await agent.started()
            logged = await agent.wait_for_log(CONFLICT_LOG, timeout=30)
            assert f"central holds seq 1..{old_chain_end}" in logged["detail"]
            written = int(re.search(r"wrote only up to seq (\d+)", logged["detail"])[1])  # type: ignore[index]
            assert backed_up_seq <= written < old_chain_end  # (its first heartbeat may come first)
            assert "bondgate central edge reprovision P1 edge-p1" in logged["detail"]
            # it goes on deciding, but releases nothing: this database does not know every release
            # it made (parcel 0 left after the backup), so parcel 1 is held until re-provisioning
            await agent.wait_for_log("device up", device="hand_scanner", timeout=30)
            scanner.scan(codes[1])
            await wait_until(
                lambda: query(edge_db, "SELECT COUNT(*) FROM decisions WHERE code = ?", (codes[1],))[0][0],
                30,
                "parcel 1 decided",
            )
            [(verdict, reason)] = query(
                edge_db, "SELECT verdict, reason FROM decisions WHERE code = ?", (codes[1],)
            )
            assert verdict == "HOLD" and "behind central's record" in reason
            assert query(edge_db, "SELECT COUNT(*) FROM releases")[0][0] == 0
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as api:
                health = (await api.get("/healthz")).json()
                assert health["status"] == "unhealthy"
                assert any(r.startswith("event chain: central holds seq") for r in health["reasons"])
                headers = await _login(api)
                uplink = (await api.get("/api/status", headers=headers)).json()["uplink"]
                assert uplink["chain_checked"] and "restored" in uplink["chain_problem"]
                assert uplink["epoch"] == 1 and uplink["size"] >= 1

            # 4. an officer re-provisions the edge at central; the edge starts its next epoch
            done = central_cli(
                central,
                tmp,
                "edge",
                "reprovision",
                "P1",
                "edge-p1",
                "--reason",
                "database restored from backup",
            )
            assert done.returncode == 0, done.stdout + done.stderr
            assert "epoch 2 open" in done.stdout
            started = await asyncio.to_thread(edge_cli, "reprovision", "--config", str(config))
            assert started.returncode == 0, started.stdout + started.stderr
            assert "carried into epoch 2" in started.stdout
            # parcel 0's release, which the backup never knew, came back from central's copy
            [(imported,)] = query(
                edge_db, "SELECT COUNT(*) FROM releases WHERE logistics_no = ?", (codes[0],)
            )
            assert imported == 1

            # 5. central takes the new epoch; parcel 0 is refused as already released, parcel 1 leaves
            await wait_until(lambda: delivered(edge_db, central), 60, "new epoch delivered")
            for code in codes:
                scanner.scan(code)
                await wait_until(
                    lambda code=code: (
                        query(
                            edge_db,
                            "SELECT COUNT(*) FROM decisions WHERE code = ? AND station = 'bench-1'",
                            (code,),
                        )[0][0]
                        >= (2 if code == codes[1] else 1)  # parcel 1 was held once before
                    ),
                    30,
                    f"{code} decided again",
                )
            verdicts = query(
                edge_db,
                "SELECT code, verdict FROM decisions WHERE station = 'bench-1' ORDER BY id DESC LIMIT 2",
            )
            assert sorted(verdicts) == sorted([(codes[0], "HOLD"), (codes[1], "RELEASE")])
            await wait_until(lambda: delivered(edge_db, central), 60, "new epoch delivered")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as api:
                await wait_until_async(lambda: _healthy(api), 30, "/healthz 200")
            assert agent.terminate() == 0
            agent.start()
            await agent.started()
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as api:
                headers = await _login(api)

                async def checked() -> bool:
                    status = (await api.get("/api/status", headers=headers)).json()["uplink"]
                    return status["chain_checked"]

                await wait_until_async(checked, 30, "the chain checked at start")
                status = (await api.get("/api/status", headers=headers)).json()["uplink"]
                assert status["chain_problem"] is None and status["epoch"] == 2
                assert (await api.get("/healthz")).status_code == 200
            assert agent.find(CONFLICT_LOG) is None
            assert agent.terminate() == 0
            check = await asyncio.to_thread(edge_cli, "db", "check", "--config", str(config))
            assert check.returncode == 0, check.stdout + check.stderr  # the re-chained outbox is whole

    # the old chain stays stored and readable; the new one holds what the restored database made
    view = central_edge(central)
    assert view["epoch"] == 2
    [closed] = view["closed"]
    assert (closed["epoch"], closed["last_seq"]) == (1, old_chain_end)
    assert closed["closed_by"].startswith("cli:") and closed["reason"] == "database restored from backup"
    old = central_chain_events(central, 1)
    assert [e["seq"] for e in old] == list(range(1, old_chain_end + 1))
    new = central_chain_events(central, 2)
    assert [e["seq"] for e in new] == list(range(1, view["last_seq"] + 1))
    released = [e["logisticsNo"] for e in old + new if e["kind"] == "release"]
    assert sorted(released) == sorted(codes)  # each parcel's release reached central exactly once
    with central.client("officer") as officer:
        report = officer.get("/api/v1/parks/P1/report").raise_for_status().json()
    assert report["released_twice"]["total"] == 0 and report["released_without_clearance"]["total"] == 0
    kinds = {a["kind"] for a in report["alerts"]["items"]}
    assert {"conflict", "edge_reprovisioned"} <= kinds


async def _login(api: httpx.AsyncClient) -> dict[str, str]:
    """Log in as the operator, once the agent's API listens (it starts just after the agent)."""

    async def listening() -> bool:
        try:
            await api.get("/healthz")
        except httpx.TransportError:
            return False
        return True

    await wait_until_async(listening, 30, "the agent's API")
    answer = await api.post("/api/login", json={"name": "olga", "password": "olga-pass"})
    return {"Authorization": f"Bearer {answer.raise_for_status().json()['token']}"}


async def _healthy(api: httpx.AsyncClient) -> bool:
    return (await api.get("/healthz")).status_code == 200


async def wait_until_async(check: Any, timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


# --- a database lost outright, in process --------------------------------------------------------


def _heartbeats(store: Store, n: int, edge: str = "edge-p1") -> None:
    def work(conn: sqlite3.Connection) -> None:
        for i in range(n):
            new_event(
                conn,
                edge_id=edge,
                kind=EventKind.HEARTBEAT,
                station=None,
                body=EventBody(backlog=i),
                occurred_at=utc_now(),
            )

    store.write_sync(work)


def test_a_lost_database_is_found_at_start_and_a_fresh_chain_is_taken_after_reprovisioning(
    tmp_path: Path, central: RunningCentral
) -> None:
    first = Store(tmp_path / "first.db")
    _heartbeats(first, 5)
    fresh = Store(tmp_path / "fresh.db")  # the disk died; a new one under the same edge_id
    _heartbeats(fresh, 3)

    async def scenario() -> None:
        headers = {"Authorization": f"Bearer {central.tokens['edge']}"}
        async with httpx.AsyncClient(base_url=central.url, headers=headers) as client:
            await Uplink(store=first, client=client, park_id="P1", edge_id="edge-p1").drain()
            uplink = Uplink(store=fresh, client=client, park_id="P1", edge_id="edge-p1")
            problem = await uplink.check_chain()
            assert problem is not None and "central holds seq 1..5" in problem
            assert "wrote only up to seq 3" in problem
            with pytest.raises(ReprovisionRefused, match="has not opened a new epoch"):
                await reprovision(fresh, client, "P1", "edge-p1")
            with central.client("officer") as officer:
                answer = officer.post(
                    "/api/v1/parks/P1/edges/edge-p1/reprovision",
                    json={"reason": "disk replaced", "expect_epoch": 1},
                )
                assert answer.status_code == 200, answer.text
                assert answer.json()["epoch"] == 2 and answer.json()["closed"]["last_seq"] == 5
                again = officer.post(
                    "/api/v1/parks/P1/edges/edge-p1/reprovision", json={"reason": "twice?", "expect_epoch": 1}
                )
                assert again.status_code == 409 and again.json()["error"] == "epoch_moved"
            done = await reprovision(fresh, client, "P1", "edge-p1")
            assert (done.delivered, done.carried, done.new_epoch) == (0, 3, 2)
            assert await uplink.check_chain() is None
            await uplink.drain()

    asyncio.run(scenario())
    view = central_edge(central)
    assert (view["epoch"], view["last_seq"]) == (2, 3)
    assert [c["last_seq"] for c in view["closed"]] == [5]
    assert [e["body"]["backlog"] for e in central_chain_events(central, 2)] == [0, 1, 2]
    assert fresh.backlog() | {"oldest": None} == {
        "size": 0,
        "oldest": None,
        "acked_seq": 3,
        "last_seq": 3,
        "epoch": 2,
    }
    first.close()
    fresh.close()


def test_events_central_already_holds_are_not_carried_twice(tmp_path: Path, central: RunningCentral) -> None:
    """A copy taken while seq 1..4 were pending: the original went on to seq 6 and delivered it all;
    the restored copy then wrote seq 5..7 of its own. Re-provisioning drops 1..4 (central holds them,
    the very same events) and carries the copy's 5..7, which central never got, as epoch 2's 1..3."""
    original = Store(tmp_path / "edge.db")
    _heartbeats(original, 4)
    with sqlite3.connect(tmp_path / "edge.db") as live, sqlite3.connect(tmp_path / "copy.db") as copy:
        live.backup(copy)
    _heartbeats(original, 2)
    restored = Store(tmp_path / "copy.db")
    _heartbeats(restored, 3)
    carried = [json.loads(text)["body"]["backlog"] for seq, text in restored.pending_rows(100) if seq > 4]

    async def scenario() -> None:
        headers = {"Authorization": f"Bearer {central.tokens['edge']}"}
        async with httpx.AsyncClient(base_url=central.url, headers=headers) as client:
            await Uplink(store=original, client=client, park_id="P1", edge_id="edge-p1").drain()
            with central.client("officer") as officer:
                officer.post(
                    "/api/v1/parks/P1/edges/edge-p1/reprovision", json={"reason": "restored from a copy"}
                ).raise_for_status()
            done = await reprovision(restored, client, "P1", "edge-p1")
            assert (done.old_last_seq, done.central_last_seq, done.delivered, done.carried) == (7, 6, 4, 3)
            await Uplink(store=restored, client=client, park_id="P1", edge_id="edge-p1").drain()

    asyncio.run(scenario())
    assert [e["body"]["backlog"] for e in central_chain_events(central, 2)] == carried == [0, 1, 2]
    assert len(central_chain_events(central, 1)) == 6
    history = restored.reader().execute(
        "SELECT epoch, last_seq, delivered, carried, next_epoch FROM chain_history"
    )
    assert [tuple(r) for r in history] == [(1, 7, 4, 3, 2)]
    original.close()
    restored.close()


def test_two_reprovisions_at_once_change_the_database_once(tmp_path: Path, central: RunningCentral) -> None:
    """Two `edge reprovision` runs started together both see epoch 1 here and an empty epoch 2 at
    central; the one that writes second must be refused, not renumber the epoch again (an upload in
    flight under the first numbering would then delete events central never got)."""
    first = Store(tmp_path / "first.db")
    _heartbeats(first, 4)
    fresh = Store(tmp_path / "fresh.db")
    _heartbeats(fresh, 3)

    async def scenario() -> list[Any]:
        headers = {"Authorization": f"Bearer {central.tokens['edge']}"}
        async with httpx.AsyncClient(base_url=central.url, headers=headers) as client:
            await Uplink(store=first, client=client, park_id="P1", edge_id="edge-p1").drain()
            with central.client("officer") as officer:
                officer.post(
                    "/api/v1/parks/P1/edges/edge-p1/reprovision", json={"reason": "disk replaced"}
                ).raise_for_status()
            return await asyncio.gather(
                reprovision(fresh, client, "P1", "edge-p1"),
                reprovision(fresh, client, "P1", "edge-p1"),
                return_exceptions=True,
            )

    outcomes = asyncio.run(scenario())
    done = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, ReprovisionRefused)]
    assert len(done) == 1 and len(refused) == 1, outcomes
    # refused either way: while the other ran (both saw epoch 1), or after it (this database is at 2)
    assert "moved to epoch 2 while this ran" in str(refused[0]) or "this database at 2" in str(refused[0])
    history = fresh.reader().execute("SELECT epoch, next_epoch, carried FROM chain_history").fetchall()
    assert [tuple(r) for r in history] == [(1, 2, 3)]
    assert fresh.backlog()["last_seq"] == 3 and fresh.backlog()["epoch"] == 2
    first.close()
    fresh.close()


@pytest.mark.parametrize(
    ("local", "central", "at_head", "expected"),
    [
        (chain.LocalChain(1, 0, "0" * 64, 0), None, None, None),  # first contact
        (chain.LocalChain(1, 9, "h9", 9), None, None, "central has no record of edge E"),
        (chain.LocalChain(1, 9, "h9", 7), {"epoch": 1, "last_seq": 7}, "h7", None),
        (chain.LocalChain(1, 9, "h9", 7), {"epoch": 1, "last_seq": 9}, "h9", None),
        (chain.LocalChain(1, 9, "h9", 7), {"epoch": 1, "last_seq": 8}, "other", "differ at or before seq 8"),
        (chain.LocalChain(1, 9, "h9", 7), {"epoch": 1, "last_seq": 12}, None, "wrote only up to seq 9"),
        (chain.LocalChain(1, 9, "h9", 7), {"epoch": 1, "last_seq": 5}, None, "acknowledged seq 7 here"),
        (chain.LocalChain(1, 9, "h9", 7), {"epoch": 2, "last_seq": 0}, None, "was re-provisioned at central"),
        (chain.LocalChain(3, 9, "h9", 7), {"epoch": 2, "last_seq": 0}, None, "has only opened epoch 2"),
    ],
)
def test_what_the_start_check_finds(
    local: chain.LocalChain, central: dict[str, int] | None, at_head: str | None, expected: str | None
) -> None:
    view = None
    if central is not None:
        head = "h7" if central["last_seq"] == 7 else "h9" if central["last_seq"] == 9 else "x"
        view = chain.CentralChain(edge_id="E", last_hash=head, **central)
    problem = chain.judge(local, view, at_head, park="P", edge="E")
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem, problem

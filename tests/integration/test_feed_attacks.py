"""Issue 9 B from outside: the real agent process, a fake central (testkit/fake_feed_central.py) and
direct access to the edge's database — a record of another park, an older version put back or
served again, a deleted release marker, a page that leaves a record out, a stale copy of the feed
and a forked one. Each must end in HOLD, never in a second or unwarranted RELEASE, and be refused
or reported where the agent can tell.

The parcels go through a manual station with a hand scanner (ScannerSim on a pty) and no scale, so
the weight plays no part; what the agent decided is read from its database, as an auditor would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware_sim.scanner import ScannerSim
from kernel.wire import public_key_pem
from testkit.fake_feed_central import FakeCentral, Feed, fake_central
from testkit.park import wait_until
from testkit.processes import AgentProcess, agent_process, edge_cli, edge_config, write_edge_config

A, B, C, D, E = (f"SF00000000{i:02d}" for i in range(1, 6))


@dataclass
class Edge:
    agent: AgentProcess
    scanner: ScannerSim
    db: Path
    config: Path

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.db, timeout=10)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def write(self, *statements: tuple[str, tuple[Any, ...]]) -> None:
        """Change the edge's database behind the agent's back, as the tester did."""
        conn = sqlite3.connect(self.db, timeout=10)
        try:
            with conn:
                for sql, params in statements:
                    conn.execute(sql, params)
        finally:
            conn.close()

    async def until(self, predicate: Callable[[], Any], what: str, timeout: float = 20) -> Any:
        def quiet() -> Any:
            with contextlib.suppress(sqlite3.OperationalError):
                return predicate()
            return False

        return await wait_until(quiet, timeout=timeout, what=what)

    async def synced(self, cursor: int) -> None:
        await self.until(
            lambda: self.query("SELECT cursor FROM sync_state")[0][0] >= cursor, f"cursor {cursor}"
        )

    async def scan(self, code: str) -> tuple[str, list[str]]:
        """Present the parcel at the station; the decision the agent committed for it."""
        before = self.query("SELECT COUNT(*) FROM decisions WHERE code = ?", (code,))[0][0]
        self.scanner.scan(code)
        await self.until(
            lambda: self.query("SELECT COUNT(*) FROM decisions WHERE code = ?", (code,))[0][0] > before,
            f"a decision on {code}",
        )
        [(verdict, codes)] = self.query(
            "SELECT verdict, codes FROM decisions WHERE code = ? ORDER BY id DESC LIMIT 1", (code,)
        )
        return verdict, json.loads(codes)

    async def restart(self) -> None:
        assert self.agent.terminate() == 0, self.agent.tail()
        await self.start()

    async def start(self) -> None:
        self.agent.start()
        await self.agent.started()
        await self.agent.wait_for_log("device up", device="hand_scanner", timeout=30)


@asynccontextmanager
async def edge_against(tmp: Path, central: FakeCentral, **overrides: Any) -> AsyncIterator[Edge]:
    (tmp / "central-feed.pem").write_text(public_key_pem(central.key.public_key()))
    async with ScannerSim(link=tmp / "hand_scanner") as scanner:
        data = edge_config(
            tmp,
            central,  # type: ignore[arg-type]  # url and tokens, as a RunningCentral has them
            devices={"hand_scanner": {"driver": "scanner", "url": scanner.url, "dedupe_window_s": 0.0}},
            stations=[{"name": "bench-1", "kind": "manual", "scanner": "hand_scanner"}],
            **overrides,
        )
        data["central"]["send_every_s"] = 0.05
        config = write_edge_config(tmp / "edge.toml", data)
        with agent_process(config, tmp / "agent.log") as agent:
            edge = Edge(agent, scanner, tmp / "edge.db", config)
            await edge.start()
            yield edge


async def served(central: FakeCentral, edge: Edge, pages: int) -> None:
    """Wait until the agent has fetched `pages` more feed pages, whatever it made of them."""
    target = central.pages + pages
    await edge.until(lambda: central.pages >= target, f"{pages} more feed pages fetched")


async def alarm(central: FakeCentral, edge: Edge, reason: str) -> dict[str, Any]:
    """The ALARM event with this reason, once the agent has reported it upstream."""
    found = await edge.until(
        lambda: [e for e in central.alarms() if e["body"].get("reason") == reason], f"an alarm {reason}"
    )
    return found[0]


def test_a_genuine_record_of_another_park_releases_nothing_here(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    feed = Feed(key)
    feed.add(logisticsNo=A)
    foreign = feed.add(logisticsNo=B, park_id="OTHER")  # genuinely signed, for park OTHER

    async def scenario() -> None:
        with fake_central(key, feed.page) as central:
            async with edge_against(tmp_path, central) as edge:
                await edge.synced(2)
                assert await edge.scan(B) == ("HOLD", ["NOT_FOUND"])  # refused at sync, not stored
                assert (await alarm(central, edge, "feed_foreign_park"))["body"]["detail"].startswith(
                    "1 records"
                )
                assert await edge.scan(A) == ("RELEASE", [])
                # put into the cache directly, with a version mark, it is still no clearance here
                edge.write(
                    (
                        "INSERT INTO clearances (logistics_no, logistics_code, feed_seq, version, status,"
                        " cancelled, record) VALUES (?, ?, 2, 1, '800', 0, ?)",
                        (B, foreign["logisticsCode"], json.dumps(foreign)),
                    ),
                    ("INSERT INTO versions_seen VALUES (?, ?, 1)", (B, foreign["logisticsCode"])),
                )
                assert await edge.scan(B) == ("HOLD", ["FOREIGN_PARK"])

    asyncio.run(scenario())


def test_an_older_version_put_back_or_served_again_releases_nothing(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    feed = Feed(key)
    feed.add(logisticsNo=C, status="399", version=1)
    released = feed.add(logisticsNo=C, status="800", version=2)
    feed.add(logisticsNo=C, status="800", version=3, cancelled=True)  # cancelled after release
    carrier = released["logisticsCode"]

    async def scenario() -> None:
        with fake_central(key, feed.page) as central:
            async with edge_against(tmp_path, central) as edge:
                await edge.synced(3)
                assert await edge.scan(C) == ("HOLD", ["CANCELLED"])
                # the genuinely signed v2 (800, not cancelled) put back in the local database
                edge.write(
                    (
                        "UPDATE clearances SET record = ?, version = 2, cancelled = 0 WHERE logistics_no = ?",
                        (json.dumps(released), C),
                    )
                )
                assert await edge.scan(C) == ("HOLD", ["ROLLED_BACK"])
                # the cache row gone, and v2 served again (a later seq, a checkpoint that covers it)
                edge.write(("DELETE FROM clearances WHERE logistics_no = ?", (C,)))
                feed.records.append(released | {"seq": feed.next_seq})
                feed.next_seq += 1
                await edge.synced(4)
                assert "v2" in (await alarm(central, edge, "feed_rollback"))["body"]["detail"]
                assert edge.query("SELECT version FROM versions_seen WHERE logistics_no = ?", (C,)) == [(3,)]
                assert await edge.scan(C) == ("HOLD", ["NOT_FOUND"])
                assert edge.query("SELECT COUNT(*) FROM releases")[0][0] == 0
                assert carrier

    asyncio.run(scenario())


def test_a_deleted_release_marker_does_not_let_a_parcel_out_twice(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    feed = Feed(key)
    feed.add(logisticsNo=D)
    feed.add(logisticsNo=E)

    async def scenario() -> None:
        with fake_central(key, feed.page) as central:
            async with edge_against(tmp_path, central) as edge:
                await edge.synced(2)
                assert await edge.scan(D) == ("RELEASE", [])
                edge.write(("DELETE FROM releases WHERE logistics_no = ?", (D,)))
                assert await edge.scan(D) == ("HOLD", ["ALREADY_RELEASED"])
                [release] = await edge.until(
                    lambda: [e for e in central.events if e["kind"] == "release"], "the release reported"
                )
                assert release["body"]["ledger_n"] == 1 and len(release["body"]["ledger_hash"]) == 64
                missing = await alarm(central, edge, "release_marker_missing")
                assert missing["body"]["logisticsNo"] == D and "ledger entry 1" in missing["body"]["detail"]

                # the marker and the RELEASE decision gone: the ledger still says it left
                edge.write(("DELETE FROM decisions WHERE code = ? AND verdict = 'RELEASE'", (D,)))
                assert await edge.scan(D) == ("HOLD", ["ALREADY_RELEASED"])
                with contextlib.suppress(sqlite3.DatabaseError):  # the ledger refuses deletes itself
                    edge.write(("DELETE FROM release_ledger", ()))
                assert edge.query("SELECT COUNT(*) FROM release_ledger")[0][0] == 1

                # a ledger rewritten around its triggers: found at start, every parcel then held
                assert edge.agent.terminate() == 0, edge.agent.tail()
                edge.write(
                    ("DROP TRIGGER release_ledger_no_update", ()),
                    ("UPDATE release_ledger SET logistics_no = 'SF9999999999' WHERE n = 1", ()),
                )
                await edge.start()
                await edge.agent.wait_for_log("release ledger damaged", timeout=20)
                verdict, codes = await edge.scan(E)  # never released, but that cannot be shown now
                assert (verdict, codes) == ("HOLD", ["ALREADY_RELEASED"])
                damaged = await alarm(central, edge, "release_ledger_damaged")
                assert "does not hash to its content" in damaged["body"]["detail"]
                check = edge_cli("db", "check", "--config", str(edge.config))
                assert check.returncode != 0 and "does not hash to its content" in check.stdout

    asyncio.run(scenario())


def test_a_page_that_leaves_a_record_out_is_refused_whole(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    feed = Feed(key)
    feed.add(logisticsNo=A, status="399", version=1)
    feed.add(logisticsNo=A, status="800", version=2)
    cancellation = feed.add(logisticsNo=A, status="800", version=3, cancelled=True)
    feed.add(logisticsNo=B)
    withholding = {"on": True}

    def serve(after: int, limit: int) -> dict[str, Any]:
        return feed.page(after, limit, omit=cancellation["seq"] if withholding["on"] else None)

    async def scenario() -> None:
        with fake_central(key, serve) as central:
            async with edge_against(tmp_path, central) as edge:
                await served(central, edge, 2)
                assert await edge.scan(A) == ("HOLD", ["NOT_FOUND", "STALE_CACHE"])  # nothing taken
                detail = (await alarm(central, edge, "feed_fork"))["body"]["detail"]
                assert "records left out or added" in detail
                assert edge.query("SELECT cursor, checkpoint FROM sync_state") == [(0, None)]
                withholding["on"] = False  # the real feed again: taken, cancellation and all
                await edge.synced(4)
                assert await edge.scan(A) == ("HOLD", ["CANCELLED"])
                assert await edge.scan(B) == ("RELEASE", [])

    asyncio.run(scenario())


def test_a_stale_copy_of_the_feed_is_refused_and_the_cache_ages(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    feed = Feed(key)
    feed.add(logisticsNo=A)
    feed.add(logisticsNo=B)
    feed.add(logisticsNo=A, version=2, cancelled=True)
    honest = {"on": True}
    stale = feed.stale(2)  # a copy from before the cancellation, claiming to be current

    def serve(after: int, limit: int) -> dict[str, Any]:
        return feed.page(after, limit) if honest["on"] else stale(after, limit)

    async def scenario() -> None:
        with fake_central(key, serve) as central:
            async with edge_against(tmp_path, central, staleness_limit_s=2) as edge:
                await edge.synced(3)
                honest["on"] = False
                await served(central, edge, 1)
                synced_at = edge.query("SELECT last_success FROM sync_state")[0][0]
                # the stale copy never counts as a successful sync: the cache ages into STALE_CACHE
                await asyncio.sleep(2.5)
                await served(central, edge, 1)
                assert await edge.scan(B) == ("HOLD", ["STALE_CACHE"])
                assert edge.query("SELECT last_success FROM sync_state")[0][0] == synced_at
                detail = (await alarm(central, edge, "feed_behind"))["body"]["detail"]
                assert "stale copy" in detail

    asyncio.run(scenario())


def test_a_forked_feed_is_refused(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    history = Feed(key)
    history.add(logisticsNo=A, status="399")
    history.add(logisticsNo=A, status="800", version=2)
    fork = history.fork(1)  # central restored from a backup taken after the first record
    fork.add(logisticsNo=C)  # seq 2 again, another record
    fork.add(logisticsNo=B)  # seq 3
    current = {"feed": history}

    async def scenario() -> None:
        with fake_central(key, lambda after, limit: current["feed"].page(after, limit)) as central:
            async with edge_against(tmp_path, central) as edge:
                await edge.synced(2)
                current["feed"] = fork
                await served(central, edge, 2)
                assert await edge.scan(B) == ("HOLD", ["NOT_FOUND"])
                detail = (await alarm(central, edge, "feed_fork"))["body"]["detail"]
                assert "do not hash to central's checkpoint" in detail
                assert await edge.scan(A) == ("RELEASE", [])  # what was verified before still counts

    asyncio.run(scenario())

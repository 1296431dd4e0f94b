"""Faults a park lives through (issue 4): the agent killed mid-run, central away, clearances changing
under the edge, a tampered cache, an I/O module that stops answering.

Real central (uvicorn thread, SQLite file), real simulators on ptys and Modbus TCP. The crash test
runs the agent as a real process (`bondgate edge run --config edge.toml`) and SIGKILLs it; the
others run it in-process (testkit/park.py), where the test can look at station state.
Every wait is an upper bound on a condition, never a measured duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from edge.rules import Verdict
from edge.stations.base import StationState
from edge.store import Store
from firmware_sim.scanner import ScannerSim
from kernel.status import ClearanceStatus
from testkit import factories
from testkit.central_server import RunningCentral, run_central
from testkit.park import LINE_TRACKING, Park, put_on_bench, running_park, wait_until
from testkit.park import through_line as park_through_line
from testkit.processes import agent_process, edge_cli, edge_config, write_edge_config

GROSS = Decimal("0.800")  # the factories' parcel: goods 0.6 kg + packaging 0.2 kg
DECISION_KINDS = ("release", "discrepancy", "inspection_diverted")


# --- helpers ---------------------------------------------------------------------------------------


def declare(central: RunningCentral, n: int, start: int = 1) -> list[factories.DocumentSet]:
    """Declare `n` parcels (simulate mode takes consistent sets to 800), in batches intake accepts."""
    sets = factories.document_set(n, start=start)
    documents = [d.model_dump(mode="json") for s in sets for d in s.documents]
    with central.client("enterprise") as shop:
        for i in range(0, len(documents), 1000):
            shop.post("/api/v1/documents", json={"documents": documents[i : i + 1000]}).raise_for_status()
    return sets


def query(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read a live SQLite database from outside its process: read-only, so never a checkpoint."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


Event = tuple[int, str, str | None, str | None, dict[str, Any]]  # seq, kind, logisticsNo, station, body


def central_events(central: RunningCentral, edge_id: str = "edge-p1") -> list[Event]:
    """What central stored for the edge, straight from its SQLite file ((edge_id, seq) is the key)."""
    rows = query(
        central.settings.database,
        "SELECT seq, kind, logistics_no, station, body FROM events WHERE edge_id = ? ORDER BY seq",
        (edge_id,),
    )
    return [(seq, kind, no, station, json.loads(body)) for seq, kind, no, station, body in rows]


def central_alerts(central: RunningCentral) -> list[tuple[str, str]]:
    return query(central.settings.database, "SELECT kind, detail FROM alerts WHERE park_id = 'P1'")


def central_report(central: RunningCentral) -> dict[str, Any]:
    with central.client("officer") as officer:
        return officer.get("/api/v1/parks/P1/report").raise_for_status().json()


def central_last_seq(central: RunningCentral) -> int:
    with central.client("officer") as officer:
        edges = officer.get("/api/v1/parks/P1/edges").raise_for_status().json()
    return next((e["last_seq"] for e in edges if e["edge_id"] == "edge-p1"), 0)


def assert_central_matches_edge(central: RunningCentral, edge_db: Path) -> list[Event]:
    """Central holds the edge's whole chain once, and one decision event per decision row."""
    events = central_events(central)
    [(last_seq, acked, outbox)] = query(
        edge_db, "SELECT last_seq, acked_seq, (SELECT COUNT(*) FROM outbox) FROM chain"
    )
    seqs = [e[0] for e in events]
    assert seqs == list(range(1, last_seq + 1)), "central's events are not the edge's chain 1..N, once each"
    assert acked == last_seq and outbox == 0
    decisions = query(edge_db, "SELECT code, verdict, station FROM decisions")
    reported = [
        (no, body["verdict"], station) for _, kind, no, station, body in events if kind in DECISION_KINDS
    ]
    assert len(reported) == len(decisions)
    assert Counter(reported) == Counter(decisions)  # (parcel, verdict, station): one event per decision
    kinds = Counter(e[1] for e in events)
    verdicts = Counter(v for _, v, _ in decisions)
    assert kinds["release"] == verdicts["RELEASE"]
    assert kinds["inspection_diverted"] == verdicts["INSPECT"]
    assert kinds["discrepancy"] == verdicts["HOLD"]
    return events


def assert_nothing_released_wrongly(
    central: RunningCentral, *, not_carried_out: tuple[str, ...] = (), holds_unconfirmed: int = 0
) -> dict[str, Any]:
    """No double or uncleared release, no chain trouble; and no release whose outputs failed except
    those of the parcels in `not_carried_out` (their lanes went back to hold before they passed), and
    exactly `holds_unconfirmed` held parcels whose lane could not be confirmed."""
    report = central_report(central)
    assert report["released_twice"]["total"] == 0, report["released_twice"]
    assert report["released_without_clearance"]["total"] == 0, report["released_without_clearance"]
    alerts = [
        (kind, detail)
        for kind, detail in central_alerts(central)
        if not (kind == "actuation_failed" and any(f"/{code} " in detail for code in not_carried_out))
    ]
    held = [a for a in alerts if a[0] == "actuation_failed" and "may have left through the release" in a[1]]
    assert len(held) == holds_unconfirmed, held
    alerts = [a for a in alerts if a not in held]
    assert alerts == [], alerts  # no seq gap, chain break, conflict, double or uncleared release
    return report


# --- (a) SIGKILL at random moments -----------------------------------------------------------------

SEED = int(os.environ.get("BONDGATE_FAULT_SEED", "20240604"))  # another seed: other kill moments
PARCELS = 500
KILLS = 4
RATE_HZ = 50.0  # scans per second, about: a brisk manual bench, or a line


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_sigkill_at_random_moments_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """500 parcels through a manual station while the agent process is SIGKILLed at seeded random
    moments and restarted over the same database; afterwards central holds every event once, the
    database passes `bondgate edge db check`, and no parcel left twice or uncleared."""
    rng = random.Random(SEED)
    with run_central(tmp_path / "central") as central:
        codes = [s.waybill.logisticsNo for s in declare(central, PARCELS)]
        stats = asyncio.run(_crash_run(tmp_path, central, codes, rng))

        config = tmp_path / "edge.toml"
        check = edge_cli("db", "check", "--config", str(config))
        assert check.returncode == 0, check.stdout + check.stderr
        assert "integrity_check passed" in check.stdout

        edge_db = tmp_path / "edge.db"
        events = assert_central_matches_edge(central, edge_db)
        assert_nothing_released_wrongly(central)
        # the edge's own record: one release marker per parcel, each a RELEASE decision of a parcel
        # that central cleared; rescans after a restart were refused as already released
        released = [r[0] for r in query(edge_db, "SELECT logistics_no FROM releases")]
        assert len(released) == len(set(released))
        assert set(released) <= set(codes)
        uncleared = query(
            edge_db,
            "SELECT r.logistics_no FROM releases r LEFT JOIN clearances c"
            " USING (logistics_no, logistics_code) WHERE c.status IS NOT '800' OR c.cancelled",
        )
        assert uncleared == []
        release_events = Counter(no for _, kind, no, _, _ in events if kind == "release")
        assert set(release_events.values()) <= {1}
        assert set(release_events) == set(released)
        holds = Counter(
            tuple(json.loads(c))
            for (c,) in query(edge_db, "SELECT codes FROM decisions WHERE verdict = 'HOLD'")
        )
        assert stats["kills"] == KILLS + 1 and stats["starts"] == KILLS + 2
        # enough happened for the invariants to mean something (most scans are decided, even
        # though those in flight at each kill are lost)
        assert len(released) > PARCELS // 2, stats
        assert holds[("ALREADY_RELEASED",)] > 0 and holds[("NOT_FOUND",)] > 0, holds


async def _crash_run(tmp: Path, central: RunningCentral, codes: list[str], rng: random.Random) -> dict:
    edge_db = tmp / "edge.db"
    async with ScannerSim(link=tmp / "hand_scanner") as scanner:
        data = edge_config(
            tmp,
            central,
            devices={"hand_scanner": {"driver": "scanner", "url": scanner.url, "dedupe_window_s": 0.0}},
            stations=[{"name": "bench-1", "kind": "manual", "scanner": "hand_scanner"}],
        )
        config = write_edge_config(tmp / "edge.toml", data)
        with agent_process(config, tmp / "agent.log") as agent:

            async def kill_and_check() -> None:
                agent.kill()
                # the database exactly as the kill left it (hot WAL and all) passes the check
                check = await asyncio.to_thread(edge_cli, "db", "check", "--config", str(config))
                assert check.returncode == 0, f"after kill {agent.kills}: {check.stdout}{check.stderr}"

            agent.start()
            await agent.started()
            await _until(
                lambda: (
                    query(edge_db, "SELECT COUNT(*) FROM clearances WHERE status = '800'")[0][0] == len(codes)
                ),
                timeout=30,
                what="first sync of every clearance",
            )

            # the scans: every parcel once, in random order, with rescans and unknown codes mixed in
            plan = list(codes)
            rng.shuffle(plan)
            for _ in range(30):
                at = rng.randrange(50, len(plan))
                plan.insert(at, plan[rng.randrange(0, at - 20)])  # a parcel seen a while ago, again
            for i in range(20):
                plan.insert(rng.randrange(len(plan)), f"BGX{i:012d}")  # never declared
            kill_at = set(rng.sample(range(40, len(plan) - 40, 10), KILLS))
            print(f"seed {SEED}: {len(plan)} scans, kills after scan {sorted(kill_at)} and at the end")
            restart_at: int | None = None
            i = 0
            while i < len(plan):
                if i in kill_at:
                    # a burst of parcels, then the kill: somewhere among their decisions and uploads
                    for code in plan[i : i + rng.randint(3, 12)]:
                        scanner.scan(code)
                        i += 1
                    await asyncio.sleep(rng.uniform(0, 0.03))
                    await kill_and_check()
                    restart_at = i + rng.randint(0, 5)  # some parcels are scanned while it is dead
                if i == restart_at:
                    restart_at = None
                    agent.start()
                    await agent.started()
                    # the parcels scanned just before the kill come round again: whatever the
                    # dead agent committed must be refused now, whatever it did not may release
                    plan[i:i] = plan[max(0, i - 8) : i]
                scanner.scan(plan[i])
                i += 1
                await asyncio.sleep(1 / RATE_HZ)

            # one more kill while the last parcels are being decided, then a restart that drains
            await kill_and_check()
            agent.start()
            await agent.started()
            await agent.wait_for_log("device up", device="hand_scanner", timeout=30)
            # a last parcel behind everything still buffered on the serial line: the station checks
            # parcels in order, so once it is decided every earlier read is decided too
            sentinel = "BGXSENTINEL00001"
            scanner.scan(sentinel)
            await _until(
                lambda: query(edge_db, "SELECT COUNT(*) FROM decisions WHERE code = ?", (sentinel,))[0][0],
                timeout=30,
                what="the last scan decided",
            )
            await _until(
                lambda: _drained(edge_db, central), timeout=30, what="outbox drained and acknowledged"
            )
            assert agent.terminate() == 0, agent.tail()
            return {"kills": agent.kills, "starts": agent.starts, "scans": len(plan) + 1}


def _drained(edge_db: Path, central: RunningCentral) -> bool:
    [(last_seq, outbox)] = query(edge_db, "SELECT last_seq, (SELECT COUNT(*) FROM outbox) FROM chain")
    return outbox == 0 and central_last_seq(central) == last_seq


async def _until(predicate: Callable[[], Any], *, timeout: float, what: str) -> Any:
    return await wait_until(lambda: _quiet(predicate), timeout=timeout, what=what)


def _quiet(predicate: Callable[[], Any]) -> Any:
    """A predicate over a database another process writes: a locked moment is just 'not yet'."""
    with contextlib.suppress(sqlite3.OperationalError):
        return predicate()
    return False


# --- in-process park: stations to drive ------------------------------------------------------------


async def through_line(park: Park, code: str | None, kg: Decimal = GROSS) -> Any:
    """One parcel on the conveyor: photo-eye, scan, weight; returns the decision the station shows."""
    return await park_through_line(park, code, kg)


async def at_bench(park: Park, code: str, kg: Decimal = GROSS) -> Any:
    """One parcel at the manual station: on the scale, scanned."""
    bench = park.agent.stations["bench-1"]
    shown = bench.view.last
    await put_on_bench(park, kg)
    park.hand_scanner.scan(code)
    await wait_until(lambda: bench.view.last is not shown, what="bench decision shown")
    return bench.view.last


def lanes(park: Park) -> dict[str, bool]:
    return {name: park.io.output(name) for name in ("diverter_left", "diverter_right")}


# --- (b) central away ------------------------------------------------------------------------------


def test_central_down_decisions_go_on_and_the_backlog_drains_in_order(tmp_path: Path) -> None:
    """Central stops mid-run: the edge decides on its cache and keeps the events; central comes back
    on the same address over the same database and receives the backlog, in order, once."""
    where = tmp_path / "central"

    async def scenario() -> None:
        stack = contextlib.ExitStack()
        try:
            central = await asyncio.to_thread(stack.enter_context, run_central(where))
            port = int(central.url.rsplit(":", 1)[1])
            sets = await asyncio.to_thread(declare, central, 10)
            codes = [s.waybill.logisticsNo for s in sets]
            async with running_park(tmp_path, central) as park:
                agent = park.agent
                await wait_until(lambda: agent.store.count_clearances() == 10, what="first sync")
                scanned = []
                for code in codes[:2]:
                    assert (await at_bench(park, code)).verdict == Verdict.RELEASE
                    scanned.append((code, "RELEASE"))
                await wait_until(lambda: agent.store.backlog()["size"] == 0, what="outbox drained")

                # central goes away (its thread stops; the port is closed)
                await asyncio.to_thread(stack.close)
                acked = agent.store.backlog()["acked_seq"]
                for code in codes[2:8]:
                    assert (await at_bench(park, code)).verdict == Verdict.RELEASE
                    scanned.append((code, "RELEASE"))
                again = await at_bench(park, codes[0])
                assert (again.verdict, again.codes) == (Verdict.HOLD, ("ALREADY_RELEASED",))
                unknown = await at_bench(park, "BGX000000000999")
                assert (unknown.verdict, unknown.codes) == (Verdict.HOLD, ("NOT_FOUND",))
                scanned += [(codes[0], "HOLD"), ("BGX000000000999", "HOLD")]
                await wait_until(
                    lambda: agent.uplink.status.consecutive_failures > 0, what="the uplink noticing"
                )
                # kept, none lost: each decision and what its outputs did (the screen, at a bench);
                # the last actuation event is written once its output is read back, which may come
                # after the uplink noticed central is gone
                await wait_until(lambda: agent.store.backlog()["size"] >= 16, what="the last actuation")
                backlog = agent.store.backlog()
                assert backlog["acked_seq"] == acked and backlog["size"] == 16

                # central is back: same port, same database; the uplink's backoff finds it by itself
                central = await asyncio.to_thread(
                    stack.enter_context, run_central(where, reseed=False, port=port)
                )
                await wait_until(
                    lambda: agent.store.backlog()["size"] == 0, timeout=60, what="backlog drained"
                )
                # and the feed flows again: a parcel declared now reaches the edge and leaves
                [late] = await asyncio.to_thread(declare, central, 1, 11)
                code = late.waybill.logisticsNo
                await wait_until(
                    lambda: Store.find(agent.store.reader(), code), timeout=30, what="new clearance"
                )
                assert (await at_bench(park, code)).verdict == Verdict.RELEASE
                scanned.append((code, "RELEASE"))
                await wait_until(lambda: agent.store.backlog()["size"] == 0, what="outbox drained")

                events = await asyncio.to_thread(assert_central_matches_edge, central, agent.store.path)
                in_order = [
                    (no, body["verdict"]) for _, kind, no, _, body in events if kind in DECISION_KINDS
                ]
                assert in_order == scanned
                await asyncio.to_thread(assert_nothing_released_wrongly, central)
        finally:
            await asyncio.to_thread(stack.close)

    asyncio.run(scenario())


# --- (c) clearances change under the edge ----------------------------------------------------------


def test_cancelled_clearance_reaches_the_edge_and_the_parcel_is_held(tmp_path: Path) -> None:
    with run_central(tmp_path / "central") as central:
        sets = declare(central, 2)
        codes = [s.waybill.logisticsNo for s in sets]

        async def scenario() -> None:
            async with running_park(tmp_path, central) as park:
                store = park.agent.store
                await wait_until(lambda: store.count_clearances() == 2, what="first sync")
                [cached] = Store.find(store.reader(), codes[1])
                assert cached.record.status == ClearanceStatus.RELEASED and not cached.record.cancelled

                # the shop cancels parcel 2 (CEB623) while it sits at 800, not yet out
                with central.client("officer") as officer:
                    [detail] = officer.get("/api/v1/clearances", params={"logisticsNo": codes[1]}).json()
                invt_no = detail["clearance"]["invtNo"]
                cancel = factories.cancellation(2, invtNo=invt_no).model_dump(mode="json")
                with central.client("enterprise") as shop:
                    answer = shop.post("/api/v1/documents", json=cancel).raise_for_status().json()
                assert answer["receipts"][-1]["returnStatus"] == "399", answer

                # the feed brings the change; the next scan of that parcel is held
                await wait_until(
                    lambda: Store.find(store.reader(), codes[1])[0].record.cancelled,
                    timeout=10,
                    what="cancellation synced",
                )
                held = await through_line(park, codes[1])
                assert (held.verdict, held.codes) == (Verdict.HOLD, ("CANCELLED",))
                assert lanes(park) == {"diverter_left": False, "diverter_right": False}  # hold lane
                # the other parcel is untouched
                assert (await through_line(park, codes[0])).verdict == Verdict.RELEASE
                assert lanes(park) == {"diverter_left": True, "diverter_right": False}
                await wait_until(lambda: store.backlog()["size"] == 0, what="outbox drained")

        asyncio.run(scenario())
        assert_central_matches_edge(central, tmp_path / "edge.db")
        assert_nothing_released_wrongly(central)


def test_parcel_selected_for_inspection_goes_to_the_inspection_lane(tmp_path: Path) -> None:
    with run_central(tmp_path / "central", risk={"sampling_rate": 1}) as central:
        [parcel] = declare(central, 1)
        code = parcel.waybill.logisticsNo

        async def scenario() -> None:
            async with running_park(tmp_path, central) as park:
                store = park.agent.store
                await wait_until(lambda: store.count_clearances() == 1, what="first sync")
                assert Store.find(store.reader(), code)[0].record.status == "500"
                decision = await through_line(park, code)
                assert (decision.verdict, decision.codes) == (Verdict.INSPECT, ("INSPECTION",))
                assert lanes(park) == {"diverter_left": False, "diverter_right": True}
                assert park.agent.stations["line-1"].view.state == StationState.INSPECT
                await wait_until(lambda: store.backlog()["size"] == 0, what="outbox drained")

        asyncio.run(scenario())
        events = assert_central_matches_edge(central, tmp_path / "edge.db")
        assert [(kind, no) for _, kind, no, _, _ in events if kind in DECISION_KINDS] == [
            ("inspection_diverted", code)
        ]


# --- (d) a tampered cache --------------------------------------------------------------------------


def test_record_altered_in_the_local_database_is_refused(tmp_path: Path) -> None:
    with run_central(tmp_path / "central") as central:
        sets = declare(central, 2)
        codes = [s.waybill.logisticsNo for s in sets]

        async def scenario() -> None:
            async with running_park(tmp_path, central) as park:
                store = park.agent.store
                await wait_until(lambda: store.count_clearances() == 2, what="first sync")
                # someone with the disk raises parcel 1's declared weight to match a heavier parcel
                conn = sqlite3.connect(store.path, timeout=30)
                with conn:
                    changed = conn.execute(
                        "UPDATE clearances SET record = replace(record, ?, ?) WHERE logistics_no = ?",
                        ('"grossWeight":"0.800"', '"grossWeight":"1.500"', codes[0]),
                    ).rowcount
                conn.close()
                assert changed == 1
                assert Store.find(store.reader(), codes[0])[0].record.grossWeight == Decimal("1.500")

                refused = await through_line(park, codes[0], Decimal("1.5"))
                assert (refused.verdict, refused.codes) == (Verdict.HOLD, ("SIGNATURE_INVALID",))
                assert lanes(park) == {"diverter_left": False, "diverter_right": False}
                assert (await through_line(park, codes[1])).verdict == Verdict.RELEASE  # untouched
                await wait_until(lambda: store.backlog()["size"] == 0, what="outbox drained")

        asyncio.run(scenario())
        assert_central_matches_edge(central, tmp_path / "edge.db")
        assert_nothing_released_wrongly(central)


def test_a_decision_that_cannot_be_made_leaves_the_line_on_hold(tmp_path: Path) -> None:
    """The store breaks under the line (here: its writer is gone) right after a release left the
    release lane open. The next parcel cannot be decided; its lanes must close, not stay as they were."""
    with run_central(tmp_path / "central") as central:
        sets = declare(central, 2)
        codes = [s.waybill.logisticsNo for s in sets]

        async def scenario() -> None:
            async with running_park(tmp_path, central) as park:
                store, line = park.agent.store, park.agent.stations["line-1"]
                await wait_until(lambda: store.count_clearances() == 2, what="first sync")
                assert (await through_line(park, codes[0])).verdict == Verdict.RELEASE
                assert lanes(park) == {"diverter_left": True, "diverter_right": False}

                store._executor.shutdown()  # no transaction can run any more
                await park.io.set_input("photo_eye_1", True)
                park.line_scanner.scan(codes[1])
                await wait_until(lambda: line.view.state == StationState.FAULT, what="station FAULT")
                # the FAULT is shown as the station's work fails; the lanes' safe state is the command
                # that follows it, confirmed by read-back (on a loaded machine, a poll later)
                await wait_until(
                    lambda: lanes(park) == {"diverter_left": False, "diverter_right": False},
                    what="lanes closed",
                )
                assert "station" in line.view.faults

        asyncio.run(scenario())


# --- (e) the I/O module stops answering ------------------------------------------------------------


async def passed_the_diverter(line: Any) -> None:
    """Until the line's last parcel has passed its diverter."""
    turn = line._last_turn
    end = line._passage(turn.parcel)[1]
    await wait_until(lambda: time.monotonic() > end, what="the parcel past the diverter")


async def back_for_a_while(io: Any, line: Any) -> None:
    """Until the module has been back longer than the line's margin (a parcel whose window began
    while it was down is held for it) and what passed the photo-eye unseen meanwhile has passed the
    diverter (the lanes are held for it), as they should be."""
    margin = LINE_TRACKING["margin_s"]
    await wait_until(lambda: time.monotonic() > io.supervisor.health.since + 2 * margin, what="a while")
    until = line.lanes_held_until()
    if until is not None:
        await wait_until(lambda: time.monotonic() > until, what="the belt clear")


def test_io_module_silent_station_faults_holds_and_recovers_by_itself(tmp_path: Path) -> None:
    with run_central(tmp_path / "central") as central:
        sets = declare(central, 4)
        codes = [s.waybill.logisticsNo for s in sets]

        async def scenario() -> None:
            async with running_park(tmp_path, central) as park:
                agent = park.agent
                line = agent.stations["line-1"]
                io = agent.hub.drivers["io1"]
                await wait_until(lambda: agent.store.count_clearances() == 4, what="first sync")
                assert (await through_line(park, codes[0])).verdict == Verdict.RELEASE
                await passed_the_diverter(line)

                # the module hangs between parcels: the station shows FAULT within 1 s
                park.io.mute()
                await wait_until(lambda: line.view.state == StationState.FAULT, timeout=1.0, what="FAULT")
                assert "io1" in line.view.faults
                park.io.mute(False)
                await wait_until(lambda: line.view.state == StationState.IDLE, timeout=10, what="IDLE again")
                await back_for_a_while(io, line)

                # a parcel on the belt when the module hangs, right after one went to the release lane:
                # decided during the outage, held, and the release lane cannot be closed (FAULT)
                after = await through_line(park, codes[3])
                assert after.verdict == Verdict.RELEASE, (after.codes, after.reason)
                assert lanes(park)["diverter_left"]
                shown = line.view.last
                await park.io.set_input("photo_eye_1", True)
                await wait_until(lambda: line.view.state == StationState.CHECKING, what="parcel opened")
                park.io.mute()
                await wait_until(
                    lambda: io.supervisor.health.state.value == "DOWN", timeout=1.0, what="module DOWN"
                )
                park.line_scale.set_load(GROSS, settle_after=0)
                park.line_scanner.scan(codes[1])
                await wait_until(lambda: line.view.last is not shown, what="decision during the outage")
                held = line.view.last
                # its photo-eye went with the module: it is closed at once and held (its length, and
                # so which reads are its own, cannot be known)
                assert held.verdict == Verdict.HOLD and "DEVICE_FAULT" in held.codes
                await wait_until(lambda: line.view.state == StationState.FAULT, timeout=1.0, what="FAULT")

                # the module answers again: the station recovers by itself, the next parcel releases
                await park.io.set_input("photo_eye_1", False)
                park.io.mute(False)
                await wait_until(lambda: line.view.state == StationState.IDLE, timeout=10, what="recovered")
                assert line.view.faults == {}
                await back_for_a_while(io, line)
                released = await through_line(park, codes[2])
                assert (released.verdict, released.codes) == (Verdict.RELEASE, ())
                assert lanes(park) == {"diverter_left": True, "diverter_right": False}
                # and the parcel held during the outage is still releasable afterwards (at the bench:
                # back on the line so soon, its label would count as a repeat and hold it again)
                assert (await at_bench(park, codes[1])).verdict == Verdict.RELEASE
                await wait_until(lambda: agent.store.backlog()["size"] == 0, what="outbox drained")

        asyncio.run(scenario())
        events = assert_central_matches_edge(central, tmp_path / "edge.db")
        # the lane that could not be closed is reported upstream as a device fault
        faults = [body for _, kind, _, _, body in events if kind == "device_fault"]
        assert faults and all(f["device"] == "io1" for f in faults)
        # one event for the module going DOWN, and the unconfirmed lane change
        assert any(f["detail"].startswith("actuation") for f in faults)
        assert any("no answer" in f["detail"] and not f["detail"].startswith("actuation") for f in faults)
        # the parcel released just before the second outage had not passed the diverter when the
        # module's outputs went to their safe values: on the record as not carried out
        # and the parcel held while the module hung (its lane could not be set) may have gone down the
        # release lane still open for codes[3]: central is told to check where it went
        assert_nothing_released_wrongly(central, not_carried_out=(codes[3],), holds_unconfirmed=1)

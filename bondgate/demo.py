"""`bondgate demo`: the whole park in one command.

Central, Mosquitto and the edge agent run as their own processes (`bondgate central serve`,
`mosquitto`, `bondgate edge run`); the park's hardware is simulated in this process, speaking the
real protocols over ptys, Modbus TCP and HTTP MJPEG. Documents go in through central's real intake
(CEB XML and JSON) — clean parcels and every kind of mismatch — then parcels roll through the
conveyor, the check bench and the gate at a configurable rate, with faults on demand. The terminal
shows a live summary and the page URLs; Ctrl-C stops every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from pydantic import TypeAdapter
from rich.console import Console
from rich.live import Live
from rich.table import Table

from bondgate import demo_gate
from bondgate.processes import child, free_port, http_ready, tcp_ready
from central.auth import Role, create_token
from central.ceb.documents import Document
from central.ceb.xml_out import message_xml
from central.store.db import open_database
from edge.auth import hash_password
from firmware_sim import declarations as d
from firmware_sim.park import SimulatedPark
from firmware_sim.scenario import Parcel, Scenario, parse_faults
from firmware_sim.truck import Pace, VehicleLane, lane_edge_config
from kernel.config import toml_dumps

DOCUMENT: TypeAdapter[Document] = TypeAdapter(Document)
PARK = "HK-FTZ-1"
EDGE_ID = "edge-demo"
SENSOR_PREFIX = "bondgate/sim"  # where `bondgate sim mqtt-sensor` publishes
# the demo broker's logins (deploy/mosquitto.acl has the same rules for compose)
BROKER_LOGINS = {"edge": "edge-demo", "sim": "sim-demo", "screen": "screen-demo"}
INSPECT_GCODE = "8517"  # phones: the demo's risk rule sends them to inspection
PHONE = d.Item(
    "智能手机", "8517130000", Decimal("1"), Decimal("3999.00"), Decimal("0.400"), "R0100", "SKU-0100"
)


@dataclass(frozen=True)
class Kind:
    """A kind of parcel: what its documents say (and what central should make of them)."""

    name: str
    expect: str  # the status a reader should expect
    build: Callable[[int], list[d.Document]]  # parcel number -> documents (HTTP form), in order


def _clean(seq: int) -> list[d.Document]:
    return list(d.document_set(1, start=seq)[0].documents)


def _amount(seq: int) -> list[d.Document]:
    docs = _clean(seq)
    docs[1] = d.payment(seq, amountPaid=Decimal(docs[1]["amountPaid"]) + Decimal("5.00"))
    return docs


def _lines(seq: int) -> list[d.Document]:
    docs = _clean(seq)
    rows = [dict(r) for r in docs[3]["inventoryList"]]
    rows[0]["qty"] = "3"
    docs[3] = d.inventory(seq, inventoryList=rows)
    return docs


def _bonded(seq: int) -> list[d.Document]:
    docs = _clean(seq)
    rows = [{k: v for k, v in r.items() if k != "itemRecordNo"} for r in docs[3]["inventoryList"]]
    docs[3] = d.inventory(seq, inventoryList=rows)
    return docs


def _inspection(seq: int) -> list[d.Document]:
    return list(d.document_set(1, start=seq, items=(PHONE,))[0].documents)


def _incomplete(seq: int) -> list[d.Document]:
    docs = _clean(seq)
    return [docs[0], docs[2], docs[3]]


CLEAN, CLEAN_XML = Kind("clean (JSON)", "800", _clean), Kind("clean (CEB XML)", "800", _clean)
# one of each fault kind in every MIX_EVERY parcels (at the multiples of 3 up to 27, so a short demo
# shows them all), every other parcel clean: most parcels clear and leave, as in a working park
FAULT_KINDS = [
    Kind("amount ≠ payment", "100", _amount),
    Kind("buyer ≠ payer", "100", lambda s: [*_clean(s)[:1], d.payment(s, payerName="王五"), *_clean(s)[2:]]),
    Kind(
        "consignee ≠ waybill",
        "100",
        lambda s: [*_clean(s)[:2], d.waybill(s, consigneeAddress="上海市浦东新区 9 号"), _clean(s)[3]],
    ),
    Kind("goods lines differ", "100", _lines),
    Kind(
        "waybill weight off",
        "100",
        lambda s: [*_clean(s)[:2], d.waybill(s, weight=Decimal("9.5")), _clean(s)[3]],
    ),
    Kind("1210 without itemRecordNo", "100", _bonded),
    Kind("payment missing", "waiting", _incomplete),
    Kind("risk rule: inspection", "500", _inspection),
    Kind("cancelled after release", "800 (cancelled)", _clean),
]
MIX_EVERY = 40


def kind_of(seq: int) -> Kind:
    at = (seq - 1) % MIX_EVERY + 1
    if at % 3 == 0 and at // 3 <= len(FAULT_KINDS):
        return FAULT_KINDS[at // 3 - 1]
    return CLEAN_XML if at % 10 == 1 else CLEAN


def _declare(shop: httpx.Client, officer: httpx.Client, parcels: int) -> dict[int, Kind]:
    """Declare `parcels` parcels through central's intake; returns each parcel's kind."""
    kinds: dict[int, Kind] = {}
    batch: list[d.Document] = []
    cancel_later: list[int] = []
    for seq in range(1, parcels + 1):
        kind = kind_of(seq)
        kinds[seq] = kind
        docs = kind.build(seq)
        if "XML" in kind.name:
            for doc in docs:
                model = DOCUMENT.validate_python(doc)  # the enterprise's own XML writer, here central's
                shop.post(
                    "/api/v1/ceb/messages",
                    content=message_xml(model.KIND, [model], d.BASE_TRANSFER),
                    headers={"content-type": "application/xml"},
                ).raise_for_status()
        else:
            batch += docs
        if kind.name.startswith("cancelled"):
            cancel_later.append(seq)
        if len(batch) >= 800:
            shop.post("/api/v1/documents", json={"documents": batch}).raise_for_status()
            batch = []
    if batch:
        shop.post("/api/v1/documents", json={"documents": batch}).raise_for_status()
    for seq in cancel_later:
        [detail] = officer.get("/api/v1/clearances", params={"logisticsNo": d.logistics_no(seq)}).json()
        cancel = d.cancellation(seq, invtNo=detail["clearance"]["invtNo"])
        shop.post("/api/v1/documents", json=cancel).raise_for_status()
    return kinds


def _physical(seq: int, kind: Kind, unknown_every: int) -> Parcel:
    """What actually rolls down the line for parcel `seq`."""
    items = (PHONE,) if "inspection" in kind.name else d.DEFAULT_ITEMS
    kg = d.weights(items)[0]
    code = d.logistics_no(seq)
    station = "bench-1" if seq % 10 == 0 else "gate-1" if seq % 15 == 0 else "line-1"
    shown = None
    if kind.expect == "800" and station == "line-1":
        if seq % MIX_EVERY == 8:
            kg += Decimal("1.2")  # overweight: something was added to the parcel
        elif seq % MIX_EVERY == 16:
            shown = f"SF{seq:013d}"  # label swap: the camera sees another parcel's label
    if unknown_every and seq % unknown_every == 0:
        code = f"UNDECLARED{seq:08d}"  # a parcel nobody declared
    return Parcel(code=code, kg=kg, station=station, shown=shown)


def _counts(edge_db: Path) -> tuple[Counter[str], Counter[str], int]:
    if not edge_db.exists():
        return Counter(), Counter(), 0
    conn = sqlite3.connect(f"file:{edge_db}?mode=ro", uri=True, timeout=5)
    try:
        verdicts = Counter(
            {
                f"{s} {v}": n
                for s, v, n in conn.execute(
                    "SELECT station, verdict, COUNT(*) FROM decisions GROUP BY station, verdict"
                )
            }
        )
        codes: Counter[str] = Counter()
        for (raw,) in conn.execute("SELECT codes FROM decisions"):
            codes.update(json.loads(raw))
        backlog = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    except sqlite3.Error:
        return Counter(), Counter(), 0
    finally:
        conn.close()
    return verdicts, codes, int(backlog)


def _summary(
    edge_db: Path,
    report: dict | None,
    played: int,
    total: int,
    urls: dict[str, str],
    gate: dict | None = None,
    trucks: list[str] | None = None,
) -> Table:
    verdicts, codes, backlog = _counts(edge_db)
    passages, stops = demo_gate.gate_counts(edge_db)
    table = Table(title=f"Bondgate park {PARK}: {played}/{total} parcels played", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("decisions", ", ".join(f"{k}: {v}" for k, v in sorted(verdicts.items())) or "-")
    table.add_row("discrepancies", ", ".join(f"{k}: {v}" for k, v in codes.most_common()) or "-")
    table.add_row("gate: vehicles", ", ".join(f"{k}: {v}" for k, v in sorted(passages.items())) or "-")
    table.add_row("gate: stops", ", ".join(f"{k}: {v}" for k, v in stops.most_common()) or "-")
    for line in trucks or []:
        table.add_row("truck", line)
    table.add_row("outbox (not yet at central)", str(backlog))
    if report:
        table.add_row("central: clearances", str(report["clearances"]["by_status"]))
        table.add_row("central: cleared, not out", str(report["cleared_not_out"]["total"]))
        bad = report["released_without_clearance"]["total"] + report["released_twice"]["total"]
        table.add_row(
            "central: released without clearance / twice",
            f"{report['released_without_clearance']['total']} / {report['released_twice']['total']}"
            + ("  (must be 0!)" if bad else "  (as it must be)"),
        )
    if gate:
        through = gate["through_gate_without_line_release"]["total"]
        table.add_row(
            "central: through the gate without a line release",
            f"{through}" + ("  (must be 0!)" if through else "  (as it must be)"),
        )
        table.add_row(
            "central: released by the line, not through the gate",
            str(gate["released_not_through_gate"]["total"]),
        )
        table.add_row("central: on a note, never loaded", str(gate["on_note_not_loaded"]["total"]))
        stuck = gate["passes_not_carried_out"]["total"]
        table.add_row(
            "central: passed, but not let through",
            f"{stuck}" + ("  (must be 0!)" if stuck else "  (as it must be)"),
        )
        worst = gate["weights"][0] if gate["weights"] else None
        if worst is not None:
            table.add_row(
                "central: largest note vs weighbridge difference",
                f"{worst['difference_kg']} kg ({worst['note']}, {worst['vehicleNo']})",
            )
    for name, url in urls.items():
        table.add_row(name, url)
    return table


def broker_acl(park: str = PARK, sensor_prefix: str = SENSOR_PREFIX) -> str:
    """Who may publish what (README, "Broker logins and ACLs"): only the agent under the park's
    topics, the sensor simulator only its own sensor topics, a screen nothing."""
    return (
        f"user edge\ntopic readwrite bondgate/{park}/#\ntopic read {sensor_prefix}/#\n\n"
        f"user sim\ntopic write {sensor_prefix}/gate/+/state\ntopic write {sensor_prefix}/loop/+\n"
        f"topic write {sensor_prefix}/plate/+\ntopic write {sensor_prefix}/container/+\n"
        f"topic write {sensor_prefix}/seal/+\n\n"
        f"user screen\ntopic read bondgate/{park}/#\n"
    )


def write_broker_config(workdir: Path, port: int) -> Path:
    """The demo's Mosquitto: loopback only, a password per login, the ACL; returns the config."""
    passwd, acl, conf = (workdir / f"mosquitto.{ext}" for ext in ("passwd", "acl", "conf"))
    passwd.write_text("")
    for login, password in BROKER_LOGINS.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), login, password], check=True)
    acl.write_text(broker_acl())
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n"
        f"acl_file {acl}\nuser root\n"
    )
    return conf


def run_demo(
    parcels: int = 120,
    rate: float = 10.0,
    faults: str = "noread=0.02",
    keep: bool = False,
    workdir: Path | None = None,
    unknown_every: int = 30,
) -> None:
    console = Console() if sys.stdout.isatty() else Console(width=150)
    stop_on_signals()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="bondgate-demo-"))
    fault_map = parse_faults(faults)
    c_port, m_port, e_port = free_port(), free_port(), free_port()
    db = open_database(workdir / "central.db")
    admin_token, _ = create_token(db, role=Role.ADMIN, name="demo admin")
    db.close()
    (workdir / "central.toml").write_text(
        toml_dumps(
            {
                "database": workdir / "central.db",
                "signing_key": workdir / "feed.key",
                "port": c_port,
                "log_level": "WARNING",
                "risk": {"sampling_rate": 0, "gcode_prefixes": [INSPECT_GCODE]},
            }
        )
    )
    broker_conf = write_broker_config(workdir, m_port)
    py = [sys.executable, "-m", "bondgate.cli"]
    central_url = f"http://127.0.0.1:{c_port}"
    with ExitStack() as stack:
        stack.enter_context(
            child(
                "mosquitto",
                [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(broker_conf)],
                workdir / "mosquitto.log",
                tcp_ready(m_port),
            )
        )
        stack.enter_context(
            child(
                "central",
                [*py, "central", "serve", "--config", str(workdir / "central.toml")],
                workdir / "central.log",
                http_ready(f"{central_url}/healthz"),
            )
        )
        admin = httpx.Client(
            base_url=central_url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=60
        )
        admin.put(
            f"/api/v1/parks/{PARK}",
            json={
                "park_id": PARK,
                "name": "海口综保区 1 号仓",
                "ems_nos": [d.DEFAULT_EMS_NO],
                "area_codes": [d.DEFAULT_AREA_CODE],
            },
        ).raise_for_status()
        tokens = {
            role: admin.post(
                "/api/v1/tokens",
                json={"role": role, "name": f"demo {role}"}
                | ({"park_id": PARK, "edge_id": EDGE_ID} if role == "edge" else {})
                | ({"enterprise_codes": d.ENTERPRISE_CODES} if role == "enterprise" else {}),
            ).json()["token"]
            for role in ("enterprise", "officer", "edge")
        }
        shop, officer = (
            httpx.Client(base_url=central_url, headers={"Authorization": f"Bearer {tokens[r]}"}, timeout=60)
            for r in ("enterprise", "officer")
        )
        console.print(f"[bold]Bondgate demo[/] — data and logs in {workdir}")
        started = time.perf_counter()
        kinds = _declare(shop, officer, parcels)
        console.print(
            f"declared {parcels} parcels through central's intake in "
            f"{time.perf_counter() - started:.1f} s (CEB XML and JSON)"
        )
        (workdir / "central-feed.pem").write_text(
            httpx.get(f"{central_url}/.well-known/bondgate/feed-key.pem").text
        )
        physical = [_physical(seq, kinds[seq], unknown_every) for seq in range(1, parcels + 1)]
        urls = {
            "central API docs": f"{central_url}/docs",
            "central pages (officer token)": f"{central_url}/ui/",
            "edge pages (demo / demo-pass)": f"http://127.0.0.1:{e_port}/",
            "MQTT for screens (screen / screen-demo)": f"mqtt://127.0.0.1:{m_port}/bondgate/{PARK}/#",
            "officer token": tokens["officer"],
        }
        asyncio.run(
            _park(
                workdir,
                console,
                physical,
                rate,
                fault_map,
                keep,
                tokens["edge"],
                central_url,
                m_port,
                e_port,
                officer,
                shop,
                urls,
                py,
            )
        )


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP: taken as Ctrl-C is, so every child is stopped on the way out."""


def stop_on_signals() -> None:
    """A service manager's SIGTERM and a closed terminal's SIGHUP end the demo as Ctrl-C does: the
    exception unwinds the event loop (the edge agent is stopped) and the ExitStack (central and
    Mosquitto), where the default action would end this process at once and leave them running."""

    def stopped(signum: int, frame: object) -> None:
        raise Stopped(signal.Signals(signum).name)

    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, stopped)


async def _park(
    workdir: Path,
    console: Console,
    physical: list[Parcel],
    rate: float,
    faults: dict[str, float],
    keep: bool,
    edge_token: str,
    central_url: str,
    m_port: int,
    e_port: int,
    officer: httpx.Client,
    shop: httpx.Client,
    urls: dict[str, str],
    py: list[str],
) -> None:
    park = SimulatedPark(workdir / "devices")
    await park.start()
    lanes = contextlib.AsyncExitStack()
    lane = await lanes.enter_async_context(
        VehicleLane.running(
            workdir / "lane",
            broker_port=m_port,
            broker_username="sim",
            broker_password=BROKER_LOGINS["sim"],
            prefix=SENSOR_PREFIX,
            modbus_port=0,
            travel_s=0.5,
            watchdog_s=2.0,
            bridge={
                "rate_hz": 20.0,
                "axle_s": 0.15,
                "oscillation_s": 0.3,
                "settle_s": 0.3,
                "division_kg": 20,
            },
        )
    )
    broker = {"host": "127.0.0.1", "port": m_port, "username": "edge", "password": BROKER_LOGINS["edge"]}
    lane_devices, lane_station = lane_edge_config(lane, broker, collect_s=3.0)
    devices_and_stations = park.edge_devices_and_stations()
    devices_and_stations["devices"].update(lane_devices)
    devices_and_stations["stations"].append(lane_station)
    config = {
        "park_id": PARK,
        "edge_id": EDGE_ID,
        "database": workdir / "edge.db",
        "evidence_dir": workdir / "evidence",
        "log_level": "WARNING",
        "central": {
            "url": central_url,
            "token": edge_token,
            "public_key": workdir / "central-feed.pem",
            "long_poll_s": 2,
        },
        "mqtt": {
            "broker": {
                "host": "127.0.0.1",
                "port": m_port,
                "username": "edge",
                "password": BROKER_LOGINS["edge"],
            }
        },
        "api": {
            "host": "127.0.0.1",
            "port": e_port,
            "users": [{"name": "demo", "role": "supervisor", "password_hash": hash_password("demo-pass")}],
        },
        **devices_and_stations,
    }
    (workdir / "edge.toml").write_text(toml_dumps(config))
    log = (workdir / "edge.log").open("wb")
    edge = await asyncio.create_subprocess_exec(
        *py,
        "edge",
        "run",
        "--config",
        str(workdir / "edge.toml"),
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    scenario = Scenario(park, rate=rate, faults=faults)
    edge_db = workdir / "edge.db"
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{e_port}", timeout=5) as api:
            await _wait(lambda: _edge_ready(api), 60, "the edge agent to start", edge)
            login = await api.post("/api/login", json={"name": "demo", "password": "demo-pass"})
            auth = {"Authorization": f"Bearer {login.json()['token']}"}

            async def synced() -> bool:
                status = (await api.get("/api/status", headers=auth)).json()["sync"]
                return bool(status["caught_up"] and status["records"] > 0)

            await _wait(synced, 60, "the first sync", edge)
            play = asyncio.create_task(scenario.play(physical))
            with Live(console=console, refresh_per_second=4, transient=False) as live:
                while not play.done():
                    live.update(
                        _summary(
                            edge_db,
                            None,
                            sum(scenario.played[s] for s in ("line-1", "bench-1", "gate-1")),
                            len(physical),
                            urls,
                        )
                    )
                    await asyncio.sleep(0.5)
                await play
                await asyncio.sleep(2.5)  # the last parcels' decisions
                await _wait(lambda: _drained(edge_db), 60, "the outbox to drain", edge)
                # the trucks: notes for the released parcels, then through the gate
                loads = demo_gate.plan(demo_gate.released_parcels(edge_db))
                await asyncio.to_thread(demo_gate.declare, shop, officer, loads, d.DEFAULT_EMS_NO)
                await _wait(
                    lambda: _notes_synced(edge_db, len(loads)), 60, "the notes to reach the edge", edge
                )
                trucks = asyncio.create_task(
                    demo_gate.run_trucks(
                        lane, loads, api, auth, Pace(step_s=0.2, settle_timeout_s=20, barrier_timeout_s=4)
                    )
                )
                while not trucks.done():
                    live.update(_summary(edge_db, None, len(physical), len(physical), urls))
                    await asyncio.sleep(0.5)
                truck_lines = await trucks
                await asyncio.sleep(1.0)
                await _wait(lambda: _drained(edge_db), 60, "the outbox to drain", edge)
                report = await asyncio.to_thread(lambda: officer.get(f"/api/v1/parks/{PARK}/report").json())
                gate = await asyncio.to_thread(
                    lambda: officer.get(f"/api/v1/parks/{PARK}/gate-report").json()
                )
                live.update(_summary(edge_db, report, len(physical), len(physical), urls, gate, truck_lines))
            if keep:
                console.print("everything keeps running; Ctrl-C stops it")
                await asyncio.Event().wait()
    finally:
        if edge.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(edge.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(edge.wait(), 10)
            except TimeoutError:
                os.killpg(edge.pid, signal.SIGKILL)
        log.close()
        await lanes.aclose()
        await park.stop()


async def _edge_ready(api: httpx.AsyncClient) -> bool:
    try:
        return (await api.get("/healthz")).status_code == 200
    except httpx.TransportError:
        return False


async def _notes_synced(edge_db: Path, count: int) -> bool:
    try:
        conn = sqlite3.connect(f"file:{edge_db}?mode=ro", uri=True, timeout=5)
        try:
            return (
                int(conn.execute("SELECT COUNT(*) FROM release_notes WHERE status = '1'").fetchone()[0])
                >= count
            )
        finally:
            conn.close()
    except sqlite3.Error:
        return False


async def _drained(edge_db: Path) -> bool:
    return _counts(edge_db)[2] == 0


async def _wait(
    check: Callable[[], Any], timeout: float, what: str, proc: asyncio.subprocess.Process
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if proc.returncode is not None:
            raise RuntimeError(f"the edge agent exited while waiting for {what}; see its log")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)

"""`bondgate demo`: central on a fresh database, a park, tokens, a few dozen parcels of every kind.

Everything goes through the real interfaces: central runs as its own process (`bondgate central
serve`), documents go in over HTTP as CEB XML and as JSON, and the table is read back from the API.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from central.auth import Role, create_token
from central.ceb.xml_out import message_xml
from central.store.db import Database
from firmware_sim import declarations as d

PARK = "HK-FTZ-1"
INSPECT_GCODE = "8517"  # phones: the demo's risk rule sends them to inspection
PHONE = d.Item(
    "智能手机", "8517130000", Decimal("1"), Decimal("3999.00"), Decimal("0.400"), "R0100", "SKU-0100"
)


@dataclass(frozen=True)
class Scenario:
    name: str
    expect: str  # the status a reader should expect
    build: Callable[[int], list]  # parcel number -> documents to submit, in order


def _clean(seq: int) -> list:
    return list(d.document_set(1, start=seq)[0].documents)


def _replace(index: int, **changes: object) -> Callable[[int], list]:
    def build(seq: int) -> list:
        docs = _clean(seq)
        docs[index] = docs[index].model_copy(update=changes)
        return docs

    return build


def _amount(seq: int) -> list:
    docs = _clean(seq)
    docs[1] = d.payment(seq, amountPaid=docs[1].amountPaid + Decimal("5.00"))
    return docs


def _lines(seq: int) -> list:
    docs = _clean(seq)
    rows = [r.model_dump(mode="json") for r in docs[3].inventoryList]
    rows[0]["qty"] = "3"
    docs[3] = d.inventory(seq, inventoryList=rows)
    return docs


def _bonded(seq: int) -> list:
    docs = _clean(seq)
    rows = [r.model_dump(mode="json", exclude={"itemRecordNo"}) for r in docs[3].inventoryList]
    docs[3] = d.inventory(seq, inventoryList=rows)
    return docs


def _inspection(seq: int) -> list:
    return list(d.document_set(1, start=seq, items=(PHONE,))[0].documents)


def _incomplete(seq: int) -> list:
    docs = _clean(seq)
    return [docs[0], docs[2], docs[3]]


SCENARIOS = [
    Scenario("clean (JSON)", "800", _clean),
    Scenario("clean (CEB XML)", "800", _clean),
    Scenario("amount ≠ payment", "100", _amount),
    Scenario(
        "buyer ≠ payer", "100", lambda s: [*_clean(s)[:1], d.payment(s, payerName="王五"), *_clean(s)[2:]]
    ),
    Scenario(
        "consignee ≠ waybill",
        "100",
        lambda s: [*_clean(s)[:2], d.waybill(s, consigneeAddress="上海市浦东新区 9 号"), _clean(s)[3]],
    ),
    Scenario("goods lines differ", "100", _lines),
    Scenario(
        "waybill weight off",
        "100",
        lambda s: [*_clean(s)[:2], d.waybill(s, weight=Decimal("9.5")), _clean(s)[3]],
    ),
    Scenario("1210 without itemRecordNo", "100", _bonded),
    Scenario("payment missing", "waiting", _incomplete),
    Scenario("risk rule: inspection", "500", _inspection),
    Scenario("cancelled after release", "800 (cancelled)", _clean),
    Scenario("clean (JSON)", "800", _clean),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def central_process(workdir: Path, port: int) -> Iterator[str]:
    """Run `bondgate central serve` as its own process; stop it (and only it) on the way out."""
    config = workdir / "central.toml"
    config.write_text(
        f'database = "{workdir / "central.db"}"\nsigning_key = "{workdir / "feed.key"}"\n'
        f'port = {port}\nlog_level = "WARNING"\n\n[risk]\nsampling_rate = 0\n'
        f'gcode_prefixes = ["{INSPECT_GCODE}"]\n'
    )
    log = (workdir / "central.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bondgate.cli", "central", "serve", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"central did not start; see {workdir / 'central.log'}")
            time.sleep(0.1)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def run_demo(parcels: int = 36, keep: bool = False, workdir: Path | None = None) -> None:
    console = Console() if sys.stdout.isatty() else Console(width=150)
    workdir = workdir or Path(tempfile.mkdtemp(prefix="bondgate-demo-"))
    port = _free_port()
    # the first admin token is minted on the database, as an operator would with the CLI
    db = Database(workdir / "central.db")
    admin_token, _ = create_token(db, role=Role.ADMIN, name="demo admin")
    db.close()
    with central_process(workdir, port) as url:
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=30)
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
                json={"role": role, "name": f"demo {role}", "park_id": PARK if role == "edge" else None},
            ).json()["token"]
            for role in ("enterprise", "officer", "edge")
        }
        shop = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {tokens['enterprise']}"}, timeout=30
        )
        officer = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {tokens['officer']}"}, timeout=30
        )
        console.print(f"[bold]Bondgate demo[/] — central at {url} (API docs {url}/docs), data in {workdir}")
        started = time.perf_counter()
        rows = []
        for seq in range(1, parcels + 1):
            scenario = SCENARIOS[(seq - 1) % len(SCENARIOS)]
            docs = scenario.build(seq)
            as_xml = "XML" in scenario.name
            for doc in docs:
                if as_xml:
                    body = message_xml(doc.KIND, [doc], d.BASE_TRANSFER)
                    shop.post(
                        "/api/v1/ceb/messages", content=body, headers={"content-type": "application/xml"}
                    ).raise_for_status()
                else:
                    shop.post("/api/v1/documents", json=doc.model_dump(mode="json")).raise_for_status()
            if scenario.name.startswith("cancelled"):
                [detail] = officer.get(
                    "/api/v1/clearances", params={"logisticsNo": d.logistics_no(seq)}
                ).json()
                cancel = d.cancellation(seq, invtNo=detail["clearance"]["invtNo"])
                shop.post("/api/v1/documents", json=cancel.model_dump(mode="json")).raise_for_status()
            rows.append((seq, scenario, docs))
        elapsed = time.perf_counter() - started
        table = Table(title=f"{parcels} parcels declared to park {PARK}", show_lines=False)
        for column in ("#", "logisticsNo", "scenario", "status", "invtNo", "receipt (returnInfo)"):
            table.add_column(column, overflow="fold")
        counts: Counter[str] = Counter()
        for seq, scenario, docs in rows:
            found = officer.get("/api/v1/clearances", params={"logisticsNo": d.logistics_no(seq)}).json()
            detail = found[0] if found else None
            clearance = detail["clearance"] if detail else None
            if clearance is None:
                status = "waiting"
                info = "missing: " + ", ".join(detail["missing"]) if detail else "-"
                invt = ""
            else:
                status = clearance["status"] + (" (cancelled)" if clearance["cancelled"] else "")
                receipts = shop.get(f"/api/v1/documents/{docs[-1].guid}/receipts").json()
                info = receipts[-1]["returnInfo"] if receipts else ""
                invt = clearance["invtNo"]
            counts[status] += 1
            style = "green" if status == "800" else "yellow" if status in ("500", "waiting") else "red"
            table.add_row(
                str(seq), d.logistics_no(seq), scenario.name, f"[{style}]{status}[/]", invt, info[:90]
            )
        console.print(table)
        console.print("statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
        console.print(f"{sum(len(r[2]) for r in rows)} documents in {elapsed:.2f} s over HTTP")
        report = officer.get(f"/api/v1/parks/{PARK}/report").json()
        console.print(
            f"park report: by status {report['clearances']}; cleared but not physically out: "
            f"{report['cleared_not_out']['total']}; released without clearance: "
            f"{report['released_without_clearance']['total']} (must be 0); released twice: "
            f"{report['released_twice']['total']} (must be 0)"
        )
        console.print(f"edge token for {PARK} (for `bondgate edge`, later): {tokens['edge']}")
        if keep:
            console.print("central keeps running; Ctrl-C to stop")
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass

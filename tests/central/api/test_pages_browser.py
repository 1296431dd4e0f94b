"""The officer pages in a real browser: headless Debian chromium driven by playwright over a real central.

Parcels 1–3 are declared consistently (cleared to 800), parcel 4 with a payment that does not match
the order (rejected by the "amount" rule). The edge reports a heartbeat with a backlog, the release
of parcel 1 and a discrepancy on parcel 4. The officer signs in with the token, reads the park
overview (counts, a non-zero bar for the release, two parcels cleared but not out, the must-be-empty
lists green), follows the discrepancy to parcel 4's drill-down and sees the failed amount rule with
the two fields highlighted. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kernel.wire import GENESIS_HASH, Event, EventBody, EventKind, chain_event
from testkit import factories
from testkit.central_server import RunningCentral, run_central

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[3] / "artifacts" / "screenshots"
MISMATCHED = 4

pytestmark = [
    pytest.mark.skipif(shutil.which(str(CHROMIUM)) is None, reason=f"no Debian chromium at {CHROMIUM}"),
    pytest.mark.both_backends,
]


def _events() -> list[Event]:
    parcel = {"logisticsCode": factories.LOGISTICS_CODE}
    bodies = [
        (EventKind.HEARTBEAT, EventBody(backlog=3)),
        (EventKind.RELEASE, EventBody(**parcel, logisticsNo=factories.logistics_no(1), verdict="RELEASE")),
        (
            EventKind.DISCREPANCY,
            EventBody(
                **parcel,
                logisticsNo=factories.logistics_no(MISMATCHED),
                verdict="HOLD",
                codes=["NOT_CLEARED"],
                detail="clearance <b>100</b>, not 800",
            ),
        ),
    ]
    events, prev = [], GENESIS_HASH
    for seq, (kind, body) in enumerate(bodies, start=1):
        event = chain_event(
            prev,
            edge_id="edge-p1",
            seq=seq,
            kind=kind,
            station="line-1",
            occurred_at=datetime.now(UTC),
            body=body,
        )
        events.append(event)
        prev = event.hash
    return events


def _populate(central: RunningCentral) -> None:
    with central.client("enterprise") as shop:
        sets = factories.document_set(MISMATCHED)
        bad = sets[-1]
        documents: list[Any] = [doc for s in sets[:-1] for doc in s.documents]
        documents += [
            bad.order,
            factories.payment(MISMATCHED, amountPaid=Decimal("1.00")),
            bad.waybill,
            bad.inventory,
        ]
        for doc in documents:
            shop.post("/api/v1/documents", json=doc.model_dump(mode="json")).raise_for_status()
    with central.client("edge") as edge:
        batch = {"edge_id": "edge-p1", "events": [e.model_dump(mode="json") for e in _events()]}
        answer = edge.post("/api/v1/parks/P1/events", json=batch)
        answer.raise_for_status()
        assert answer.json()["acked_seq"] == 3


@pytest.fixture
def populated(tmp_path: Path) -> Iterator[RunningCentral]:
    with run_central(tmp_path / "central") as central:
        _populate(central)
        yield central


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        context.set_default_timeout(10_000)
        try:
            yield context.new_page()
        finally:
            context.close()


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_officer_reads_the_park_and_drills_down_to_the_failed_rule(
    populated: RunningCentral, page: Any
) -> None:
    expect = sync_api.expect
    page.goto(f"{populated.url}/ui/parks/P1")
    assert "/ui/login" in page.url  # no session yet
    page.fill("input[name=token]", populated.tokens["enterprise"])
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("may not use these pages")

    page.fill("input[name=token]", populated.tokens["officer"])
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/parks/P1")
    _shot(page, "park-overview")
    expect(page.locator("#status-800 td.num")).to_have_text("3")
    expect(page.locator("#status-100 td.num")).to_have_text("1")
    expect(page.locator("#clearances-total")).to_have_text("4")
    expect(page.locator("#cleared-not-out-total")).to_have_text("2")
    bars = page.locator("#releases rect.bar.nonzero")
    expect(bars).to_have_count(1)
    assert bars.first.get_attribute("data-count") == "1"
    assert float(bars.first.get_attribute("height") or 0) > 0
    for empty in ("#released-without-clearance", "#released-twice"):
        expect(page.locator(empty)).to_have_class("must-be-empty ok")
        expect(page.locator(f"{empty} .count")).to_have_text("0")
    expect(page.locator("#discrepancy-codes tbody tr")).to_contain_text("NOT_CLEARED")
    expect(page.locator("#discrepancy-codes tbody tr")).to_contain_text("50.0 %")  # 1 of 2 decisions
    expect(page.locator("#edges tbody tr")).to_contain_text("edge-p1")
    expect(page.locator("#edges .edge-backlog")).to_have_text("3")

    page.click("#discrepancy-codes a")
    page.wait_for_url("**/ui/discrepancies/P1?code=NOT_CLEARED")
    row = page.locator("tr.discrepancy")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("clearance <b>100</b>, not 800")  # escaped, shown as text
    _shot(page, "discrepancies")

    row.get_by_role("link", name=factories.logistics_no(MISMATCHED)).click()
    page.wait_for_url(f"**/ui/clearances?logisticsNo={factories.logistics_no(MISMATCHED)}")
    _shot(page, "clearance-drill-down")
    expect(page.locator("#status")).to_contain_text("100")
    failure = page.locator("tr.failure[data-rule=amount]")
    expect(failure).to_have_count(1)
    expect(failure).to_contain_text("amountPaid")
    expect(failure).to_contain_text("1.00")
    expect(page.locator("[data-document=payment] .failed[data-field=amountPaid]")).to_contain_text("1.00")
    expect(page.locator("[data-document=order] .failed[data-field=acturalPaid]")).to_have_count(1)
    expect(page.locator(".history tbody tr")).not_to_have_count(0)

    page.click("text=Sign out")
    page.wait_for_url("**/ui/login")
    page.goto(f"{populated.url}/ui/")
    assert "/ui/login" in page.url

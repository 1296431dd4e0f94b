"""The operator pages in a real browser (headless Debian chromium driven by playwright) against a
whole simulated park and a real central: the station screen follows scans live over SSE, the
supervisor overrides from the discrepancy queue, and the open screen shows it without a reload.

Screenshots go to artifacts/screenshots/edge-*.png (gitignored); the browser test skips when
chromium or playwright is absent. The SSE stream's heartbeat and clean-up are checked without one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI

from devices.drivers.camera import save_evidence
from edge.api import create_app
from edge.api.deps import COOKIE
from edge.api.feeds import StationFeeds
from edge.auth import Role, Sessions
from testkit import factories
from testkit.central_server import run_central
from testkit.park import put_on_bench, running_park, wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
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
GROSS = Decimal("0.800")  # the factories' parcel: goods 0.6 kg + packaging 0.2 kg
WAIT_MS = 10_000


def browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"no Debian chromium at {CHROMIUM} (scripts/system-packages.sh installs it)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright (python) is not installed in the venv"
    return None


def declare(central: Any, n: int) -> list[factories.DocumentSet]:
    sets = factories.document_set(n)
    batch = {"documents": [d.model_dump(mode="json") for s in sets for d in s.documents]}
    central.client("enterprise").post("/api/v1/documents", json=batch).raise_for_status()
    return sets


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """`app` on a real uvicorn in this loop, on a free port. Leaving waits for the server to stop,
    which it does only once every event stream has ended."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started, what="api up")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def log_in(page: Any, name: str, password: str) -> None:
    await page.fill("#name", name)
    await page.fill("#password", password)
    await page.click("form.login button[type=submit]")


def test_station_screen_follows_scans_live_and_shows_an_override(tmp_path: Path) -> None:
    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    from playwright.async_api import async_playwright, expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    with run_central(tmp_path / "central") as central:
        sets = declare(central, 2)
        cleared, heavy = sets[0].waybill.logisticsNo, sets[1].waybill.logisticsNo

        async def scenario() -> None:
            async with (
                running_park(tmp_path, central) as park,
                serving(create_app(park.agent)) as base,
                async_playwright() as pw,
            ):
                agent = park.agent
                bench = agent.stations["bench-1"]
                await wait_until(lambda: agent.store.count_clearances() == 2, what="first sync")
                browser = await pw.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
                )
                try:
                    size = {"width": 1280, "height": 900}
                    olga_ctx = await browser.new_context(base_url=base, viewport=size)
                    olga = await olga_ctx.new_page()

                    # logged out: the screen sends to the login form, and back after it
                    await olga.goto("/stations/bench-1")
                    await expect(olga).to_have_url(re.compile(r"/login\?next=/stations/bench-1$"))
                    await log_in(olga, "olga", "not-her-password")
                    await expect(olga.locator("#login-error")).to_have_text("Wrong name or password")
                    await log_in(olga, "olga", "olga-pass")
                    await expect(olga).to_have_url(f"{base}/stations/bench-1")
                    cookie = next(c for c in await olga_ctx.cookies() if c["name"] == "bondgate_session")
                    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
                    word = olga.locator("#verdict-word")
                    await expect(word).to_have_text("READY")
                    await expect(olga.locator("#live")).to_have_text("Live", timeout=WAIT_MS)
                    await olga.evaluate("window.notReloaded = true")

                    # a cleared parcel of the declared weight: RELEASE appears without a reload
                    await put_on_bench(park, GROSS)
                    park.hand_scanner.scan(cleared)
                    await expect(word).to_have_text("RELEASE", timeout=WAIT_MS)
                    await expect(olga.locator("#parcel-code")).to_have_text(cleared)
                    await expect(olga.locator("#weight")).to_contain_text("0.800 kg")
                    await expect(olga.locator(".verdict")).to_have_class(re.compile(r"\btone-go\b"))
                    await olga.screenshot(path=SHOTS / "edge-station-release.png")

                    # too heavy: HOLD, and why in plain words
                    await put_on_bench(park, Decimal("2.5"))
                    park.hand_scanner.scan(heavy)
                    await expect(word).to_have_text("HOLD", timeout=WAIT_MS)
                    await expect(olga.locator("#reason")).to_contain_text("Weight wrong: 2.5")
                    await expect(olga.locator("#weight")).to_contain_text("+1.700 kg")
                    await expect(olga.locator(".verdict")).to_have_class(re.compile(r"\btone-stop\b"))
                    assert await olga.evaluate("window.notReloaded") is True
                    await olga.screenshot(path=SHOTS / "edge-station-hold.png")
                    held = bench.view.last
                    assert held is not None and held.codes == ("WEIGHT_MISMATCH",)

                    # an operator sees the queue but no override form
                    queue = await olga_ctx.new_page()
                    await queue.goto("/discrepancies")
                    await expect(queue.locator(f'tr[data-decision="{held.decision_id}"]')).to_have_count(1)
                    await expect(queue.locator("form.override")).to_have_count(0)
                    await queue.close()

                    # the supervisor overrides with a reason; olga's open screen shows the RELEASE
                    sam_ctx = await browser.new_context(base_url=base, viewport=size)
                    sam = await sam_ctx.new_page()
                    await sam.goto("/discrepancies")
                    await log_in(sam, "sam", "sam-pass")
                    await expect(sam).to_have_url(f"{base}/discrepancies")
                    row = sam.locator(f'tr[data-decision="{held.decision_id}"]')
                    await row.locator('input[name="reason"]').fill("scale plate dirty, reweighed by hand")
                    await sam.screenshot(path=SHOTS / "edge-discrepancies.png", full_page=True)
                    await row.get_by_role("button", name="Override").click()
                    await expect(sam.locator("#override-done")).to_contain_text("is now RELEASE")
                    await expect(row).to_have_count(0)
                    await expect(word).to_have_text("RELEASE", timeout=WAIT_MS)
                    await expect(olga.locator("#parcel-code")).to_have_text(heavy)
                    await expect(olga.locator("#reason")).to_contain_text("Cleared")
                    assert await olga.evaluate("window.notReloaded") is True
                    assert "sam (override: scale plate dirty" in (bench.view.last.operator or "")
                    await olga.screenshot(path=SHOTS / "edge-station-override-release.png")

                    # a stream that goes silent without an error (half-open): after 2.5 heartbeats
                    # with nothing heard the screen says it is not live and connects again
                    quiet = await olga_ctx.new_page()
                    await quiet.clock.install()
                    await quiet.goto("/stations/bench-1")
                    await expect(quiet.locator("#live")).to_have_text("Live", timeout=WAIT_MS)
                    await quiet.clock.fast_forward("01:00")  # no heartbeat can arrive in a faked minute
                    await expect(quiet.locator("#live")).to_have_attribute("data-reconnects", "1")
                    await expect(quiet.locator("#live")).to_have_text("Live", timeout=WAIT_MS)
                    await expect(quiet.locator("#verdict-word")).to_have_text("RELEASE")
                    await quiet.close()

                    # the camera snapshot, served by its content hash (the park has no camera:
                    # show the last decision again as if it had kept one)
                    image = np.full((240, 320, 3), (40, 160, 40), np.uint8)
                    jpeg = save_evidence(image, Path(agent.settings.evidence_dir))
                    bench.show(dataclasses.replace(bench.view.last, evidence=str(jpeg)))
                    snapshot = olga.locator("#snapshot")
                    await expect(snapshot).to_be_visible(timeout=WAIT_MS)
                    await loaded(snapshot, width=320)
                    await olga.screenshot(path=SHOTS / "edge-station-snapshot.png")

                    # the park overview: stations, devices, sync and uplink
                    await sam.goto("/")
                    await expect(sam.locator('tr[data-device="bench_scale"]')).to_contain_text("UP")
                    await expect(sam.locator('tr[data-station="bench-1"]')).to_contain_text("RELEASE")
                    await expect(sam.locator("#sync")).to_contain_text("Up to date")
                    await sam.screenshot(path=SHOTS / "edge-index.png", full_page=True)

                    await refusals(base, await olga_ctx.cookies(), jpeg.name)

                    # central shows the releases the edge reported (its officer pages, same browser)
                    await wait_until(lambda: agent.store.backlog()["size"] == 0, what="outbox drained")
                    officer_ctx = await browser.new_context(base_url=central.url, viewport=size)
                    officer = await officer_ctx.new_page()
                    await officer.goto("/ui/parks/P1")
                    await officer.locator('input[name="token"]').fill(central.tokens["officer"])
                    await officer.get_by_role("button", name="Sign in").click()
                    await expect(officer).to_have_url(f"{central.url}/ui/parks/P1")
                    await expect(officer.locator("#releases")).to_contain_text("2 release(s)")
                    await expect(officer.locator("#cleared-not-out-total")).to_have_text("0")
                    await officer.screenshot(path=SHOTS / "central-after-edge.png", full_page=True)

                    await sam.get_by_role("button", name="Log out").click()
                    await expect(sam).to_have_url(f"{base}/login")
                    await sam.goto("/discrepancies")
                    await expect(sam).to_have_url(re.compile(r"/login\?next=/discrepancies$"))
                finally:
                    await browser.close()

        asyncio.run(scenario())


async def loaded(img: Any, width: int) -> None:
    for _ in range(200):
        if await img.evaluate(f"i => i.complete && i.naturalWidth === {width}"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the snapshot did not load")


async def refusals(base: str, cookies: list[Any], evidence: str) -> None:
    """What the pages refuse: no cookie, wrong role, a foreign form, an evidence name off pattern."""
    olga = {c["name"]: c["value"] for c in cookies}
    async with httpx.AsyncClient(base_url=base) as http:
        assert (await http.get("/events/stations/bench-1")).status_code == 401
        assert (await http.get(f"/evidence/{evidence}")).status_code == 401
        assert (await http.get("/", follow_redirects=False)).headers["location"] == "/login?next=/"
        http.cookies.update(olga)
        got = await http.get(f"/evidence/{evidence}")
        assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
        for bad in (evidence.upper(), evidence[:-4] + ".png", "0" * 63 + ".jpg", "..%2Fedge.db"):
            assert (await http.get(f"/evidence/{bad}")).status_code == 404, bad
        refused = await http.post(
            "/discrepancies/override", data={"decision_id": "x", "reason": "because I can"}
        )
        assert refused.status_code == 403
        foreign = await http.post(
            "/login",
            data={"name": "olga", "password": "olga-pass"},
            headers={"Origin": "http://evil.example"},
        )
        assert foreign.status_code == 403
        assert (await http.get("/stations/nowhere")).status_code == 404


async def next_line(lines: AsyncIterator[str], wanted: Any) -> str:
    async with asyncio.timeout(5):
        async for line in lines:
            if wanted(line):
                return line
    raise AssertionError("the stream ended")


def test_station_events_heartbeat_updates_and_clean_up(tmp_path: Path) -> None:
    """The SSE stream on its own: the state at once, heartbeats, every change; a closed screen's
    queue goes away, and an open one does not keep the server up once the agent stops."""
    with run_central(tmp_path / "central") as central:

        async def scenario() -> None:
            async with running_park(tmp_path, central) as park:
                sessions, feeds = Sessions(), StationFeeds(park.agent.stations)
                app = create_app(park.agent, sessions=sessions, feeds=feeds, heartbeat_s=0.2)
                cookies = {COOKIE: sessions.issue("olga", Role.OPERATOR)}
                async with serving(app) as base, httpx.AsyncClient(base_url=base, cookies=cookies) as http:
                    async with http.stream("GET", "/events/stations/bench-1") as events:
                        assert events.headers["content-type"].startswith("text/event-stream")
                        lines = events.aiter_lines()
                        await next_line(lines, lambda line: line == "event: screen")
                        assert feeds.clients("bench-1") == 1
                        await next_line(lines, lambda line: line == "event: heartbeat")
                        assert await anext(lines) == "data: 0.2"  # the interval, for the page's watchdog
                        park.hand_scanner.noread()  # a label that will not read: HOLD at once
                        await next_line(lines, lambda line: 'id="verdict-word">HOLD<' in line)
                        await next_line(lines, lambda line: "No barcode read" in line)
                    await wait_until(lambda: feeds.clients("bench-1") == 0, what="closed screen dropped")

                    async with http.stream("GET", "/events/stations/bench-1") as events:
                        lines = events.aiter_lines()
                        await next_line(lines, lambda line: line == "event: screen")
                        park.agent._stopping.set()  # what SIGTERM does in Agent.serve()
                        async with asyncio.timeout(5):
                            async for _ in lines:
                                pass  # the stream ends by itself
                    assert feeds.clients("bench-1") == 0

        asyncio.run(scenario())

"""The local API's logins and sessions, attacked from outside the agent process:

- a brute-forcer is refused (429, Retry-After) after a few failures, per user name and per client
  address, without its passwords being checked; a supervisor at their own desk is not locked out;
- a name that is no user runs the same scrypt work as a wrong password (counted, not timed: the
  timing is bench/login_timing.py's, in BENCHMARKS.md);
- a logged-out token is refused by the API and the pages, and an open station stream ends;
- the session cookie is HttpOnly and SameSite=Strict, and Secure over HTTPS (`[api] tls_cert`);
- the API over TLS answers HTTPS only;
- a full disk, or a store that fails, is a 503 with the reason, not a bare 500.

Client addresses are distinct loopback addresses (127.0.0.x): Linux routes all of 127/8 to lo.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from edge.agent import Agent
from edge.api import create_app
from edge.api.deps import COOKIE
from edge.auth import SCRYPT, LoginGuard, Logins, check_password, hash_password
from edge.config import EdgeSettings
from kernel.config import toml_dumps
from testkit.park import wait_until
from testkit.processes import AgentProcess, agent_process
from testkit.standalone_edge import api_url, offline_central, self_signed, standalone_config


def client(base: str, address: str = "127.0.0.1", **kwargs: Any) -> httpx.AsyncClient:
    """An HTTP client whose connections come from `address`."""
    verify = kwargs.pop("verify", True)
    transport = httpx.AsyncHTTPTransport(local_address=address, verify=verify)
    return httpx.AsyncClient(base_url=base, transport=transport, timeout=20, **kwargs)


async def login(http: httpx.AsyncClient, name: str, password: str) -> httpx.Response:
    return await http.post("/api/login", json={"name": name, "password": password})


@contextlib.contextmanager
def running_agent(tmp: Path, **overrides: Any) -> Iterator[AgentProcess]:
    """`bondgate edge run` as a process, with no central and a device-less manual station."""
    with offline_central() as central:
        data = standalone_config(tmp, central, **overrides)
        config = tmp / "edge.toml"
        config.write_text(toml_dumps(data), encoding="utf-8")
        with agent_process(config, tmp / "agent.log") as agent:
            agent.start()
            yield agent


# --- failed logins ---------------------------------------------------------------------------------------


def test_a_brute_forcer_is_refused_per_name_and_per_address(tmp_path: Path) -> None:
    with running_agent(tmp_path) as agent:

        async def attack() -> None:
            base = await api_url(agent)
            # sam logs in from his desk (127.0.0.4) before anything happens
            async with client(base, "127.0.0.4") as desk:
                assert (await login(desk, "sam", "sam-pass")).status_code == 200

            # one address spraying names: 5 failures are free, the 6th starts a block
            async with client(base, "127.0.0.2") as attacker:
                for i in range(6):
                    assert (await login(attacker, f"user{i}", "guess")).status_code == 401
                refused = await login(attacker, "olga", "olga-pass")  # even the right password
                assert refused.status_code == 429
                assert int(refused.headers["retry-after"]) >= 1
                assert "too many failed logins" in refused.json()["detail"]
                page = await attacker.post("/login", data={"name": "olga", "password": "olga-pass"})
                assert page.status_code == 429 and "Too many failed logins" in page.text
                assert "retry-after" in page.headers
            # …which is the attacker's address only
            async with client(base, "127.0.0.3") as other:
                assert (await login(other, "olga", "olga-pass")).status_code == 200

            # one name from many addresses: after 6 failures the name is blocked…
            for i in range(6):
                async with client(base, f"127.0.1.{i + 1}") as bot:
                    assert (await login(bot, "sam", f"guess-{i}")).status_code == 401
            async with client(base, "127.0.1.100") as elsewhere:
                blocked = await login(elsewhere, "sam", "sam-pass")
                assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) <= 60
            # …but not at an address sam has logged in from: the attack does not lock him out
            async with client(base, "127.0.0.4") as desk:
                assert (await login(desk, "sam", "sam-pass")).status_code == 200

        asyncio.run(attack())


def test_attempts_sent_at_once_are_counted_one_after_the_other() -> None:
    """A burst of parallel guesses cannot all be checked before the first failure is counted: the
    checks take turns, and the guard is asked again at each one's turn (time stands still here)."""
    checks: list[str] = []

    def counting(password: str, stored: str) -> bool:
        checks.append(password)
        return check_password(password, stored)

    logins = Logins({}, guard=LoginGuard(clock=lambda: 1000.0), verify=counting)

    async def burst() -> list[Any]:
        return await asyncio.gather(*(logins.check(f"user{i}", "guess", "10.0.0.9") for i in range(20)))

    results = asyncio.run(burst())
    assert len(checks) == 6  # the 5 free failures and the one that starts the block
    assert sum(r.throttled for r in results) == 14 and all(r.user is None for r in results)


def test_the_guard_grows_to_a_cap_and_forgets() -> None:
    now = [0.0]
    guard = LoginGuard(clock=lambda: now[0])
    for _ in range(5):
        guard.failed("sam", "10.0.0.1")
    assert guard.retry_after("sam", "10.0.0.1") == 0
    waits = []
    for _ in range(12):
        guard.failed("sam", "10.0.0.1")
        waits.append(guard.retry_after("sam", "10.0.0.2"))  # the name's block, from another address
        now[0] += waits[-1]  # the next failure comes as soon as the name's block is over
    assert waits[:7] == [1, 2, 4, 8, 16, 32, 60]  # doubling, capped at a minute for a name
    assert all(w == 60 for w in waits[6:])
    assert guard.retry_after("sam", "10.0.0.1") > 60  # the address's own cap is 15 min
    assert guard.retry_after("olga", "10.0.0.7") == 0
    guard.succeeded("sam", "10.0.0.3")
    assert guard.retry_after("sam", "10.0.0.8") == 0  # a success clears the name
    now[0] += 3600 + 900
    assert guard.retry_after("sam", "10.0.0.1") == 0  # an hour without a failure: forgotten


def test_the_guard_remembers_a_bounded_number_of_keys() -> None:
    guard = LoginGuard(clock=lambda: 0.0, max_keys=100)
    for i in range(1000):
        guard.failed(f"name{i}", f"10.0.{i // 250}.{i % 250}")
    assert len(guard._keys) == 100


# --- the same work for every name ----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def in_process_api(tmp: Path) -> AsyncIterator[tuple[str, Any]]:
    """The real app of a real (not started) agent over a real SQLite file, on a real uvicorn."""
    with offline_central() as central:
        agent = Agent(EdgeSettings(**standalone_config(tmp, central)))
        app = create_app(agent)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
        )
        task = asyncio.create_task(server.serve())
        try:
            await wait_until(lambda: server.started, what="api up")
            yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}", app
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)
            await agent.stop()


def test_a_name_that_is_no_user_costs_the_same_scrypt_work(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with in_process_api(tmp_path) as (base, app):
            checked: list[str] = []
            real = app.state.logins.verify

            def counting(password: str, stored: str) -> bool:
                checked.append(stored)
                return real(password, stored)

            app.state.logins.verify = counting
            async with client(base) as http:
                assert (await login(http, "nobody", "guess")).status_code == 401
                assert (await login(http, "olga", "guess")).status_code == 401
                page = await http.post("/login", data={"name": "nobody", "password": "guess"})
                assert page.status_code == 401
            assert len(checked) == 3  # one scrypt check per attempt, whoever the name is
            decoy, olga, decoy_again = checked
            assert decoy == decoy_again != olga
            # the decoy is a hash like a user's: same scheme, salt and digest sizes, same scrypt cost
            assert [len(p) for p in decoy.split("$")] == [len(p) for p in olga.split("$")]
            assert olga == app.state.logins.users["olga"].password_hash
            assert SCRYPT == {"n": 2**14, "r": 8, "p": 1} and decoy.startswith("scrypt$")

    asyncio.run(scenario())


# --- logout ---------------------------------------------------------------------------------------------


def test_logout_revokes_the_token_for_the_api_the_pages_and_an_open_stream(tmp_path: Path) -> None:
    with running_agent(tmp_path) as agent:

        async def scenario() -> None:
            base = await api_url(agent)
            async with client(base) as http:
                # a bearer token, logged out through the API
                token = (await login(http, "olga", "olga-pass")).json()["token"]
                bearer = {"Authorization": f"Bearer {token}"}
                assert (await http.get("/api/stations", headers=bearer)).status_code == 200
                assert (await http.post("/api/logout", headers=bearer)).status_code == 204
                assert (await http.get("/api/stations", headers=bearer)).status_code == 401
                assert (await http.post("/api/logout", headers=bearer)).status_code == 401
                assert (await pages_as(base, token)).startswith("/login")  # the same token as a cookie

                # a cookie from the login form, logged out from the pages
                form = await http.post("/login", data={"name": "sam", "password": "sam-pass", "next": "/"})
                assert form.status_code == 303
                set_cookie = form.headers["set-cookie"]
                assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie
                assert "Secure" not in set_cookie  # plain HTTP on loopback: see test_api_over_tls
                cookie = form.cookies[COOKIE]
                assert await pages_as(base, cookie) == "/"
                async with stream(base, cookie) as events, client(base, cookies={COOKIE: cookie}) as browser:
                    assert (await browser.post("/logout")).status_code == 303
                    async with asyncio.timeout(10):  # the open station screen's stream ends
                        async for _ in events:
                            pass
                assert (await pages_as(base, cookie)).startswith("/login")
                stale = {"Authorization": f"Bearer {cookie}"}
                assert (await http.get("/api/decisions", headers=stale)).status_code == 401
                async with client(base, cookies={COOKIE: cookie}) as browser:
                    assert (await browser.get("/events/stations/bench-1")).status_code == 401
                # a new login still works
                assert (await login(http, "sam", "sam-pass")).status_code == 200

        asyncio.run(scenario())


async def pages_as(base: str, cookie: str) -> str:
    """Where the overview page sends someone with this cookie: "/" if it is shown."""
    async with client(base, cookies={COOKIE: cookie}) as http:
        got = await http.get("/")
        return got.headers["location"] if got.status_code == 303 else "/"


@contextlib.asynccontextmanager
async def stream(base: str, cookie: str) -> AsyncIterator[AsyncIterator[str]]:
    async with (
        client(base, cookies={COOKIE: cookie}) as http,
        http.stream("GET", "/events/stations/bench-1") as events,
    ):
        assert events.status_code == 200
        lines = events.aiter_lines()
        async with asyncio.timeout(10):
            async for line in lines:
                if line == "event: screen":
                    break
        yield lines


# --- TLS ------------------------------------------------------------------------------------------------


def test_api_over_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with running_agent(tmp_path, api={"tls_cert": cert, "tls_key": key}) as agent:

        async def scenario() -> None:
            base = await api_url(agent)
            assert base.startswith("https://127.0.0.1:")
            trust = ssl.create_default_context(cafile=str(cert))
            async with client(base, verify=trust) as https:
                ok = await login(https, "olga", "olga-pass")
                assert ok.status_code == 200
                form = await https.post("/login", data={"name": "sam", "password": "sam-pass"})
                set_cookie = form.headers["set-cookie"]
                assert "Secure" in set_cookie and "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie
            # no plaintext on the same port
            async with client(base.replace("https://", "http://")) as plain:
                with pytest.raises(httpx.HTTPError):
                    await plain.post("/api/login", json={"name": "olga", "password": "olga-pass"})
            # nor with a certificate the client does not trust
            async with client(base) as untrusting:
                with pytest.raises(httpx.ConnectError):
                    await untrusting.get("/healthz")

        asyncio.run(scenario())


def test_pages_over_tls_in_a_browser(tmp_path: Path) -> None:
    from tests.edge.api.test_pages_browser import CHROMIUM, CHROMIUM_ARGS, browser_missing, log_in

    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    from playwright.async_api import async_playwright, expect

    cert, key = self_signed(tmp_path)
    with running_agent(tmp_path, api={"tls_cert": cert, "tls_key": key}) as agent:

        async def scenario() -> None:
            base = await api_url(agent)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
                )
                try:
                    context = await browser.new_context(base_url=base, ignore_https_errors=True)
                    page = await context.new_page()
                    await page.goto("/discrepancies")
                    await log_in(page, "sam", "sam-pass")
                    await expect(page).to_have_url(f"{base}/discrepancies")
                    cookies = await context.cookies()
                    session = next(c for c in cookies if c["name"] == COOKIE)
                    assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Strict"
                    await page.get_by_role("button", name="Log out").click()
                    await expect(page).to_have_url(f"{base}/login")
                    # the cookie, put back as it was, is refused: the session ended on the server
                    await context.add_cookies([session])
                    await page.goto("/discrepancies")
                    await expect(page).to_have_url(re.compile(r"/login\?next=/discrepancies$"))
                finally:
                    await browser.close()

        asyncio.run(scenario())


# --- the store fails --------------------------------------------------------------------------------------


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of `size` at `path` (needs root; skipped otherwise): a disk that really fills up."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, timeout=10
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem is full; the file, to delete for space again."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as f:  # unbuffered: nothing left to write at close
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC
    return filler


async def typed(http: httpx.AsyncClient, headers: dict[str, str], code: str) -> httpx.Response:
    return await http.post("/api/stations/bench-1/code", headers=headers, json={"code": code})


def test_a_full_disk_is_a_503_with_the_reason(tmp_path: Path) -> None:
    with (
        small_filesystem(tmp_path / "small") as small,
        running_agent(tmp_path, database=small / "edge.db") as agent,
    ):

        async def scenario() -> None:
            base = await api_url(agent)
            async with client(base) as http:
                token = (await login(http, "olga", "olga-pass")).json()["token"]
                auth = {"Authorization": f"Bearer {token}"}
                assert (await typed(http, auth, "PARCEL-1")).status_code == 200
                filler = fill(small)
                full = await typed(http, auth, "PARCEL-2")
                assert full.status_code == 503, full.text
                assert full.headers["content-type"] == "application/json"
                assert "disk is full" in full.json()["detail"], full.json()
                assert "database or disk is full" in full.json()["detail"]
                assert (await http.get("/api/status", headers=auth)).status_code == 200  # reading still works
                filler.unlink()  # space again: the next parcel is recorded
                assert (await typed(http, auth, "PARCEL-3")).status_code == 200

        asyncio.run(scenario())
        assert agent.running
        failure = agent.find("request refused: store failure")
        assert failure is not None and "full" in failure["error"]


def test_a_store_that_cannot_write_is_a_503_with_the_reason(tmp_path: Path) -> None:
    """A write refused by the operating system (here the file-size limit of the agent process, which
    needs no privilege to lower): SQLite says "disk I/O error", the API says so with a 503."""
    with running_agent(tmp_path) as agent:

        async def scenario() -> None:
            base = await api_url(agent)
            async with client(base) as http:
                token = (await login(http, "olga", "olga-pass")).json()["token"]
                auth = {"Authorization": f"Bearer {token}"}
                assert (await typed(http, auth, "PARCEL-1")).status_code == 200
                wal = tmp_path / "edge.db-wal"
                assert agent.pid is not None
                limit = resource.prlimit(agent.pid, resource.RLIMIT_FSIZE)
                resource.prlimit(agent.pid, resource.RLIMIT_FSIZE, (wal.stat().st_size, limit[1]))
                try:
                    failed = await typed(http, auth, "PARCEL-2")
                finally:
                    resource.prlimit(agent.pid, resource.RLIMIT_FSIZE, limit)
                assert failed.status_code == 503, failed.text
                assert failed.json() == {"detail": "the edge's database failed: disk I/O error"}
                assert (await typed(http, auth, "PARCEL-3")).status_code == 200

        asyncio.run(scenario())
        assert agent.running


def test_hash_password_and_check_password_agree() -> None:
    stored = hash_password("olga-pass")
    assert check_password("olga-pass", stored) and not check_password("olga-pas", stored)
    assert not check_password("olga-pass", "scrypt$bm90$YmFzZTY0")  # a malformed stored hash: no


# --- bodies too large ------------------------------------------------------------------------------


def test_a_huge_body_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """An unauthenticated 600 MB POST to /login used to be read whole (the agent grew by 1.7 GB and
    its stations' event loop stalled): now anything over 64 KiB is a 413, by its Content-Length or
    counted as it streams."""
    with running_agent(tmp_path) as agent:

        async def attack() -> None:
            base = await api_url(agent)
            host, port = base.split("//", 1)[1].rstrip("/").split(":")
            for path in ("/login", "/api/login"):  # announced as 1 GiB: refused before any of it
                reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(
                    f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\n"
                    "Content-Length: 1073741824\r\n\r\n".encode()
                )
                await writer.drain()
                status = await asyncio.wait_for(reader.readline(), 10)
                writer.close()
                assert status.split()[1] == b"413", (path, status)

            async def stream() -> AsyncIterator[bytes]:
                for _ in range(64):  # 4 MiB in 64 KiB chunks, no Content-Length
                    yield b"y" * 65536

            async with client(base) as http:
                try:  # answered 413 mid-upload: the client may see the answer, or the connection end
                    answer = await http.post("/api/login", content=stream())
                    assert answer.status_code == 413
                except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
                    pass
            async with client(base) as http:  # and a normal login still works
                assert (await login(http, "sam", "sam-pass")).status_code == 200

        asyncio.run(attack())

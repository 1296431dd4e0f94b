"""Operator pages of the edge: server-rendered HTML for the people at the stations.

- `/stations/{name}`: the screen a worker reads from two metres: the verdict word on its colour,
  the reason in plain words, the parcel code, weight against declared, goods, the camera snapshot;
  kept live by Server-Sent Events from `/events/stations/{name}` (a few lines of vanilla JS);
- `/`: stations, device health, feed sync and uplink;
- `/discrepancies`: the queue, with the override form for supervisors;
- `/login`, `/logout`: the API's own sessions and login checks (edge/auth.py: the same throttling
  of failures, the same scrypt work for a name that is no user), carried in an HttpOnly,
  SameSite=Strict cookie that is also `Secure` when the page came over HTTPS (`[api] tls_cert`); on
  plain HTTP — the demo on loopback — it cannot be, or the browser would never send it back. Logging
  out revokes the session on the server, so a copy of the cookie (or the same token used as a
  bearer) is refused afterwards, and an open station screen's stream ends.

No front-end build: Jinja2 templates, one CSS file, one small script, all served from here (the
park network may have no internet). A page must never disturb a decision: the only hook into a
station is one listener per station that copies its view into per-client queues and cannot raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from edge import operations
from edge.auth import Logins, Sessions
from edge.checker import DecisionRecord
from edge.operations import discrepancy_queue
from edge.stations.base import StationView
from edge.stations.manual import WAIVABLE, Manual, OverrideRefused

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
COOKIE = "bondgate_session"
ROLES = {"operator": 1, "supervisor": 2}  # the ranks of edge.api.ROLES
EVIDENCE_NAME = re.compile(r"[0-9a-f]{64}\.jpg")
STATIC_TYPES = {"style.css": "text/css; charset=utf-8", "station.js": "text/javascript; charset=utf-8"}
MAX_FORM_BYTES = 16 * 1024
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

User = tuple[str, str]  # (name, role)


# --- what a station screen shows ---------------------------------------------------------------


@dataclass(frozen=True)
class Look:
    word: str  # the big word: the verdict, also as text (not colour alone)
    tone: str  # the CSS colour class
    sign: str  # a shape next to the word, for those who cannot tell the colours apart
    say: str  # what to do, in plain words


LOOKS = {
    "RELEASE": Look("RELEASE", "go", "✓", "The parcel may go out"),
    "HOLD": Look("HOLD", "stop", "✕", "Do not release: keep the parcel aside"),
    "INSPECT": Look("INSPECT", "inspect", "!", "Take the parcel to customs inspection"),
    "FAULT": Look("FAULT", "stop", "✕", "A device is not working: every parcel is held"),
    "CHECKING": Look("CHECKING", "busy", "…", "Checking the parcel"),
    "IDLE": Look("READY", "idle", "•", "Scan the next parcel"),
}


@dataclass(frozen=True)
class Snapshot:
    """A station view copied at the moment it changed (the view object itself is mutated later)."""

    name: str
    kind: str
    state: str
    faults: tuple[tuple[str, str], ...]
    last: DecisionRecord | None  # frozen already

    @classmethod
    def of(cls, view: StationView) -> Snapshot:
        return cls(view.name, view.kind, view.state.value, tuple(sorted(view.faults.items())), view.last)


def kg(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.3f} kg"


def evidence_url(evidence: str | None) -> str | None:
    """The snapshot's URL when the decision kept a JPEG under its content hash, else None."""
    name = Path(evidence).name if evidence else ""
    return f"/evidence/{name}" if EVIDENCE_NAME.fullmatch(name) else None


def parcel(record: DecisionRecord) -> dict[str, Any]:
    difference = None
    if record.weight_kg is not None and record.declared_kg is not None:
        difference = f"{record.weight_kg - record.declared_kg:+.3f} kg"
    return {
        "decision_id": record.decision_id,
        "station": record.station,
        "verdict": record.verdict.value,
        "code": record.code,
        "reason": record.reason,
        "codes": list(record.codes),
        "goods": record.goods,
        "weighed": kg(record.weight_kg),
        "declared": kg(record.declared_kg),
        "difference": difference,
        "snapshot": evidence_url(record.evidence),
        "operator": record.operator,
        "at": clock(record.created_at),
    }


def clock(iso: str | None) -> str:
    """`2025-05-01T09:14:03.123456Z` → `09:14:03 UTC` (the date is on every other screen)."""
    if not iso or "T" not in iso:
        return iso or ""
    return iso.split("T", 1)[1][:8] + " UTC"


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


TEMPLATES = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_screen(snap: Snapshot) -> str:
    """The verdict block of a station screen: the page embeds it, SSE sends it on every change."""
    return TEMPLATES.get_template("_screen.html").render(
        s=snap,
        look=LOOKS.get(snap.state, LOOKS["FAULT"]),
        parcel=parcel(snap.last) if snap.last else None,
        current=snap.state in ("RELEASE", "HOLD", "INSPECT", "FAULT"),
    )


def sse(event: str, html: str) -> str:
    """One SSE message; every line of a multi-line payload gets its own `data:` field."""
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in html.splitlines()) + "\n"


# --- live station feeds --------------------------------------------------------------------------


class StationFeeds:
    """One listener per station fans each change out to a bounded queue per connected screen.

    Registered once (stations have no unsubscribe); a screen's queue lives only while its stream
    is open. A slow screen loses old snapshots, never the newest: each one is the whole state."""

    def __init__(self, stations: dict[str, Any], depth: int = 8) -> None:
        self.depth = depth
        self._queues: dict[str, set[asyncio.Queue[Snapshot]]] = {name: set() for name in stations}
        for name, station in stations.items():
            station.subscribe(lambda view, n=name: self._changed(n, view))

    def _changed(self, name: str, view: StationView) -> None:
        queues = self._queues[name]
        if not queues:
            return
        try:
            snap = Snapshot.of(view)
            for queue in queues:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(snap)
        except Exception:  # a screen must never break a station
            log.exception("station screen update failed", extra={"station": name})

    def clients(self, name: str) -> int:
        return len(self._queues.get(name, ()))

    @contextlib.contextmanager
    def client(self, name: str) -> Iterator[asyncio.Queue[Snapshot]]:
        queue: asyncio.Queue[Snapshot] = asyncio.Queue(maxsize=self.depth)
        self._queues[name].add(queue)
        try:
            yield queue
        finally:
            self._queues[name].discard(queue)


# --- the router ---------------------------------------------------------------------------------


def safe_next(target: str | None) -> str:
    """Only a local path may be a redirect target after login (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def same_origin(request: Request) -> bool:
    """A form post from another site is refused (SameSite=Strict already keeps the cookie off it)."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


async def form(request: Request) -> dict[str, str]:
    """A small urlencoded form, without python-multipart."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


def pages_router(
    agent: Any,
    sessions: Sessions,
    *,
    logins: Logins | None = None,
    feeds: StationFeeds | None = None,
    heartbeat_s: float = 15.0,
) -> APIRouter:
    """The pages of `agent`, signed in with the API's `sessions` and `logins` (one login for both)."""
    router = APIRouter(include_in_schema=False)
    if logins is None:
        logins = Logins({u.name: u for u in agent.settings.api.users})
    feeds = StationFeeds(agent.stations) if feeds is None else feeds
    static = {name: (HERE / "static" / name).read_bytes() for name in STATIC_TYPES}
    stopping: asyncio.Event | None = getattr(agent, "_stopping", None)  # set on SIGTERM by serve()

    def signed_in(request: Request) -> User | None:
        token = request.cookies.get(COOKIE)
        return sessions.verify(token) if token else None

    def page(
        template: str,
        request: Request,
        user: User | None,
        status: int = 200,
        headers: dict[str, str] | None = None,
        **ctx: Any,
    ) -> HTMLResponse:
        html = TEMPLATES.get_template(template).render(
            user=user, park=agent.settings.park_id, edge=agent.settings.edge_id, path=request.url.path, **ctx
        )
        return HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})

    def to_login(request: Request) -> RedirectResponse:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(here, safe='/')}", status_code=303)

    def refused(request: Request, user: User | None, status: int, message: str) -> HTMLResponse:
        return page("message.html", request, user, status=status, title="Not allowed", message=message)

    # --- login ---
    @router.get("/login")
    async def login_form(request: Request, next: str = "/") -> Response:
        return page("login.html", request, signed_in(request), next=safe_next(next), error=None, name="")

    @router.post("/login")
    async def login(request: Request) -> Response:
        if not same_origin(request):
            return refused(request, None, 403, "This form must be sent from this edge's own pages.")
        fields = await form(request)
        name, password = fields.get("name", "").strip()[:64], fields.get("password", "")[:1024]
        target = safe_next(fields.get("next"))
        address = request.client.host if request.client is not None else "unknown"
        result = await logins.check(name, password, address)
        if result.user is None:
            wait = math.ceil(result.retry_after_s)
            return page(
                "login.html",
                request,
                None,
                status=429 if result.throttled else 401,
                headers={"Retry-After": str(wait)} if result.throttled else None,
                next=target,
                error=f"Too many failed logins: try again in {wait} s"
                if result.throttled
                else "Wrong name or password",
                name=name,
            )
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            sessions.issue(*result.user),
            max_age=int(sessions.ttl_s),
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return response

    @router.api_route("/logout", methods=["GET", "POST"])
    async def logout(request: Request) -> Response:
        token = request.cookies.get(COOKIE)
        if token:
            sessions.revoke(token)  # this session is over on the server, not just in this browser
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(
            COOKIE, path="/", secure=request.url.scheme == "https", httponly=True, samesite="strict"
        )
        return response

    # --- pages ---
    @router.get("/")
    async def index(request: Request) -> Response:
        user = signed_in(request)
        if user is None:
            return to_login(request)
        stations = [
            {
                "name": name,
                "kind": st.view.kind,
                "look": LOOKS.get(st.view.state.value, LOOKS["FAULT"]),
                "faults": sorted(st.view.faults.items()),
                "last": parcel(st.view.last) if st.view.last else None,
                "decisions": st.decisions,
                "tracking": st.tracking(),
            }
            for name, st in agent.stations.items()
        ]
        devices = [
            {"name": n, "state": h.state.value, "reason": h.reason, "errors": h.errors}
            for n, h in sorted(agent.hub.all_health().items())
        ]
        return page(
            "index.html",
            request,
            user,
            stations=stations,
            devices=devices,
            sync=sync_status(),
            uplink=uplink(),
        )

    def sync_status() -> dict[str, Any]:
        s = agent.sync.status
        return {
            "ok": s.consecutive_failures == 0 and s.last_error is None,
            "caught_up": s.caught_up,
            "age": ago(agent.sync_age()),
            "cursor": s.cursor,
            "lag": s.lag_records,
            "records": agent.store.count_clearances(),
            "rejected": s.rejected_signatures,
            "superseded": s.superseded_unchecked,
            "error": s.last_error,
        }

    def uplink() -> dict[str, Any]:
        u = agent.uplink.status
        backlog = agent.store.backlog()
        return {
            "ok": u.consecutive_failures == 0 and u.last_error is None,
            "age": ago(u.age_s()),
            "backlog": backlog["size"],
            "oldest": backlog["oldest"],
            "acked": backlog["acked_seq"],
            "last": backlog["last_seq"],
            "refused": u.refused,
            "error": u.last_error,
        }

    @router.get("/stations/{name}")
    async def station_screen(request: Request, name: str) -> Response:
        user = signed_in(request)
        if user is None:
            return to_login(request)
        station = agent.stations.get(name)
        if station is None:
            return page("message.html", request, user, status=404, title="No such station", message=name)
        snap = Snapshot.of(station.view)
        return page(
            "station.html",
            request,
            user,
            name=name,
            kind=snap.kind,
            screen=render_screen(snap),
            devices=[(d, agent.hub.health(d).state.value) for d in station.devices()],
        )

    @router.get("/discrepancies")
    async def discrepancies(request: Request, overridden: str | None = None) -> Response:
        user = signed_in(request)
        if user is None:
            return to_login(request)
        done = next((r for r in agent.recent if r.decision_id == overridden), None) if overridden else None
        return queue_page(request, user, done=parcel(done) if done else None)

    def queue_page(
        request: Request, user: User, *, status: int = 200, error: str | None = None, **ctx: Any
    ) -> HTMLResponse:
        recent = {r.decision_id for r in agent.recent}
        items = [
            {
                **row,
                "at": clock(row["created_at"]),
                "why_not": why_not(row["station"], row["codes"], row["decision_id"] in recent),
            }
            for row in discrepancy_queue(agent.store, 100)
        ]
        supervisor = ROLES[user[1]] >= ROLES["supervisor"]
        ctx.setdefault("done", None)
        return page(
            "discrepancies.html",
            request,
            user,
            status=status,
            items=items,
            supervisor=supervisor,
            error=error,
            **ctx,
        )

    def why_not(station: str, codes: list[str], recent: bool) -> str | None:
        """Why this decision cannot be overridden from here, or None when it can."""
        if not isinstance(agent.stations.get(station), Manual):
            return "Only a manual station's decisions are overridden here"
        blocking = [c for c in codes if c not in WAIVABLE]
        if blocking or not codes:
            return "Not for the park to override: " + (", ".join(blocking) or "no finding")
        if not recent:
            return "Too old to override here: scan the parcel again"
        return None

    @router.post("/discrepancies/override")
    async def override(request: Request) -> Response:
        user = signed_in(request)
        if user is None:
            return to_login(request)
        if not same_origin(request):
            return refused(request, user, 403, "This form must be sent from this edge's own pages.")
        if ROLES[user[1]] < ROLES["supervisor"]:
            return refused(request, user, 403, "An override needs a supervisor login.")
        fields = await form(request)
        decision_id, reason = fields.get("decision_id", ""), fields.get("reason", "").strip()
        if not 5 <= len(reason) <= 1000:
            return queue_page(request, user, status=400, error="Give a reason (5 to 1000 characters).")
        try:
            record = await operations.override(agent, decision_id, operator=user[0], reason=reason)
        except operations.NoSuchDecision:
            return queue_page(request, user, status=404, error="No such recent decision at a manual station.")
        except OverrideRefused as exc:
            return queue_page(request, user, status=409, error=str(exc).capitalize() + ".")
        return RedirectResponse(f"/discrepancies?overridden={quote(record.decision_id)}", status_code=303)

    # --- live screen ---
    @router.get("/events/stations/{name}")
    async def station_events(request: Request, name: str) -> Response:
        if signed_in(request) is None:
            return Response("log in first", status_code=401)
        station = agent.stations.get(name)
        if station is None:
            return Response("no such station", status_code=404)
        return StreamingResponse(
            stream(request, name, station, request.cookies.get(COOKIE, "")),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def stream(request: Request, name: str, station: Any, token: str) -> AsyncIterator[str]:
        with feeds.client(name) as queue:
            yield "retry: 2000\n\n"
            yield sse("screen", render_screen(Snapshot.of(station.view)))  # the state as of now
            # the interval, at once: the page counts a stream silent for 2.5 of them as dead
            # (a half-open connection raises no error in the browser), and connects again
            yield sse("heartbeat", format(heartbeat_s, "g"))
            sent = time.monotonic()
            while not (stopping is not None and stopping.is_set()):
                if sessions.verify(token) is None:
                    return  # logged out (the session revoked) or expired since the stream opened
                try:
                    async with asyncio.timeout(min(1.0, heartbeat_s)):
                        snap = await queue.get()
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    if time.monotonic() - sent >= heartbeat_s:
                        yield sse("heartbeat", format(heartbeat_s, "g"))
                        sent = time.monotonic()
                    continue
                yield sse("screen", render_screen(snap))
                sent = time.monotonic()

    # --- files ---
    @router.get("/evidence/{name}")
    async def evidence(request: Request, name: str) -> Response:
        if signed_in(request) is None:
            return Response("log in first", status_code=401)
        if not EVIDENCE_NAME.fullmatch(name):
            return Response("not an evidence file name", status_code=404)
        path = Path(agent.settings.evidence_dir) / name
        if not path.is_file():
            return Response("no such evidence", status_code=404)
        # named by its content hash: it never changes
        return FileResponse(
            path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"}
        )

    @router.get("/static/{name}")
    async def asset(name: str) -> Response:
        if name not in static:
            return Response("not found", status_code=404)
        return Response(static[name], media_type=STATIC_TYPES[name], headers={"Cache-Control": "no-cache"})

    return router


__all__ = ["COOKIE", "LOOKS", "Snapshot", "StationFeeds", "pages_router", "render_screen"]

"""Officer pages under /ui: parks, a park's reconciliation, discrepancies and the clearance drill-down.

Server-rendered Jinja2 (autoescaped), no JavaScript; the releases-per-hour chart is inline SVG drawn
here. An officer or admin signs in at /ui/login by pasting an API token: it is checked against the
same token store as the API (`central.auth.authenticate`) and kept in an HttpOnly, SameSite=Strict
cookie scoped to /ui. The pages are left out of the OpenAPI schema; the API's Bearer auth is
untouched (the cookie is never accepted under /api).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from central.api.deps import get_platform
from central.api.errors import ApiError
from central.api.routes.clearances import ClearanceDetail, lookup
from central.auth import Role, authenticate
from central.events import edge_status
from central.platform import Platform
from central.release_notes.reconciliation import gate_report
from central.reports import HourCount, park_report
from central.store import events as estore
from central.store import parks as pstore
from central.store.parks import TokenRow
from kernel.status import ClearanceStatus, is_detained
from kernel.timefmt import utc_now

COOKIE = "bondgate_ui"
SESSION_SECONDS = 8 * 3600
PAGE_ROLES = frozenset({Role.OFFICER.value, Role.ADMIN.value})
DECISION_KINDS = ("release", "discrepancy", "inspection_diverted")  # one per checker decision
STALE_HEARTBEAT = timedelta(minutes=2)  # edges beat every 30 s by default
LIST_LIMIT = 200
PACKAGE = Path(__file__).resolve().parents[1]  # templates and static files are central's package data
STATIC = {"pages.css": ("text/css", PACKAGE / "static" / "pages.css")}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


# --- rendering and the page route class ----------------------------------------------------------


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _status_name(code: str | None) -> str:
    if code is None:
        return "—"
    if is_detained(code):
        return "detained"
    try:
        return ClearanceStatus(code).name.lower().replace("_", " ")
    except ValueError:
        return "unknown"


_env = Environment(
    loader=FileSystemLoader(PACKAGE / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(when=_when, status_name=_status_name)


def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("user", None)
    return HTMLResponse(_env.get_template(name).render(**context), status_code=status)


class PageError(Exception):
    """Ends a page with an HTML answer instead of the API's JSON error shape."""

    def __init__(self, response: Response) -> None:
        self.response = response


class PageRoute(APIRoute):
    """Turns PageError and bad query strings into HTML and adds the security headers to every page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                response = await handler(request)
            except PageError as e:
                response = e.response
            except RequestValidationError as e:
                details = [f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
                response = render("error.html", 400, title="Bad request", detail="; ".join(details))
            response.headers.update(SECURITY_HEADERS)
            response.headers.setdefault("Cache-Control", "no-store")
            return response

        return page


router = APIRouter(prefix="/ui", include_in_schema=False, route_class=PageRoute)
PlatformDep = Annotated[Platform, Depends(get_platform)]


# --- session -------------------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    """Only a path under /ui on this site; anything else lands on the parks list."""
    if target and target.startswith("/ui/") and target.isprintable() and "\\" not in target:
        return target
    return "/ui/"


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = RedirectResponse(f"/ui/login?{urlencode({'next': target})}", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


def session(request: Request, platform: PlatformDep) -> TokenRow:
    """The signed-in officer or admin; else to the login form (no or stale token) or a 403 page."""
    secret = request.cookies.get(COOKIE)
    token = authenticate(platform.db, secret) if secret else None
    if token is None:
        raise PageError(_to_login(request))
    if token.role not in PAGE_ROLES:
        detail = f"a token of role {token.role} may not use these pages (needs officer or admin)"
        raise PageError(render("error.html", 403, title="Forbidden", detail=detail))
    return token


User = Annotated[TokenRow, Depends(session)]


def _same_origin(request: Request) -> None:
    """A form POST must come from these pages (SameSite=Strict covers the cookie, not the login)."""
    origin = request.headers.get("origin")  # host only: a TLS-terminating proxy changes the scheme
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise PageError(render("error.html", 403, title="Forbidden", detail="cross-site form post"))


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        raise PageError(render("error.html", 404, title="Not found", detail="no such file"))
    media_type, path = STATIC[name]
    return Response(path.read_bytes(), media_type=media_type, headers={"Cache-Control": "max-age=3600"})


@router.get("/login")
def login_form(next: Annotated[str | None, Query(max_length=500)] = None) -> HTMLResponse:
    return render("login.html", next=_safe_next(next), message=None)


@router.post("/login")
async def login(request: Request, platform: PlatformDep) -> Response:
    _same_origin(request)
    form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=4)
    secret = form.get("token", [""])[0].strip()[:300]
    target = _safe_next(form.get("next", [None])[0])
    token = authenticate(platform.db, secret) if secret else None
    if token is None:
        return render("login.html", 401, next=target, message="Unknown or revoked token.")
    if token.role not in PAGE_ROLES:
        message = f"A token of role {token.role} may not use these pages (officer or admin only)."
        return render("login.html", 403, next=target, message=message)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        secret,
        max_age=SESSION_SECONDS,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    _same_origin(request)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


# --- views ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    height: float
    hour: str
    count: int
    label: str | None  # hour label under every third bar


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    base: float
    top: int
    bars: list[Bar]


def hour_chart(hours: list[HourCount], *, step: int = 24, plot: int = 120) -> Chart:
    """Bars for the releases per hour, scaled to the busiest hour (SVG coordinates, y down)."""
    top = max((h.count for h in hours), default=0)
    base = 10.0 + plot
    bars = []
    for i, h in enumerate(hours):
        height = plot * h.count / top if top else 0.0
        label = h.hour[11:13] if i % 3 == 0 else None
        bars.append(
            Bar(x=40 + i * step, y=base - height, height=height, hour=h.hour, count=h.count, label=label)
        )
    return Chart(width=40 + len(hours) * step + 10, height=int(base) + 24, base=base, top=top, bars=bars)


@dataclass(frozen=True)
class CodeRate:
    code: str
    count: int
    rate: float | None  # share of the park's decisions that reported this code


def _park(platform: Platform, park_id: str) -> pstore.ParkRow:
    row = pstore.get_park(platform.db, park_id=park_id)
    if row is None:
        raise PageError(render("error.html", 404, title="Not found", detail=f"no park {park_id}"))
    return row


@router.get("/")
def parks(platform: PlatformDep, user: User) -> HTMLResponse:
    return render("parks.html", user=user, parks=pstore.list_parks(platform.db))


@router.get("/parks/{park_id}")
def park(platform: PlatformDep, user: User, park_id: str) -> HTMLResponse:
    row = _park(platform, park_id)
    now = utc_now()
    report = park_report(platform.db, park_id=park_id, now=now, limit=LIST_LIMIT)
    decisions = estore.count_events(platform.db, park_id=park_id, kinds=DECISION_KINDS)
    rates = [CodeRate(c, n, n / decisions if decisions else None) for c, n in report.discrepancies.items()]
    edges = edge_status(platform.db, park_id)
    stale = {e.edge_id for e in edges if e.last_heartbeat is None or now - e.last_heartbeat > STALE_HEARTBEAT}
    return render(
        "park.html",
        user=user,
        park=row,
        report=report,
        chart=hour_chart(report.releases_per_hour),
        decisions=decisions,
        rates=rates,
        edges=edges,
        stale=stale,
        now=now,
        status_names={s: _status_name(s) for s in report.clearances.by_status},
    )


@router.get("/discrepancies/{park_id}")
def discrepancies(
    platform: PlatformDep,
    user: User,
    park_id: str,
    code: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    row = _park(platform, park_id)
    total, events = estore.discrepancy_events(
        platform.db, park_id=park_id, code=code or None, limit=LIST_LIMIT
    )
    return render("discrepancies.html", user=user, park=row, code=code or None, total=total, events=events)


@router.get("/gate/{park_id}")
def gate(platform: PlatformDep, user: User, park_id: str) -> HTMLResponse:
    row = _park(platform, park_id)
    report = gate_report(platform.db, park_id=park_id, now=utc_now(), limit=LIST_LIMIT)
    return render("gate.html", user=user, park=row, report=report)


DOCUMENTS = ("order", "payment", "waybill", "inventory")


def highlights(comparison: list[dict[str, Any]] | None) -> dict[str, set[str]]:
    """Document → fields named by a failed rule (values keyed 'order.acturalPaid' and the like)."""
    marked: dict[str, set[str]] = {name: set() for name in DOCUMENTS}
    for failure in comparison or []:
        for key in failure.get("values", {}):
            doc, _, field = str(key).partition(".")
            if doc in marked and field:
                marked[doc].add(field)
    return marked


@router.get("/clearances")
def clearances(
    platform: PlatformDep,
    user: User,
    logisticsNo: Annotated[str | None, Query(max_length=60)] = None,
    orderNo: Annotated[str | None, Query(max_length=60)] = None,
    invtNo: Annotated[str | None, Query(max_length=18)] = None,
) -> HTMLResponse:
    query = {"logisticsNo": logisticsNo or "", "orderNo": orderNo or "", "invtNo": invtNo or ""}
    results: list[ClearanceDetail] | None = None
    if any(query.values()):
        try:
            results = lookup(platform, user, logisticsNo=logisticsNo, orderNo=orderNo, invtNo=invtNo)
        except ApiError as e:
            raise PageError(render("error.html", e.status, title="Bad request", detail=e.detail)) from e
    return render(
        "clearances.html",
        user=user,
        query=query,
        results=results,
        documents=DOCUMENTS,
        highlights=[highlights(r.comparison) for r in results or []],
    )

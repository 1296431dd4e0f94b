"""What every operator page shares: the templates, the security headers, the login redirect, and the
checks on a form post (same origin, small urlencoded body, a local redirect target)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from edge.agent import Agent
from edge.auth import SignedIn

EDGE = Path(__file__).resolve().parents[1]  # edge/: templates/ and static/
MAX_FORM_BYTES = 16 * 1024
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

TEMPLATES = Environment(
    loader=FileSystemLoader(EDGE / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def page(
    agent: Agent,
    template: str,
    request: Request,
    user: SignedIn | None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **ctx: Any,
) -> HTMLResponse:
    """`template` rendered for `user` (None: not signed in), with the pages' security headers."""
    html = TEMPLATES.get_template(template).render(
        user=user, park=agent.settings.park_id, edge=agent.settings.edge_id, path=request.url.path, **ctx
    )
    return HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})


def refused(agent: Agent, request: Request, user: SignedIn | None, status: int, message: str) -> HTMLResponse:
    return page(agent, "message.html", request, user, status=status, title="Not allowed", message=message)


def to_login(request: Request) -> RedirectResponse:
    """To the login form, which sends back here once signed in."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(here, safe='/')}", status_code=303)


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
    """A small urlencoded form, without python-multipart; an oversized one reads as empty."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}

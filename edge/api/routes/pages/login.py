"""Signing in and out of the pages: the API's own sessions and login checks (edge/auth.py), the
token carried in an HttpOnly, SameSite=Strict cookie that is also `Secure` when the page came over
HTTPS (`[api] tls_cert`); on plain HTTP — the demo on loopback — it cannot be, or the browser would
never send it back. Logging out revokes the session on the server, so a copy of the cookie (or the
same token used as a bearer) is refused afterwards, and an open station screen's stream ends."""

from __future__ import annotations

import math

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from edge.api.deps import COOKIE, AgentDep, LoginsDep, PageUser, SessionsDep, client_address
from edge.api.html import form, page, refused, safe_next, same_origin

router = APIRouter(include_in_schema=False)


@router.get("/login")
async def login_form(request: Request, agent: AgentDep, user: PageUser, next: str = "/") -> Response:
    return page(agent, "login.html", request, user, next=safe_next(next), error=None, name="")


@router.post("/login")
async def login(request: Request, agent: AgentDep, logins: LoginsDep, sessions: SessionsDep) -> Response:
    if not same_origin(request):
        return refused(agent, request, None, 403, "This form must be sent from this edge's own pages.")
    fields = await form(request)
    name, password = fields.get("name", "").strip()[:64], fields.get("password", "")[:1024]
    target = safe_next(fields.get("next"))
    result = await logins.check(name, password, client_address(request))
    if result.user is None:
        wait = math.ceil(result.retry_after_s)
        return page(
            agent,
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
async def logout(request: Request, sessions: SessionsDep) -> Response:
    token = request.cookies.get(COOKIE)
    if token:
        sessions.revoke(token)  # this session is over on the server, not just in this browser
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(
        COOKIE, path="/", secure=request.url.scheme == "https", httponly=True, samesite="strict"
    )
    return response

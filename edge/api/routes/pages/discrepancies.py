"""`/discrepancies`: the queue of decisions that stopped a parcel, with the override form for
supervisors (a reason of 5 to 1000 characters; only a recent manual-station decision whose findings
the park may waive)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from edge import operations
from edge.agent import Agent
from edge.api.deps import AgentDep, PageUser
from edge.api.html import form, page, refused, same_origin, to_login
from edge.api.screen import clock, parcel
from edge.auth import Role, SignedIn
from edge.operations import discrepancy_queue
from edge.stations.manual import WAIVABLE, Manual, OverrideRefused

router = APIRouter(include_in_schema=False)


@router.get("/discrepancies")
async def discrepancies(
    request: Request, agent: AgentDep, user: PageUser, overridden: str | None = None
) -> Response:
    if user is None:
        return to_login(request)
    done = next((r for r in agent.recent if r.decision_id == overridden), None) if overridden else None
    return queue_page(agent, request, user, done=parcel(done) if done else None)


@router.post("/discrepancies/override")
async def override(request: Request, agent: AgentDep, user: PageUser) -> Response:
    if user is None:
        return to_login(request)
    if not same_origin(request):
        return refused(agent, request, user, 403, "This form must be sent from this edge's own pages.")
    if not user.role.covers(Role.SUPERVISOR):
        return refused(agent, request, user, 403, "An override needs a supervisor login.")
    fields = await form(request)
    decision_id, reason = fields.get("decision_id", ""), fields.get("reason", "").strip()
    if not 5 <= len(reason) <= 1000:
        return queue_page(agent, request, user, status=400, error="Give a reason (5 to 1000 characters).")
    try:
        record = await operations.override(agent, decision_id, operator=user.name, reason=reason)
    except operations.NoSuchDecision:
        error = "No such recent decision at a manual station."
        return queue_page(agent, request, user, status=404, error=error)
    except OverrideRefused as exc:
        return queue_page(agent, request, user, status=409, error=str(exc).capitalize() + ".")
    return RedirectResponse(f"/discrepancies?overridden={quote(record.decision_id)}", status_code=303)


def queue_page(
    agent: Agent,
    request: Request,
    user: SignedIn,
    *,
    status: int = 200,
    error: str | None = None,
    done: dict[str, Any] | None = None,
) -> HTMLResponse:
    recent = {r.decision_id for r in agent.recent}
    items = [
        {
            **row,
            "at": clock(row["created_at"]),
            "why_not": why_not(agent, row["station"], row["codes"], row["decision_id"] in recent),
        }
        for row in discrepancy_queue(agent.store, 100)
    ]
    return page(
        agent,
        "discrepancies.html",
        request,
        user,
        status=status,
        items=items,
        supervisor=user.role.covers(Role.SUPERVISOR),
        error=error,
        done=done,
    )


def why_not(agent: Agent, station: str, codes: list[str], recent: bool) -> str | None:
    """Why this decision cannot be overridden from here, or None when it can."""
    if not isinstance(agent.stations.get(station), Manual):
        return "Only a manual station's decisions are overridden here"
    blocking = [c for c in codes if c not in WAIVABLE]
    if blocking or not codes:
        return "Not for the park to override: " + (", ".join(blocking) or "no finding")
    if not recent:
        return "Too old to override here: scan the parcel again"
    return None

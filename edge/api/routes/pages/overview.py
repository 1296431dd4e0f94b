"""`/`: the park at a glance — stations, device health, feed sync and uplink."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from edge.agent import Agent
from edge.api.deps import AgentDep, PageUser
from edge.api.html import page, to_login
from edge.api.screen import ago, look, parcel

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index(request: Request, agent: AgentDep, user: PageUser) -> Response:
    if user is None:
        return to_login(request)
    stations = [
        {
            "name": name,
            "kind": st.view.kind,
            "look": look(st.view.state),
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
        agent,
        "index.html",
        request,
        user,
        stations=stations,
        devices=devices,
        sync=sync_status(agent),
        uplink=uplink_status(agent),
    )


def sync_status(agent: Agent) -> dict[str, Any]:
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


def uplink_status(agent: Agent) -> dict[str, Any]:
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

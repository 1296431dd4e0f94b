"""The devices' health, as their supervisors see it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from edge.api.deps import AgentDep, Operator

router = APIRouter(tags=["operations"])


@router.get("/api/devices")
async def devices(agent: AgentDep, who: Operator) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, h in agent.hub.all_health().items():
        out[name] = {"state": h.state.value, "reason": h.reason, "errors": h.errors}
        details = getattr(agent.hub.drivers[name], "details", None)
        if callable(details):  # e.g. an MQTT sensors device: per sensor rejected, stale, out of order
            out[name]["details"] = details()
    return out

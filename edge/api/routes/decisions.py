"""Decisions: the most recent ones, and the discrepancy queue (those that stopped a parcel)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from edge.api.deps import AgentDep, Operator
from edge.operations import discrepancy_queue
from edge.publisher import decision_payload

router = APIRouter(tags=["stations"])


@router.get("/api/decisions")
async def recent(
    agent: AgentDep, who: Operator, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[dict[str, Any]]:
    return [decision_payload(r) for r in reversed(agent.recent[-limit:])]


@router.get("/api/discrepancies")
async def queue(
    agent: AgentDep, who: Operator, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    return discrepancy_queue(agent.store, limit)

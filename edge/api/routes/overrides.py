"""A supervisor's override of a manual station's decision, with a reason (audited as an event)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, field_validator

from edge import operations
from edge.api.deps import AgentDep, Supervisor
from edge.publisher import decision_payload
from edge.stations.manual import OverrideRefused

router = APIRouter(tags=["stations"])


class OverrideIn(BaseModel):
    decision_id: str = Field(max_length=64)
    reason: str = Field(min_length=5, max_length=1000)

    @field_validator("reason")
    @classmethod
    def _text(cls, value: str) -> str:
        value.encode("utf-8")  # a lone surrogate cannot be stored: 422, not 500
        return value


@router.post("/api/stations/{name}/override")
async def override(agent: AgentDep, name: str, body: OverrideIn, who: Supervisor) -> dict[str, Any]:
    try:
        record = await operations.override(
            agent, body.decision_id, operator=who.name, reason=body.reason, station=name
        )
    except operations.NoSuchDecision as exc:
        raise HTTPException(404, str(exc)) from exc
    except OverrideRefused as exc:
        raise HTTPException(409, str(exc)) from exc
    return decision_payload(record)

"""The stations: their state, and a code typed at a manual station (the label would not read)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from edge.api.deps import AgentDep, Operator
from edge.publisher import decision_payload
from edge.stations.base import Station
from edge.stations.manual import Manual

router = APIRouter(tags=["stations"])


class TypedCode(BaseModel):
    code: str = Field(
        min_length=1,
        max_length=60,
        pattern=r"^[\x21-\x7e]+$",  # printable ASCII, as on a waybill label
        description="the waybill number read off the label",
    )


def station_view(station: Station) -> dict[str, Any]:
    v = station.view
    return {
        "name": v.name,
        "kind": v.kind,
        "state": v.state.value,
        "faults": v.faults,
        "decisions": station.decisions,
        "last": decision_payload(v.last) if v.last else None,
        "tracking": station.tracking(),
    }


@router.get("/api/stations")
async def stations(agent: AgentDep, who: Operator) -> list[dict[str, Any]]:
    return [station_view(s) for s in agent.stations.values()]


@router.post("/api/stations/{name}/code")
async def typed(agent: AgentDep, name: str, body: TypedCode, who: Operator) -> dict[str, Any]:
    station = agent.stations.get(name)
    if not isinstance(station, Manual):
        raise HTTPException(404, f"no manual station {name}")
    record = await station.check(body.code, operator=who.name)
    return decision_payload(record)

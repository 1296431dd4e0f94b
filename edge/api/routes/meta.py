"""Health and metrics, open on the local network (no login)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from devices.health import State
from edge.agent import Agent
from edge.api.deps import AgentDep

router = APIRouter(tags=["operations"])


class AgentGauges:
    """The agent's Prometheus gauges, in a registry of each app's own, set when they are scraped."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.backlog = Gauge(
            "bondgate_edge_outbox_events", "events waiting for central", registry=self.registry
        )
        self.sync_age = Gauge(
            "bondgate_edge_sync_age_seconds",
            "seconds since the last successful feed pull",
            registry=self.registry,
        )
        self.decisions = Gauge(
            "bondgate_edge_decisions", "decisions since start", ["station"], registry=self.registry
        )
        self.device_up = Gauge(
            "bondgate_edge_device_up", "1 when the device is UP", ["device"], registry=self.registry
        )

    def scrape(self, agent: Agent) -> bytes:
        """The gauges set from `agent` now, in Prometheus' text format."""
        self.backlog.set(agent.store.backlog()["size"])
        age = agent.sync_age()
        self.sync_age.set(age if age is not None else -1)
        for name, station in agent.stations.items():
            self.decisions.labels(name).set(station.decisions)
        for name, health in agent.hub.all_health().items():
            self.device_up.labels(name).set(1 if health.state is State.UP else 0)
        return generate_latest(self.registry)


async def get_gauges(request: Request) -> AgentGauges:
    gauges: AgentGauges = request.app.state.gauges
    return gauges


GaugesDep = Annotated[AgentGauges, Depends(get_gauges)]


@router.get("/healthz", responses={503: {"description": "unhealthy: `reasons` says why (a task down, …)"}})
async def healthz(agent: AgentDep) -> JSONResponse:
    problems = agent.health_problems()
    body: dict[str, Any] = {"status": "unhealthy" if problems else "ok", "park": agent.settings.park_id}
    body |= {"edge": agent.settings.edge_id, "reasons": problems}
    return JSONResponse(body, status_code=503 if problems else 200)


@router.get("/metrics")
async def metrics(agent: AgentDep, gauges: GaugesDep) -> Response:
    return Response(gauges.scrape(agent), media_type=CONTENT_TYPE_LATEST)

"""The edge's local HTTP API and operator pages, for station screens and operations.

API (JSON, in the OpenAPI document): reading (station state, recent decisions, the discrepancy
queue, device health, sync and uplink status) needs an operator or supervisor login; typing a code
at a manual station needs an operator; an override needs a supervisor and a reason, and is audited.
/healthz and /metrics are open on the local network (the API listens on loopback unless configured
otherwise); /healthz answers 503 with its reasons while the agent is unhealthy (a supervised task
down, its event chain at odds with central's, central refusing its events).

Pages (server-rendered HTML, outside the OpenAPI document), for the people at the stations: `/`
(stations, device health, feed sync and uplink), `/stations/{name}` (a station's screen, kept live
by SSE), `/discrepancies` (the queue, with the override form for supervisors), `/login` and
`/logout`. No front-end build: Jinja2 templates, one CSS file, one small script, all served from
here (the park network may have no internet). A page must never disturb a decision: the only hook
into a station is one listener per station that copies its view into per-client queues and cannot
raise (edge/api/feeds.py).

The API and the pages share one login: the same sessions (a bearer token for the API, the same
token in a cookie for the pages) and the same login checks, throttled per user name and per client
address (edge/auth.py: refused with 429 and Retry-After for a while after repeated failures).
Logging out revokes the token everywhere. A request body over 64 KiB is refused with 413 before it
is read. When the edge's database cannot be written — the disk is full, or the store failed — a
request answers 503 with the reason in the usual `{"detail": …}` body, never a bare 500.
"""

from __future__ import annotations

from fastapi import FastAPI

from edge.agent import Agent
from edge.api import errors
from edge.api.body_limit import BodyLimit
from edge.api.feeds import StationFeeds
from edge.api.routes import auth, decisions, devices, meta, overrides, stations, status
from edge.api.routes.pages import discrepancies, files, login, overview
from edge.api.routes.pages import stations as station_pages
from edge.auth import Logins, Sessions


def create_app(
    agent: Agent,
    *,
    sessions: Sessions | None = None,
    feeds: StationFeeds | None = None,
    heartbeat_s: float = 15.0,
) -> FastAPI:
    """The API and pages of `agent`. `sessions` (new ones by default) sign the API's tokens and the
    pages' cookies alike; `feeds` carry the stations' changes to open screens, whose streams send a
    heartbeat every `heartbeat_s` when nothing changes."""
    app = FastAPI(
        title="Bondgate edge agent",
        version="0.1.0",
        description="Local API of one park's edge agent: stations, decisions, overrides.",
    )
    app.state.agent = agent
    app.state.sessions = Sessions() if sessions is None else sessions
    app.state.logins = Logins({u.name: u for u in agent.settings.api.users})
    app.state.feeds = StationFeeds(agent.stations) if feeds is None else feeds
    app.state.heartbeat_s = heartbeat_s
    app.state.gauges = meta.AgentGauges()
    for page_module in (login, overview, station_pages, discrepancies, files):
        app.include_router(page_module.router)
    app.add_middleware(BodyLimit)
    errors.install(app)
    for module in (auth, meta, stations, decisions, overrides, devices, status):
        app.include_router(module.router)
    return app

"""A station's screen, `/stations/{name}`, kept live by Server-Sent Events from
`/events/stations/{name}` (a few lines of vanilla JS in static/station.js).

The stream sends the state as of now, then every change, and a heartbeat when nothing changed for
`heartbeat_s` (its first one at once, carrying the interval: the page counts a stream silent for 2.5
of them as dead, for a half-open connection raises no error in the browser). It ends when the
session is revoked or expires, when the client goes, and when the agent stops."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from edge.api.deps import COOKIE, AgentDep, FeedsDep, PageUser, SessionsDep
from edge.api.feeds import StationFeeds
from edge.api.html import page, to_login
from edge.api.screen import Snapshot, render_screen, sse
from edge.auth import Sessions
from edge.stations.base import Station

router = APIRouter(include_in_schema=False)


async def get_heartbeat_s(request: Request) -> float:
    heartbeat_s: float = request.app.state.heartbeat_s
    return heartbeat_s


HeartbeatDep = Annotated[float, Depends(get_heartbeat_s)]


@router.get("/stations/{name}")
async def station_screen(request: Request, name: str, agent: AgentDep, user: PageUser) -> Response:
    if user is None:
        return to_login(request)
    station = agent.stations.get(name)
    if station is None:
        return page(agent, "message.html", request, user, status=404, title="No such station", message=name)
    snap = Snapshot.of(station.view)
    return page(
        agent,
        "station.html",
        request,
        user,
        name=name,
        kind=snap.kind,
        screen=render_screen(snap),
        devices=[(d, agent.hub.health(d).state.value) for d in station.devices()],
    )


@router.get("/events/stations/{name}")
async def station_events(
    request: Request,
    name: str,
    agent: AgentDep,
    user: PageUser,
    sessions: SessionsDep,
    feeds: FeedsDep,
    heartbeat_s: HeartbeatDep,
) -> Response:
    if user is None:
        return Response("log in first", status_code=401)
    station = agent.stations.get(name)
    if station is None:
        return Response("no such station", status_code=404)
    live = stream(
        request,
        name,
        station,
        request.cookies.get(COOKIE, ""),
        stopping=agent.stopping,
        sessions=sessions,
        feeds=feeds,
        heartbeat_s=heartbeat_s,
    )
    return StreamingResponse(
        live, media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


async def stream(
    request: Request,
    name: str,
    station: Station,
    token: str,
    *,
    stopping: asyncio.Event,
    sessions: Sessions,
    feeds: StationFeeds,
    heartbeat_s: float,
) -> AsyncIterator[str]:
    heartbeat = sse("heartbeat", format(heartbeat_s, "g"))
    with feeds.client(name) as queue:
        yield "retry: 2000\n\n"
        yield sse("screen", render_screen(Snapshot.of(station.view)))  # the state as of now
        yield heartbeat  # the interval, at once, for the page's watchdog
        sent = time.monotonic()
        while not stopping.is_set():
            if sessions.verify(token) is None:
                return  # logged out (the session revoked) or expired since the stream opened
            try:
                async with asyncio.timeout(min(1.0, heartbeat_s)):
                    snap = await queue.get()
            except TimeoutError:
                if await request.is_disconnected():
                    return
                if time.monotonic() - sent >= heartbeat_s:
                    yield heartbeat
                    sent = time.monotonic()
                continue
            yield sse("screen", render_screen(snap))
            sent = time.monotonic()

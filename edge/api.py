"""The edge's local HTTP API, for station screens and operations.

Reading (station state, recent decisions, the discrepancy queue, device health, sync and uplink
status) needs an operator or supervisor login; typing a code at a manual station needs an
operator; an override needs a supervisor and a reason, and is audited. /healthz and /metrics are
open on the local network (the API listens on loopback unless configured otherwise); /healthz answers
503 with its reasons while the agent is unhealthy (a supervised task down, its event chain at odds
with central's, central refusing its events).

Logins are throttled per user name and per client address (edge/auth.py: refused with 429 and
Retry-After for a while after repeated failures), and `POST /api/logout` revokes the token. When the
edge's database cannot be written — the disk is full, or the store failed — a request answers 503
with the reason in the usual `{"detail": …}` body, never a bare 500.
"""

import json
import logging
import math
import sqlite3
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from pydantic import BaseModel, Field, field_validator

from edge import operations
from edge.auth import Logins, Sessions
from edge.central_client import describe
from edge.operations import discrepancy_queue
from edge.pages import pages_router
from edge.publisher import decision_payload
from edge.stations.manual import Manual, OverrideRefused

log = logging.getLogger(__name__)

ROLES = {"operator": 1, "supervisor": 2}


class Login(BaseModel):
    name: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class TokenOut(BaseModel):
    token: str
    role: str


class TypedCode(BaseModel):
    code: str = Field(
        min_length=1,
        max_length=60,
        pattern=r"^[\x21-\x7e]+$",  # printable ASCII, as on a waybill label
        description="the waybill number read off the label",
    )


class OverrideIn(BaseModel):
    decision_id: str = Field(max_length=64)
    reason: str = Field(min_length=5, max_length=1000)

    @field_validator("reason")
    @classmethod
    def _text(cls, value: str) -> str:
        value.encode("utf-8")  # a lone surrogate cannot be stored: 422, not 500
        return value


MAX_BODY_BYTES = 64 * 1024  # the largest request the local API takes: a login, a typed code, a reason


class BodyLimit:
    """Refuse a request body over `limit` bytes with 413 before it is read into memory: by its
    Content-Length when it says, and by counting when it streams (chunked) — an unauthenticated
    600 MB POST to /login grew the agent by 1.7 GB and stalled the stations' event loop."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(send)
            return
        seen = 0
        started = refused = False

        async def counted() -> Any:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:  # answer now; the app reads on into a disconnect
                    refused = True
                    if not started:
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def tracked(message: Any) -> None:
            nonlocal started
            if refused:
                return  # the 413 is the answer; whatever the app makes of the disconnect is dropped
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted, tracked)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps({"detail": f"request body larger than {self.limit} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def create_app(agent: Any) -> FastAPI:
    app = FastAPI(
        title="Bondgate edge agent",
        version="0.1.0",
        description="Local API of one park's edge agent: stations, decisions, overrides.",
    )
    sessions = Sessions()
    logins = Logins({u.name: u for u in agent.settings.api.users})
    app.state.sessions, app.state.logins = sessions, logins
    app.include_router(pages_router(agent, sessions, logins=logins))  # the HTML pages (edge/pages.py)
    app.add_middleware(BodyLimit)
    app.add_exception_handler(sqlite3.DatabaseError, store_failed)  # the pages' too
    bearer = HTTPBearer(auto_error=False)
    registry = CollectorRegistry()
    backlog = Gauge("bondgate_edge_outbox_events", "events waiting for central", registry=registry)
    oldest = Gauge(
        "bondgate_edge_sync_age_seconds", "seconds since the last successful feed pull", registry=registry
    )
    decisions = Gauge("bondgate_edge_decisions", "decisions since start", ["station"], registry=registry)
    device_up = Gauge("bondgate_edge_device_up", "1 when the device is UP", ["device"], registry=registry)

    def user(role: str):  # type: ignore[no-untyped-def]
        def check(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> tuple[str, str]:
            if creds is None:
                raise HTTPException(401, "log in first", headers={"WWW-Authenticate": "Bearer"})
            who = sessions.verify(creds.credentials)
            if who is None:
                raise HTTPException(401, "session expired or invalid", headers={"WWW-Authenticate": "Bearer"})
            if ROLES[who[1]] < ROLES[role]:
                raise HTTPException(403, f"needs the {role} role")
            return who

        return check

    Operator = Annotated[tuple[str, str], Depends(user("operator"))]
    Supervisor = Annotated[tuple[str, str], Depends(user("supervisor"))]

    @app.post(
        "/api/login",
        response_model=TokenOut,
        tags=["auth"],
        responses={401: {"description": "wrong name or password"}, 429: {"description": "too many failures"}},
    )
    async def login(body: Login, request: Request) -> TokenOut:
        result = await logins.check(body.name, body.password, client_address(request))
        if result.throttled:
            wait = math.ceil(result.retry_after_s)
            raise HTTPException(
                429,
                f"too many failed logins for this name or from this address: try again in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        if result.user is None:
            raise HTTPException(401, "wrong name or password")
        name, role = result.user
        return TokenOut(token=sessions.issue(name, role), role=role)

    @app.post("/api/logout", status_code=204, tags=["auth"])
    async def logout(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Response:
        """Revoke the bearer token: the API and the pages refuse it from now on."""
        if creds is None or not sessions.revoke(creds.credentials):
            raise HTTPException(401, "no valid session to log out", headers={"WWW-Authenticate": "Bearer"})
        return Response(status_code=204)

    @app.get(
        "/healthz",
        tags=["operations"],
        responses={503: {"description": "unhealthy: `reasons` says why (a task down, …)"}},
    )
    async def healthz() -> JSONResponse:
        problems = agent.health_problems()
        body = {"status": "unhealthy" if problems else "ok", "park": agent.settings.park_id}
        body |= {"edge": agent.settings.edge_id, "reasons": problems}
        return JSONResponse(body, status_code=503 if problems else 200)

    @app.get("/metrics", tags=["operations"])
    async def metrics() -> Response:
        backlog.set(agent.store.backlog()["size"])
        age = agent.sync_age()
        oldest.set(age if age is not None else -1)
        for name, station in agent.stations.items():
            decisions.labels(name).set(station.decisions)
        for name, health in agent.hub.all_health().items():
            device_up.labels(name).set(1 if health.state.value == "UP" else 0)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/stations", tags=["stations"])
    async def stations(who: Operator) -> list[dict[str, Any]]:
        return [station_view(s) for s in agent.stations.values()]

    @app.get("/api/decisions", tags=["stations"])
    async def recent(who: Operator, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[dict[str, Any]]:
        return [decision_payload(r) for r in reversed(agent.recent[-limit:])]

    @app.get("/api/discrepancies", tags=["stations"])
    async def queue(who: Operator, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
        return discrepancy_queue(agent.store, limit)

    @app.post("/api/stations/{name}/code", tags=["stations"])
    async def typed(name: str, body: TypedCode, who: Operator) -> dict[str, Any]:
        station = agent.stations.get(name)
        if not isinstance(station, Manual):
            raise HTTPException(404, f"no manual station {name}")
        record = await station.check(body.code, operator=who[0])
        return decision_payload(record)

    @app.post("/api/stations/{name}/override", tags=["stations"])
    async def override(name: str, body: OverrideIn, who: Supervisor) -> dict[str, Any]:
        try:
            record = await operations.override(
                agent, body.decision_id, operator=who[0], reason=body.reason, station=name
            )
        except operations.NoSuchDecision as exc:
            raise HTTPException(404, str(exc)) from exc
        except OverrideRefused as exc:
            raise HTTPException(409, str(exc)) from exc
        return decision_payload(record)

    @app.get("/api/devices", tags=["operations"])
    async def devices(who: Operator) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, h in agent.hub.all_health().items():
            out[name] = {"state": h.state.value, "reason": h.reason, "errors": h.errors}
            details = getattr(agent.hub.drivers[name], "details", None)
            if callable(details):  # e.g. an MQTT sensors device: per sensor rejected, stale, out of order
                out[name]["details"] = details()
        return out

    @app.get("/api/status", tags=["operations"])
    async def status(who: Operator) -> dict[str, Any]:
        s = agent.sync.status
        u = agent.uplink.status
        return {
            "sync": {
                "cursor": s.cursor,
                "age_s": agent.sync_age(),
                "caught_up": s.caught_up,
                "rejected_signatures": s.rejected_signatures,
                "superseded_unchecked": s.superseded_unchecked,
                "rejected_park": s.rejected_park,
                "rejected_rollback": s.rejected_rollback,
                "refused_pages": s.refused_pages,
                "refusals": s.refusals,
                "last_refusal": s.last_refusal,
                "checkpoint": {"cursor": s.checkpoint_cursor, "count": s.checkpoint_count},
                "central": describe(agent.settings.central),
                "lag_records": s.lag_records,
                "last_error": s.last_error,
                "records": agent.store.count_clearances(),
            },
            "uplink": {
                **agent.store.backlog(),
                "last_error": u.last_error,
                "refused": u.refused,
                "central_refusal": u.central_refusal.model_dump() if u.central_refusal else None,
                "acks_refused": u.acks_refused,
                "last_ack_problem": u.last_ack_problem,
                "acks_beyond_request": u.acks_beyond_request,
                "chain_checked": u.chain_checked,
                "chain_problem": u.chain_problem,
            },
            "tasks": {name: h.as_dict() for name, h in agent.tasks.health().items()},
            "releases": agent.checker.release_status(),
            "store": {"checkpoints": asdict(agent.store.checkpoints)},
        }

    return app


def client_address(request: Request) -> str:
    """The peer's address, which failed logins are counted against (the agent's uvicorn does not
    take it from X-Forwarded-For: a client could name any address it liked)."""
    return request.client.host if request.client is not None else "unknown"


def store_failed(request: Request, exc: Exception) -> Response:
    """The edge's database refused a write (or a read): 503 with the reason, not a bare 500.

    SQLITE_FULL is the disk (or the database's size limit) being full; any other operational
    failure (I/O error, read-only, corrupt file) is named as SQLite named it. A bug in our own SQL
    (IntegrityError, ProgrammingError…) stays a 500."""
    if not isinstance(exc, sqlite3.OperationalError) and type(exc) is not sqlite3.DatabaseError:
        raise exc
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == sqlite3.SQLITE_FULL:
        detail = f"the edge's disk is full: its database cannot be written ({exc}); free space on the edge"
    else:
        detail = f"the edge's database failed: {exc}"
    log.error("request refused: store failure", extra={"path": request.url.path, "error": str(exc)})
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "30"})


def station_view(station: Any) -> dict[str, Any]:
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

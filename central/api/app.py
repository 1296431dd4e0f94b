"""The central platform's FastAPI application."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from central.api import errors, pages
from central.api.routes import admin, clearances, documents, edges, meta, parks, release_notes
from central.config import CentralSettings
from central.keys import load_or_create_key
from central.metrics import HTTP_LATENCY, HTTP_REQUESTS
from central.platform import Platform
from central.store.db import Database, open_database

log = logging.getLogger("central.http")


class BodyLimit:
    """Refuse bodies over `limit` bytes with 413, before the route reads them into memory."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"error": "too_large", "detail": f"request body over {self.limit} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def _allow_every_method(app: FastAPI, request: Request, response: Response) -> None:
    """A 405 names every method the path has: Starlette's names only the first route's, and a path
    served by several routes (GET and POST apart) lists one of them."""
    methods = {
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in app.router.routes
        )
    }
    if methods:
        response.headers["Allow"] = ", ".join(sorted(methods))


UPKEEP_EVERY_S = 6 * 3600


async def _upkeep(db: Database) -> None:
    """The database's periodic upkeep while the service runs (PostgreSQL: next months' partitions)."""
    while True:
        await asyncio.sleep(UPKEEP_EVERY_S)
        try:
            done = await run_in_threadpool(db.upkeep)
            if done:
                log.info("database upkeep", extra={"done": done})
        except Exception:
            log.exception("database upkeep failed; retried at the next round")


def create_app(settings: CentralSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = await run_in_threadpool(open_database, settings.database)  # migrates: off the loop
        platform = Platform(db=db, key=load_or_create_key(settings.signing_key), settings=settings)
        platform.bell.bind(asyncio.get_running_loop())
        db.listen(platform.bell.ring)
        app.state.platform = platform
        upkeep = asyncio.create_task(_upkeep(db), name="database-upkeep")
        log.info("central started", extra={"database": db.target, "mode": settings.mode.value})
        try:
            yield
        finally:
            upkeep.cancel()
            with suppress(asyncio.CancelledError):
                await upkeep
            db.close()

    app = FastAPI(
        title="Bondgate central platform",
        version="0.1.0",
        description="Takes in CEB documents, runs the three-document comparison, keeps each parcel's "
        "clearance status, serves each park a signed clearance feed and receives the events parks "
        "report. Every route except /healthz and the public key needs a Bearer token.",
        lifespan=lifespan,
    )
    errors.install(app)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse({"error": "internal", "detail": "internal error; see the server log"}, 500)

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500  # an exception out of a route is answered 500 outside this middleware
        try:
            response = await call_next(request)
            status = response.status_code
            if status == 405:
                _allow_every_method(app, request, response)
            return response
        finally:  # every response counted and logged, the 500s above all
            route = getattr(request.scope.get("route"), "path", "unmatched")
            elapsed = time.perf_counter() - started
            HTTP_REQUESTS.labels(request.method, route, str(status)).inc()
            HTTP_LATENCY.labels(request.method, route).observe(elapsed)
            (log.error if status >= 500 else log.info)(
                "request",
                extra={
                    "method": request.method,
                    "route": route,
                    "status": status,
                    "ms": round(elapsed * 1000, 2),
                },
            )

    for module in (documents, clearances, release_notes, parks, edges, admin, meta):
        app.include_router(module.router)
    app.include_router(pages.router)  # officer HTML pages under /ui, outside the OpenAPI schema
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app

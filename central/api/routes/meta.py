"""Health, metrics and the feed's public key."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from central.api.deps import Admin, PlatformDep
from central.api.errors import AUTH, responses
from central.metrics import REGISTRY
from central.store import health
from kernel.wire import public_key_pem

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str
    database: str
    mode: str


@router.get("/healthz", response_model=Health, summary="Liveness and database reachability (no token)")
def healthz(platform: PlatformDep) -> Health:
    health.check(platform.db)
    return Health(status="ok", database="ok", mode=platform.settings.mode.value)


@router.get(
    "/.well-known/bondgate/feed-key.pem",
    response_class=PlainTextResponse,
    summary="Ed25519 public key that verifies feed records (PEM, no token)",
    responses={200: {"content": {"application/x-pem-file": {}}}},
)
def feed_key(platform: PlatformDep) -> PlainTextResponse:
    return PlainTextResponse(public_key_pem(platform.key.public_key()), media_type="application/x-pem-file")


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,  # no media type of its own, so the 401/403 bodies are documented as JSON
    responses={**responses(*AUTH), 200: {"content": {"text/plain": {}}}},
)
def metrics(token: Admin) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

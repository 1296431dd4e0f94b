"""Logging in and out of the API: a bearer token for a name and password, and its revocation."""

from __future__ import annotations

import math

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field

from edge.api.deps import BearerDep, LoginsDep, SessionsDep, client_address

router = APIRouter(tags=["auth"])


class Login(BaseModel):
    name: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class TokenOut(BaseModel):
    token: str
    role: str


@router.post(
    "/api/login",
    response_model=TokenOut,
    responses={401: {"description": "wrong name or password"}, 429: {"description": "too many failures"}},
)
async def login(body: Login, request: Request, logins: LoginsDep, sessions: SessionsDep) -> TokenOut:
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
    return TokenOut(token=sessions.issue(name, role), role=role.value)


@router.post("/api/logout", status_code=204)
async def logout(sessions: SessionsDep, creds: BearerDep) -> Response:
    """Revoke the bearer token: the API and the pages refuse it from now on."""
    if creds is None or not sessions.revoke(creds.credentials):
        raise HTTPException(401, "no valid session to log out", headers={"WWW-Authenticate": "Bearer"})
    return Response(status_code=204)

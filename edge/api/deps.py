"""Typed dependencies of the local API and pages: the agent, the sessions and logins, who is signed in.

`create_app` puts the agent and what the routes share on `app.state`; routes take them as
`AgentDep`, `SessionsDep`, … The API reads the session from `Authorization: Bearer` (`Operator`,
`Supervisor`: 401 without a valid one, 403 for a role that does not cover the route's); the pages
read it from the session cookie (`PageUser`: None when there is none, and the page says what to do).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from edge.agent import Agent
from edge.api.feeds import StationFeeds
from edge.auth import Logins, Role, Sessions, SignedIn

COOKIE = "bondgate_session"  # the pages' session: the same token as the API's bearer

_bearer = HTTPBearer(auto_error=False)

# The dependencies are `async def`: FastAPI runs a plain `def` dependency on its threadpool, a thread
# hop on every request for what only reads app.state or checks a signature.


async def get_agent(request: Request) -> Agent:
    agent: Agent = request.app.state.agent
    return agent


async def get_sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.sessions
    return sessions


async def get_logins(request: Request) -> Logins:
    logins: Logins = request.app.state.logins
    return logins


async def get_feeds(request: Request) -> StationFeeds:
    feeds: StationFeeds = request.app.state.feeds
    return feeds


AgentDep = Annotated[Agent, Depends(get_agent)]
SessionsDep = Annotated[Sessions, Depends(get_sessions)]
LoginsDep = Annotated[Logins, Depends(get_logins)]
FeedsDep = Annotated[StationFeeds, Depends(get_feeds)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def require(role: Role) -> Callable[[Sessions, HTTPAuthorizationCredentials | None], Awaitable[SignedIn]]:
    """A dependency admitting a bearer token whose role covers `role`."""

    async def check(sessions: SessionsDep, creds: BearerDep) -> SignedIn:
        if creds is None:
            raise HTTPException(401, "log in first", headers={"WWW-Authenticate": "Bearer"})
        who = sessions.verify(creds.credentials)
        if who is None:
            raise HTTPException(401, "session expired or invalid", headers={"WWW-Authenticate": "Bearer"})
        if not who.role.covers(role):
            raise HTTPException(403, f"needs the {role} role")
        return who

    return check


Operator = Annotated[SignedIn, Depends(require(Role.OPERATOR))]
Supervisor = Annotated[SignedIn, Depends(require(Role.SUPERVISOR))]


async def page_user(request: Request, sessions: SessionsDep) -> SignedIn | None:
    """Who the session cookie belongs to; None without a valid one."""
    token = request.cookies.get(COOKIE)
    return sessions.verify(token) if token else None


PageUser = Annotated[SignedIn | None, Depends(page_user)]


def client_address(request: Request) -> str:
    """The peer's address, which failed logins are counted against (the agent's uvicorn does not
    take it from X-Forwarded-For: a client could name any address it liked)."""
    return request.client.host if request.client is not None else "unknown"

"""Typed dependencies: the platform, the caller's token, role and park checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from central.api.errors import ApiError
from central.auth import Role, authenticate
from central.events import foreign_park_alert
from central.platform import Platform
from central.store.parks import TokenRow
from kernel.timefmt import utc_now

_bearer = HTTPBearer(auto_error=False, description="Bondgate API token: `Authorization: Bearer bg_…`")


async def get_platform(request: Request) -> Platform:
    # async: FastAPI runs a plain `def` dependency on its threadpool, a hop per request for a lookup
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def current_token(
    platform: PlatformDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenRow:
    challenge = {"WWW-Authenticate": "Bearer"}
    if creds is None or creds.scheme.lower() != "bearer":
        raise ApiError(401, "unauthenticated", "an Authorization: Bearer token is required", challenge)
    row = authenticate(platform.db, creds.credentials)
    if row is None:
        raise ApiError(401, "unauthenticated", "unknown or revoked token", challenge)
    return row


def require(*roles: Role) -> Callable[..., TokenRow]:
    """A dependency admitting the given roles (admin is always admitted)."""
    allowed = {r.value for r in roles} | {Role.ADMIN.value}

    def check(
        request: Request, platform: PlatformDep, token: Annotated[TokenRow, Depends(current_token)]
    ) -> TokenRow:
        if token.role not in allowed:
            park_id = request.path_params.get("park_id")
            if token.role == Role.EDGE and park_id is not None and park_id != token.park_id:
                # an edge token probing another park through a route it may not use at all
                what = f"called {request.method} {request.url.path}"
                _alert_park(platform, token, str(park_id), what=what, edge_id=None)
            raise ApiError(
                403, "forbidden", f"role {token.role} may not do this (needs {' or '.join(sorted(allowed))})"
            )
        return token

    return check


def check_park(
    platform: Platform, token: TokenRow, park_id: str, *, what: str, edge_id: str | None = None
) -> None:
    """An edge token reaches its own park only. Addressing another is refused, and the park
    targeted is alerted (`what` the token tried, `edge_id` the edge the request named)."""
    if token.role == Role.EDGE and token.park_id != park_id:
        _alert_park(platform, token, park_id, what=what, edge_id=edge_id)
        raise ApiError(403, "forbidden", f"this edge token belongs to park {token.park_id}, not {park_id}")


Enterprise = Annotated[TokenRow, Depends(require(Role.ENTERPRISE))]
Officer = Annotated[TokenRow, Depends(require(Role.OFFICER))]
Admin = Annotated[TokenRow, Depends(require())]


def check_own_edge(platform: Platform, token: TokenRow, edge_id: str, *, what: str) -> None:
    """An edge token reads its own edge's chain only (one made before tokens were bound, and not
    yet used, is bound by its first report: central/events.py token_refusal). Reading another's is
    refused, and the park alerted, as a report for another edge is."""
    if token.role == Role.EDGE and token.edge_id is not None and token.edge_id != edge_id:
        _alert_park(platform, token, token.park_id, what=what, edge_id=edge_id)
        raise ApiError(403, "forbidden", f"this token is edge {token.edge_id}'s, not {edge_id}'s")


def _alert_park(
    platform: Platform, token: TokenRow, park_id: str | None, *, what: str, edge_id: str | None
) -> None:
    if park_id is None:
        return
    foreign_park_alert(
        platform.db,
        token_id=token.token_id,
        token_name=token.name,
        token_park=token.park_id,
        token_edge=token.edge_id,
        park_id=park_id,
        edge_id=edge_id,
        what=what,
        now=utc_now(),
    )


EdgeOrOfficer = Annotated[TokenRow, Depends(require(Role.EDGE, Role.OFFICER))]
Edge = Annotated[TokenRow, Depends(require(Role.EDGE))]
EnterpriseOrOfficer = Annotated[TokenRow, Depends(require(Role.ENTERPRISE, Role.OFFICER))]

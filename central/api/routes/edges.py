"""One edge of a park: its event chains, their stored events, and re-provisioning (central/chains.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field, StrictInt

from central.api.deps import EdgeOrOfficer, Officer, PlatformDep, check_own_edge, check_park
from central.api.errors import AUTH, ApiError, responses
from central.chains import (
    ChainView,
    EpochMoved,
    Reprovisioned,
    StoredEvent,
    UnknownEdge,
    chain_events,
    chain_view,
    reprovision,
)
from kernel.timefmt import utc_now

router = APIRouter(prefix="/api/v1/parks/{park_id}/edges/{edge_id}", tags=["edges"])

NAME = r"^[A-Za-z0-9_.-]{1,64}$"
ParkId = Annotated[str, Path(pattern=NAME)]
EdgeId = Annotated[str, Path(pattern=NAME)]


class ReprovisionIn(BaseModel):
    reason: str = Field(min_length=5, max_length=1000, description="why: kept with the closed chain")
    expect_epoch: StrictInt | None = Field(
        None,
        ge=1,
        le=2**53,  # far past any epoch, and exact in every JSON reader (2^63 - 1 is not, as a double)
        description="refuse (409) unless this epoch is the open one: guards against doing it twice",
    )


@router.get(
    "",
    response_model=ChainView,
    summary="An edge's open chain and the chains closed before it",
    description="What central holds of the edge's open chain (epoch, last seq and hash) and, for each "
    "earlier epoch, where it was closed, when, by whom and why. The edge reads this at start to check "
    "that its database's chain is central's, and when it is re-provisioned.",
    responses=responses(*AUTH, 404),
)
def get_edge_chain(
    platform: PlatformDep, token: EdgeOrOfficer, park_id: ParkId, edge_id: EdgeId
) -> ChainView:
    check_park(platform, token, park_id, what=f"read edge {edge_id}'s chain", edge_id=edge_id)
    check_own_edge(platform, token, edge_id, what=f"read edge {edge_id}'s chain")
    try:
        return chain_view(platform.db, park_id=park_id, edge_id=edge_id)
    except UnknownEdge as exc:
        raise ApiError(404, "unknown_edge", str(exc)) from exc


@router.get(
    "/events",
    response_model=list[StoredEvent],
    summary="Stored events of one of an edge's chains",
    description="In seq order, after `after`; `epoch` defaults to the open chain. Closed chains stay "
    "stored and readable here.",
    responses=responses(*AUTH, 404),
)
def get_edge_events(
    platform: PlatformDep,
    token: EdgeOrOfficer,
    park_id: ParkId,
    edge_id: EdgeId,
    epoch: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> list[StoredEvent]:
    check_park(platform, token, park_id, what=f"read edge {edge_id}'s events", edge_id=edge_id)
    check_own_edge(platform, token, edge_id, what=f"read edge {edge_id}'s events")
    try:
        return chain_events(
            platform.db, park_id=park_id, edge_id=edge_id, epoch=epoch, after=after, limit=limit
        )
    except UnknownEdge as exc:
        raise ApiError(404, "unknown_edge", str(exc)) from exc


@router.post(
    "/reprovision",
    response_model=Reprovisioned,
    summary="Re-provision an edge: close its chain, open the next epoch",
    description="For an edge whose database was lost or restored (its events are refused as a conflict "
    "or a broken chain): the open chain is closed where central holds it, with who and why, and the "
    "next epoch opens empty; an alert row records it. Then run `bondgate edge reprovision` on the "
    "edge, which carries the events central never got into the new epoch.",
    responses=responses(400, *AUTH, 404, 409),
)
def post_reprovision(
    platform: PlatformDep, token: Officer, park_id: ParkId, edge_id: EdgeId, body: ReprovisionIn
) -> Reprovisioned:
    try:
        return reprovision(
            platform.db,
            park_id=park_id,
            edge_id=edge_id,
            actor=f"{token.role}:{token.name}",
            reason=body.reason,
            now=utc_now(),
            expect_epoch=body.expect_epoch,
        )
    except UnknownEdge as exc:
        raise ApiError(404, "unknown_edge", str(exc)) from exc
    except EpochMoved as exc:
        raise ApiError(409, "epoch_moved", str(exc)) from exc

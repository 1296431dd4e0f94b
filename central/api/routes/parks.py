"""Parks: registration, the clearance feed an edge pulls, the events it reports, reconciliation."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from central.api.deps import Admin, Edge, EdgeOrOfficer, Officer, PlatformDep, check_park
from central.api.errors import AUTH, ApiError, responses
from central.auth import Role
from central.events import EdgeStatus, IngestResult, edge_status, ingest_events, token_refusal
from central.feed import page_json
from central.metrics import EVENTS, FEED_RECORDS
from central.release_notes.passages import PassageApplier
from central.release_notes.reconciliation import GateReport, gate_report
from central.reports import ACTUATION_GRACE, ParkReport, park_report
from central.store import parks as pstore
from kernel.timefmt import iso_now, utc_now
from kernel.wire import Event, FeedPage

router = APIRouter(prefix="/api/v1/parks", tags=["parks"])

PARK_ID = r"^[A-Za-z0-9_.-]{1,64}$"


class ParkIn(BaseModel):
    park_id: str = Field(pattern=PARK_ID)
    name: str = Field(min_length=1, max_length=200)
    ems_nos: list[str] = Field(default_factory=list, description="bonded account books (emsNo) it handles")
    area_codes: list[str] = Field(default_factory=list, description="area codes it handles")


class Park(ParkIn):
    created_at: str


def _park(row: pstore.ParkRow) -> Park:
    return Park(
        park_id=row.park_id,
        name=row.name,
        ems_nos=row.ems_nos,
        area_codes=row.area_codes,
        created_at=row.created_at,
    )


def _known(platform: PlatformDep, park_id: str) -> pstore.ParkRow:
    row = pstore.get_park(platform.db, park_id=park_id)
    if row is None:
        raise ApiError(404, "not_found", f"no park {park_id}")
    return row


@router.put(
    "/{park_id}", response_model=Park, summary="Register or update a park", responses=responses(400, *AUTH)
)
def put_park(platform: PlatformDep, token: Admin, park_id: str, body: ParkIn) -> Park:
    if body.park_id != park_id:
        raise ApiError(400, "park_mismatch", "park_id in the path and the body differ")
    return _park(
        pstore.upsert_park(
            platform.db,
            park_id=park_id,
            name=body.name,
            ems_nos=body.ems_nos,
            area_codes=body.area_codes,
            now=iso_now(),
        )
    )


@router.get("", response_model=list[Park], summary="List parks", responses=responses(*AUTH))
def list_parks(platform: PlatformDep, token: Officer) -> list[Park]:
    return [_park(r) for r in pstore.list_parks(platform.db)]


@router.get("/{park_id}", response_model=Park, summary="One park", responses=responses(*AUTH, 404))
def get_park(platform: PlatformDep, token: EdgeOrOfficer, park_id: str) -> Park:
    check_park(platform, token, park_id, what="read the park")
    return _park(_known(platform, park_id))


@router.get(
    "/{park_id}/feed",
    response_model=FeedPage,
    summary="The park's clearance feed after a cursor",
    description="Every change of the park's clearance records in commit order, each signed with "
    "Ed25519 (public key at /.well-known/bondgate/feed-key.pem). Pass the last page's `next_after` "
    "as `after`. With `wait` > 0 and nothing new, the call waits up to that many seconds (long poll). "
    "`checkpoint` is central's signed checkpoint of the park's feed at `next_after` (cursor, record "
    "count, running hash): the page's records, hashed in order onto the checkpoint at `after`, must "
    "give it, or the page is not central's feed.",
    responses=responses(*AUTH, 404),
)
async def get_feed(
    platform: PlatformDep,
    token: EdgeOrOfficer,
    park_id: str,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    wait: Annotated[float, Query(ge=0, le=60)] = 0,
) -> Response:
    await run_in_threadpool(partial(check_park, platform, token, park_id, what="read the feed"))
    await run_in_threadpool(_known, platform, park_id)
    limit = min(limit, platform.settings.feed_page_max)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        bell = platform.bell.bell(park_id)  # before the read: a commit after it still rings
        body, count = await run_in_threadpool(
            page_json, platform.db, platform.key, park_id=park_id, after=after, limit=limit
        )
        left = deadline - loop.time()
        if count or left <= 0:
            break
        # woken by a commit for the park in any central process; the re-read bounds a lost wake-up
        await platform.bell.wait(bell, min(left, platform.settings.feed_recheck_seconds))
    FEED_RECORDS.inc(count)
    return Response(body, media_type="application/json")


class EventBatch(BaseModel):
    edge_id: str = Field(min_length=1, max_length=64, pattern=PARK_ID)
    events: list[Event] = Field(max_length=5000)


@router.post(
    "/{park_id}/events",
    response_model=IngestResult,
    summary="Report a batch of edge events (releases, discrepancies, faults, heartbeats)",
    description="Each event is stored exactly once by (edge_id, seq); re-sent or overlapping batches "
    "have no further effect. `acked_seq` is the highest contiguous seq held: the edge may drop "
    "everything up to it. A gap or a broken hash chain is refused (listed in `refused`).",
    responses=responses(400, *AUTH, 404, 413),
)
def post_events(platform: PlatformDep, token: Edge, park_id: str, body: EventBatch) -> IngestResult:
    check_park(
        platform, token, park_id, what=f"reported events for edge {body.edge_id}", edge_id=body.edge_id
    )
    _known(platform, park_id)
    refusal = (
        None
        if token.role != Role.EDGE
        else token_refusal(
            platform.db,
            token_id=token.token_id,
            token_name=token.name,
            token_edge=token.edge_id,
            park_id=park_id,
            edge_id=body.edge_id,
            now=utc_now(),
        )
    )
    if refusal is not None:
        raise ApiError(403, "forbidden", refusal)
    result = ingest_events(
        platform.db,
        park_id=park_id,
        edge_id=body.edge_id,
        events=body.events,
        now=utc_now(),
        on_passage=PassageApplier(platform),
    )
    EVENTS.labels(result="stored").inc(result.stored)
    EVENTS.labels(result="duplicate").inc(result.duplicates)
    EVENTS.labels(result="refused").inc(len(result.refused))
    return result


@router.get(
    "/{park_id}/report",
    response_model=ParkReport,
    summary="Reconciliation of one park",
    description="Counts by status, releases per hour, discrepancies by code, parcels cleared "
    "but not out, and the lists that must stay empty: released without clearance, released twice, "
    "cancelled after release (a CEB623 approved while the release was on its way to central), "
    "released but actuation failed, and released with no actuation report `actuation_grace_s` after "
    "central got the release.",
    responses=responses(*AUTH, 404),
)
def get_report(
    platform: PlatformDep,
    token: Officer,
    park_id: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    actuation_grace_s: Annotated[
        int,
        Query(ge=0, le=86400, description="list releases without an actuation report after this long"),
    ] = int(ACTUATION_GRACE.total_seconds()),
) -> ParkReport:
    _known(platform, park_id)
    grace = timedelta(seconds=actuation_grace_s)
    return park_report(platform.db, park_id=park_id, now=utc_now(), limit=limit, actuation_grace=grace)


@router.get(
    "/{park_id}/gate-report",
    response_model=GateReport,
    summary="The vehicle gate's reconciliation of one park",
    description="Parcels released by the line but not through the gate (with age), through the gate "
    "without a line release (must be empty), on an approved note but never loaded, the notes' goods "
    "weight against the weighbridge, and the lanes' latest passages with the reasons of every stop.",
    responses=responses(*AUTH, 404),
)
def get_gate_report(
    platform: PlatformDep, token: Officer, park_id: str, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> GateReport:
    _known(platform, park_id)
    return gate_report(platform.db, park_id=park_id, now=utc_now(), limit=limit)


@router.get(
    "/{park_id}/edges",
    response_model=list[EdgeStatus],
    summary="Edges of a park",
    description="Last event, heartbeat and reported backlog of each edge.",
    responses=responses(*AUTH, 404),
)
def get_edges(platform: PlatformDep, token: Officer, park_id: str) -> list[EdgeStatus]:
    _known(platform, park_id)
    return edge_status(platform.db, park_id)

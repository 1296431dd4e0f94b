"""A park's reconciliation: what customs cleared against what physically left (DESIGN.md §3.4).

Three lists matter most: cleared but not out (normal backlog, watched for age), released without
clearance and released twice — both must be empty; anything in them is a parcel an officer has to
chase. So must "cancelled after release": a parcel the edge released while it was cleared, whose
cancellation (CEB623) central approved because the release event had not reached it yet (central
refuses a cancellation once it holds a release). The release was right and is not "without
clearance"; the declaration was cancelled for goods that have left, which customs must resolve (the
goods come back, or the cancellation is withdrawn). A return request (CEB625) after a release is what
returns are for and is not listed.

Actuation is part of the record: a release whose outputs the edge reported as failed, or has not
reported on `ACTUATION_GRACE` after central got the release, is a parcel whose way out
nobody saw confirmed; those two lists must be empty too. (Releases that name no decision — from
edges older than actuation reports — are not judged.) Around them: clearance counts by status,
releases per hour for the last day, discrepancy codes and the latest alerts. Lists are capped
(`limit`) and always carry their full total.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from central.store import reports as store
from central.store.db import Database
from kernel.timefmt import iso

HOURS = 24
ACTUATION_GRACE = timedelta(minutes=5)  # an edge reports the read-back within seconds of a release
T = TypeVar("T")


class ClearanceCounts(BaseModel):
    total: int
    cancelled: int = Field(description="cancelled or return requested, at any status")
    by_status: dict[str, int] = Field(description="returnStatus code → clearances (cancelled included)")


class HourCount(BaseModel):
    hour: str = Field(description="start of the hour, ISO 8601 UTC")
    count: int


class ClearedNotOut(BaseModel):
    logisticsCode: str
    logisticsNo: str
    invtNo: str | None
    updated_at: datetime


class UnclearedRelease(BaseModel):
    edge_id: str
    epoch: int = 1
    seq: int
    logisticsCode: str | None
    logisticsNo: str | None
    occurred_at: datetime
    status: str | None = Field(
        description="the parcel's clearance status at the moment of the release; None: none yet"
    )
    cancelled: bool | None = Field(description="whether it was cancelled or returned by then")


class CancelledAfterRelease(BaseModel):
    """A parcel released while it was cleared, whose cancellation (CEB623) central approved before
    the release event reached it: a cancelled declaration for goods that have left the park."""

    edge_id: str
    epoch: int
    seq: int
    logisticsCode: str
    logisticsNo: str
    invtNo: str | None
    occurred_at: datetime = Field(description="when the edge released it")
    received_at: datetime = Field(description="when central got the release event")
    cancelled_at: datetime = Field(description="when central approved the cancellation")


class DoubleRelease(BaseModel):
    logisticsCode: str
    logisticsNo: str
    releases: int
    first_at: datetime
    last_at: datetime


class ActuatedRelease(BaseModel):
    """A release event and what its outputs did, as far as the edge reported it."""

    edge_id: str
    epoch: int
    seq: int
    decision_id: str
    logisticsCode: str | None
    logisticsNo: str | None
    occurred_at: datetime = Field(description="when the edge released it")
    received_at: datetime = Field(description="when central got the release event")
    actuation: str | None = Field(description="confirmed, failed, or None: not reported")
    output: str | None
    detail: str | None = Field(description="the read-back, as the edge reported it")
    actuated_at: datetime | None


class AlertItem(BaseModel):
    id: int
    edge_id: str | None
    kind: str
    detail: str
    created_at: datetime


class Capped(BaseModel, Generic[T]):
    """The first `limit` items of a list and how many there are in all."""

    total: int
    items: list[T]


class ParkReport(BaseModel):
    park_id: str
    generated_at: datetime
    clearances: ClearanceCounts
    releases_per_hour: list[HourCount] = Field(description="the last 24 hours, oldest first, zeros kept")
    discrepancies: dict[str, int] = Field(description="discrepancy code → times reported, all time")
    cleared_not_out: Capped[ClearedNotOut]
    released_without_clearance: Capped[UnclearedRelease] = Field(description="must be empty")
    released_twice: Capped[DoubleRelease] = Field(description="must be empty")
    cancelled_after_release: Capped[CancelledAfterRelease] = Field(
        description="must be empty: a cancellation (CEB623) approved while the parcel's release was on"
        " its way to central; the goods left, the declaration is cancelled"
    )
    released_actuation_failed: Capped[ActuatedRelease] = Field(
        description="must be empty: the edge reported the release's outputs did not move as commanded"
    )
    released_actuation_unconfirmed: Capped[ActuatedRelease] = Field(
        description="must be empty: central got the release over actuation_grace_s ago, and no actuation"
        " report since (the outputs may not have moved, or the report is lost)"
    )
    actuation_grace_s: int = Field(description="how long a release may wait for its actuation report")
    alerts: Capped[AlertItem] = Field(description="newest first")


def park_report(
    db: Database,
    *,
    park_id: str,
    now: datetime,
    limit: int = 100,
    actuation_grace: timedelta = ACTUATION_GRACE,
) -> ParkReport:
    """Build the report from one consistent snapshot of the database."""
    moment = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    end = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=HOURS)
    with db.snapshot() as conn:
        tallies = store.park_tallies(conn, park_id=park_id, since=iso(start), until=iso(end))
        uncleared = store.released_without_clearance(conn, park_id=park_id, limit=limit)
        return ParkReport(
            park_id=park_id,
            generated_at=moment,
            clearances=_counts(store.clearance_counts(tallies)),
            releases_per_hour=_hours(store.releases_by_hour(tallies), start),
            discrepancies=store.discrepancy_codes(tallies),
            cleared_not_out=_capped(store.cleared_not_out(conn, tallies, park_id=park_id, limit=limit)),
            released_without_clearance=_capped(uncleared),
            released_twice=_capped(store.released_twice(conn, park_id=park_id, limit=limit)),
            cancelled_after_release=_capped(
                store.cancelled_after_release(conn, park_id=park_id, limit=limit)
            ),
            released_actuation_failed=_capped(store.actuation_failed(conn, park_id=park_id, limit=limit)),
            released_actuation_unconfirmed=_capped(
                store.actuation_unconfirmed(
                    conn, tallies, park_id=park_id, received_before=iso(moment - actuation_grace), limit=limit
                ),
            ),
            actuation_grace_s=int(actuation_grace.total_seconds()),
            alerts=_capped(store.latest_alerts(conn, park_id=park_id, limit=limit)),
        )


def _counts(rows: list[dict[str, Any]]) -> ClearanceCounts:
    by_status = {r["status"]: int(r["n"]) for r in rows}
    cancelled = sum(int(r["cancelled"] or 0) for r in rows)
    return ClearanceCounts(total=sum(by_status.values()), cancelled=cancelled, by_status=by_status)


def _hours(counts: dict[str, int], start: datetime) -> list[HourCount]:
    """Every hour of the last day including the current one (from `start`), so a silent hour shows
    as zero."""
    starts = [start + timedelta(hours=i) for i in range(HOURS)]
    return [HourCount(hour=iso_hour(h), count=counts.get(iso(h)[:13], 0)) for h in starts]


def iso_hour(moment: datetime) -> str:
    """The start of an hour in the wire form, `YYYY-MM-DDTHH:00:00Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:00:00Z")


def _capped(page: tuple[int, list[dict[str, Any]]]) -> dict[str, Any]:
    """A (total, rows) page of the store as a `Capped` list's fields: the report validates each row,
    named for its item's fields (central/store/reports.py), as that item."""
    total, rows = page
    return {"total": total, "items": rows}

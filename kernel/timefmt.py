"""Wall-clock time as every process stores and sends it: ISO 8601 in UTC, fixed width, `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """`moment` in UTC with microseconds and `Z`: fixed width, so strings compare as times do."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def iso_now() -> str:
    return iso(utc_now())

"""Time formats: ISO 8601 UTC for storage and APIs, and the standard's returnTime."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

CHINA = ZoneInfo("Asia/Shanghai")


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_now() -> str:
    return iso(utc_now())


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def return_time(moment: datetime) -> str:
    """yyyyMMddHHmmssfff, as receipts carry it (China time, as customs stamps it)."""
    local = moment.astimezone(CHINA)
    return local.strftime("%Y%m%d%H%M%S") + f"{local.microsecond // 1000:03d}"

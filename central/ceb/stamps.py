"""The standard's own time stamp: a receipt's returnTime."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

CHINA = ZoneInfo("Asia/Shanghai")


def return_time(moment: datetime) -> str:
    """yyyyMMddHHmmssfff, as receipts carry it (China time, as customs stamps it)."""
    local = moment.astimezone(CHINA)
    return local.strftime("%Y%m%d%H%M%S") + f"{local.microsecond // 1000:03d}"

"""The numbers the platform gives a declaration where customs has not: made from the number of the
row that holds it in the store, so they are unique and follow the order of arrival."""

from __future__ import annotations

from datetime import datetime


def pre_no(day: datetime, number: int) -> str:
    """电子口岸标识编号 (preNo), 18 characters: B, the date, nine digits."""
    return f"B{day.strftime('%Y%m%d')}{number:09d}"


def invt_no(customs_code: str, day: datetime, number: int) -> str:
    """清单编号 (invtNo): the customs code, the year, I, nine digits."""
    return f"{customs_code}{day.strftime('%Y')}I{number:09d}"

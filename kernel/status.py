"""The clearance vocabulary edge and central share: an inventory's returnStatus codes (DESIGN.md §3.3).

One enum for the named codes; the detained codes 501–599 are a range, not members, and are asked
about with `is_detained`. Only RELEASED lets a parcel out.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class ClearanceStatus(StrEnum):
    """returnStatus codes with a name; 501–599 (detained) are any of a range, see `is_detained`."""

    REJECTED = "100"
    ACCEPTED = "120"
    MANUAL_REVIEW = "300"
    REVIEW_COMPLETE = "399"
    INSPECTION = "500"
    RETURN_SHIPMENT = "700"
    RELEASED = "800"
    CLOSED = "899"


DETAINED_CODES: Final = frozenset(str(code) for code in range(501, 600))
"""Detained by customs (501–599): any of them may appear; each is a status of its own."""

STATUS_CODES: Final = frozenset(s.value for s in ClearanceStatus) | DETAINED_CODES
"""Every returnStatus code a clearance can have."""

FINAL_STATUSES: Final = frozenset({ClearanceStatus.CLOSED.value, ClearanceStatus.RETURN_SHIPMENT.value})
"""Statuses no transition leaves."""

CLEARED_STATUSES: Final = frozenset({ClearanceStatus.RELEASED.value, ClearanceStatus.CLOSED.value})
"""Statuses at which customs has let the parcel go (closed: released and then closed)."""


def is_detained(code: str) -> bool:
    """Whether `code` is one of the detained codes 501–599."""
    return code in DETAINED_CODES


def is_known(code: str) -> bool:
    """Whether `code` is a returnStatus a clearance can have (named or detained)."""
    return code in STATUS_CODES

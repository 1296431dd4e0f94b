"""Test documents: the simulated enterprises' declarations (firmware_sim/declarations.py).

Tests import this module as `from tests import factories`; it is the same code the demo uses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware_sim.declarations import *  # noqa: F403
from firmware_sim.declarations import _parcel_keys, _request_fields  # noqa: F401
from kernel.wire import FeedRecord, sign_record


def feed_record(key: Ed25519PrivateKey | None = None, **overrides: Any) -> FeedRecord:
    """One clearance as the feed carries it (released, 0.800 kg), signed with `key` if given."""
    fields: dict[str, Any] = {
        "seq": 1,
        "park_id": "P1",
        "invtNo": "46012025I000000001",
        "orderNo": "ORD000000001",
        "ebpCode": "4601000001",
        "ebcCode": "4601000002",
        "logisticsCode": "4601000003",
        "logisticsNo": "SF0000000001",
        "grossWeight": Decimal("0.800"),
        "netWeight": Decimal("0.600"),
        "goods": "Vitamin C tablets × 2",
        "status": "800",
        "cancelled": False,
        "version": 1,
        "updated_at": datetime.now(UTC),
    }
    record = FeedRecord(**(fields | overrides))
    return sign_record(record, key) if key is not None else record

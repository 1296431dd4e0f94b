"""The clearance feed: every change of a park's clearance records, signed, in commit order.

Records are signed once, when written, and stored as the JSON an edge receives (minus `seq`), so
paging a million records is string assembly, not a million re-serialisations.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bondgate.wire import FeedRecord, sign_record
from central.store import clearances as store
from central.store.db import Database


def feed_record(row: store.ClearanceRow) -> FeedRecord:
    assert row.park_id is not None
    return FeedRecord(
        seq=0,
        park_id=row.park_id,
        invtNo=row.invt_no,
        orderNo=row.order_no,
        ebpCode=row.ebp_code,
        ebcCode=row.ebc_code,
        logisticsCode=row.logistics_code,
        logisticsNo=row.logistics_no,
        grossWeight=Decimal(row.gross_weight),
        netWeight=Decimal(row.net_weight),
        goods=row.goods,
        status=row.status,
        cancelled=row.cancelled,
        version=row.version,
        updated_at=datetime.fromisoformat(row.updated_at),
    )


def signed_json(row: store.ClearanceRow, key: Ed25519PrivateKey) -> str:
    """The stored form: the signed record as JSON, without its seq."""
    record = sign_record(feed_record(row), key)
    return record.model_dump_json(exclude={"seq"})


def page_json(db: Database, *, park_id: str, after: int, limit: int) -> tuple[str, int]:
    """A FeedPage as JSON text, and the number of records in it."""
    rows = store.read_feed(db, park_id=park_id, after=after, limit=limit + 1)
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_after = rows[-1][0] if rows else after
    body = ",".join(f'{{"seq":{seq},{record[1:]}' for seq, record in rows)
    head = store.feed_head(db, park_id=park_id)
    return (
        f'{{"records":[{body}],"next_after":{next_after},"has_more":{json.dumps(has_more)},"head":{head}}}',
        len(rows),
    )

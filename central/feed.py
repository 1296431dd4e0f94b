"""The clearance feed: every change of a park's clearance records, signed, in commit order.

A change is what a transaction commits: a clearance that one message moves 120 → 399 → 800 gets one
record, of 800 (its version counts all three steps, which its history keeps); a reader never sees a
state in between, so there is nothing to miss (central/clearing.py `Batch.finish`).

Records are signed once, when written, and stored as the JSON an edge receives (minus `seq`), so
paging a million records is string assembly, not a million re-serialisations.

Each park's feed is also a hash chain (kernel/wire.py `feed_chain`): the transaction that appends a
row extends the park's running hash under the park's head row lock and signs the checkpoint at that
row (park, cursor = the row's seq, count, hash). Every page carries the signed checkpoint at its
`next_after`, so an edge can tell that the page extends what it already holds: a record left out,
added, changed or reordered, a copy of the feed that is behind what the edge already saw, or one
that forked from it, no longer hashes to a checkpoint central signed. The signature is made with the
record, at write time, so someone who can write central's database but not read its key cannot
re-chain a feed they altered.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from decimal import Decimal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central.store import clearances as store
from central.store.connection import Connection
from central.store.db import Database
from kernel.wire import (
    FeedCheckpoint,
    FeedRecord,
    checkpoint_signed_bytes,
    feed_chain,
    sign_checkpoint,
    sign_record,
)


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


def append(
    conn: Connection, key: Ed25519PrivateKey, *, park_id: str, clearance_id: str, record_json: str
) -> int:
    """Append one signed record to the park's feed and extend its chain, in the caller's transaction;
    returns the record's seq."""
    return append_many(conn, key, park_id=park_id, records=[(clearance_id, record_json)])[0]


def append_many(
    conn: Connection, key: Ed25519PrivateKey, *, park_id: str, records: list[tuple[str, str]]
) -> list[int]:
    """Append signed records, (clearance id, record JSON) each, to the park's feed in this order and
    extend its chain by each, in the caller's transaction; returns their seqs. One lock of the head,
    one insert and one update of the chain per call, not per record: a message that moves 250
    parcels waits for the database twice here, not 500 times."""
    if not records:
        return []
    head = store.lock_feed_head(conn, park_id=park_id)
    seqs = store.append_feed_rows(conn, park_id=park_id, records=records)
    n, chain, points = head.n, head.chain, []
    for seq, (_, record_json) in zip(seqs, records, strict=True):
        n += 1
        chain = feed_chain(chain, [{"seq": seq, **json.loads(record_json)}])
        signature = base64.b64encode(key.sign(checkpoint_signed_bytes(park_id, seq, n, chain))).decode()
        points.append(store.FeedPoint(seq=seq, n=n, chain=chain, signature=signature))
    store.chain_feed(conn, park_id=park_id, points=points)
    store.announce_feed(conn, park_id=park_id)
    return seqs


def checkpoint_at(db: Database, key: Ed25519PrivateKey, *, park_id: str, at: int) -> FeedCheckpoint:
    """The signed checkpoint of the park's feed up to seq `at` (its last record at or before `at`).
    Rows chained by the migration, and the empty feed, have no stored signature: signed now."""
    point = store.feed_point(db, park_id=park_id, at=at)
    checkpoint = FeedCheckpoint(park_id=park_id, cursor=point.seq, count=point.n, hash=point.chain)
    if point.signature is None:
        return sign_checkpoint(checkpoint, key)
    return checkpoint.model_copy(update={"signature": point.signature})


def page_json(
    db: Database, key: Ed25519PrivateKey, *, park_id: str, after: int, limit: int
) -> tuple[str, int]:
    """A FeedPage as JSON text, and the number of records in it.

    `next_after` is the checkpoint's cursor: the last record's seq, or for an empty page the park's
    last seq at or before `after` (an edge's `after` is always one of those)."""
    rows = store.read_feed(db, park_id=park_id, after=after, limit=limit + 1)
    has_more = len(rows) > limit
    rows = rows[:limit]
    checkpoint = checkpoint_at(db, key, park_id=park_id, at=rows[-1][0] if rows else after)
    body = ",".join(f'{{"seq":{seq},{record[1:]}' for seq, record in rows)
    head = store.feed_head(db, park_id=park_id)
    return (
        f'{{"records":[{body}],"next_after":{checkpoint.cursor},"has_more":{json.dumps(has_more)},'
        f'"head":{head},"checkpoint":{checkpoint.model_dump_json()}}}',
        len(rows),
    )

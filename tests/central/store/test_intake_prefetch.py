"""Intake answers the reads it can from what it asked once per batch (central/store/prefetch.py):
whatever the batches hold, the outcome is exactly that of intake asking the store every time.

Each example runs the same batches through two central databases, one with the prefetch and one
with a `Prefetched` that knows nothing and keeps no row numbers (every read goes to the store),
and compares every answer and every table, row for row. The batches mix new documents, changes,
deletions, resends, a guid reused in other letters, documents repeated inside one batch,
inventories re-pointed at another parcel's waybill, payments moved to another order, and
cancellations and returns, over a few parcels so that they collide."""

from __future__ import annotations

import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from central import intake
from central.config import CentralSettings
from central.declarants import AnyDocument
from central.doc_keys import inventory_key
from central.intake import submit
from central.keys import load_or_create_key
from central.platform import Platform
from central.store import clearances as cstore
from central.store import documents as dstore
from central.store.connection import Connection
from central.store.db import Database, open_database
from central.store.prefetch import Prefetched
from testkit import factories as f
from testkit.central_server import seed

pytestmark = pytest.mark.one_backend  # the same code on both databases; this compares it with itself

T0 = datetime(2025, 3, 2, 8, 0, tzinfo=UTC)
PARCELS = [1, 2, 3]
KINDS = ["order", "payment", "waybill", "inventory", "cancellation", "refund"]
TABLES = {
    "documents": "kind, doc_key",
    "guids": "folded",
    "clearances": "clearance_id",
    "clearance_history": "id",
    "receipts": "id",
    "feed": "seq",
    "feed_heads": "park_id",
}

doc_op = st.fixed_dictionaries(
    {
        "parcel": st.sampled_from(PARCELS),
        "kind": st.sampled_from(KINDS),
        "app_type": st.sampled_from(["1", "1", "2", "3"]),
        "guid": st.sampled_from(["fresh", "fresh", "standard", "lower"]),
        "logistics_of": st.sampled_from(PARCELS),  # an inventory's waybill: usually its own
        "own_logistics": st.booleans(),
        "order_of": st.sampled_from(PARCELS),  # a payment's order: two payments can name one order
        "own_order": st.booleans(),
        "payment_no": st.sampled_from(PARCELS),  # a payment's transaction: so a payment can change order
        "underpaid": st.booleans(),  # so which payment a set is compared with shows in its status
    }
)
# a whole parcel's four documents, new, in some order (so that sets complete and get compared)
set_op = st.tuples(st.sampled_from(PARCELS), st.permutations(KINDS[:4]), st.sampled_from(PARCELS)).map(
    lambda t: [
        {
            "parcel": t[0],
            "kind": k,
            "app_type": "1",
            "guid": "fresh",
            "logistics_of": t[2],
            "own_logistics": False,
        }
        for k in t[1]
    ]
)
batch = st.lists(st.one_of(set_op, doc_op.map(lambda d: [d])), min_size=1, max_size=4).map(
    lambda parts: [d for part in parts for d in part]
)
batches = st.lists(batch, min_size=1, max_size=5)


def _new(parcel: int, kind: str) -> dict[str, Any]:
    return {"parcel": parcel, "kind": kind, "app_type": "1", "guid": "fresh", "own_logistics": True}


# a request (cancellation, return) between new documents of one batch: the row it inserts takes a
# number the batch's next new document must not be given again (found by an outside review)
REQUEST_AMONG_NEW = [
    [_new(p, k) for p in (1, 2) for k in KINDS[:4]],
    [_new(3, "order"), _new(1, "cancellation"), _new(3, "payment")],
    [_new(4, "order"), _new(2, "refund"), _new(5, "order")],
]


def _document(spec: dict[str, Any], n: int, db: Database) -> AnyDocument:
    p, kind = spec["parcel"], spec["kind"]
    standard = {
        "order": f.order,
        "payment": f.payment,
        "waybill": f.waybill,
        "inventory": f.inventory,
        "cancellation": f.cancellation,
        "refund": f.refund,
    }[kind](p)
    guid = {
        "fresh": str(uuid.uuid5(uuid.NAMESPACE_URL, f"prefetch/{n}")).upper(),
        "standard": standard.guid,
        "lower": standard.guid.lower(),
    }[spec["guid"]]
    changes: dict[str, Any] = {"guid": guid}
    if kind in ("cancellation", "refund"):
        row = (
            db.reader()
            .execute(
                "SELECT invt_no FROM clearances WHERE clearance_id = ?",
                (inventory_key(standard.ebpCode, standard.orderNo),),  # type: ignore[union-attr]
            )
            .fetchone()
        )
        if row is not None:
            changes["invtNo"] = row[0]
    else:
        changes["appType"] = spec["app_type"]
    if kind == "inventory" and not spec["own_logistics"]:
        changes["logisticsNo"] = f.logistics_no(spec["logistics_of"])
    if kind == "payment" and not spec.get("own_order", True):
        changes["orderNo"] = f.order_no(spec["order_of"])
        changes["payTransactionId"] = f.pay_transaction_id(spec["payment_no"])
        if spec["underpaid"]:
            changes["amountPaid"] = standard.amountPaid - 1  # type: ignore[union-attr]
    return type(standard).model_validate({**standard.model_dump(), **changes})


class AskingAlways(Prefetched):
    """Knows nothing, and keeps no row numbers either: every read goes to the store."""

    def next_document_number(self, conn: Connection) -> int:
        return dstore.next_number(conn)

    def next_clearance_number(self, conn: Connection) -> int:
        return cstore.next_number(conn)


def _platform(folder: Path) -> Platform:
    config = CentralSettings(
        database=str(folder / "central.db"), signing_key=folder / "feed.key", risk={"sampling_rate": 0}
    )
    seed(config)
    return Platform(
        db=open_database(config.database), key=load_or_create_key(config.signing_key), settings=config
    )


def _tables(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    conn = db.reader()
    return {t: [tuple(r) for r in conn.execute(f"SELECT * FROM {t} ORDER BY {o}")] for t, o in TABLES.items()}


@example(batches=REQUEST_AMONG_NEW)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=batches)
def test_prefetched_reads_give_what_the_store_gives(batches: list[list[dict[str, Any]]]) -> None:
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        shared_key = Path(a) / "feed.key"
        prefetching, asking = _platform(Path(a)), _platform(Path(b))
        asking.key = load_or_create_key(shared_key)  # the same signatures on both sides
        try:
            n = 0
            for i, ops in enumerate(batches):
                docs = []
                for spec in ops:
                    n += 1
                    docs.append(_document(spec, n, prefetching.db))
                now = T0 + timedelta(minutes=i)
                got = submit(prefetching, docs, actor="test", now=now)
                with pytest.MonkeyPatch.context() as mp:
                    mp.setattr(intake, "_prefetch", lambda conn, documents: AskingAlways())
                    want = submit(asking, docs, actor="test", now=now)
                assert got.model_dump() == want.model_dump(), f"batch {i}"
            assert _tables(prefetching.db) == _tables(asking.db)
        finally:
            prefetching.db.close()
            asking.db.close()

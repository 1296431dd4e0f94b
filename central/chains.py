"""An edge's event chains, and re-provisioning: closing one chain and opening the next epoch.

An edge whose database was lost, or restored from an older copy, starts its chain again (seq 1 at
the genesis hash, or somewhere below where central already is): central refuses it, rightly, as a
conflict or a broken chain, and would do so for ever. Re-provisioning is the way out, an officer's
or an admin's decision (they may first want to know why a database was restored):

1. `reprovision` closes the edge's open chain where central holds it (`edge_chains`: last seq and
   hash, who closed it, why, when), opens the next epoch of the same edge_id at seq 0 / genesis
   and raises an `edge_reprovisioned` alert, in one transaction. The closed chain's events stay
   stored and can be read back (`chain_events`); events of it still arriving are refused as
   `epoch_closed`, with the reason and what to do.
2. On the edge, `bondgate edge reprovision` (edge/chain.py) reads `chain_view`, drops from its
   outbox what central turns out to hold already of the closed chain, and writes the rest — events
   central never got — into the new epoch from seq 1, so nothing is lost and nothing counted twice.

The edge keeps its edge_id (and, once tokens are bound to one edge, its token): only the epoch moves.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from central.events import AlertKind
from central.store import events as store
from central.store.connection import Connection
from central.store.db import Database
from kernel.timefmt import iso
from kernel.wire import GENESIS_HASH

log = logging.getLogger(__name__)


class UnknownEdge(LookupError):
    """No such edge in this park (answered 404)."""


class EpochMoved(Exception):
    """The caller expected another epoch to be open (someone re-provisioned meanwhile)."""


class ClosedChain(BaseModel):
    epoch: int
    last_seq: int = Field(description="the closed chain ends here: central holds seq 1..last_seq")
    last_hash: str
    opened_at: datetime | None = Field(description="None: the edge's first chain, from before epochs")
    closed_at: datetime
    closed_by: str = Field(description="who re-provisioned the edge (token name, or CLI user)")
    reason: str


class ChainView(BaseModel):
    """An edge's open chain (what central holds of it) and the chains closed before it."""

    edge_id: str
    park_id: str
    epoch: int = Field(description="the open chain; events of other epochs are refused")
    epoch_opened_at: datetime | None
    last_seq: int = Field(description="central holds seq 1..last_seq of the open chain")
    last_hash: str
    last_seen: datetime | None
    closed: list[ClosedChain] = Field(description="earlier epochs, oldest first; their events stay stored")


class StoredEvent(BaseModel):
    edge_id: str
    epoch: int
    seq: int
    kind: str
    station: str | None
    occurred_at: datetime
    logisticsCode: str | None
    logisticsNo: str | None
    body: dict[str, Any]
    prev_hash: str
    hash: str
    received_at: datetime


class Reprovisioned(BaseModel):
    edge_id: str
    park_id: str
    epoch: int = Field(description="the epoch now open, empty: the edge starts it at seq 1")
    closed: ClosedChain


def _closed(row: store.ClosedChainRow) -> ClosedChain:
    return ClosedChain(
        epoch=row.epoch,
        last_seq=row.last_seq,
        last_hash=row.last_hash,
        opened_at=row.opened_at,
        closed_at=row.closed_at,
        closed_by=row.closed_by,
        reason=row.reason,
    )


def _edge(conn: Connection, park_id: str, edge_id: str) -> store.EdgeRow:
    edge = store.get_edge(conn, edge_id=edge_id)
    if edge is None or edge.park_id != park_id:
        raise UnknownEdge(f"no edge {edge_id} in park {park_id}")
    return edge


def chain_view(db: Database, *, park_id: str, edge_id: str) -> ChainView:
    conn = db.reader()
    edge = _edge(conn, park_id, edge_id)
    return ChainView(
        edge_id=edge.edge_id,
        park_id=edge.park_id,
        epoch=edge.epoch,
        epoch_opened_at=edge.epoch_opened_at,
        last_seq=edge.last_seq,
        last_hash=edge.last_hash,
        last_seen=edge.last_seen,
        closed=[_closed(c) for c in store.closed_chains(conn, edge_id=edge_id)],
    )


def chain_events(
    db: Database, *, park_id: str, edge_id: str, epoch: int | None, after: int, limit: int
) -> list[StoredEvent]:
    """Stored events of one of the edge's chains (the open one when `epoch` is None), seq > after."""
    conn = db.reader()
    edge = _edge(conn, park_id, edge_id)
    rows = store.chain_events(conn, edge_id=edge_id, epoch=epoch or edge.epoch, after=after, limit=limit)
    return [
        StoredEvent(
            edge_id=r.edge_id,
            epoch=r.epoch,
            seq=r.seq,
            kind=r.kind,
            station=r.station,
            occurred_at=r.occurred_at,
            logisticsCode=r.logistics_code,
            logisticsNo=r.logistics_no,
            body=json.loads(r.body),
            prev_hash=r.prev_hash,
            hash=r.hash,
            received_at=r.received_at,
        )
        for r in rows
    ]


def reprovision(
    db: Database,
    *,
    park_id: str,
    edge_id: str,
    actor: str,
    reason: str,
    now: datetime,
    expect_epoch: int | None = None,
) -> Reprovisioned:
    """Close the edge's open chain and open the next epoch (module docstring), audited and alerted."""
    at = iso(now)
    with db.write() as conn:
        edge = _edge(conn, park_id, edge_id)
        if expect_epoch is not None and expect_epoch != edge.epoch:
            moved = f"edge {edge_id} is at epoch {edge.epoch}, not {expect_epoch}: re-provisioned meanwhile?"
            raise EpochMoved(moved)
        opened = store.close_chain(
            conn, edge=edge, closed_at=at, closed_by=actor, reason=reason, genesis_hash=GENESIS_HASH
        )
        detail = (
            f"edge {edge_id} re-provisioned by {actor}: epoch {edge.epoch} closed at seq {edge.last_seq}"
            f" ({reason}); epoch {opened.epoch} opened, the edge starts it at seq 1 after"
            " `bondgate edge reprovision`"
        )
        kind = AlertKind.EDGE_REPROVISIONED.value
        store.insert_alert(conn, park_id=park_id, edge_id=edge_id, kind=kind, detail=detail, now=at)
        [closed] = [c for c in store.closed_chains(conn, edge_id=edge_id) if c.epoch == edge.epoch]
    log.warning(detail, extra={"park_id": park_id, "edge_id": edge_id, "epoch": opened.epoch, "by": actor})
    return Reprovisioned(edge_id=edge_id, park_id=park_id, epoch=opened.epoch, closed=_closed(closed))

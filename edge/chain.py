"""This database's event chain against central's: the check at start.

Central refuses, rightly and for ever, the events of an edge whose database was lost (its chain
starts again at seq 1) or restored from an older copy (it writes again seqs central holds with other
content). Both are found at start (`check`, run by the uplink before it first sends): central's view
of the edge's chain (GET /api/v1/parks/{park}/edges/{edge}) is held against this database's, and a
mismatch is said plainly — what central holds, what this database holds, what to do — in the log, in
/api/status and as a /healthz reason, instead of a refusal repeated silently on every upload.

The way out is re-provisioning (edge/reprovision.py, README "Re-provisioning an edge").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx
from pydantic import BaseModel, ConfigDict, StrictInt

from edge.store import Store

log = logging.getLogger(__name__)


class ClosedChain(BaseModel):
    model_config = ConfigDict(extra="ignore")
    epoch: StrictInt
    last_seq: StrictInt
    last_hash: str
    closed_at: str
    closed_by: str
    reason: str


class CentralChain(BaseModel):
    """Central's view of this edge's chains (central.chains.ChainView), as far as the edge uses it."""

    model_config = ConfigDict(extra="ignore")
    edge_id: str
    epoch: StrictInt
    last_seq: StrictInt
    last_hash: str
    closed: list[ClosedChain] = []

    def closed_epoch(self, epoch: int) -> ClosedChain | None:
        return next((c for c in self.closed if c.epoch == epoch), None)


@dataclass(frozen=True)
class LocalChain:
    epoch: int
    last_seq: int
    last_hash: str
    acked_seq: int

    @classmethod
    def of(cls, store: Store) -> LocalChain:
        last_seq, last_hash, epoch = Store.chain_position(store.reader())
        return cls(
            epoch=epoch, last_seq=last_seq, last_hash=last_hash, acked_seq=store.backlog()["acked_seq"]
        )


WHAT_TO_DO = (
    "Its events will be refused until the edge is re-provisioned: an officer runs `bondgate central edge"
    " reprovision {park} {edge} --reason …` on central, then `bondgate edge reprovision --config"
    " <edge.toml>` runs here (README: Re-provisioning an edge)."
)


def judge(
    local: LocalChain, central: CentralChain | None, hash_at_central_head: str | None, *, park: str, edge: str
) -> str | None:
    """What is wrong between the two chains, in words for an operator; None when they agree.

    `hash_at_central_head` is this database's hash of central's last seq of the open epoch, when this
    database still knows it (Store.chain_hash_at)."""
    todo = WHAT_TO_DO.format(park=park, edge=edge)
    if central is None:
        if local.acked_seq > 0 or local.epoch > 1:
            return (
                f"central has no record of edge {edge} in park {park}, yet it acknowledged seq"
                f" 1..{local.acked_seq} of epoch {local.epoch} here: central's database was replaced, or this"
                " edge is configured for another central or park."
            )
        return None
    if central.epoch > local.epoch:
        closed = central.closed_epoch(local.epoch)
        how = (
            f" on {closed.closed_at} by {closed.closed_by} ({closed.reason}), closing epoch {local.epoch} at"
            f" seq {closed.last_seq}"
            if closed
            else ""
        )
        return (
            f"edge {edge} was re-provisioned at central{how}; central expects epoch {central.epoch},"
            f" this database still writes epoch {local.epoch}. Run `bondgate edge reprovision --config"
            " <edge.toml>` here to carry the events central has not got into the new epoch."
        )
    if central.epoch < local.epoch:
        return (
            f"this database writes epoch {local.epoch} of edge {edge}, but central has only opened epoch"
            f" {central.epoch}: it was re-provisioned against another central, or central's database was"
            f" restored. {todo}"
        )
    if central.last_seq > local.last_seq:
        return (
            f"central holds seq 1..{central.last_seq} of edge {edge} (epoch {local.epoch}), but this database"
            f" wrote only up to seq {local.last_seq}: it was restored from an older copy or lost, or another"
            f" agent runs as edge {edge}. {todo}"
        )
    if central.last_seq < local.acked_seq:
        return (
            f"central holds only seq 1..{central.last_seq} of edge {edge} (epoch {local.epoch}), but it"
            f" acknowledged seq {local.acked_seq} here: central's database was restored from an older copy,"
            f" and seq {central.last_seq + 1}..{local.acked_seq} are no longer in this outbox. {todo}"
        )
    if central.last_seq > 0 and hash_at_central_head != central.last_hash:
        return (
            f"this database's chain of edge {edge} and central's differ at or before seq {central.last_seq}:"
            f" it was restored from a copy, or another agent runs as edge {edge}. {todo}"
        )
    return None


class CentralUnaware(Exception):
    """Central has no chain view to give (an older central): the check is skipped."""


async def fetch(client: httpx.AsyncClient, park: str, edge: str) -> CentralChain | None:
    """Central's view of the edge's chains; None when central does not know the edge."""
    response = await client.get(f"/api/v1/parks/{park}/edges/{edge}", timeout=30)
    if response.status_code == 404:
        error = _error_code(response)
        if error == "unknown_edge":
            return None
        raise CentralUnaware(f"central answered 404 ({error}) for the edge's chain")
    response.raise_for_status()
    return CentralChain.model_validate_json(response.content)


def _error_code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return "?"
    return str(body.get("error", "?")) if isinstance(body, dict) else "?"


async def check(store: Store, client: httpx.AsyncClient, park: str, edge: str) -> str | None:
    """The problem with this database's chain as central sees it, or None (see `judge`)."""
    central = await fetch(client, park, edge)
    local = LocalChain.of(store)
    at_head = Store.chain_hash_at(store.reader(), central.last_seq) if central is not None else None
    return judge(local, central, at_head, park=park, edge=edge)

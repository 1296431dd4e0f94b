"""Re-provisioning, the edge's half: start the next epoch of this edge's event chain.

An officer first closes the edge's chain at central (`bondgate central edge reprovision`, or the API),
which opens the next epoch of the same edge_id, empty. Then `bondgate edge reprovision --config
edge.toml` runs `reprovision` here: it reads central's view of the edge (edge/chain.py), drops from
the outbox what central turns out to hold already of the closed chain (a prefix: the chain is hash
linked, so once one pending event differs from central's, every later one does), and writes every
other pending event — the ones central never got — into the new epoch from seq 1, in their order,
in one transaction. Nothing is lost, nothing counted twice; the closed chain stays stored at central
and its end is remembered here (chain_history).

It may run while the agent runs: every step of the agent reads the chain inside its own transaction,
and an acknowledgement of the old epoch that arrives afterwards deletes nothing (Store.acknowledge).
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from edge.chain import LocalChain, fetch
from edge.store import Store, new_event
from kernel.timefmt import iso_now
from kernel.wire import Event, EventKind

log = logging.getLogger(__name__)


class ReprovisionRefused(Exception):
    """Re-provisioning cannot go ahead; the message says why and what to do."""


@dataclass(frozen=True)
class Reprovisioned:
    old_epoch: int
    new_epoch: int
    old_last_seq: int  # where this database's chain of the old epoch ended
    central_last_seq: int  # where central closed it
    acked_seq: int  # what central had acknowledged of it here
    delivered: int  # pending events central turned out to hold: dropped
    carried: int  # pending events central never got: now seq 1..carried of the new epoch

    def summary(self) -> str:
        lines = [
            f"epoch {self.old_epoch} closed: this database wrote up to seq {self.old_last_seq}, central holds"
            f" up to seq {self.central_last_seq}",
            f"{self.delivered} pending event(s) central already held: dropped",
            f"{self.carried} pending event(s) central never got: carried into epoch {self.new_epoch}"
            + (f" as seq 1..{self.carried}" if self.carried else ""),
        ]
        if self.central_last_seq < self.acked_seq:
            lines.append(
                f"warning: central had acknowledged seq {self.acked_seq} here but holds only"
                f" {self.central_last_seq}: seq {self.central_last_seq + 1}..{self.acked_seq} were deleted"
                " from this outbox on its word and cannot be sent again"
            )
        return "\n".join(lines)


async def _stored_events(
    client: httpx.AsyncClient, park: str, edge: str, epoch: int, *, after: int = 0, through: float = math.inf
) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """(seq, event) of what central stores of `epoch` after `after`, page by page until `through`
    or the end; a page that is not a list of events, or does not move on, refuses re-provisioning."""
    while after < through:
        response = await client.get(
            f"/api/v1/parks/{park}/edges/{edge}/events",
            params={"epoch": epoch, "after": after, "limit": 5000},
            timeout=60,
        )
        response.raise_for_status()
        page = response.json()
        if not isinstance(page, list) or not page:
            return
        try:
            items = [(int(item["seq"]), item) for item in page]
        except (KeyError, TypeError, ValueError) as exc:
            raise ReprovisionRefused(f"central's event page is not a list of events: {exc!r}") from None
        for seq, item in items:
            yield seq, item
        last = max(seq for seq, _ in items)
        if last <= after:  # a page that does not move on: never loop on it
            raise ReprovisionRefused(f"central's event pages do not advance past seq {after}")
        after = last


async def _held_hashes(
    client: httpx.AsyncClient, park: str, edge: str, epoch: int, after: int, through: int
) -> dict[int, str]:
    """seq → hash of what central stores of the closed `epoch` in (after, through]."""
    held: dict[int, str] = {}
    try:
        async for seq, item in _stored_events(client, park, edge, epoch, after=after, through=through):
            held[seq] = str(item["hash"])
    except (KeyError, TypeError) as exc:
        raise ReprovisionRefused(f"central's event page is not a list of events: {exc!r}") from None
    return held


async def _central_releases(
    client: httpx.AsyncClient, park: str, edge: str, epochs: range
) -> list[tuple[str, str, str, int]]:
    """(logisticsNo, logisticsCode, decision_id, record_version) of every release central stores of
    this edge's closed epochs: what this database must know left the park, whatever it remembers."""
    out: list[tuple[str, str, str, int]] = []
    try:
        for epoch in epochs:
            async for seq, item in _stored_events(client, park, edge, epoch):
                body = item.get("body") or {}
                if (
                    item.get("kind") == EventKind.RELEASE
                    and item.get("logisticsNo")
                    and item.get("logisticsCode")
                ):
                    out.append(
                        (
                            str(item["logisticsNo"]),
                            str(item["logisticsCode"]),
                            str(body.get("decision_id") or f"central:{edge}:{epoch}:{seq}"),
                            int(body.get("record_version") or 0),
                        )
                    )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ReprovisionRefused(f"central's event page is not a list of events: {exc!r}") from None
    return out


async def reprovision(store: Store, client: httpx.AsyncClient, park: str, edge: str) -> Reprovisioned:
    """Start this database's next epoch as central opened it (module docstring)."""
    central = await fetch(client, park, edge)
    if central is None:
        raise ReprovisionRefused(f"central does not know edge {edge} in park {park}: nothing to re-provision")
    local = LocalChain.of(store)
    if central.epoch <= local.epoch:
        raise ReprovisionRefused(
            f"central has not opened a new epoch for edge {edge} (it is at epoch {central.epoch}, this"
            f" database at {local.epoch}): an officer must first run `bondgate central edge reprovision"
            f" {park} {edge} --reason …` on central"
        )
    if central.last_seq != 0:
        raise ReprovisionRefused(
            f"epoch {central.epoch} of edge {edge} already holds {central.last_seq} event(s) at central:"
            " another database started it. Re-provision the edge at central again, then run this again."
        )
    closed = central.closed_epoch(local.epoch)
    # releases central knows of that this database may not (a restored copy forgets those after it)
    known_releases = await _central_releases(client, park, edge, range(1, central.epoch))
    held = (
        await _held_hashes(client, park, edge, local.epoch, local.acked_seq, local.last_seq) if closed else {}
    )

    def rechain(conn: sqlite3.Connection) -> tuple[int, int]:
        # decided above from a read outside this transaction: another `edge reprovision` that ran
        # meanwhile (its check passed before this one's commit) has moved the chain on already
        now_epoch = Store.chain_epoch(conn)
        if now_epoch != local.epoch:
            raise ReprovisionRefused(
                f"this database's chain moved to epoch {now_epoch} while this ran (another `edge"
                " reprovision`?): nothing changed by this one; see `bondgate edge db check`"
            )
        pending = [(seq, Event.model_validate_json(text)) for seq, text in Store.outbox_rows(conn)]
        delivered = 0
        for seq, event in pending:  # a chain: once one differs from central's, all later ones do
            if held.get(seq) != event.hash:
                break
            delivered += 1
        carried = [event for _, event in pending[delivered:]]
        Store.close_epoch(
            conn, next_epoch=central.epoch, delivered=delivered, carried=len(carried), now=iso_now()
        )
        imported = sum(
            Store.import_release(conn, no, carrier, decision_id, version, iso_now())
            for no, carrier, decision_id, version in known_releases
        )
        if imported:
            log.warning(
                "releases central holds that this database did not know: imported, those parcels hold",
                extra={"imported": imported},
            )
        for event in carried:
            new_event(
                conn,
                edge_id=edge,
                kind=event.kind,
                station=event.station,
                body=event.body,
                occurred_at=event.occurred_at,
            )
        return delivered, len(carried)

    try:
        delivered, carried = await store.write(rechain)
    except ValueError as exc:  # an outbox row that is no longer an event
        raise ReprovisionRefused(
            f"the outbox holds a row that is not an event ({exc}); run `bondgate edge db check`"
        ) from exc
    done = Reprovisioned(
        old_epoch=local.epoch,
        new_epoch=central.epoch,
        old_last_seq=local.last_seq,
        central_last_seq=closed.last_seq if closed else 0,
        acked_seq=local.acked_seq,
        delivered=delivered,
        carried=carried,
    )
    log.warning(
        "edge re-provisioned: events central never got now start the new epoch",
        extra={
            "old_epoch": done.old_epoch,
            "epoch": done.new_epoch,
            "delivered": delivered,
            "carried": carried,
        },
    )
    return done

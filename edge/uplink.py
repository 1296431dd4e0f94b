"""Store-and-forward to central: events leave the outbox only when central acknowledged them.

Events are created inside the decision's transaction (edge/store/outbox.py `new_event`),
hash-chained and numbered contiguously; the uplink sends the oldest first, in order, and deletes
what central's `acked_seq` covers of what that request carried — never more, never a refused event,
and nothing at all when the answer claims what the request could not prove (edge/acks.py). Central
applies each (edge_id, seq) once, so resending after a crash or a lost answer is harmless. While
central is unreachable, or refuses, it backs off exponentially with jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field

import httpx

from edge import acks, chain
from edge.acks import RefusedEvent
from edge.link_state import LinkBackoff, LinkState
from edge.store import Store
from kernel.wire import Event

log = logging.getLogger(__name__)


class AckRefused(ValueError):
    """Central's answer was not taken: it claimed more than the request carried (edge/acks.py)."""


class EventsRefused(ValueError):
    """Central refused events of the request; they stay in the outbox."""


@dataclass
class UplinkStatus(LinkState):
    sent: int = 0  # events deleted from the outbox on central's acknowledgement
    acked_seq: int = 0
    refused: int = 0  # events central refused (each time it refused them)
    acks_refused: int = 0  # answers not taken: claimed more than their request carried
    last_ack_problem: str | None = None  # why the last answer not taken was refused
    acks_beyond_request: int = 0  # answers acknowledging past their request (taken up to its last seq)
    central_refusal: RefusedEvent | None = None  # central refuses the chain from here on, until taken
    chain_checked: bool = False  # this database's chain was held against central's (edge/chain.py)
    chain_problem: str | None = None  # what is wrong between them, in words; None: they agree


@dataclass
class Uplink:
    store: Store
    client: httpx.AsyncClient
    park_id: str
    edge_id: str
    batch_size: int = 500
    idle_wait_s: float = 1.0
    linger_s: float = 0.5  # after each send or wake-up: let events that come in a burst share a request
    backoff_initial: float = 0.2
    backoff_max: float = 10.0
    status: UplinkStatus = field(default_factory=UplinkStatus)

    def __post_init__(self) -> None:
        self._wake = asyncio.Event()
        self.status.acked_seq = self.store.backlog()["acked_seq"]

    def poke(self) -> None:
        """New events are in the outbox: send without waiting for the idle timer."""
        self._wake.set()

    async def send_once(self) -> int:
        """Send one batch of the oldest events; returns how many left the outbox.

        Raises AckRefused when central's answer claims more than the request carried (nothing is
        deleted), EventsRefused when central refused events (what it took before them is deleted),
        httpx errors when central cannot be reached or answers with an HTTP error."""
        batch = await asyncio.to_thread(self._batch)
        if batch is None:
            return 0
        body, sent = batch
        response = await self.client.post(
            f"/api/v1/parks/{self.park_id}/events",
            content=body,
            headers={"content-type": "application/json"},
            timeout=30,
        )
        if response.status_code == 422:  # malformed: name the stored event that is to blame
            seq = await asyncio.to_thread(self._first_malformed)
            log.error(
                "central refused the batch as malformed; fix or remove that outbox row",
                extra={"seq": seq, "detail": response.text[:500]},
            )
        response.raise_for_status()
        verdict = acks.judge(sent, response.content)
        refusal = verdict.first_refusal
        if refusal is not None:
            self._note_refused(refusal, len(verdict.refused))
        if verdict.problem is not None:
            self._ack_refused(verdict.problem, sent)
        removed = 0
        if verdict.delete_through is not None:
            through = verdict.delete_through
            # an acknowledgement lost in a power cut only means these events are sent again
            removed = await self.store.write(
                lambda conn: Store.acknowledge(conn, through, sent.epoch), durable=False
            )
            self.status.sent += removed
            self.status.acked_seq = max(self.status.acked_seq, through)
        if verdict.beyond_request:
            self.status.acks_beyond_request += 1
            log.info(
                "central holds more of the chain than this request carried; deleted only what it carried",
                extra={"acked_seq": verdict.answer and verdict.answer.acked_seq, "last_sent": sent.last},
            )
        if refusal is not None:
            raise EventsRefused(f"central refused seq {refusal.seq} ({refusal.code}): {refusal.reason}")
        if self.status.central_refusal is not None or self.status.chain_problem is not None:
            log.info("central takes this edge's events again", extra={"acked_seq": self.status.acked_seq})
            self.status.central_refusal = self.status.chain_problem = None
        return removed

    async def check_chain(self) -> str | None:
        """Hold this database's event chain against central's view of it (edge/chain.py), once per
        start; a mismatch — a database lost or restored from an older copy — is said plainly, in the
        log and the status, instead of being learnt from refusals one upload at a time."""
        try:
            problem = await chain.check(self.store, self.client, self.park_id, self.edge_id)
        except chain.CentralUnaware as exc:
            log.warning("central cannot show this edge's chain; not checked", extra={"detail": str(exc)})
            problem = None
        self.status.chain_checked = True
        if problem is not None and problem != self.status.chain_problem:
            log.error("this database's event chain conflicts with central's", extra={"detail": problem})
        self.status.chain_problem = problem
        return problem

    def _ack_refused(self, problem: str, sent: acks.Sent) -> None:
        """Count, log and show an answer that is not taken; raises AckRefused."""
        self.status.acks_refused += 1
        if problem != self.status.last_ack_problem:  # once per kind of lie, not on every retry
            log.error(
                "central's answer refused; nothing deleted from the outbox",
                extra={
                    "problem": problem,
                    "first": sent.first,
                    "last": sent.last,
                    "refusals": self.status.acks_refused,
                },
            )
        self.status.last_ack_problem = problem
        raise AckRefused(problem)

    def _note_refused(self, refusal: RefusedEvent, count: int) -> None:
        """Central refused events (they stay in the outbox): count, show, log once per refusal."""
        self.status.refused += count
        previous = self.status.central_refusal
        if previous is None or (previous.seq, previous.code) != (refusal.seq, refusal.code):
            log.error(
                "central refuses this edge's events; they stay in the outbox",
                extra={"seq": refusal.seq, "code": refusal.code, "reason": refusal.reason, "count": count},
            )
        self.status.central_refusal = refusal

    def _batch(self) -> tuple[bytes, acks.Sent] | None:
        """The request body (central's EventBatch) of the oldest events, built from the stored JSON,
        and what it carries. Each event was validated and hash-chained when it was created, and
        central checks every one again. Runs on a worker thread, so the event loop that drives the
        lines only posts bytes."""
        rows = self.store.pending_rows(self.batch_size)
        if not rows:
            return None
        chain = self.store.backlog()  # read after the rows: its head is at or past the last of them
        sent = acks.Sent(
            first=rows[0][0],
            last=rows[-1][0],
            epoch=chain["epoch"],
            acked_before=chain["acked_seq"],
            head=chain["last_seq"],
        )
        events = ",".join(text for _, text in rows)
        return f'{{"edge_id":{json.dumps(self.edge_id)},"events":[{events}]}}'.encode(), sent

    def _first_malformed(self) -> int | None:
        """The seq of the first pending outbox row that is not a valid event (only after a 422)."""
        for seq, text in self.store.pending_rows(self.batch_size):
            try:
                Event.model_validate_json(text)
            except ValueError:
                return seq
        return None

    async def drain(self) -> None:
        """Send until the outbox is empty or central stops taking events (tests, shutdown)."""
        while await self.send_once():
            pass

    async def run(self) -> None:
        """Send for ever. Link failures (central away, an HTTP error, an answer refused, events
        refused) back off and retry; anything else — a local fault such as a full disk — ends the
        task, for the agent's supervisor to report and restart (kernel/tasks.py)."""
        backoff = LinkBackoff(self.backoff_initial, self.backoff_max)
        self.status.chain_checked = False
        while True:
            if not self.status.chain_checked:
                try:
                    await self.check_chain()
                except asyncio.CancelledError:
                    raise
                except (httpx.HTTPError, ValueError) as exc:  # tried again before the next upload
                    log.debug("chain check failed", extra={"error": str(exc)})
            try:
                moved = await self.send_once()
            except asyncio.CancelledError:
                raise
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                await backoff.failed(self.status, exc, log, "uplink failing; events kept in the outbox")
                continue
            backoff.succeeded(self.status, log, "uplink recovered", acked_seq=self.status.acked_seq)
            if moved == 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.idle_wait_s):
                        await self._wake.wait()
            # A conveyor line commits a decision every few ms. Sending each at once put a request, its
            # JSON and its acknowledging commit on the event loop in the middle of nearly every
            # diverter write (bench/edge_pipeline.py: +0.6 ms at p50); lingering batches them. At
            # 0.1 s, 10 uploads a second still showed in the decisions' p99 (+0.4 ms against 0.5 s).
            # A full batch means a backlog (after an outage): drain it without pausing.
            if moved < self.batch_size:
                await asyncio.sleep(self.linger_s)

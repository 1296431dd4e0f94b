"""Pull the park's clearance feed from central into the local cache.

The cursor and the records it covers commit in one transaction, so a crash never skips or repeats
a record. Each record's Ed25519 signature is checked on arrival (a record that fails is not stored
and is counted) and again when a decision uses it, which is the check the edge can prove.
While central is unreachable the agent keeps deciding on the cache; the sync backs off with jitter.

Only the record that will be stored is checked. Within one page, the records of a clearance
(logisticsNo, logisticsCode) are tried newest first (highest version, then highest seq); the first
that has a valid shape and signature is stored, and the older ones of that page are not checked
at all (counted in `SyncStatus.superseded_unchecked`, neither applied nor rejected). An older one
is checked only when every newer one failed. What is stored is exactly what checking every record
and upserting them all (newer versions win) stored: the newest valid version per clearance. A
first sync carries every version of every clearance, so most of the Ed25519 work is saved. The
price: a bad signature on a record that a newer, valid record in the same page replaces goes
unnoticed and unlogged. That record would never have been used. Before a release the decision path
checks that the stored record's text is one this process saw pass its signature check (its digest
in `edge.verified.VerifiedTexts`, recorded here) and verifies it in full otherwise, so a record
altered on disk is refused either way.

A page counts only if it is central's feed and continues what this edge already holds. It carries
central's signed checkpoint at its `next_after` (park, cursor, count, running hash: kernel/wire.py
`FeedCheckpoint`); the edge hashes every record of the page in order (checked or not) onto the
checkpoint it stored last and must arrive at exactly that one. A page that does not — records left
out, added, changed or reordered, a copy of the feed behind what the edge already verified, a fork —
is refused whole (`FeedRefused`): nothing applied, counted by reason, logged, reported upstream as
an ALARM event once per distinct refusal, and the sync keeps retrying while decisions go on against
the cache (which ages into STALE_CACHE). The checkpoint is stored with the records and the cursor in
one transaction. An edge with no checkpoint stored yet (a database from before checkpoints)
verifies the feed from its start once: records up to its cursor are hashed, not applied again.

Records of another park are refused (`rejected_park`), and so is a record older than a version of
its clearance the edge stored before (`rejected_rollback`, edge/store/cache.py `versions_seen`).

Release notes (核放单, items with `kind` "release_note", kernel/wire.py `NoteRecord`) travel in the
same feed, chained and checkpointed with the clearances: checked the same way (shape, park,
signature, newest version per note) and stored with them and the cursor in one transaction
(edge/store/notes.py), for the vehicle gate.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.link_state import LinkBackoff, LinkState
from edge.store import Applied, Store, new_event
from edge.verified import VerifiedTexts, digest
from kernel.timefmt import iso_now, utc_now
from kernel.wire import (
    EventBody,
    EventKind,
    FeedCheckpoint,
    FeedRecord,
    NoteRecord,
    feed_chain,
    genesis_checkpoint,
    is_note_item,
    verify_checkpoint,
    verify_note,
    verify_record,
)

log = logging.getLogger(__name__)


@dataclass
class SyncStatus(LinkState):
    cursor: int = 0
    records_applied: int = 0  # checked and handed to the store: at most one per clearance per page
    notes_applied: int = 0  # release notes, likewise
    rejected_signatures: int = 0  # checked and failed: bad signature or bad shape; not stored
    superseded_unchecked: int = 0  # not checked: a newer valid version in the same page is stored
    rejected_park: int = 0  # records of another park: not stored
    rejected_rollback: int = 0  # genuine, but older than a version of the clearance stored before
    refused_pages: int = 0  # pages that are not the continuation of the last checkpoint: nothing applied
    refusals: dict[str, int] = field(default_factory=dict)  # the same, by FeedRefused.reason
    last_refusal: str | None = None  # the last refusal, in words
    checkpoint_cursor: int = 0  # the feed checkpoint verified last: cursor and record count
    checkpoint_count: int = 0
    caught_up: bool = False  # the last page said has_more = false
    head: int = 0  # central's newest seq for the park, as of the last page

    @property
    def lag_records(self) -> int:
        """How many feed changes central has that this edge has not applied yet."""
        return max(0, self.head - self.cursor)


# One record of a page, as it waits to be checked: (version, seq, position in the page, the raw
# item or, when its shape had to be validated to read those, the validated record).
_Candidate = tuple[int, int, int, dict[str, Any] | FeedRecord]


@dataclass
class Checked:
    """What checking one page gave: the records to store and how the others were counted."""

    good: list[tuple[FeedRecord, str]] = field(default_factory=list)  # (record, its stored JSON)
    notes: list[tuple[NoteRecord, str]] = field(default_factory=list)  # release notes, likewise
    digests: list[bytes] = field(default_factory=list)  # of each stored JSON: verified (edge/verified.py)
    rejected: int = 0
    superseded: int = 0
    foreign: int = 0  # records for another park

    def add(self, other: Checked) -> None:
        self.good += other.good
        self.notes += other.notes
        self.digests += other.digests
        self.rejected += other.rejected
        self.superseded += other.superseded
        self.foreign += other.foreign


def _group(items: list[Any]) -> tuple[list[list[_Candidate]], int]:
    """The page's records per clearance, newest first, and how many have no usable shape at all.

    Key, version and seq are read off the raw item when they have exactly the types validation
    passes through unchanged (str, int), so that a record is validated only if it is tried;
    anything else is validated here, and what validation makes of it is what counts."""
    groups: dict[tuple[str, str], list[_Candidate]] = {}
    malformed = 0
    for position, item in enumerate(items):
        try:
            fields = (item["logisticsNo"], item["logisticsCode"], item["version"], item["seq"])
        except (KeyError, TypeError, IndexError):
            fields = None
        if fields is not None and tuple(map(type, fields)) == (str, str, int, int):
            no, code, version, seq = fields
            candidate: dict[str, Any] | FeedRecord = item
        else:
            try:
                candidate = FeedRecord.model_validate(item)
            except ValueError:
                malformed += 1
                continue
            no, code = candidate.logisticsNo, candidate.logisticsCode
            version, seq = candidate.version, candidate.seq
        groups.setdefault((no, code), []).append((version, seq, position, candidate))
    ordered = list(groups.values())
    for candidates in ordered:
        if len(candidates) > 1:
            candidates.sort(reverse=True)  # positions are unique: the records themselves never compare
    return ordered, malformed


def _verify_groups(groups: list[list[_Candidate]], key: Ed25519PublicKey, park_id: str) -> Checked:
    """Per clearance, the newest record of this park whose shape and signature are valid; older ones
    only if needed. A record of another park is refused before its signature is checked."""
    out = Checked()
    for candidates in groups:
        for tried, (_, _, _, item) in enumerate(candidates, start=1):
            record = item if isinstance(item, FeedRecord) else _validate(item)
            if record is not None and record.park_id != park_id:
                out.foreign += 1
                continue
            if record is not None and verify_record(record, key):
                text = record.model_dump_json()
                out.good.append((record, text))
                out.digests.append(digest(text))
                out.superseded += len(candidates) - tried
                break
            out.rejected += 1
    return out


def _validate(item: dict[str, Any]) -> FeedRecord | None:
    try:
        return FeedRecord.model_validate(item)
    except ValueError:
        return None


def split_notes(items: list[Any]) -> tuple[list[Any], list[Any]]:
    """A page's clearance records and its release notes (items with `kind` release_note), each in order."""
    notes = [item for item in items if is_note_item(item)]
    if not notes:
        return items, []
    return [item for item in items if not is_note_item(item)], notes


def check_notes(items: list[Any], key: Ed25519PublicKey, park_id: str) -> Checked:
    """Per release note, the newest record of this park whose shape and signature are valid."""
    out = Checked()
    newest: dict[str, list[tuple[int, int, NoteRecord]]] = {}
    for position, item in enumerate(items):
        try:
            record = NoteRecord.model_validate(item)
        except ValueError:
            out.rejected += 1
            continue
        newest.setdefault(record.etpsPreentNo, []).append((record.version, position, record))
    for candidates in newest.values():
        candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
        for tried, (_, _, record) in enumerate(candidates, start=1):
            if record.park_id != park_id:
                out.foreign += 1
                continue
            if verify_note(record, key):
                out.notes.append((record, record.model_dump_json()))
                out.superseded += len(candidates) - tried
                break
            out.rejected += 1
    return out


def check_page(items: list[Any], key: Ed25519PublicKey, park_id: str) -> Checked:
    """Check one page in this thread (small pages, tests)."""
    records, notes = split_notes(items)
    groups, malformed = _group(records)
    out = _verify_groups(groups, key, park_id)
    out.rejected += malformed
    if notes:
        out.add(check_notes(notes, key, park_id))
    return out


def _int(value: Any, name: str) -> int:
    if type(value) is not int or not 0 <= value < 2**63:
        raise ValueError(f"feed page: {name} is not a cursor: {str(value)[:40]!r}")
    return value


class FeedRefused(ValueError):
    """A page that is not central's feed or does not continue what this edge holds: nothing applied.

    `reason`: no_checkpoint, bad_checkpoint (shape or signature), wrong_park, behind (a copy of the
    feed older than what this edge verified), fork (records left out, added, changed or reordered)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"feed page refused ({reason}): {detail}")
        self.reason = reason
        self.detail = detail


def _parse(content: bytes) -> Any:
    try:
        return json.loads(content)
    except RecursionError:
        raise ValueError("feed page: JSON nested too deeply") from None


def _page_fields(page: Any) -> tuple[list[Any], int, bool, int, Any]:
    """records, next_after, has_more, head and checkpoint of a feed page, or ValueError naming what
    is wrong with the frame. The checkpoint itself is checked by `check_checkpoint`."""
    if not isinstance(page, dict):
        raise ValueError("feed page: not a JSON object")
    items = page.get("records")
    if not isinstance(items, list):
        raise ValueError("feed page: records is not a list")
    after = _int(page.get("next_after"), "next_after")
    has_more = page.get("has_more")
    if not isinstance(has_more, bool):
        raise ValueError("feed page: has_more is not true or false")
    head = _int(page.get("head", after), "head")
    if "checkpoint" not in page:
        raise FeedRefused("no_checkpoint", "the page carries no checkpoint (central older than this edge?)")
    return items, after, has_more, head, page["checkpoint"]


def check_checkpoint(raw: Any, park_id: str, key: Ed25519PublicKey) -> FeedCheckpoint:
    """The page's checkpoint, if it is central's and for this park."""
    try:
        checkpoint = FeedCheckpoint.model_validate(raw)
    except ValueError:
        raise FeedRefused("bad_checkpoint", f"not a checkpoint: {str(raw)[:120]!r}") from None
    if checkpoint.park_id != park_id:
        raise FeedRefused(
            "wrong_park", f"checkpoint of park {checkpoint.park_id!r}, this edge serves {park_id!r}"
        )
    if not verify_checkpoint(checkpoint, key):
        raise FeedRefused("bad_checkpoint", f"checkpoint at cursor {checkpoint.cursor}: signature fails")
    return checkpoint


def check_extends(
    base: FeedCheckpoint, checkpoint: FeedCheckpoint, items: list[Any], next_after: int
) -> None:
    """`items`, hashed in order onto `base`, must give `checkpoint`, the one at the page's `next_after`
    (FeedRefused otherwise)."""
    if checkpoint.count < base.count or checkpoint.cursor < base.cursor:
        raise FeedRefused(
            "behind",
            f"central's feed is at cursor {checkpoint.cursor} with {checkpoint.count} records; this edge "
            f"already verified cursor {base.cursor} with {base.count}: a stale copy of the feed",
        )
    if checkpoint.cursor != next_after:
        raise FeedRefused(
            "bad_checkpoint", f"next_after {next_after} is not the checkpoint's cursor {checkpoint.cursor}"
        )
    if checkpoint.count - base.count != len(items):
        raise FeedRefused(
            "fork",
            f"{len(items)} records do not take the feed from {base.count} to {checkpoint.count} records "
            f"(cursor {base.cursor} to {checkpoint.cursor}): records left out or added",
        )
    try:
        running = feed_chain(base.hash, items)
    except (RecursionError, ValueError, TypeError):  # a value canonical JSON cannot encode
        running = ""
    if running != checkpoint.hash:
        raise FeedRefused(
            "fork",
            f"the records from cursor {base.cursor} to {checkpoint.cursor} do not hash to central's "
            "checkpoint: changed, reordered, or not the feed this edge holds",
        )


@dataclass
class FeedSync:
    store: Store
    client: httpx.AsyncClient  # base_url = central, Authorization header set
    park_id: str
    public_key: Ed25519PublicKey
    edge_id: str | None = None  # set: refusals are reported upstream as ALARM events
    page_size: int = 5000
    long_poll_s: float = 10.0
    backoff_initial: float = 0.2
    backoff_max: float = 10.0
    workers: int = 2
    on_progress: Callable[[SyncStatus], None] | None = None
    verified: VerifiedTexts | None = None  # told which stored texts passed the check (the Checker's)
    status: SyncStatus = field(default_factory=SyncStatus)

    def __post_init__(self) -> None:
        # records up to here were applied before the stored checkpoint was (or could be) trusted:
        # applied again, an older version of them is no rollback to raise an alarm for
        self._replaying_to = 0
        state = self.store.sync_state()
        self.status.cursor = int(state["cursor"])
        self._checkpoint = self._stored_checkpoint(state["checkpoint"])
        self.status.checkpoint_cursor = self._checkpoint.cursor
        self.status.checkpoint_count = self._checkpoint.count
        if self._checkpoint.cursor != self.status.cursor:
            # only the checkpoint is signed: the sync goes on from it, applying every record again
            # (a cursor moved on by hand would otherwise have new records, revocations among them,
            # taken for ones already applied)
            log.warning(
                "the sync cursor is not the verified checkpoint's: going on from the checkpoint",
                extra={"cursor": self.status.cursor, "from": self._checkpoint.cursor},
            )
            self._replaying_to = max(self._replaying_to, self.status.cursor)
            self.status.cursor = self._checkpoint.cursor
        self._reported: tuple[str, str] | None = None  # the last alarm sent upstream
        self._backoff = LinkBackoff(self.backoff_initial, self.backoff_max)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="feed-verify")
        self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feed-hash")

    def _stored_checkpoint(self, raw: str | None) -> FeedCheckpoint:
        """The checkpoint stored with the cursor, if it is still central's and this park's; otherwise
        the feed is verified again from its start (nothing already applied is applied again)."""
        if raw is None:
            return genesis_checkpoint(self.park_id)
        try:
            checkpoint = FeedCheckpoint.model_validate_json(raw)
            usable = checkpoint.park_id == self.park_id and verify_checkpoint(checkpoint, self.public_key)
        except ValueError:
            usable = False
        if usable:
            return checkpoint
        self.status.last_refusal = "the stored feed checkpoint is not central's or not this park's"
        log.error(self.status.last_refusal + "; verifying the feed again from its start")
        return genesis_checkpoint(self.park_id)

    @property
    def checkpoint(self) -> FeedCheckpoint:
        """The feed checkpoint verified last (the genesis one before any)."""
        return self._checkpoint

    async def pull_once(self, *, wait: float = 0.0) -> int:
        """Fetch and apply one page; returns how many records it carried."""
        base = self._checkpoint
        response = await self.client.get(
            f"/api/v1/parks/{self.park_id}/feed",
            params={"after": base.cursor, "limit": self.page_size, "wait": wait},
            timeout=wait + 30,
        )
        response.raise_for_status()
        page = await asyncio.to_thread(_parse, response.content)
        try:
            items, next_after, has_more, head, raw = _page_fields(page)
            checkpoint = check_checkpoint(raw, self.park_id, self.public_key)
        except FeedRefused as refused:
            await self._refused(refused)
            raise
        # every record of the page is checked and applied: the cursor stored beside the checkpoint
        # is not signed, so records "applied already" by its word could be revocations dropped
        fresh = items
        # the page is hashed on a thread of its own while the signatures are checked (OpenSSL lets
        # the GIL go); nothing of it is used unless it extends the last checkpoint
        extends = asyncio.get_running_loop().run_in_executor(
            self._hasher, check_extends, base, checkpoint, items, next_after
        )
        verifying = asyncio.ensure_future(self._verify(fresh))
        try:
            await extends
        except FeedRefused as refused:
            await asyncio.gather(verifying, return_exceptions=True)
            await self._refused(refused)
            raise
        except BaseException:
            verifying.cancel()
            raise
        self._reported = None  # central's feed again: the next refusal is news
        checked = await verifying
        cursor = checkpoint.cursor
        text = checkpoint.model_dump_json()

        def apply(conn: sqlite3.Connection) -> tuple[Applied, list[NoteRecord]]:
            # the notes and the clearances of a page commit with the cursor that covers them
            notes_rolled_back = Store.apply_notes(conn, checked.notes)
            return Store.apply_feed(conn, checked.good, cursor, iso_now(), checkpoint=text), notes_rolled_back

        applied, notes_rolled_back = await self.store.write(apply)
        if self.verified is not None:
            self.verified.add_digests(checked.digests)
        self._checkpoint = checkpoint
        self.status.checkpoint_cursor, self.status.checkpoint_count = checkpoint.cursor, checkpoint.count
        self.status.cursor = cursor
        self.status.records_applied += len(checked.good) - len(applied.rolled_back)
        self.status.notes_applied += len(checked.notes) - len(notes_rolled_back)
        self.status.superseded_unchecked += checked.superseded
        self.status.caught_up = not has_more
        self.status.head = max(head, checkpoint.cursor)
        if self.on_progress:
            self.on_progress(self.status)
        if checked.rejected:
            self.status.rejected_signatures += checked.rejected
            log.error(
                "feed records refused: bad signature or shape",
                extra={"count": checked.rejected, "cursor": cursor},
            )
        if checked.foreign:
            self.status.rejected_park += checked.foreign
            await self._alarm(
                "feed_foreign_park", f"{checked.foreign} records of another park refused at {cursor}"
            )
        old_notes = [n for n in notes_rolled_back if n.seq > self._replaying_to]
        if old_notes:
            self.status.rejected_rollback += len(old_notes)
            names = ", ".join(f"{n.etpsPreentNo} v{n.version}" for n in old_notes[:5])
            await self._alarm(
                "feed_rollback",
                f"{len(old_notes)} release notes older than a version already stored refused: {names}",
            )
        rolled_back = [r for r in applied.rolled_back if r.seq > self._replaying_to]
        if rolled_back:
            self.status.rejected_rollback += len(rolled_back)
            names = ", ".join(f"{r.logisticsCode}/{r.logisticsNo} v{r.version}" for r in rolled_back[:5])
            await self._alarm(
                "feed_rollback",
                f"{len(rolled_back)} records older than a version already stored refused: {names}",
            )
        return len(items)

    async def _refused(self, refused: FeedRefused) -> None:
        self.status.refused_pages += 1
        self.status.refusals[refused.reason] = self.status.refusals.get(refused.reason, 0) + 1
        self.status.last_refusal = str(refused)
        await self._alarm(f"feed_{refused.reason}", refused.detail)

    async def _alarm(self, reason: str, detail: str) -> None:
        """Log it; report it upstream as an ALARM event unless it is the one reported last."""
        if self._reported == (reason, detail):
            return
        log.error("feed alarm: " + detail, extra={"reason": reason, "cursor": self._checkpoint.cursor})
        self._reported = (reason, detail)
        if self.edge_id is None:
            return
        body = EventBody(reason=reason, detail=detail[:2000])
        edge_id = self.edge_id
        await self.store.write(
            lambda conn: new_event(
                conn, edge_id=edge_id, kind=EventKind.ALARM, station=None, body=body, occurred_at=utc_now()
            )
        )

    async def _verify(self, items: list[Any]) -> Checked:
        """Check a page (see the module docstring); big pages over the pool, whole clearances
        to each worker, since a clearance's older records are tried only after its newer failed."""
        if len(items) < 200:
            return check_page(items, self.public_key, self.park_id)
        loop = asyncio.get_running_loop()
        items, notes = split_notes(items)
        checking_notes = loop.run_in_executor(self._pool, check_notes, notes, self.public_key, self.park_id)
        groups, malformed = await loop.run_in_executor(self._pool, _group, items)
        step = max(1, -(-len(groups) // self.workers))
        parts = await asyncio.gather(
            *(
                loop.run_in_executor(
                    self._pool, _verify_groups, groups[i : i + step], self.public_key, self.park_id
                )
                for i in range(0, len(groups), step)
            )
        )
        out = Checked(rejected=malformed)
        for part in parts:
            out.add(part)
        out.add(await checking_notes)
        return out

    async def catch_up(self) -> None:
        """Pull until central says there is no more (first sync, tests)."""
        while True:
            await self.pull_once()
            self._succeeded()
            if self.status.caught_up:
                return

    def _succeeded(self) -> None:
        self._backoff.succeeded(self.status, log, "central reachable again", cursor=self.status.cursor)
        if self.on_progress:
            self.on_progress(self.status)

    async def run(self) -> None:
        while True:
            try:
                await self.pull_once(wait=0 if not self.status.caught_up else self.long_poll_s)
            except asyncio.CancelledError:
                raise
            except (httpx.HTTPError, ValueError, KeyError, TypeError, sqlite3.Error) as exc:
                # a bad page or a store that refuses the write: keep deciding on the cache, retry
                await self._backoff.failed(self.status, exc, log, "feed sync failing; deciding on the cache")
                continue
            self._succeeded()

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self._hasher.shutdown(wait=False)

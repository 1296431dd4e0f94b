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
first sync carries every version of every clearance, so this saves most of the Ed25519 work (2/3
on a feed of three versions per parcel). The price: a bad signature on a record that a newer, valid
record in the same page replaces goes unnoticed and unlogged. That record would never have been
used; the decision path verifies the stored record again before every release.
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

from bondgate.wire import FeedRecord, verify_record
from edge.backoff import Backoff, LinkState
from edge.store import Store
from edge.timefmt import iso_now
from edge.verified import VerifiedTexts, digest

log = logging.getLogger(__name__)


@dataclass
class SyncStatus(LinkState):
    cursor: int = 0
    records_applied: int = 0  # checked and handed to the store: at most one per clearance per page
    rejected_signatures: int = 0  # checked and failed: bad signature or bad shape; not stored
    superseded_unchecked: int = 0  # not checked: a newer valid version in the same page is stored
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
    digests: list[bytes] = field(default_factory=list)  # of each stored JSON: verified (edge/verified.py)
    rejected: int = 0
    superseded: int = 0

    def add(self, other: Checked) -> None:
        self.good += other.good
        self.digests += other.digests
        self.rejected += other.rejected
        self.superseded += other.superseded


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


def _verify_groups(groups: list[list[_Candidate]], key: Ed25519PublicKey) -> Checked:
    """Per clearance, the newest record whose shape and signature are valid; older ones only if needed."""
    out = Checked()
    for candidates in groups:
        for tried, (_, _, _, item) in enumerate(candidates, start=1):
            record = item if isinstance(item, FeedRecord) else _validate(item)
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


def check_page(items: list[Any], key: Ed25519PublicKey) -> Checked:
    """Check one page in this thread (small pages, tests)."""
    groups, malformed = _group(items)
    out = _verify_groups(groups, key)
    out.rejected += malformed
    return out


def _int(value: Any, name: str) -> int:
    if type(value) is not int or not 0 <= value < 2**63:
        raise ValueError(f"feed page: {name} is not a cursor: {str(value)[:40]!r}")
    return value


def _page_fields(page: Any, cursor: int) -> tuple[list[Any], int, bool, int]:
    """records, next_after, has_more and head of a feed page, or ValueError naming what is wrong.
    Only the records are signed; the page around them is checked here before anything is applied."""
    if not isinstance(page, dict):
        raise ValueError("feed page: not a JSON object")
    items = page.get("records")
    if not isinstance(items, list):
        raise ValueError("feed page: records is not a list")
    after = _int(page.get("next_after"), "next_after")
    if after < cursor:
        raise ValueError(f"feed page: next_after {after} is behind the cursor {cursor}")
    has_more = page.get("has_more")
    if not isinstance(has_more, bool):
        raise ValueError("feed page: has_more is not true or false")
    head = _int(page.get("head", after), "head")
    return items, after, has_more, head


@dataclass
class FeedSync:
    store: Store
    client: httpx.AsyncClient  # base_url = central, Authorization header set
    park_id: str
    public_key: Ed25519PublicKey
    page_size: int = 5000
    long_poll_s: float = 10.0
    backoff_initial: float = 0.2
    backoff_max: float = 10.0
    workers: int = 2
    on_progress: Callable[[SyncStatus], None] | None = None
    verified: VerifiedTexts | None = None  # told which stored texts passed the check (the Checker's)
    status: SyncStatus = field(default_factory=SyncStatus)

    def __post_init__(self) -> None:
        self.status.cursor = int(self.store.sync_state()["cursor"])
        self._backoff = Backoff(self.backoff_initial, self.backoff_max)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="feed-verify")

    async def pull_once(self, *, wait: float = 0.0) -> int:
        """Fetch and apply one page; returns how many records it carried."""
        response = await self.client.get(
            f"/api/v1/parks/{self.park_id}/feed",
            params={"after": self.status.cursor, "limit": self.page_size, "wait": wait},
            timeout=wait + 30,
        )
        response.raise_for_status()
        page = await asyncio.to_thread(json.loads, response.content)
        items, cursor, has_more, head = _page_fields(page, self.status.cursor)
        checked = await self._verify(items)
        await self.store.write(lambda conn: Store.apply_feed(conn, checked.good, cursor, iso_now()))
        if self.verified is not None:
            self.verified.add_digests(checked.digests)
        self.status.cursor = cursor
        self.status.records_applied += len(checked.good)
        self.status.superseded_unchecked += checked.superseded
        self.status.caught_up = not has_more
        self.status.head = head
        if self.on_progress:
            self.on_progress(self.status)
        if checked.rejected:
            self.status.rejected_signatures += checked.rejected
            log.error(
                "feed records refused: bad signature or shape",
                extra={"count": checked.rejected, "cursor": cursor},
            )
        return len(items)

    async def _verify(self, items: list[Any]) -> Checked:
        """Check a page (see the module docstring); big pages over the pool, whole clearances
        to each worker, since a clearance's older records are tried only after its newer failed."""
        if len(items) < 200:
            return check_page(items, self.public_key)
        loop = asyncio.get_running_loop()
        groups, malformed = await loop.run_in_executor(self._pool, _group, items)
        step = max(1, -(-len(groups) // self.workers))
        parts = await asyncio.gather(
            *(
                loop.run_in_executor(self._pool, _verify_groups, groups[i : i + step], self.public_key)
                for i in range(0, len(groups), step)
            )
        )
        out = Checked(rejected=malformed)
        for part in parts:
            out.add(part)
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

"""Pull the park's clearance feed from central into the local cache.

The cursor and the records it covers commit in one transaction, so a crash never skips or repeats
a record. Each record's Ed25519 signature is checked on arrival (a record that fails is not stored
and is counted) and again when a decision uses it, which is the check the edge can prove.
While central is unreachable the agent keeps deciding on the cache; the sync backs off with jitter.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bondgate.wire import FeedRecord, verify_record
from edge.backoff import Backoff, LinkState
from edge.store import Store
from edge.timefmt import iso_now

log = logging.getLogger(__name__)


@dataclass
class SyncStatus(LinkState):
    cursor: int = 0
    records_applied: int = 0
    rejected_signatures: int = 0
    caught_up: bool = False  # the last page said has_more = false
    head: int = 0  # central's newest seq for the park, as of the last page

    @property
    def lag_records(self) -> int:
        """How many feed changes central has that this edge has not applied yet."""
        return max(0, self.head - self.cursor)


def _verify_chunk(items: list[dict], key: Ed25519PublicKey) -> list[tuple[FeedRecord, str] | None]:
    out: list[tuple[FeedRecord, str] | None] = []
    for item in items:
        try:
            record = FeedRecord.model_validate(item)
        except ValueError:
            out.append(None)
            continue
        out.append((record, record.model_dump_json()) if verify_record(record, key) else None)
    return out


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
        items: list[dict] = page["records"]
        verified = await self._verify(items)
        good = [v for v in verified if v is not None]
        rejected = len(verified) - len(good)
        cursor = int(page["next_after"])
        await self.store.write(lambda conn: Store.apply_feed(conn, good, cursor, iso_now()))
        self.status.cursor = cursor
        self.status.records_applied += len(good)
        self.status.caught_up = not page["has_more"]
        self.status.head = int(page.get("head", cursor))
        if self.on_progress:
            self.on_progress(self.status)
        if rejected:
            self.status.rejected_signatures += rejected
            log.error(
                "feed records refused: bad signature or shape", extra={"count": rejected, "cursor": cursor}
            )
        return len(items)

    async def _verify(self, items: list[dict]) -> list[tuple[FeedRecord, str] | None]:
        if len(items) < 200:
            return _verify_chunk(items, self.public_key)
        loop = asyncio.get_running_loop()
        step = -(-len(items) // self.workers)
        parts = await asyncio.gather(
            *(
                loop.run_in_executor(self._pool, _verify_chunk, items[i : i + step], self.public_key)
                for i in range(0, len(items), step)
            )
        )
        return [v for part in parts for v in part]

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
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                await self._backoff.failed(self.status, exc, log, "feed sync failing; deciding on the cache")
                continue
            self._succeeded()

    def close(self) -> None:
        self._pool.shutdown(wait=False)

"""The edge database's connections: one writer thread, a reader per thread, background checkpoints.

Every write is one transaction on the writer thread (`Writer.write`), so the event loop never waits
on fsync and there is exactly one writer. Commits are durable (synchronous=FULL) unless the caller
says the write's loss is harmless (`durable=False`), and then for that transaction only. Reads use a
connection of the calling thread's own.

WAL checkpoints (copying committed pages back into the database file) never run inside a commit
(the writer's `wal_autocheckpoint` is 0): after `CHECKPOINT_AFTER_COMMITS` commits or
`CHECKPOINT_AFTER_CHANGES` changed rows the writer asks for one on a thread of its own, PASSIVE, so it
never blocks the writer. Should the log still grow past `WAL_FRAMES_LIMIT` — the writer never pausing
long enough for one to finish —, the writer checkpoints itself between two transactions, so the log
stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from kernel import sqlite

T = TypeVar("T")
log = logging.getLogger(__name__)

PRAGMAS = sqlite.Pragmas(synchronous="FULL")
CHECKPOINT_AFTER_COMMITS = 100  # a decision writes ~7 pages: about 700 pages, SQLite's default is 1000
CHECKPOINT_AFTER_CHANGES = 2000  # rows; a feed page of 5000 records asks at once
WAL_FRAMES_LIMIT = 4000  # ~16 MB of log left behind by background checkpoints: the writer does one


class Reads(Protocol):
    """What the table modules' methods that read on their own need of the store."""

    def reader(self) -> sqlite3.Connection: ...


@dataclass
class CheckpointStats:
    """What the checkpoints did (shown in /api/status)."""

    runs: int = 0
    by_writer: int = 0  # the log passed WAL_FRAMES_LIMIT and the writer checkpointed itself
    failures: int = 0
    wal_frames: int = 0  # frames in the log when the last checkpoint ran
    backfilled: int = 0  # of which that checkpoint copied into the database


class Writer:
    def __init__(self, path: Path | str, migrations: Sequence[sqlite.Migration]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = sqlite.connect(self.path, PRAGMAS)
        self._writer.execute("PRAGMA wal_autocheckpoint=0")  # see the module's docstring
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-store-writer")
        self._checkpointer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-store-checkpoint")
        self._checkpointing = threading.Lock()  # held while a checkpoint is asked for or running
        self._commits_since = 0
        self._changes_mark = 0
        self.checkpoints = CheckpointStats()
        self._readers = sqlite.Readers(self.path, PRAGMAS)
        sqlite.migrate(self._writer, migrations)  # before the writer thread takes any work

    def reader(self) -> sqlite3.Connection:
        return self._readers.get()

    async def write(self, work: Callable[[sqlite3.Connection], T], *, durable: bool = True) -> T:
        """Run `work(conn)` as one transaction on the writer thread, on disk when this returns.

        `durable=False` is for writes whose loss on power failure is harmless (an acknowledgement:
        the events are sent again and central keeps one copy): the commit skips its own fsync and
        is on disk with the next durable commit: the log is written in order, so no later durable
        commit (a decision) can be on disk without it."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._transaction, work, durable)

    def write_sync(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """The same, from a thread that is not the event loop (benches, tools)."""
        return self._executor.submit(self._transaction, work).result()

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._checkpointer.shutdown(wait=True)
        self._writer.close()
        self._readers.close_all()

    def integrity_check(self) -> list[str]:
        return sqlite.integrity_check(self.reader())

    def _transaction(self, work: Callable[[sqlite3.Connection], T], durable: bool = True) -> T:
        conn = self._writer
        if not durable:
            conn.execute("PRAGMA synchronous=NORMAL")  # this commit only: no fsync of its own
        try:
            with sqlite.transaction(conn):
                result = work(conn)
        finally:
            if not durable:
                conn.execute("PRAGMA synchronous=FULL")
                if conn.execute("PRAGMA synchronous").fetchone()[0] != 2:  # never decide at NORMAL
                    raise sqlite3.OperationalError("could not restore synchronous=FULL on the writer")
        self._after_commit(conn)
        return result

    # --- checkpoints ---------------------------------------------------------------------------
    def _after_commit(self, conn: sqlite3.Connection) -> None:
        """On the writer thread: ask for a background checkpoint once enough has been written."""
        self._commits_since += 1
        changes = conn.total_changes
        if (
            self._commits_since < CHECKPOINT_AFTER_COMMITS
            and changes - self._changes_mark < CHECKPOINT_AFTER_CHANGES
        ):
            return
        stats = self.checkpoints
        if stats.wal_frames > WAL_FRAMES_LIMIT:
            with self._checkpointing:  # let a running one finish; nothing is written meanwhile
                stats.by_writer += 1
                self._checkpoint(conn)
                if stats.backfilled == stats.wal_frames:
                    stats.wal_frames = 0  # complete: the next write starts the log over
            self._commits_since, self._changes_mark = 0, changes
            return
        if not self._checkpointing.acquire(blocking=False):
            return  # one is running: the next commit asks again
        self._commits_since, self._changes_mark = 0, changes
        try:
            self._checkpointer.submit(self._checkpoint_in_background)
        except RuntimeError:  # shutting down: closing the last connection checkpoints anyway
            self._checkpointing.release()

    def _checkpoint_in_background(self) -> None:
        try:
            self._checkpoint(None)
        finally:
            self._checkpointing.release()

    def _checkpoint(self, conn: sqlite3.Connection | None) -> None:
        """PASSIVE checkpoint through `conn` (None: this thread's own connection)."""
        stats = self.checkpoints
        try:
            conn = conn or self.reader()
            _busy, frames, backfilled = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # the log only grows meanwhile; the next one tries again
            stats.failures += 1
            log.warning("WAL checkpoint failed", extra={"error": str(exc), "failures": stats.failures})
            return
        stats.runs += 1
        stats.wal_frames, stats.backfilled = int(frames), int(backfilled)

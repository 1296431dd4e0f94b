"""The edge's local database: clearance cache, sync state, decisions and releases, outbox and event chain.

SQLite in WAL mode with synchronous=FULL: a decision and the events that report it are one
transaction that is on disk before any output moves (DESIGN.md §6 — NORMAL could lose the last
commits on power loss). Only writes whose loss is harmless ask for NORMAL, one transaction at a
time (`Store.write(durable=False)`: the uplink's acknowledgement, whose loss means a resend). All
writes go through one writer thread (`Store.write`), so the event loop never waits on fsync and
there is exactly one writer; reads use a per-thread connection (edge/store/writer.py).

Each table's SQL is in the module that owns it: `cache` (clearances, versions_seen, sync_state),
`decisions` (decisions, releases, release_ledger), `outbox` (outbox, chain, chain_history, and
`new_event`), `notes` (release_notes, for the vehicle gate), `schema` (the migrations). `Store` is
all of them: a method that takes a `conn` runs in that connection's transaction (the caller's
`Store.write`, or a read of its own); the others read through the calling thread's connection.
"""

from __future__ import annotations

from pathlib import Path

from edge.store import schema
from edge.store.cache import Applied, CachedRecord, CacheTables
from edge.store.decisions import DecisionTables, RecordFacts, ReleaseWitnesses
from edge.store.notes import CachedNote, NoteTables
from edge.store.outbox import ChainState, OutboxTables, new_event
from edge.store.writer import CHECKPOINT_AFTER_COMMITS, CheckpointStats, Writer


class Store(Writer, CacheTables, DecisionTables, OutboxTables, NoteTables):
    """The edge's database, migrated to the current schema when opened."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(path, schema.MIGRATIONS)


__all__ = [
    "CHECKPOINT_AFTER_COMMITS",
    "Applied",
    "CachedNote",
    "CachedRecord",
    "ChainState",
    "CheckpointStats",
    "RecordFacts",
    "ReleaseWitnesses",
    "Store",
    "new_event",
]

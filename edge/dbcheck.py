"""`bondgate edge db check`: SQLite's integrity_check, then the event chain in the outbox.

The outbox holds the events central has not acknowledged yet; each must link to the one before it
(the first to the chain head recorded at the last acknowledgement), numbers contiguous, hashes
recomputed equal. Releases must each have a RELEASE decision, and the release ledger must be whole
(edge/release_ledger.py): chained, every release in it, every entry with its marker.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge import release_ledger
from edge.store import Store
from kernel import sqlite
from kernel.wire import Event


def check(path: Path) -> list[str]:
    if not path.exists():
        return [f"{path}: no such database"]
    try:
        return _check(path)
    except sqlite3.DatabaseError as exc:  # not a database, or damaged past reading
        return [f"{path}: cannot be read as the edge's database: {exc}"]


def _check(path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    problems = [f"integrity_check: {found}" for found in sqlite.integrity_check(conn) if found != "ok"]
    last_seq, last_hash, acked = Store.chain_state(conn)
    prev: Event | None = None
    for seq, raw in Store.outbox_rows(conn):
        try:
            event = Event.model_validate_json(raw)
        except ValueError as exc:  # not JSON, not an event: named, and the chain checked around it
            problems.append(f"outbox row {seq}: not an event ({str(exc).splitlines()[0]})")
            prev = None
            continue
        if not event.hash_matches():
            problems.append(f"event {event.seq}: hash does not match its content")
        if prev is not None:
            if event.seq != prev.seq + 1:
                problems.append(f"event {event.seq}: follows {prev.seq} (gap)")
            if event.prev_hash != prev.hash:
                problems.append(f"event {event.seq}: prev_hash does not link to event {prev.seq}")
        elif event.seq != acked + 1:
            problems.append(f"event {event.seq}: first unacknowledged event should be {acked + 1}")
        prev = event
    if prev is not None and (prev.seq, prev.hash) != (last_seq, last_hash):
        problems.append(f"chain head ({last_seq}) is not the last event in the outbox ({prev.seq})")
    orphans = Store.markers_without_release_decision(conn)
    if orphans:
        problems.append(f"{orphans} release markers without a RELEASE decision")
    if sqlite.has_table(conn, "release_ledger"):
        try:
            problems += release_ledger.verify(conn).problems()
        except Exception as exc:  # a row of the wrong type (a BLOB hash): damaged, said so
            problems.append(f"release ledger unreadable: {type(exc).__name__}: {exc}")
    conn.close()
    return problems

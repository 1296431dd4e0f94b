"""The edge's release ledger: every release it made, append-only and hash-chained.

The `releases` marker is one row a decision checks; delete it and the parcel would be released again.
So each release also appends an entry here, chained to the one before (kernel/wire.py
`release_entry_hash`), in the decision's own transaction, and its release event carries the entry's
number and hash (`ledger_n`, `ledger_hash`): central's copy of the event chain holds every release
and the ledger head after it, so the ledger can be recomputed from the release events alone.

A decision looks for the marker, the ledger entry and a RELEASE decision (three index lookups,
edge/checker.py): any one of them means ALREADY_RELEASED, and a missing marker where another says
released is an alarm. `verify` walks the whole ledger (at start, in the background, and in
`bondgate edge db check`): a chain that does not link, an entry whose hash is not its content, or an
unacknowledged release event whose ledger head the ledger does not hold means releases were removed
and cannot all be named — the checker then holds every parcel (ALREADY_RELEASED) until the database
is restored or replaced.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from edge.store import Store
from kernel.sqlite import read_transaction
from kernel.wire import GENESIS_HASH, Event, EventKind, release_entry_hash

MAX_PROBLEMS = 20


@dataclass(frozen=True)
class Entry:
    n: int
    hash: str


def append(
    conn: sqlite3.Connection, *, logistics_no: str, logistics_code: str, decision_id: str, record_version: int
) -> Entry:
    """Append the next entry, in the caller's (the decision's) transaction."""
    n, prev = Store.ledger_head(conn)
    entry_hash = Store.append_ledger(
        conn, n + 1, logistics_no, logistics_code, decision_id, record_version, prev
    )
    return Entry(n + 1, entry_hash)


@dataclass
class Verification:
    """What `verify` found: `broken` problems mean releases may be missing that nothing names."""

    entries: int = 0
    broken: list[str] | None = None  # chain problems: hold every parcel
    unmarked: list[str] | None = None  # entries whose marker is gone: held by the decision's lookups

    def problems(self) -> list[str]:
        return (self.broken or []) + (self.unmarked or [])


def verify(conn: sqlite3.Connection) -> Verification:
    """Walk the ledger: every entry links to the one before and hashes to its content, numbers run
    from 1 with no gap; every marker and RELEASE decision has an entry; every release event still in
    the outbox names an entry the ledger holds (its head may not have gone back). One read
    transaction, so releases committed meanwhile are either wholly in it or not at all."""
    with read_transaction(conn):
        return _verify(conn)


def _verify(conn: sqlite3.Connection) -> Verification:
    broken: list[str] = []
    result = Verification()
    prev, expected = GENESIS_HASH, 1
    hashes: dict[int, str] = {}
    for n, no, carrier, decision_id, version, prev_hash, entry_hash in Store.ledger_entries(conn):
        if n != expected:
            broken.append(f"release ledger: entry {n} follows entry {expected - 1} (entries removed)")
        if prev_hash != prev:
            broken.append(f"release ledger: entry {n} does not link to the entry before it")
        computed = release_entry_hash(
            prev_hash,
            n=n,
            logistics_no=no,
            logistics_code=carrier,
            decision_id=decision_id,
            record_version=version,
        )
        if computed != entry_hash:
            broken.append(f"release ledger: entry {n} ({carrier}/{no}) does not hash to its content")
        prev, expected = entry_hash, n + 1
        hashes[n] = entry_hash
        result.entries += 1
        if len(broken) >= MAX_PROBLEMS:
            break
    for seq, text in Store.outbox_rows(conn):
        try:
            event = Event.model_validate_json(text)
        except ValueError:
            continue  # `db check` names unreadable outbox rows itself
        if event.kind != EventKind.RELEASE or event.body.ledger_n is None:
            continue
        if hashes.get(event.body.ledger_n) != event.body.ledger_hash:
            broken.append(
                f"release ledger: release event {seq} reports entry {event.body.ledger_n}, which the ledger "
                "does not hold as reported (entries removed or rewritten)"
            )
    for no, carrier, what in Store.unledgered_releases(conn, MAX_PROBLEMS):
        broken.append(f"release ledger: {what} of {carrier}/{no} has no ledger entry")
    result.broken = broken[:MAX_PROBLEMS]
    result.unmarked = [
        f"release marker of {carrier}/{no} missing (ledger entry {n} says it left)"
        for n, no, carrier in Store.unmarked_ledger_entries(conn, MAX_PROBLEMS)
    ]
    return result

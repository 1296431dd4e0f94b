"""The outbox and the event chain: this edge's events, hash-chained, until central acknowledges them.

`chain` holds the open epoch's head (last seq, last hash) and what central acknowledged of it;
`outbox` the events not acknowledged yet, by seq, as the JSON that is sent; `chain_history` each
closed epoch (re-provisioning, edge/reprovision.py). `new_event` appends the chain's next event in
the caller's transaction: the decision's, so an event exists exactly when what it reports does.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any, NamedTuple

from edge.store.writer import Reads
from kernel.timefmt import iso_now
from kernel.wire import GENESIS_HASH, Event, EventBody, EventKind, chain_event


class ChainState(NamedTuple):
    """The open epoch's chain: its head and how far central acknowledged it."""

    last_seq: int
    last_hash: str
    acked_seq: int


class OutboxTables:
    """`Store`'s methods over outbox, chain and chain_history."""

    @staticmethod
    def chain_epoch(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT epoch FROM chain WHERE id = 1").fetchone()[0])

    @staticmethod
    def chain_position(conn: sqlite3.Connection) -> tuple[int, str, int]:
        """(last seq, last hash, epoch) of the chain: where the next event goes."""
        row = conn.execute("SELECT last_seq, last_hash, epoch FROM chain WHERE id = 1").fetchone()
        return int(row[0]), str(row[1]), int(row[2])

    @staticmethod
    def chain_state(conn: sqlite3.Connection) -> ChainState:
        row = conn.execute("SELECT last_seq, last_hash, acked_seq FROM chain WHERE id = 1").fetchone()
        return ChainState(int(row[0]), str(row[1]), int(row[2]))

    @staticmethod
    def chain_hash_at(conn: sqlite3.Connection, seq: int) -> str | None:
        """The hash of this database's event `seq` of the open epoch, when it still knows it: the
        chain head, a pending event, or the last acknowledged one (the first pending event links to
        it). None for an older event (deleted once acknowledged) or a seq beyond the chain."""
        last_seq, last_hash, acked = OutboxTables.chain_state(conn)
        if seq == last_seq:
            return last_hash
        if seq == acked:
            column, seq = "$.prev_hash", seq + 1
        elif acked < seq < last_seq:
            column = "$.hash"
        else:
            return None
        sql = "SELECT json_extract(event, ?) FROM outbox WHERE seq = ?"
        row = conn.execute(sql, (column, seq)).fetchone()
        return str(row[0]) if row is not None and row[0] is not None else None

    @staticmethod
    def close_epoch(
        conn: sqlite3.Connection, *, next_epoch: int, delivered: int, carried: int, now: str
    ) -> None:
        """Remember the open chain in chain_history, empty the outbox and open `next_epoch` at seq 0 /
        genesis, in the caller's transaction (which then appends the carried events again)."""
        conn.execute(
            "INSERT INTO chain_history (epoch, last_seq, last_hash, acked_seq, delivered, carried,"
            " next_epoch, closed_at)"
            " SELECT epoch, last_seq, last_hash, acked_seq, ?, ?, ?, ? FROM chain WHERE id = 1",
            (delivered, carried, next_epoch, now),
        )
        conn.execute("DELETE FROM outbox")
        conn.execute(
            "UPDATE chain SET epoch = ?, last_seq = 0, last_hash = ?, acked_seq = 0 WHERE id = 1",
            (next_epoch, GENESIS_HASH),
        )

    @staticmethod
    def append_event(conn: sqlite3.Connection, event: Event, now: str) -> None:
        conn.execute(
            "INSERT INTO outbox (seq, event, created_at) VALUES (?, ?, ?)",
            (event.seq, event.model_dump_json(), now),
        )
        conn.execute("UPDATE chain SET last_seq = ?, last_hash = ? WHERE id = 1", (event.seq, event.hash))

    @staticmethod
    def outbox_rows(conn: sqlite3.Connection) -> list[tuple[int, str]]:
        """(seq, stored event JSON) of every pending event, in seq order, through `conn`."""
        return [(int(r[0]), r[1]) for r in conn.execute("SELECT seq, event FROM outbox ORDER BY seq")]

    def pending_rows(self: Reads, limit: int) -> list[tuple[int, str]]:
        """(seq, stored event JSON) of the oldest events not acknowledged yet, in seq order."""
        rows = self.reader().execute("SELECT seq, event FROM outbox ORDER BY seq LIMIT ?", (limit,))
        return [(int(r[0]), r[1]) for r in rows]

    @staticmethod
    def acknowledge(conn: sqlite3.Connection, acked_seq: int, epoch: int | None = None) -> int:
        """Delete the events up to `acked_seq`; with `epoch`, only while that epoch is still open (an
        answer about events re-chained meanwhile into the next epoch deletes nothing)."""
        if epoch is not None and OutboxTables.chain_position(conn)[2] != epoch:
            return 0
        cur = conn.execute("DELETE FROM outbox WHERE seq <= ?", (acked_seq,))
        conn.execute("UPDATE chain SET acked_seq = MAX(acked_seq, ?) WHERE id = 1", (acked_seq,))
        return cur.rowcount

    def backlog(self: Reads) -> dict[str, Any]:
        """The outbox's size and oldest event, and the chain: acked_seq, last_seq, epoch."""
        conn = self.reader()
        outbox = conn.execute("SELECT COUNT(*) AS size, MIN(created_at) AS oldest FROM outbox").fetchone()
        chain = conn.execute("SELECT acked_seq, last_seq, epoch FROM chain WHERE id = 1").fetchone()
        return {**dict(outbox), **dict(chain)}


def new_event(
    conn: sqlite3.Connection,
    *,
    edge_id: str,
    kind: EventKind,
    station: str | None,
    body: EventBody,
    occurred_at: datetime,
) -> Event:
    """Append the next event of the chain to the outbox, in the caller's transaction."""
    last_seq, last_hash, epoch = OutboxTables.chain_position(conn)
    event = chain_event(
        last_hash,
        edge_id=edge_id,
        epoch=epoch if epoch > 1 else None,  # the first chain carries none (wire.Event.epoch)
        seq=last_seq + 1,
        kind=kind,
        station=station,
        occurred_at=occurred_at,
        body=body,
    )
    OutboxTables.append_event(conn, event, iso_now())
    return event

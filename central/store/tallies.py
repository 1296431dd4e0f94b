"""The report's maintained figures (schema 0011): the triggers keep them as rows change; `rebuild`
recomputes them from the base tables, for rows written around the triggers (a bulk load, a restore
of some tables) and as the check that the triggers and the base tables agree."""

from __future__ import annotations

from central.store import pg_schema, schema
from central.store.connection import Connection, is_postgres


def rebuild(conn: Connection) -> None:
    """Recompute tallies, `clearances.released` and the release events' verdicts; call it inside a
    write transaction."""
    statements = pg_schema.TALLIES_REBUILD if is_postgres(conn) else schema.TALLIES_REBUILD
    for statement in statements:
        conn.execute(statement)


def snapshot(conn: Connection) -> tuple[list[tuple[object, ...]], ...]:
    """Everything `rebuild` writes, in a comparable form: tallies (zeros dropped), released flags,
    release verdicts."""
    return (
        [
            tuple(r)
            for r in conn.execute("SELECT park_id, kind, key, n FROM tallies WHERE n != 0 ORDER BY 1, 2, 3")
        ],
        [tuple(r) for r in conn.execute("SELECT clearance_id, released FROM clearances ORDER BY 1")],
        [
            tuple(r)
            for r in conn.execute(
                "SELECT edge_id, epoch, seq, uncleared, cancelled_late, repeat FROM events"
                " WHERE kind = 'release' ORDER BY 1, 2, 3"
            )
        ],
    )

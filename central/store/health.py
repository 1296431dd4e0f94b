"""Whether the database answers, for the liveness check."""

from __future__ import annotations

from central.store.db import Database


def check(db: Database) -> None:
    """Run a trivial query on this thread's reader; raises if the database cannot be reached."""
    db.reader().execute("SELECT 1").fetchone()

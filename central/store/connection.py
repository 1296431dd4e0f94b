"""The connection the store's functions take: what `Database.write()` and `Database.reader()` give.

Both backends give one: a `sqlite3.Connection`, or on PostgreSQL a `PgConnection` that takes the
same `?` SQL and gives rows read by name and by position. Code outside `central/store` holds one only
to pass it back to the store's functions inside the same transaction; it never runs a statement
itself, so it does not depend on which database this is. Inside the store, `is_postgres(conn)` picks
the few statements that differ (docs/postgres-port.md lists them).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    def execute(self, sql: str, params: Any = ..., /) -> Cursor: ...

    def executemany(self, sql: str, rows: Any, /) -> Any: ...


def as_postgresql_stores(text: str) -> str:
    """Text as PostgreSQL keeps it, and so returns it: its text holds no NUL, which is stored (and
    looked up) as U+FFFD, the replacement character."""
    return text.replace("\x00", "\ufffd")


def is_postgres(conn: Connection) -> bool:
    return getattr(conn, "dialect", "sqlite") == "postgresql"

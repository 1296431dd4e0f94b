"""The store's SQL on PostgreSQL: `?` placeholders and rows read by name or by position, as on SQLite.

Central's store is written as SQL strings with `?` placeholders, reading rows as `sqlite3.Row` does
(`row["status"]`, `row[0]`, `dict(row)`). `PgConnection` wraps a psycopg 3 connection so the same
strings and the same row access work there:

- `translate(sql)` turns each `?` outside a quoted literal or identifier into psycopg's `%s`, and
  doubles every `%` outside them, which psycopg would otherwise read as a placeholder. A `?` or `%`
  inside `'…'` or `"…"` is left as it is written.
- `Row` is a tuple whose values are also found by column name, with `keys()`, so `dict(row)` works.

This is the first step of issue 13 (docs/postgres-port.md): the dialect differences that are not
placeholders (`LEAST`, `jsonb`, identity columns) are the schema's and the queries' own business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg.rows import RowMaker


def translate(sql: str) -> str:
    """`sql` with `?` placeholders as psycopg's `%s` (and literal `%` doubled), quotes respected."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            if ch == quote:
                quote = None  # a doubled quote ('') closes and reopens: the same result
            out.append("%%" if ch == "%" else ch)
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


class Row(tuple[Any, ...]):
    """A result row read by position (`row[0]`) or by column name (`row["status"]`)."""

    _index: dict[str, int]

    def __new__(cls, values: Sequence[Any], index: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:  # also by name, as sqlite3.Row
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def row_factory(cursor: psycopg.Cursor[Any]) -> RowMaker[Row]:
    names = [column.name for column in cursor.description or ()]
    index = {name: i for i, name in enumerate(names)}

    def make(values: Sequence[Any]) -> Row:
        return Row(values, index)

    return make


class PgConnection:
    """A psycopg connection that takes the store's SQL and returns `Row`s."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Row]:
        cursor = self.raw.cursor(row_factory=row_factory)
        return cursor.execute(translate(sql), params)

    def executemany(self, sql: str, rows: Iterator[Sequence[Any]] | Sequence[Sequence[Any]]) -> None:
        with self.raw.cursor() as cursor:
            cursor.executemany(translate(sql), rows)


PgMigration = tuple[str, Callable[[PgConnection], None]]  # (name, step): append; never edit or reorder
MIGRATION_LOCK = 0x626F6E64  # pg_advisory_lock key ("bond") held while a process migrates


def migrate(conn: psycopg.Connection[Any], migrations: Sequence[PgMigration]) -> list[str]:
    """Apply every migration not recorded yet, in list order, each in its own transaction with its
    record in `schema_migrations`; returns the names this call applied.

    Several central processes start together: each takes the same session-level advisory lock
    first, so one migrates while the others wait, and then find everything recorded. `conn` must be
    in autocommit mode (the steps' transactions are this function's)."""
    if not conn.autocommit:
        raise ValueError("migrate needs an autocommit connection: it runs one transaction per step")
    store = PgConnection(conn)
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        with conn.transaction():
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {str(r[0]) for r in conn.execute("SELECT name FROM schema_migrations")}
        applied: list[str] = []
        for name, step in migrations:
            if name in done:
                continue
            with conn.transaction():
                step(store)
                conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
            applied.append(name)
        return applied
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))

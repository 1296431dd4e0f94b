"""Documents as last submitted, and the receipts each one got. Called inside a write transaction."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from central.store.connection import Connection, as_postgresql_stores, is_postgres
from central.store.db import Database


def kind_literal(kind: str) -> str:
    """The kind as an SQL literal. Documents has partial indexes on one kind (schema 0009): with the
    kind as a bound parameter SQLite prepares the statement again at every execution (the plan could
    depend on the value); a literal is planned once per kind. Kinds are the standard's message
    types, so the literal is checked, never quoted data."""
    if not (len(kind) == 6 and kind.startswith("CEB") and kind[3:].isdigit()):
        raise ValueError(f"not a document kind: {kind!r}")
    return f"'{kind}'"


@dataclass(frozen=True)
class DocumentRow:
    kind: str
    doc_key: str
    guid: str
    body: dict[str, Any]
    version: int
    deleted: bool
    received_at: str


_DOC = ", ".join(f.name for f in fields(DocumentRow))  # the columns a DocumentRow is made of
_D_DOC = ", ".join(f"d.{f.name}" for f in fields(DocumentRow))  # the same, of `documents d`


def _doc(row: Any) -> DocumentRow:
    return DocumentRow(**{**dict(row), "body": json.loads(row["body"]), "deleted": bool(row["deleted"])})


def get_document(conn: Connection, *, kind: str, doc_key: str) -> DocumentRow | None:
    row = conn.execute(
        f"SELECT {_DOC} FROM documents WHERE kind = {kind_literal(kind)} AND doc_key = ?", (doc_key,)
    ).fetchone()
    return _doc(row) if row else None


def save_document(
    conn: Connection,
    *,
    kind: str,
    doc_key: str,
    guid: str,
    links: dict[str, str | None],
    body: dict[str, Any],
    deleted: bool,
    now: str,
    new: bool = False,
    text: str | None = None,
    number: int | None = None,
) -> None:
    """Insert or replace the current version of a document (its row number stays that of its key).
    `new`: the caller knows no row has this key (a plain insert, not the upsert);
    `text`: `body` as JSON, when the caller has made it already; `number`: with `new`, the row
    number `next_number` gave (the caller made a number of the document from it)."""
    values = (
        number,
        kind,
        doc_key,
        guid,
        links.get("ebp_code"),
        links.get("order_no"),
        links.get("logistics_code"),
        links.get("logistics_no"),
        text if text is not None else json.dumps(body, ensure_ascii=False),
        int(deleted),
        now,
    )
    insert = """INSERT INTO documents (rowid, kind, doc_key, guid, ebp_code, order_no, logistics_code,
                                  logistics_no, body, version, deleted, received_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)"""
    if is_postgres(conn):  # documents are partitioned by month there: no upsert on (kind, doc_key)
        _save_document_pg(conn, insert, values, new=new)
        return
    if new:
        conn.execute(insert, values)
        return
    conn.execute(
        f"""{insert}
           ON CONFLICT (kind, doc_key) DO UPDATE SET guid = excluded.guid, ebp_code = excluded.ebp_code,
               order_no = excluded.order_no, logistics_code = excluded.logistics_code,
               logistics_no = excluded.logistics_no, body = excluded.body, version = version + 1,
               deleted = excluded.deleted, received_at = excluded.received_at""",
        (None, *values[1:]),
    )


def _save_document_pg(conn: Connection, insert: str, values: tuple[Any, ...], *, new: bool) -> None:
    """PostgreSQL's save: the row is updated where it is (in whichever month's partition), or
    inserted at the next number. The write lock every transaction holds keeps (kind, doc_key) one row."""
    if not new:
        found = conn.execute(
            "UPDATE documents SET guid = ?, ebp_code = ?, order_no = ?, logistics_code = ?, logistics_no = ?,"
            " body = ?, version = version + 1, deleted = ?, received_at = ? WHERE kind = ? AND doc_key = ?"
            " RETURNING rowid",
            (*values[3:], values[1], values[2]),
        ).fetchone()
        if found is not None:
            return
    conn.execute(insert, values)


def next_number(conn: Connection) -> int:
    """The row number the next new document gets (SQLite's rowid, which it assigns as the largest
    plus one): inside the write transaction nobody else inserts, so the caller can make a number of
    the document from it before writing it (`save_document`)."""
    return int(conn.execute("SELECT COALESCE(MAX(rowid), 0) + 1 FROM documents").fetchone()[0])


def number_of(conn: Connection, *, kind: str, doc_key: str) -> int | None:
    """The row number of a stored document (it keeps it across versions)."""
    row = conn.execute(
        f"SELECT rowid FROM documents WHERE kind = {kind_literal(kind)} AND doc_key = ?", (doc_key,)
    ).fetchone()
    return int(row[0]) if row else None


def find_by_order(conn: Connection, *, kind: str, ebp_code: str, order_no: str) -> list[DocumentRow]:
    rows = conn.execute(
        f"SELECT {_DOC} FROM documents WHERE ebp_code = ? AND order_no = ? AND kind = {kind_literal(kind)}"
        " AND deleted = 0 ORDER BY received_at DESC",
        (ebp_code, order_no),
    )
    return [_doc(r) for r in rows]


def find_by_logistics(
    conn: Connection, *, kind: str, logistics_code: str, logistics_no: str
) -> list[DocumentRow]:
    rows = conn.execute(
        f"SELECT {_DOC} FROM documents WHERE logistics_code = ? AND logistics_no = ?"
        f" AND kind = {kind_literal(kind)}"
        " AND deleted = 0 ORDER BY received_at DESC",
        (logistics_code, logistics_no),
    )
    return [_doc(r) for r in rows]


def count_inventories_for_logistics(
    conn: Connection, *, logistics_code: str, logistics_no: str, except_key: str
) -> int:
    row = conn.execute(
        "SELECT COUNT(*) FROM documents WHERE kind = 'CEB621' AND logistics_code = ? AND logistics_no = ?"
        " AND deleted = 0 AND doc_key != ?",
        (logistics_code, logistics_no, except_key),
    ).fetchone()
    return int(row[0])


@dataclass(frozen=True)
class ReceiptRow:
    kind: str
    doc_key: str
    guid: str
    key_fields: dict[str, str]
    return_status: str
    return_time: str
    return_info: str


def add_receipts(conn: Connection, receipts: Iterable[ReceiptRow]) -> None:
    conn.executemany(
        "INSERT INTO receipts (kind, doc_key, guid, key_fields, return_status, return_time, return_info)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                r.kind,
                r.doc_key,
                r.guid,
                json.dumps(r.key_fields, ensure_ascii=False),
                r.return_status,
                r.return_time,
                r.return_info,
            )
            for r in receipts
        ],
    )


_RECEIPT = ", ".join(f.name for f in fields(ReceiptRow))  # the columns a ReceiptRow is made of


def _receipt(row: Any) -> ReceiptRow:
    return ReceiptRow(**{**dict(row), "key_fields": json.loads(row["key_fields"])})


@dataclass(frozen=True)
class GuidUse:
    kind: str
    digest: str | None  # None: taken before guids were recorded with their document's digest


def take_guid(
    conn: Connection, *, guid: str, kind: str, doc_key: str, digest: str, now: str
) -> GuidUse | None:
    """Record `guid` as this document's; if it was taken already (in any letter case), what it was
    taken for. The same guid in other letters is a reuse, never the same document sent again."""
    if is_postgres(conn):  # one round trip: the lookup, and the insert when there was nothing
        row = conn.execute(
            "WITH taken AS (SELECT kind, digest, guid FROM guids WHERE folded = ?),"
            " added AS (INSERT INTO guids (guid, kind, digest, taken_at, folded, doc_key)"
            " SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM taken))"
            " SELECT kind, digest, guid FROM taken",
            (guid.upper(), guid, kind, digest, now, guid.upper(), doc_key),
        ).fetchone()
        same = row is not None and row[2] == as_postgresql_stores(guid)
        return None if row is None else GuidUse(row[0], row[1] if same else None)
    row = conn.execute("SELECT kind, digest, guid FROM guids WHERE folded = ?", (guid.upper(),)).fetchone()
    if row is not None:
        return GuidUse(row[0], row[1] if row[2] == guid else None)
    add_guid(conn, guid=guid, kind=kind, doc_key=doc_key, digest=digest, now=now)
    return None


def add_guid(conn: Connection, *, guid: str, kind: str, doc_key: str, digest: str, now: str) -> None:
    """Record `guid` as this document's; the caller knows it was not taken (in any letter case)."""
    conn.execute(
        "INSERT INTO guids (guid, kind, digest, taken_at, folded, doc_key) VALUES (?, ?, ?, ?, ?, ?)",
        (guid, kind, digest, now, guid.upper(), doc_key),
    )


def _receipts_of(conn: Connection, guid: str) -> list[ReceiptRow]:
    """Receipts stored under `guid` (exactly as given), found through the document the guid names:
    its receipts are indexed by (kind, doc_key), and a document changed under another guid has
    receipts of both, so the guid is checked on each."""
    taken = conn.execute("SELECT kind, doc_key FROM guids WHERE folded = ?", (guid.upper(),)).fetchone()
    if taken is None or taken[1] is None:
        return []
    rows = conn.execute(
        f"SELECT {_RECEIPT} FROM receipts WHERE kind = ? AND doc_key = ? AND guid = ? ORDER BY id",
        (taken[0], taken[1], guid),
    )
    return [_receipt(r) for r in rows]


def receipts_of_guid(conn: Connection, *, guid: str) -> list[ReceiptRow]:
    """As receipts_for_guid, inside the write transaction."""
    return _receipts_of(conn, guid)


def receipts_for_guid(db: Database, *, guid: str) -> list[ReceiptRow]:
    """Receipts of the document submitted with this guid."""
    return _receipts_of(db.reader(), guid)


def documents_of_set(
    db: Database, *, ebp_code: str, order_no: str, logistics_code: str, logistics_no: str
) -> list[DocumentRow]:
    """All current documents (deleted ones too) that belong to one parcel's set."""
    rows = db.reader().execute(
        f"SELECT {_DOC} FROM documents WHERE (ebp_code = ? AND order_no = ?) OR"
        " (logistics_code = ? AND logistics_no = ?) ORDER BY kind",
        (ebp_code, order_no, logistics_code, logistics_no),
    )
    return [_doc(r) for r in rows]


def _invt_no_field(db: Database, body: str) -> str:
    """SQL: the invtNo of an inventory's stored JSON, as the partial index on it is written."""
    return (
        f"(bondgate_jsonb({body}) ->> 'invtNo')"
        if db.dialect == "postgresql"
        else f"json_extract({body}, '$.invtNo')"
    )


def pending_inventories(
    db: Database,
    *,
    order_no: str | None = None,
    logistics_no: str | None = None,
    invt_no: str | None = None,
    limit: int = 100,
) -> list[DocumentRow]:
    """Declared inventories (not deleted) that have no clearance yet: their set is incomplete."""
    where, args = [], []
    for column, value in (("d.order_no", order_no), ("d.logistics_no", logistics_no)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if invt_no is not None:
        where.append(_invt_no_field(db, "d.body") + " = ?")
        args.append(invt_no)
    if not where:
        return []
    rows = db.reader().execute(
        f"SELECT {_D_DOC} FROM documents d LEFT JOIN clearances c ON c.clearance_id = d.doc_key"
        f" WHERE d.kind = 'CEB621' AND d.deleted = 0 AND c.clearance_id IS NULL AND {' AND '.join(where)}"
        " LIMIT ?",
        [*args, limit],
    )
    return [_doc(r) for r in rows]

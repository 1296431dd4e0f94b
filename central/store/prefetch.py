"""What one write transaction already knows about the rows its reads would find.

A batch of documents reads, per document and per parcel, a dozen rows that for new documents are not
there: the guid not taken, the document not declared, no inventory for its order yet, no clearance.
Each read is a round trip, and on PostgreSQL round trips are what intake costs: a read waits for
the server (about 140 µs and 80 µs of client CPU on the benches' machine), where a write is sent in
the pipeline without waiting (about 30 µs). So `Prefetched.load` asks once per batch, in a few
set-based queries, which of the batch's keys have rows at all; afterwards a read it can prove finds
nothing, or finds only rows this transaction wrote, is answered here, and every other read goes to
the store as before.

It is told of every write to documents, guids and clearances in the transaction (`save_document`,
`take_guid`, `saved_clearance`), so what it answers is what the store would answer: a document
written here is tracked while its key had no row at the start; a document of a key that had one
makes its order and logistics numbers "loud" (read from the store from then on). A question it
cannot answer exactly (two documents of one kind under one order number) goes to the store too.
Nobody else writes while the transaction holds the write lock, so the row numbers it hands out
(`next_document`, `next_clearance`) are the store's largest plus one, as SQLite's rowid is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from central.store import clearances as cstore
from central.store import documents as dstore
from central.store.connection import Connection, as_postgresql_stores, is_postgres

CHUNK = 400  # keys per IN list: well under SQLite's 32,766 bound parameters

Pair = tuple[str, str]  # (ebp_code, order_no) or (logistics_code, logistics_no)
DocKey = tuple[str, str]  # (kind, doc_key)


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def pairs_of(links: dict[str, str | None]) -> tuple[Pair | None, Pair | None]:
    """A document's (ebp_code, order_no) and (logistics_code, logistics_no), each None if incomplete."""
    ebp, order = links.get("ebp_code"), links.get("order_no")
    code, number = links.get("logistics_code"), links.get("logistics_no")
    return (ebp, order) if ebp and order else None, (code, number) if code and number else None


def _as_is(text: str) -> str:
    return text


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _present_pairs(conn: Connection, first: str, second: str, pairs: set[Pair]) -> set[Pair]:
    """The pairs some document has as (`first`, `second`), any kind, deleted or not. Grouped by the
    first column so each query walks the (first, second, …) index."""
    by_first: dict[str, list[str]] = {}
    for a, b in pairs:
        by_first.setdefault(a, []).append(b)
    found: set[Pair] = set()
    for a, seconds in by_first.items():
        for part in _chunks(sorted(set(seconds))):
            where = f"{first} = ? AND {second} IN ({_marks(len(part))})"
            rows = conn.execute(f"SELECT DISTINCT {second} FROM documents WHERE {where}", (a, *part))
            found.update((a, str(r[0])) for r in rows)
    return found


@dataclass
class Prefetched:
    """See the module's docstring. Empty (as `Prefetched()`), it knows nothing and every read goes
    to the store."""

    absent_guids: set[str] = field(default_factory=set)  # folded guids: no row, none taken since
    absent_documents: set[DocKey] = field(default_factory=set)  # no row at the start, none written since
    quiet_orders: set[Pair] = field(default_factory=set)  # no document had it at the start
    quiet_logistics: set[Pair] = field(default_factory=set)
    absent_clearances: set[str] = field(default_factory=set)  # no row, none saved since
    saved_clearances: set[str] = field(default_factory=set)  # saved in this transaction: a row is there
    # documents whose key had no row at the start, as this transaction last wrote them
    written: dict[DocKey, dstore.DocumentRow] = field(default_factory=dict)
    links: dict[DocKey, tuple[Pair | None, Pair | None]] = field(default_factory=dict)  # theirs, as pairs_of
    by_order: dict[Pair, dict[DocKey, None]] = field(default_factory=dict)  # quiet pair -> written keys
    by_logistics: dict[Pair, dict[DocKey, None]] = field(default_factory=dict)
    next_document: int | None = None  # None: not asked yet
    next_clearance: int | None = None
    # every key is held as the store holds it, so that what the queries return matches what was asked
    form: Callable[[str], str] = _as_is

    @classmethod
    def load(
        cls,
        conn: Connection,
        *,
        guids: Iterable[str],
        documents: Iterable[DocKey],
        orders: Iterable[Pair],
        logistics: Iterable[Pair],
        clearances: Iterable[str],
    ) -> Prefetched:
        """Ask which of these keys have rows, inside the write transaction, before anything is written."""
        known = cls(form=as_postgresql_stores if is_postgres(conn) else _as_is)
        form = known.form
        folded = sorted({form(g.upper()) for g in guids})
        taken: set[str] = set()
        for part in _chunks(folded):
            rows = conn.execute(f"SELECT folded FROM guids WHERE folded IN ({_marks(len(part))})", part)
            taken.update(str(r[0]) for r in rows)
        known.absent_guids = set(folded) - taken
        by_kind: dict[str, set[str]] = {}
        for kind, key in documents:
            by_kind.setdefault(kind, set()).add(form(key))
        for kind, keys in by_kind.items():
            present: set[str] = set()
            for part in _chunks(sorted(keys)):
                rows = conn.execute(
                    f"SELECT doc_key FROM documents WHERE kind = {dstore.kind_literal(kind)}"
                    f" AND doc_key IN ({_marks(len(part))})",
                    part,
                )
                present.update(str(r[0]) for r in rows)
            known.absent_documents.update((kind, k) for k in keys - present)
        order_pairs = {(form(a), form(b)) for a, b in orders}
        logistics_pairs = {(form(a), form(b)) for a, b in logistics}
        known.quiet_orders = order_pairs - _present_pairs(conn, "ebp_code", "order_no", order_pairs)
        known.quiet_logistics = logistics_pairs - _present_pairs(
            conn, "logistics_code", "logistics_no", logistics_pairs
        )
        ids = sorted({form(c) for c in clearances})
        present_ids: set[str] = set()
        for part in _chunks(ids):
            rows = conn.execute(
                f"SELECT clearance_id FROM clearances WHERE clearance_id IN ({_marks(len(part))})", part
            )
            present_ids.update(str(r[0]) for r in rows)
        known.absent_clearances = set(ids) - present_ids
        return known

    # --- guids ------------------------------------------------------------------------------------

    def take_guid(
        self, conn: Connection, *, guid: str, kind: str, doc_key: str, digest: str, now: str
    ) -> dstore.GuidUse | None:
        folded = self.form(guid.upper())
        if folded not in self.absent_guids:
            return dstore.take_guid(conn, guid=guid, kind=kind, doc_key=doc_key, digest=digest, now=now)
        self.absent_guids.discard(folded)
        dstore.add_guid(conn, guid=guid, kind=kind, doc_key=doc_key, digest=digest, now=now)
        return None

    # --- documents --------------------------------------------------------------------------------

    def get_document(self, conn: Connection, *, kind: str, doc_key: str) -> dstore.DocumentRow | None:
        key = (kind, self.form(doc_key))
        if key in self.absent_documents:
            return None
        if key in self.written:
            return self.written[key]
        return dstore.get_document(conn, kind=kind, doc_key=doc_key)

    def find_by_order(
        self, conn: Connection, *, kind: str, ebp_code: str, order_no: str
    ) -> list[dstore.DocumentRow]:
        pair = (self.form(ebp_code), self.form(order_no))
        rows = self._written_with(self.by_order, pair, 0, kind) if pair in self.quiet_orders else None
        if rows is not None:
            return rows
        return dstore.find_by_order(conn, kind=kind, ebp_code=ebp_code, order_no=order_no)

    def find_by_logistics(
        self, conn: Connection, *, kind: str, logistics_code: str, logistics_no: str
    ) -> list[dstore.DocumentRow]:
        pair = (self.form(logistics_code), self.form(logistics_no))
        rows = self._written_with(self.by_logistics, pair, 1, kind) if pair in self.quiet_logistics else None
        if rows is not None:
            return rows
        return dstore.find_by_logistics(
            conn, kind=kind, logistics_code=logistics_code, logistics_no=logistics_no
        )

    def count_inventories_for_logistics(
        self, conn: Connection, *, logistics_code: str, logistics_no: str, except_key: str
    ) -> int:
        pair = (self.form(logistics_code), self.form(logistics_no))
        if pair in self.quiet_logistics:
            rows = self._written_of(self.by_logistics, pair, 1, "CEB621")
            return sum(1 for r in rows if not r.deleted and self.form(r.doc_key) != self.form(except_key))
        return dstore.count_inventories_for_logistics(
            conn, logistics_code=logistics_code, logistics_no=logistics_no, except_key=except_key
        )

    def _written_of(
        self, index: dict[Pair, dict[DocKey, None]], pair: Pair, side: int, kind: str
    ) -> list[dstore.DocumentRow]:
        """The documents of `kind` this transaction wrote that now have `pair` (deleted ones too)."""
        return [
            self.written[key]
            for key in index.get(pair, ())
            if key[0] == kind and self.links[key][side] == pair
        ]

    def _written_with(
        self, index: dict[Pair, dict[DocKey, None]], pair: Pair, side: int, kind: str
    ) -> list[dstore.DocumentRow] | None:
        """The store's answer for a quiet pair (live documents, newest first), or None when it
        takes the store to order them (two live ones were written at one instant)."""
        live = [r for r in self._written_of(index, pair, side, kind) if not r.deleted]
        return live if len(live) <= 1 else None

    def save_document(
        self,
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
        """`documents.save_document`, and what it changes in what this knows."""
        dstore.save_document(
            conn,
            kind=kind,
            doc_key=doc_key,
            guid=guid,
            links=links,
            body=body,
            deleted=deleted,
            now=now,
            new=new,
            text=text,
            number=number,
        )
        if not new:  # an update, or an insert at the largest plus one when there was no row: ask again
            self.next_document = None
        elif self.next_document is not None:  # a row inserted at `number`, or at the largest plus one
            self.next_document = max(self.next_document, number or 0) + 1
        key = (kind, self.form(doc_key))
        order, logistics = pairs_of({k: None if v is None else self.form(v) for k, v in links.items()})
        if key not in self.absent_documents and key not in self.written:
            # a row the store had: whatever it now links to is read from the store from now on
            if order is not None:
                self.quiet_orders.discard(order)
            if logistics is not None:
                self.quiet_logistics.discard(logistics)
            return
        previous = self.written.get(key)
        self.absent_documents.discard(key)
        self.written[key] = dstore.DocumentRow(
            kind=kind,
            doc_key=doc_key,
            guid=guid,
            body=body,
            version=1 if previous is None else previous.version + 1,
            deleted=deleted,
            received_at=now,
        )
        self.links[key] = (order, logistics)
        if order is not None:
            self.by_order.setdefault(order, {})[key] = None
        if logistics is not None:
            self.by_logistics.setdefault(logistics, {})[key] = None

    def next_document_number(self, conn: Connection) -> int:
        if self.next_document is None:
            self.next_document = dstore.next_number(conn)
        return self.next_document

    # --- clearances -------------------------------------------------------------------------------

    def get_clearance(self, conn: Connection, *, clearance_id: str) -> cstore.ClearanceRow | None:
        if self.form(clearance_id) in self.absent_clearances:
            return None
        return cstore.get(conn, clearance_id=clearance_id)

    def next_clearance_number(self, conn: Connection) -> int:
        if self.next_clearance is None:
            self.next_clearance = cstore.next_number(conn)
        return self.next_clearance

    def was_saved(self, clearance_id: str) -> bool:
        """Whether this transaction saved the clearance (so its row is there)."""
        return self.form(clearance_id) in self.saved_clearances

    def saved_clearance(self, clearance_id: str, *, new: bool, number: int | None) -> None:
        """A clearance was saved (`new`: inserted, at `number` or the largest plus one)."""
        clearance_id = self.form(clearance_id)
        if not new and clearance_id not in self.saved_clearances:  # may have inserted: ask again
            self.next_clearance = None
        self.absent_clearances.discard(clearance_id)
        self.saved_clearances.add(clearance_id)
        if new and self.next_clearance is not None:
            self.next_clearance = max(self.next_clearance, number or 0) + 1

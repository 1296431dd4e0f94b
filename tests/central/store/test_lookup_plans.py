"""Every lookup on a request's path goes through an index (issue 11 J): by logisticsNo, orderNo and
invtNo (the clearance, its documents, its history, its customs receipts, an inventory still waiting
for its set), a guid's receipts, and what intake and customs receipts look up. Before, a lookup by
logisticsNo alone or by a sender-given invtNo scanned whole tables (135 ms at 21.5k clearances and
growing). The statements are the ones the code runs, traced, and each one's plan is asked of SQLite."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from central.api.routes import clearances as routes
from central.ceb.documents import DocKind, Receipt
from central.ceb.xml_in import parse_message
from central.ceb.xml_out import receipts_xml
from central.config import CentralSettings
from central.customs_receipts import apply_customs_receipts
from central.intake import submit
from central.keys import load_or_create_key
from central.platform import Platform
from central.store import clearances as cstore
from central.store import documents as dstore
from central.store.db import FEED_NOTIFY_FUNCTION, open_database
from testkit import factories

BIG_TABLES = {
    "documents",
    "clearances",
    "clearance_history",
    "receipts",
    "events",
    "feed",
    "customs_receipts",
}
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _plans(conn: sqlite3.Connection, statements: list[str]) -> list[tuple[str, str]]:
    scans = []
    for statement in statements:
        if not statement.lstrip().upper().startswith("SELECT") or FEED_NOTIFY_FUNCTION in statement:
            continue  # (the feed's wake-up call reads no table)
        for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}"):
            detail = row[3]
            if detail.startswith("SCAN") and detail.split()[1] in BIG_TABLES:
                scans.append((statement, detail))
    return scans


def test_every_lookup_on_a_request_path_uses_an_index(tmp_path: Path) -> None:
    settings = CentralSettings(database=tmp_path / "c.db", signing_key=tmp_path / "k", port=0, mode="customs")  # type: ignore[arg-type]
    db = open_database(settings.database)
    with db.write() as conn:
        conn.execute(
            "INSERT INTO parks (park_id, name, ems_nos, area_codes, created_at)"
            " VALUES ('P1', 'p', ?, '[]', 'x')",
            (f'["{factories.DEFAULT_EMS_NO}"]',),
        )
    platform = Platform(db=db, key=load_or_create_key(settings.signing_key), settings=settings)
    sets = factories.document_set(30, start=900)
    statements: list[str] = []
    db._writer.set_trace_callback(statements.append)
    reader = db.reader()
    reader.set_trace_callback(statements.append)
    try:
        # intake: complete sets, one set missing its order (pending), an inventory with its own invtNo
        for s in sets[:-1]:
            submit(platform, list(s.documents), actor="t", now=NOW)
        last = sets[-1]
        given = last.inventory.model_copy(update={"invtNo": "640920260000099"})
        submit(platform, [last.payment, last.waybill, given], actor="t", now=NOW)
        # the officer's lookups, as the route makes them
        [row] = cstore.find(reader, logistics_no=sets[0].waybill.logisticsNo)
        for kw in ({"logistics_no": row.logistics_no}, {"order_no": row.order_no}, {"invt_no": row.invt_no}):
            cstore.find(reader, **kw)  # type: ignore[arg-type]
            dstore.pending_inventories(db, **kw)  # type: ignore[arg-type]
        dstore.pending_inventories(db, invt_no="640920260000099")
        routes._detail(platform, row)  # documents of its set, history, customs receipts
        dstore.receipts_for_guid(db, guid=sets[0].order.guid)
        # a customs receipt, found by invtNo and by copNo
        receipt = Receipt(
            kind=DocKind.INVENTORY,
            guid=sets[1].inventory.guid,
            returnStatus="399",
            returnTime="20260601120000000",
            returnInfo="ok",
            key={
                "customsCode": "6409",
                "ebpCode": sets[1].order.ebpCode,
                "ebcCode": sets[1].order.ebcCode,
                "agentCode": factories.AGENT_CODE,
                "copNo": sets[1].inventory.copNo,
                "preNo": "B20260601000000001",
                "invtNo": "",
            },
        )
        apply_customs_receipts(
            platform,
            list(parse_message(receipts_xml(DocKind.INVENTORY, [receipt])).receipts),
            actor="t",
            now=NOW,
        )
    finally:
        db._writer.set_trace_callback(None)
        reader.set_trace_callback(None)
    assert len(statements) > 50
    assert _plans(reader, statements) == []
    db.close()

"""The release ledger (edge/release_ledger.py) and the store's migration to it, on real SQLite files.

A decision that releases appends a chained entry and carries its head in the release event; `verify`
finds any entry edited, removed or renumbered, a ledger cut back behind a release event still in the
outbox, and releases with no entry; a database from before the ledger gets one built from its markers."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import release_ledger, rules
from edge.checker import Checker
from edge.dbcheck import check
from edge.store import Store
from edge.store import schema as edge_store
from kernel.wire import GENESIS_HASH, Event, release_entry_hash
from testkit import factories

KEY = Ed25519PrivateKey.generate()
WEIGHT = Decimal("0.800")
CODES = [f"SF{i:010d}" for i in range(1, 6)]
NEVER_RELEASED = "SF0000000404"


def _store(path: Path) -> Store:
    store = Store(path)
    rows = []
    for i, code in enumerate([*CODES, NEVER_RELEASED], start=1):
        record = factories.feed_record(KEY, logisticsNo=code, seq=i)
        rows.append((record, record.model_dump_json()))
    store.write_sync(lambda c: Store.apply_feed(c, rows, len(rows), datetime.now(UTC).isoformat()))
    return store


def _checker(store: Store, *, verified: bool = True) -> Checker:
    """A checker as the agent has it once its start-up walk of the ledger is done (`verified`)."""
    checker = Checker(
        store=store,
        public_key=KEY.public_key(),
        tolerance=rules.Tolerance(absolute_kg=Decimal("0.05"), percent=Decimal("5")),
        edge_id="edge-1",
        staleness_limit_s=3600,
        park_id="P1",
    )
    if verified:
        asyncio.run(checker.verify_release_history())  # as the agent does at start
    return checker


def _release_all(store: Store) -> Checker:
    checker = _checker(store)

    async def run() -> None:
        for code in CODES:
            decided = await checker.decide("bench-1", rules.Observation(scanned_code=code, weight_kg=WEIGHT))
            assert decided.verdict is rules.Verdict.RELEASE

    asyncio.run(run())
    return checker


def _tamper(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DROP TRIGGER IF EXISTS release_ledger_no_update")
        conn.execute("DROP TRIGGER IF EXISTS release_ledger_no_delete")
        for sql in statements:
            conn.execute(sql)
    conn.close()


def test_each_release_is_a_chained_entry_whose_head_its_event_carries(tmp_path: Path) -> None:
    store = _store(tmp_path / "edge.db")
    _release_all(store)
    entries = list(Store.ledger_entries(store.reader()))
    assert [e[0] for e in entries] == [1, 2, 3, 4, 5]
    prev = GENESIS_HASH
    for n, no, carrier, decision_id, version, prev_hash, entry_hash in entries:
        assert prev_hash == prev
        prev = release_entry_hash(
            prev,
            n=n,
            logistics_no=no,
            logistics_code=carrier,
            decision_id=decision_id,
            record_version=version,
        )
        assert prev == entry_hash
    releases = [
        Event.model_validate_json(text) for _, text in store.pending_rows(100) if '"kind":"release"' in text
    ]
    assert [(e.body.ledger_n, e.body.ledger_hash) for e in releases] == [(e[0], e[6]) for e in entries]
    assert all(e.body.decision_id for e in releases)
    result = release_ledger.verify(store.reader())
    assert (result.entries, result.problems()) == (5, [])
    store.close()
    assert check(tmp_path / "edge.db") == []


TAMPERING = [
    ("UPDATE release_ledger SET logistics_no = 'SF0000000099' WHERE n = 2", "entry 2 (", "does not hash"),
    ("DELETE FROM release_ledger WHERE n = 3", "entry 4 follows entry 2", "has no ledger entry"),
    ("UPDATE release_ledger SET n = 9 WHERE n = 5", "entry 9 follows entry 4", "release event"),
    ("DELETE FROM release_ledger WHERE n = 5", "reports entry 5", "has no ledger entry"),
]


@pytest.mark.parametrize(("sql", "first", "also"), TAMPERING)
def test_an_edited_removed_or_renumbered_entry_is_found(
    tmp_path: Path, sql: str, first: str, also: str
) -> None:
    store = _store(tmp_path / "edge.db")
    _release_all(store)
    store.close()
    _tamper(tmp_path / "edge.db", sql)
    store = Store(tmp_path / "edge.db")
    result = release_ledger.verify(store.reader())
    text = "\n".join(result.broken or [])
    assert first in text and also in text, text
    checker = _checker(store, verified=False)
    asyncio.run(checker.verify_release_history())
    assert checker.release_history_broken  # from now on every parcel is held
    held = asyncio.run(
        checker.decide("bench-1", rules.Observation(scanned_code=NEVER_RELEASED, weight_kg=WEIGHT))
    )
    assert held.codes == ("ALREADY_RELEASED",) and held.reason.startswith("Release history damaged")
    alarms = [Event.model_validate_json(t) for _, t in store.pending_rows(100) if '"kind":"alarm"' in t]
    assert [a.body.reason for a in alarms] == ["release_ledger_damaged"]
    store.close()
    assert any(first in p for p in check(tmp_path / "edge.db"))


def test_a_missing_marker_is_named_but_holds_only_its_parcel(tmp_path: Path) -> None:
    store = _store(tmp_path / "edge.db")
    _release_all(store)
    store.write_sync(lambda c: c.execute("DELETE FROM releases WHERE logistics_no = ?", (CODES[1],)))
    checker = _checker(store, verified=False)
    result = asyncio.run(checker.verify_release_history())
    assert result.broken == [] and result.unmarked and CODES[1] in result.unmarked[0]
    assert not checker.release_history_broken
    held = asyncio.run(checker.decide("bench-1", rules.Observation(scanned_code=CODES[1], weight_kg=WEIGHT)))
    assert held.codes == ("ALREADY_RELEASED",)
    assert checker.missing_markers == 1
    checked = json.loads(
        store.reader().execute("SELECT checked FROM decisions WHERE id = ?", (held.id,)).fetchone()[0]
    )
    assert checked["release_evidence"][0] == "release ledger entry 2"
    store.close()


def test_a_database_from_before_the_ledger_is_migrated_from_its_markers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "edge.db"
    with monkeypatch.context() as old:
        old.setattr(edge_store, "MIGRATIONS", edge_store.MIGRATIONS[:1])
        store = Store(path)
        record = factories.feed_record(KEY, logisticsNo=CODES[0], version=3)

        def v1(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO clearances VALUES (?, ?, 7, 3, '800', 0, ?)",
                (record.logisticsNo, record.logisticsCode, record.model_dump_json()),
            )
            conn.execute(
                "INSERT INTO decisions (decision_id, station, code, logistics_code, verdict, codes, reason,"
                " checked, created_at) VALUES ('d-1', 'bench-1', ?, ?, 'RELEASE', '[]', 'ok', ?, 'now')",
                (record.logisticsNo, record.logisticsCode, json.dumps({"record_version": 3})),
            )
            conn.execute("INSERT INTO releases VALUES (?, ?, 1)", (record.logisticsNo, record.logisticsCode))
            conn.execute(
                "UPDATE sync_state SET cursor = 7, last_success = ?", (datetime.now(UTC).isoformat(),)
            )

        store.write_sync(v1)
        store.close()
    store = Store(path)  # migration 2
    conn = store.reader()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(edge_store.MIGRATIONS)
    assert Store.record_facts(conn, record.logisticsNo, record.logisticsCode).version_seen == 3
    assert store.sync_state()["checkpoint"] is None and store.sync_state()["cursor"] == 7
    [entry] = list(Store.ledger_entries(conn))
    assert entry[:5] == (1, record.logisticsNo, record.logisticsCode, "d-1", 3)
    assert release_ledger.verify(conn).problems() == []
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.write_sync(lambda c: c.execute("DELETE FROM release_ledger"))
    seen = asyncio.run(
        _checker(store).decide(
            "bench-1", rules.Observation(scanned_code=record.logisticsNo, weight_kg=WEIGHT)
        )
    )
    assert seen.codes == ("ALREADY_RELEASED",)
    store.close()
    assert check(path) == []


def test_until_the_ledger_has_been_walked_no_parcel_is_released(tmp_path: Path) -> None:
    """Found by an outside tester: the walk at start ran beside the stations, which released a
    parcel whose entries had been removed before it finished. Until it has, every parcel holds."""
    store = _store(tmp_path / "edge.db")
    checker = _checker(store, verified=False)
    held = asyncio.run(
        checker.decide("bench-1", rules.Observation(scanned_code=NEVER_RELEASED, weight_kg=WEIGHT))
    )
    assert held.codes == ("ALREADY_RELEASED",) and "still being checked" in held.reason
    asyncio.run(checker.verify_release_history())
    released = asyncio.run(
        checker.decide("bench-1", rules.Observation(scanned_code=NEVER_RELEASED, weight_kg=WEIGHT))
    )
    assert released.codes == ()
    store.close()


def test_a_ledger_row_of_the_wrong_type_fails_closed(tmp_path: Path) -> None:
    """Found by an outside tester: a prev_hash stored as a BLOB crashed the walk, which failed open
    (no parcel held) and `db check` with a traceback."""
    store = _store(tmp_path / "edge.db")
    _release_all(store)
    store.close()
    _tamper(tmp_path / "edge.db", "UPDATE release_ledger SET prev_hash = CAST(prev_hash AS BLOB) WHERE n = 2")
    store = Store(tmp_path / "edge.db")
    checker = _checker(store, verified=False)
    asyncio.run(checker.verify_release_history())
    assert checker.release_history_broken
    held = asyncio.run(
        checker.decide("bench-1", rules.Observation(scanned_code=NEVER_RELEASED, weight_kg=WEIGHT))
    )
    assert held.codes == ("ALREADY_RELEASED",)
    store.close()
    assert any("release ledger" in p for p in check(tmp_path / "edge.db"))

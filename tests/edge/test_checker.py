"""Checker against a real SQLite store: what a decision reads, it reads inside its own transaction —
the record, its signature, the release marker and the age of the last sync."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import rules
from edge.checker import Checker, DecisionRecord
from edge.store import Store
from edge.verified import VerifiedTexts
from testkit import factories

CODE = "SF1234567890"


def _store_with_record(path: Path, key: Ed25519PrivateKey, last_sync: datetime) -> Store:
    record = factories.feed_record(key, logisticsNo=CODE)
    store = Store(path)
    rows = [(record, record.model_dump_json())]
    store.write_sync(lambda c: Store.apply_feed(c, rows, 1, last_sync.isoformat()))
    return store


def _checker(store: Store, key: Ed25519PrivateKey, verified: VerifiedTexts | None = None) -> Checker:
    checker = Checker(
        store=store,
        public_key=key.public_key(),
        tolerance=rules.Tolerance(absolute_kg=Decimal("0.05"), percent=Decimal("5")),
        edge_id="edge-1",
        staleness_limit_s=3600,
        park_id="P1",
        verified=verified if verified is not None else VerifiedTexts(),
    )
    asyncio.run(checker.verify_release_history())  # as the agent does at start
    return checker


def _decide(store: Store, key: Ed25519PrivateKey, checker: Checker | None = None) -> DecisionRecord:
    seen = rules.Observation(scanned_code=CODE, weight_kg=Decimal("0.800"))
    return asyncio.run((checker or _checker(store, key)).decide("line-1", seen))


def _checked(store: Store, decision: DecisionRecord) -> dict[str, Any]:
    row = store.reader().execute("SELECT checked FROM decisions WHERE id = ?", (decision.id,)).fetchone()
    return json.loads(row[0])


def test_a_fresh_cache_releases_and_a_stale_one_holds(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    fresh = _store_with_record(tmp_path / "fresh.db", key, datetime.now(UTC))
    stale = _store_with_record(tmp_path / "stale.db", key, datetime.now(UTC) - timedelta(hours=2))
    try:
        assert _decide(fresh, key).verdict == rules.Verdict.RELEASE
        held = _decide(stale, key)
        assert (held.verdict, held.codes) == (rules.Verdict.HOLD, ("STALE_CACHE",))
        assert 7100 < (Store.sync_age_s(stale.reader()) or 0) < 7300
    finally:
        fresh.close()
        stale.close()


def test_a_store_that_never_synced_has_no_age(tmp_path: Path) -> None:
    store = Store(tmp_path / "edge.db")
    try:
        assert Store.sync_age_s(store.reader()) is None
    finally:
        store.close()


def test_a_cached_row_that_no_longer_parses_is_held_as_not_genuine(tmp_path: Path) -> None:
    """A damaged or hand-edited row must end in a HOLD with a reason, not in a decision that fails."""
    key = Ed25519PrivateKey.generate()
    store = _store_with_record(tmp_path / "edge.db", key, datetime.now(UTC))
    try:
        store.write_sync(lambda c: c.execute("UPDATE clearances SET record = '{\"seq\": 1}'"))
        held = _decide(store, key)
        assert (held.verdict, held.codes) == (rules.Verdict.HOLD, ("SIGNATURE_INVALID",))
        store.write_sync(lambda c: c.execute("UPDATE sync_state SET last_success = 'yesterday'"))
        assert Store.sync_age_s(store.reader()) is None
        assert "STALE_CACHE" in _decide(store, key).codes
        decided = store.reader().execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
        assert decided == 2
    finally:
        store.close()


def test_bytes_verified_once_are_trusted_until_they_change(tmp_path: Path) -> None:
    """A second look at the same stored text skips the Ed25519 check and says so; a text changed on
    disk is checked in full again, and refused."""
    key = Ed25519PrivateKey.generate()
    store = _store_with_record(tmp_path / "edge.db", key, datetime.now(UTC))
    verified = VerifiedTexts()
    checker = _checker(store, key, verified)
    try:
        first = _decide(store, key, checker)
        assert first.verdict == rules.Verdict.RELEASE
        assert _checked(store, first)["signature_checked"] == "now"
        again = _decide(store, key, checker)  # the same parcel at the gate
        assert again.codes == ("ALREADY_RELEASED",)
        assert _checked(store, again)["signature_checked"] == "earlier, same bytes"
        assert _checked(store, again)["signature_valid"] is True

        def heavier(conn: sqlite3.Connection) -> None:
            (text,) = conn.execute("SELECT record FROM clearances").fetchone()
            altered = json.loads(text) | {"grossWeight": "9.000"}
            conn.execute("UPDATE clearances SET record = ?", (json.dumps(altered),))

        store.write_sync(heavier)
        altered = _decide(store, key, checker)
        assert "SIGNATURE_INVALID" in altered.codes
        assert _checked(store, altered)["signature_checked"] == "now"
        assert _checked(store, altered)["signature_valid"] is False
    finally:
        store.close()


@pytest.mark.parametrize(
    ("blob", "verdict"),
    [
        ("CAST(record AS BLOB)", rules.Verdict.RELEASE),  # the same signed bytes, stored as a BLOB
        ("x'00ff7b'", rules.Verdict.HOLD),  # not text at all
    ],
)
def test_a_record_stored_as_a_blob_is_read_as_its_text_or_held(
    tmp_path: Path, blob: str, verdict: rules.Verdict
) -> None:
    """A hand-edited row whose value is a BLOB must not break the decision; bytes that are the signed
    text are that text (and verified as such), anything else is held as not genuine."""
    key = Ed25519PrivateKey.generate()
    store = _store_with_record(tmp_path / "edge.db", key, datetime.now(UTC))
    verified = VerifiedTexts()
    try:
        store.write_sync(lambda c: c.execute(f"UPDATE clearances SET record = {blob}"))
        decided = _decide(store, key, _checker(store, key, verified))
        assert decided.verdict == verdict
        if verdict == rules.Verdict.HOLD:
            assert decided.codes == ("SIGNATURE_INVALID",)
            assert len(verified) == 0
        assert _checked(store, decided)["signature_checked"] == "now"
    finally:
        store.close()

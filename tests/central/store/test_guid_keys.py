"""Schema 0013: guids keyed by the form they are looked up by, and no index nothing reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from central.store.db import open_database


def test_guids_are_keyed_by_their_folded_form_after_0013(tmp_path: Path, monkeypatch: Any) -> None:
    """0013 re-keys guids by upper(guid) (the form they are looked up by): rows from before keep
    their kind, digest and the guid as first given; two taken in different letters before 0010
    made them the same guid keep the first."""
    from central.store import db as central_db
    from central.store import schema

    path = tmp_path / "c.db"
    with monkeypatch.context() as old:
        old.setattr(central_db, "MIGRATIONS", schema.MIGRATIONS[:9])  # up to 0009: no folded column yet
        db = open_database(path)
        with db.write() as conn:
            conn.executemany(
                "INSERT INTO guids (guid, kind, digest, taken_at) VALUES (?, ?, ?, ?)",
                [
                    ("ab-1", "CEB311", "d1", "t1"),
                    ("AB-1", "CEB411", "d2", "t2"),
                    ("cd-2", "CEB621", None, "t3"),
                ],
            )
        db.close()
    db = open_database(path)
    rows = (
        db.reader()
        .execute("SELECT folded, guid, kind, digest, taken_at FROM guids ORDER BY folded")
        .fetchall()
    )
    assert [tuple(r) for r in rows] == [
        ("AB-1", "ab-1", "CEB311", "d1", "t1"),
        ("CD-2", "cd-2", "CEB621", None, "t3"),
    ]
    indexes = {r[0] for r in db.reader().execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "documents_guid" not in indexes
    db.close()


def test_receipts_of_guids_taken_before_0014_are_found_through_their_document(
    tmp_path: Path, monkeypatch: Any
) -> None:
    from central.store import db as central_db
    from central.store import documents as dstore
    from central.store import schema

    path = tmp_path / "c.db"
    with monkeypatch.context() as old:
        old.setattr(central_db, "MIGRATIONS", schema.MIGRATIONS[:13])
        db = open_database(path)
        with db.write() as conn:
            conn.execute(
                "INSERT INTO guids (folded, guid, kind, digest, taken_at)"
                " VALUES ('AB-1', 'ab-1', 'CEB311', 'd', 't')"
            )
            conn.executemany(
                "INSERT INTO receipts (kind, doc_key, guid, key_fields, return_status, return_time,"
                " return_info) VALUES (?, ?, ?, '{}', ?, 't', 'i')",
                [
                    ("CEB311", "E|O1", "ab-1", "120"),
                    ("CEB311", "E|O1", "other", "120"),
                    ("CEB311", "E|O1", "ab-1", "100"),
                ],
            )
        db.close()
    db = open_database(path)
    assert [r.return_status for r in dstore.receipts_for_guid(db, guid="ab-1")] == ["120", "100"]
    assert dstore.receipts_for_guid(db, guid="AB-1") == []  # receipts are under the guid as given
    indexes = {r[0] for r in db.reader().execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "receipts_guid" not in indexes
    db.close()

"""Schema 0013: guids keyed by the form they are looked up by, and no index nothing reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from central.store.db import Database


def test_guids_are_keyed_by_their_folded_form_after_0013(tmp_path: Path, monkeypatch: Any) -> None:
    """0013 re-keys guids by upper(guid) (the form they are looked up by): rows from before keep
    their kind, digest and the guid as first given; two taken in different letters before 0010
    made them the same guid keep the first."""
    from central.store import db as central_db
    from central.store import schema

    path = tmp_path / "c.db"
    with monkeypatch.context() as old:
        old.setattr(central_db, "MIGRATIONS", schema.MIGRATIONS[:9])  # up to 0009: no folded column yet
        db = Database(path)
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
    db = Database(path)
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

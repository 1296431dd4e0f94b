"""The store's WAL checkpoints: off the decision's commit, and the log still bounded."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from edge.store import CHECKPOINT_AFTER_COMMITS, Store, new_event
from edge.store import writer as store_module
from kernel.timefmt import utc_now
from kernel.wire import EventBody, EventKind


def _event(conn: sqlite3.Connection) -> None:
    body = EventBody(logisticsNo="SF1234567890", verdict="HOLD", codes=["NOT_FOUND"], detail="test")
    new_event(
        conn, edge_id="edge-1", kind=EventKind.DISCREPANCY, station="line-1", body=body, occurred_at=utc_now()
    )


def _wal_frames(path: Path) -> int:
    """Frames in the log now, read by a connection of the test's own (a checkpoint of nothing)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_autocheckpoint=0")
        return int(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
    finally:
        conn.close()


def test_commits_never_checkpoint_and_a_background_checkpoint_runs(tmp_path: Path) -> None:
    store = Store(tmp_path / "edge.db")
    try:
        assert store._writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        for _ in range(2 * CHECKPOINT_AFTER_COMMITS + 1):
            store.write_sync(_event)
    finally:
        store.close()  # waits for the checkpoint thread
    stats = store.checkpoints
    assert stats.runs >= 1
    assert stats.failures == 0
    assert stats.by_writer == 0
    again = Store(tmp_path / "edge.db")
    try:
        assert again.backlog()["size"] == 2 * CHECKPOINT_AFTER_COMMITS + 1
        assert again.integrity_check() == ["ok"]
    finally:
        again.close()


def test_a_log_left_too_long_is_checkpointed_by_the_writer_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If background checkpoints never catch up (a writer that never pauses), the writer does one
    between two transactions — nothing is written meanwhile, so it copies the whole log back."""
    monkeypatch.setattr(store_module, "WAL_FRAMES_LIMIT", 10)
    store = Store(tmp_path / "edge.db")
    try:
        store.checkpoints.wal_frames = 11  # as if the last background checkpoint had seen a long log
        for _ in range(CHECKPOINT_AFTER_COMMITS):
            store.write_sync(_event)
        stats = store.checkpoints
        assert stats.by_writer == 1
        assert stats.backfilled > 10
        assert stats.wal_frames == 0  # it copied the whole log back: the next write starts it over
        store.write_sync(_event)
        assert _wal_frames(store.path) < stats.backfilled
    finally:
        store.close()
    assert store.checkpoints.failures == 0


def test_a_write_that_need_not_be_durable_leaves_the_next_one_durable(tmp_path: Path) -> None:
    store = Store(tmp_path / "edge.db")

    def event_at(conn: sqlite3.Connection) -> int:
        _event(conn)
        return int(conn.execute("PRAGMA synchronous").fetchone()[0])

    async def scenario() -> tuple[int, int]:
        during = await store.write(event_at, durable=False)
        with pytest.raises(ZeroDivisionError):
            await store.write(lambda conn: 1 / 0, durable=False)
        return during, await store.write(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0])

    try:
        assert asyncio.run(scenario()) == (1, 2)  # NORMAL for that one; FULL again, also after a failure
        assert store.backlog()["size"] == 1
    finally:
        store.close()


def test_db_check_names_a_row_that_is_no_event_and_a_file_that_is_no_database(tmp_path: Path) -> None:
    """Found by an outside tester: both gave a traceback."""
    from edge.dbcheck import check

    store = Store(tmp_path / "edge.db")
    store.close()
    with sqlite3.connect(tmp_path / "edge.db") as conn:
        conn.execute("INSERT INTO outbox (seq, event, created_at) VALUES (1, 'not json', 'now')")
    problems = check(tmp_path / "edge.db")
    assert any(p.startswith("outbox row 1: not an event") for p in problems), problems
    (tmp_path / "junk.db").write_bytes(b"this is not SQLite" * 100)
    [problem] = check(tmp_path / "junk.db")
    assert "cannot be read as the edge's database" in problem

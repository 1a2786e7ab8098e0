"""Local SQLite state: batched audit writes, bounded tables, durable twin and fencing.

What a user notices: the audit trail, rollups and quarantine are queryable after a
restart, bounded tables never grow past their limit, and a failing disk is logged and
counted without stopping anything.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.errors import StoreError
from edge.store import (
    AsyncStore,
    AuditWriter,
    EdgeStore,
    QuarantineEntry,
    RollupBook,
    TwinRecord,
)
from edge.store.records import QUARANTINE_KEEP_BYTES, AuditBatch


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    s = await AsyncStore.open(tmp_path, max_quarantine=5, max_decisions=10)
    yield s
    await s.aclose()


def entry(i: int, size: int = 10) -> QuarantineEntry:
    return QuarantineEntry(f"baton.d.d{i}.r", b"x" * size, "malformed", "bad", 1000 + i)


async def test_writer_batches_and_the_quarantine_stays_bounded(store: AsyncStore) -> None:
    writer = AuditWriter(store, flush_interval_s=60)
    for i in range(8):
        writer.quarantine(entry(i))
    writer.quarantine(entry(99, size=QUARANTINE_KEEP_BYTES * 2))
    assert writer.pending == 9
    await writer.flush()
    assert writer.pending == 0 and writer.flushed == 9

    rows = await store.call(EdgeStore.quarantine)
    assert len(rows) == 5  # bounded: the newest five
    assert rows[0]["topic"] == "baton.d.d99.r"
    assert rows[0]["size"] == QUARANTINE_KEEP_BYTES * 2
    assert len(rows[0]["payload"]) == QUARANTINE_KEEP_BYTES


async def test_pending_entries_are_bounded_and_drops_counted(store: AsyncStore) -> None:
    writer = AuditWriter(store, flush_interval_s=60, max_pending=3)
    for i in range(5):
        writer.quarantine(entry(i))
    assert writer.pending == 3 and writer.dropped == 2


async def test_rollups_merge_across_batches_and_restarts(tmp_path: Path) -> None:
    book = RollupBook()
    book.add("d1", {"t": 10.0, "p": 1.0}, wall_ms=60_000 * 7 + 5)
    book.add("d1", {"t": 30.0}, wall_ms=60_000 * 7 + 9)
    book.add("d1", {"t": 99.0}, wall_ms=60_000 * 8)
    first = book.take()
    assert len(book) == 0
    book.add("d1", {"t": 20.0}, wall_ms=60_000 * 7 + 30)

    s = EdgeStore(tmp_path / "a.db", max_quarantine=5, max_decisions=5)
    s.write(AuditBatch(rollups=first))
    s.close()
    s = EdgeStore(tmp_path / "a.db", max_quarantine=5, max_decisions=5)
    s.write(AuditBatch(rollups=book.take()))
    rows = s.rollups("d1", since_ms=60_000 * 7)
    s.close()
    t7 = next(r for r in rows if r["metric"] == "t" and r["minute_ms"] == 60_000 * 7)
    assert (t7["min"], t7["max"], t7["mean"], t7["count"]) == (10.0, 30.0, 20.0, 3)
    assert {(r["metric"], r["minute_ms"]) for r in rows} == {
        ("t", 420_000), ("p", 420_000), ("t", 480_000),
    }  # fmt: skip


async def test_twin_and_fencing_survive_reopening(tmp_path: Path) -> None:
    s = EdgeStore(tmp_path / "a.db", max_quarantine=5, max_decisions=5)
    s.save_twin(TwinRecord("d1", 4, {"mode": "eco"}, 4, {"mode": "eco"}, 1))
    s.write(AuditBatch(fencing={"s1": 3}))
    s.write(AuditBatch(fencing={"s1": 2, "s2": 1}))  # never lowers an epoch
    s.close()
    s = EdgeStore(tmp_path / "a.db", max_quarantine=5, max_decisions=5)
    assert s.twins()["d1"].applied_version == 4
    assert s.fencing() == {"s1": 3, "s2": 1}
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s.close()


async def test_a_failing_disk_is_counted_not_fatal(store: AsyncStore) -> None:
    writer = AuditWriter(store, flush_interval_s=60)
    await store.call(lambda s: s.db.execute("PRAGMA query_only = ON"))  # writes now fail
    writer.quarantine(entry(1))
    await writer.flush()
    assert writer.errors == 1 and writer.pending == 0


def test_an_unwritable_state_dir_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError):
        EdgeStore(tmp_path / "file" / "edge.db", max_quarantine=1, max_decisions=1)
    assert sqlite3.sqlite_version

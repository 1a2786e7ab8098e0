"""Agent sessions in the gateway's SQLite (`edge.db`), on the store's own thread.

    agent_sessions   one row per session: owner, epoch, last seq, the latest snapshot
                     (msgpack), written with synchronous=FULL: a handoff or a restart
                     continues from it, so a lost one would lose the conversation
    agent_events     every event, (session, seq) unique, msgpack, and `published`: the
                     audit stream's outbox (rows with 0 are not on the hub yet)

`SessionStore` is the `Outbox` of `shared.agent.AuditStream`, so the edge keeps every
event across a restart or an outage and publishes it when the hub is back. Published
rows beyond `keep_events` are trimmed, oldest first; unpublished ones never are.
`SessionStore.kept()` records the events of a session a `SessionRunner` runs (the
daemon's): the runner appends them to the hub itself, so they go in as published.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from edge.store import AsyncStore, EdgeStore
from shared.agent import OutboxEntry
from shared.codec import decode, encode
from shared.messages import AgentEventBase, SessionSnapshot, now_ms

log = logging.getLogger(__name__)

KEEP_EVENTS = 200_000
# Snapshots are read back from our own disk: the network's message limit does not apply.
MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS agent_sessions (
        session TEXT PRIMARY KEY, gw TEXT, owner TEXT, epoch INTEGER, last_seq INTEGER,
        snapshot BLOB, created_ms INTEGER, updated_ms INTEGER)""",
    """CREATE TABLE IF NOT EXISTS agent_events (
        session TEXT, seq INTEGER, type TEXT, epoch INTEGER, ts_ms INTEGER, payload BLOB,
        published INTEGER DEFAULT 0, PRIMARY KEY (session, seq))""",
    "CREATE INDEX IF NOT EXISTS agent_events_outbox ON agent_events (published)",
)
_SAVE = """
INSERT INTO agent_sessions (session, gw, owner, epoch, last_seq, snapshot, created_ms, updated_ms)
VALUES (:session, :gw, :owner, :epoch, :last_seq, :snapshot, :now, :now)
ON CONFLICT (session) DO UPDATE SET gw = excluded.gw, owner = excluded.owner,
  epoch = excluded.epoch, last_seq = excluded.last_seq, snapshot = excluded.snapshot,
  updated_ms = excluded.updated_ms
"""
_TRIM = """
DELETE FROM agent_events WHERE published = 1 AND rowid <= (SELECT max(rowid) FROM agent_events) - ?
"""


class SessionStore:
    """Open with `await SessionStore.open(store)` (creates the tables once)."""

    def __init__(self, store: AsyncStore, *, keep_events: int = KEEP_EVENTS) -> None:
        self._store = store
        self._keep = keep_events

    @classmethod
    async def open(cls, store: AsyncStore, *, keep_events: int = KEEP_EVENTS) -> SessionStore:
        await store.call(_create)
        return cls(store, keep_events=keep_events)

    # -- SessionRecorder / Outbox ------------------------------------------------------

    async def record(self, event: AgentEventBase) -> None:
        await self._store.call(_insert_event, _event_row(event))

    def kept(self) -> KeptRecorder:
        """The recorder of sessions whose runner publishes their events itself."""
        return KeptRecorder(self._store)

    async def checkpoint(self, snapshot: SessionSnapshot) -> None:
        await self._store.call(_save_snapshot, snapshot)

    async def pending(self, limit: int) -> list[OutboxEntry]:
        rows = await self._store.call(_unpublished, limit)
        return [OutboxEntry(row[0], row[1], row[2], row[3]) for row in rows]

    async def sent(self, entries: Sequence[OutboxEntry]) -> None:
        await self._store.call(_mark_sent, [e.key for e in entries], self._keep)

    # -- reads -------------------------------------------------------------------------

    async def load(self, session: str) -> SessionSnapshot | None:
        data = await self._store.call(_snapshot_blob, session)
        return decode(data, SessionSnapshot, max_bytes=MAX_SNAPSHOT_BYTES) if data else None

    async def events(self, session: str, after_seq: int = 0) -> list[AgentEventBase]:
        """The session's events after `after_seq`, in order (a stream resumes from here)."""
        blobs = await self._store.call(_event_blobs, session, after_seq)
        events = [decode(blob) for blob in blobs]
        return [event for event in events if isinstance(event, AgentEventBase)]

    async def sessions(self) -> list[dict[str, Any]]:
        return await self._store.call(_session_rows)

    async def unpublished(self) -> int:
        return await self._store.call(_count_unpublished)


class KeptRecorder:
    """A `SessionRecorder` that keeps events and checkpoints, already marked published:
    no audit stream (the daemon's, or a `baton chat` on the same database) sends them
    again, where a second publisher would cost the runner's log a duplicate per event."""

    def __init__(self, store: AsyncStore) -> None:
        self._store = store

    async def record(self, event: AgentEventBase) -> None:
        await self._store.call(_insert_event, {**_event_row(event), "published": 1})

    async def checkpoint(self, snapshot: SessionSnapshot) -> None:
        await self._store.call(_save_snapshot, snapshot)


def _create(store: EdgeStore) -> None:
    with store.db.conn:
        for statement in _SCHEMA:
            store.db.execute(statement)


def _event_row(event: AgentEventBase) -> dict[str, Any]:
    return {
        "session": event.session, "seq": event.seq, "type": getattr(event, "type", ""),
        "epoch": event.epoch, "ts_ms": event.ts_ms, "payload": encode(event),
    }  # fmt: skip


def _insert_event(store: EdgeStore, row: dict[str, Any]) -> None:
    with store.db.conn:
        cursor = store.db.execute(
            "INSERT OR IGNORE INTO agent_events "
            "(session, seq, type, epoch, ts_ms, payload, published) "
            "VALUES (:session, :seq, :type, :epoch, :ts_ms, :payload, :published)",
            {"published": 0, **row},
        )
    if cursor.rowcount == 0:  # a seq is never reused; a repeat is a replay, kept once
        log.warning("session %s event %d already recorded", row["session"], row["seq"])


def _save_snapshot(store: EdgeStore, snapshot: SessionSnapshot) -> None:
    row = {
        "session": snapshot.session, "gw": snapshot.gw, "owner": snapshot.owner,
        "epoch": snapshot.epoch, "last_seq": snapshot.last_seq, "snapshot": encode(snapshot),
        "now": now_ms(),
    }  # fmt: skip
    store.db.execute("PRAGMA synchronous=FULL")
    try:
        with store.db.conn:
            store.db.execute(_SAVE, row)
    finally:
        store.db.execute("PRAGMA synchronous=NORMAL")


def _unpublished(store: EdgeStore, limit: int) -> list[tuple[int, str, int, bytes]]:
    return store.db.execute(
        "SELECT rowid, session, seq, payload FROM agent_events WHERE published = 0 "
        "ORDER BY rowid LIMIT ?",
        [limit],
    ).fetchall()


def _mark_sent(store: EdgeStore, keys: list[int], keep: int) -> None:
    with store.db.conn:
        store.db.conn.executemany(
            "UPDATE agent_events SET published = 1 WHERE rowid = ?", [(k,) for k in keys]
        )
        store.db.execute(_TRIM, [keep])


def _snapshot_blob(store: EdgeStore, session: str) -> bytes | None:
    row = store.db.execute(
        "SELECT snapshot FROM agent_sessions WHERE session = ?", [session]
    ).fetchone()
    return row[0] if row else None


def _event_blobs(store: EdgeStore, session: str, after_seq: int) -> list[bytes]:
    rows = store.db.execute(
        "SELECT payload FROM agent_events WHERE session = ? AND seq > ? ORDER BY seq",
        [session, after_seq],
    ).fetchall()
    return [row[0] for row in rows]


def _session_rows(store: EdgeStore) -> list[dict[str, Any]]:
    cursor = store.db.execute(
        "SELECT session, gw, owner, epoch, last_seq, created_ms, updated_ms "
        "FROM agent_sessions ORDER BY updated_ms DESC"
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _count_unpublished(store: EdgeStore) -> int:
    row = store.db.execute("SELECT count(*) FROM agent_events WHERE published = 0").fetchone()
    return int(row[0])

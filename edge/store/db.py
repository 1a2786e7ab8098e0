"""The gateway's SQLite state (`<state_dir>/edge.db`), through the stdlib `sqlite3`.

    decisions    reflex decisions: rule/model, version, inputs, latency, the command sent
    actions      every command sent or refused, whatever asked for it
    quarantine   refused payloads: topic, first bytes, reason (bounded)
    rollups      per device, metric and minute: min / max / mean / count
    twin         desired and reported state per device (synchronous=FULL)
    fencing      highest session epoch seen, so a restart still refuses a zombie
    tickets      tickets the cloud planner opened (`gw.ticket`) for the site's
                 technicians, by ref; open or cancelled (synchronous=FULL)

WAL mode. Audit batches commit with synchronous=NORMAL (a power cut may lose the last
batch, never corrupt the file); twin writes switch to FULL, since a lost applied version
would make the gateway re-apply or report a state it does not have. Every method blocks:
the daemon calls them through `AsyncStore`, on one thread.

The statements are plain SQL over `sqlite3`, with the schema sqlite-utils created
before (same tables, types, keys and index names, so existing files open unchanged).
sqlite-utils itself costs a rules-only gateway ~3 MB of its 50 MB (with dateutil,
pluggy and ctypes) and, per audit batch, Python time that holds the GIL against the
reflex loop; it is loaded only for `EdgeStore.db`, which the local agent queries.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.errors import StoreError
from edge.store._sqlite import import_sqlite_utils
from edge.store.records import ActionRecord, AuditBatch, RollupDelta, TicketRecord, TwinRecord
from shared.messages import Decision

if TYPE_CHECKING:
    from sqlite_utils import Database

log = logging.getLogger(__name__)

DB_FILE = "edge.db"

_TABLES: dict[str, tuple[dict[str, type], str | tuple[str, ...]]] = {
    "decisions": (
        {
            "decision_id": str, "ts_ms": int, "hlc": int, "device": str, "source": str,
            "name": str, "version": str, "inputs": str, "score": float, "threshold": float,
            "cmd_id": str, "action": str, "params": str, "latency_us": int,
            "reading_seq": int, "traceparent": str,
        },
        "decision_id",
    ),
    "actions": (
        {
            "cmd_id": str, "ts_ms": int, "device": str, "action": str, "params": str,
            "origin": str, "epoch": int, "session": str, "status": str, "reason": str,
        },
        "cmd_id",
    ),
    "quarantine": (
        {
            "id": int, "ts_ms": int, "topic": str, "reason": str, "detail": str,
            "size": int, "payload": bytes,
        },
        "id",
    ),
    "rollups": (
        {
            "device": str, "metric": str, "minute_ms": int, "min": float, "max": float,
            "mean": float, "count": int, "sum": float,
        },
        ("device", "metric", "minute_ms"),
    ),
    "twin": (
        {
            "device": str, "desired_version": int, "desired": str, "applied_version": int,
            "reported": str, "updated_ms": int,
        },
        "device",
    ),
    "fencing": ({"session": str, "epoch": int}, "session"),
    "tickets": (
        {
            "ref": str, "device": str, "kind": str, "reason": str, "status": str,
            "opened_ms": int, "closed_ms": int, "cmd_id": str, "closed_by": str,
        },
        "ref",
    ),
}  # fmt: skip

_MERGE_ROLLUP = """
INSERT INTO rollups (device, metric, minute_ms, min, max, mean, count, sum)
VALUES (:device, :metric, :minute_ms, :min, :max, :sum * 1.0 / :count, :count, :sum)
ON CONFLICT (device, metric, minute_ms) DO UPDATE SET
  min = min(rollups.min, excluded.min),
  max = max(rollups.max, excluded.max),
  count = rollups.count + excluded.count,
  sum = rollups.sum + excluded.sum,
  mean = (rollups.sum + excluded.sum) / (rollups.count + excluded.count)
"""
_RAISE_EPOCH = """
INSERT INTO fencing (session, epoch) VALUES (?, ?)
ON CONFLICT (session) DO UPDATE SET epoch = max(fencing.epoch, excluded.epoch)
"""


_SQL_TYPES = {str: "TEXT", int: "INTEGER", float: "FLOAT", bytes: "BLOB"}


def _create_table(name: str, columns: Mapping[str, type], pk: str | tuple[str, ...]) -> str:
    """The CREATE TABLE sqlite-utils' `table.create(columns, pk=pk)` writes."""
    lines = [
        f"   [{col}] {_SQL_TYPES[kind]}{' PRIMARY KEY' if col == pk else ''}"
        for col, kind in columns.items()
    ]
    if isinstance(pk, tuple):
        lines.append(f"   PRIMARY KEY ({', '.join(f'[{col}]' for col in pk)})")
    body = ",\n".join(lines)
    return f"CREATE TABLE IF NOT EXISTS [{name}] (\n{body}\n)"


def _insert(table: str, columns: Iterable[str], verb: str = "INSERT") -> str:
    cols = list(columns)
    names = ", ".join(f"[{c}]" for c in cols)
    return f"{verb} INTO [{table}] ({names}) VALUES ({', '.join(f':{c}' for c in cols)})"


_DECISION_COLUMNS = tuple(_TABLES["decisions"][0])
_INSERT_DECISION = _insert("decisions", _DECISION_COLUMNS, "INSERT OR REPLACE")
_INSERT_ACTION = _insert("actions", _TABLES["actions"][0], "INSERT OR REPLACE")
_INSERT_QUARANTINE = _insert("quarantine", [c for c in _TABLES["quarantine"][0] if c != "id"])
_TWIN_COLUMNS = tuple(_TABLES["twin"][0])
_UPDATE_TWIN = ", ".join(f"[{c}] = excluded.[{c}]" for c in _TWIN_COLUMNS if c != "device")
_UPSERT_TWIN = (
    f"{_insert('twin', _TWIN_COLUMNS)} ON CONFLICT ([device]) DO UPDATE SET {_UPDATE_TWIN}"
)
_INSERT_TICKET = _insert("tickets", _TABLES["tickets"][0], "INSERT OR IGNORE")


class EdgeStore:
    """Blocking access to the gateway database; one instance per thread."""

    def __init__(self, path: Path, *, max_quarantine: int, max_decisions: int) -> None:
        self.path = path
        self._max_quarantine = max_quarantine
        self._max_decisions = max_decisions
        self._db: Database | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(path)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open {path}: {exc}") from exc
        try:
            self.conn.execute("PRAGMA journal_mode=wal")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self._create_tables()
        except sqlite3.Error as exc:
            self.conn.close()
            raise StoreError(f"cannot open {path}: {exc}") from exc

    @classmethod
    def in_dir(cls, state_dir: Path, *, max_quarantine: int, max_decisions: int) -> EdgeStore:
        return cls(state_dir / DB_FILE, max_quarantine=max_quarantine, max_decisions=max_decisions)

    @property
    def db(self) -> Database:
        """The same connection as a sqlite-utils `Database`, for ad-hoc queries (the
        local agent); sqlite-utils is imported on first use."""
        if self._db is None:
            sqlite_utils = import_sqlite_utils()
            self._db = sqlite_utils.Database(self.conn, execute_plugins=False)
        return self._db

    def _create_tables(self) -> None:
        with self.conn:
            for name, (columns, pk) in _TABLES.items():
                self.conn.execute(_create_table(name, columns, pk))
            self.conn.execute(
                "CREATE INDEX IF NOT EXISTS [idx_decisions_device_ts_ms] "
                "ON [decisions] ([device], [ts_ms])"
            )

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def _transaction(self, what: str) -> Iterator[None]:
        try:
            with self.conn:
                yield
        except sqlite3.Error as exc:
            raise StoreError(f"{what}: {exc}") from exc

    # -- writes ------------------------------------------------------------------------

    def write(self, batch: AuditBatch) -> None:
        """Commit one batch in one transaction, then trim the bounded tables."""
        conn = self.conn
        with self._transaction("audit batch"):
            if batch.decisions:
                conn.executemany(_INSERT_DECISION, map(_decision_row, batch.decisions))
            if batch.actions:
                conn.executemany(_INSERT_ACTION, map(_action_row, batch.actions))
            if batch.quarantine:
                conn.executemany(_INSERT_QUARANTINE, (e.row() for e in batch.quarantine))
            if batch.rollups:
                conn.executemany(_MERGE_ROLLUP, map(_rollup_row, batch.rollups))
            if batch.fencing:
                conn.executemany(_RAISE_EPOCH, batch.fencing.items())
            self._trim()

    def _trim(self) -> None:
        for table, keep in (
            ("quarantine", self._max_quarantine),
            ("decisions", self._max_decisions),
            ("actions", self._max_decisions),
        ):
            self.conn.execute(
                f"DELETE FROM {table} WHERE rowid <= (SELECT max(rowid) FROM {table}) - ?",
                [keep],
            )

    @contextmanager
    def _durable(self, what: str) -> Iterator[None]:
        """A transaction on disk before it returns (synchronous=FULL): what the gateway
        reports up as done must survive a power cut."""
        self.conn.execute("PRAGMA synchronous=FULL")
        try:
            with self._transaction(what):
                yield
        finally:
            self.conn.execute("PRAGMA synchronous=NORMAL")

    def save_twin(self, twin: TwinRecord) -> None:
        """Durable before it returns: the gateway reports it applied."""
        with self._durable(f"twin of {twin.device}"):
            self.conn.execute(_UPSERT_TWIN, _twin_row(twin))

    def open_ticket(self, ticket: TicketRecord) -> dict[str, Any]:
        """Insert the ticket unless its ref exists; the stored row either way (durable)."""
        with self._durable(f"ticket {ticket.ref}"):
            self.conn.execute(_INSERT_TICKET, ticket.row())
        [row] = self._rows("SELECT * FROM tickets WHERE ref = ?", [ticket.ref])
        return row

    def cancel_ticket(self, ref: str, cmd_id: str, at_ms: int) -> dict[str, Any] | None:
        """Mark an open ticket cancelled (durable); the row, or None for an unknown ref."""
        with self._durable(f"ticket {ref}"):
            self.conn.execute(
                "UPDATE tickets SET status = 'cancelled', closed_ms = ?, closed_by = ? "
                "WHERE ref = ? AND status = 'open'",
                [at_ms, cmd_id, ref],
            )
        rows = self._rows("SELECT * FROM tickets WHERE ref = ?", [ref])
        return rows[0] if rows else None

    # -- reads -------------------------------------------------------------------------

    def twins(self) -> dict[str, TwinRecord]:
        return {row["device"]: _twin_record(row) for row in self._rows("SELECT * FROM twin")}

    def fencing(self) -> dict[str, int]:
        return {row["session"]: row["epoch"] for row in self._rows("SELECT * FROM fencing")}

    def decisions(self, device: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return self._recent("decisions", device, limit)

    def actions(self, device: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return self._recent("actions", device, limit)

    def quarantine(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._recent("quarantine", None, limit)

    def tickets(self, device: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first."""
        return self._recent("tickets", device, limit)

    def rollups(self, device: str, since_ms: int = 0) -> list[dict[str, Any]]:
        """Per-minute min/max/mean/count of `device`, oldest first (what the agent reads)."""
        return self._rows(
            "SELECT device, metric, minute_ms, min, max, mean, count FROM rollups "
            "WHERE device = ? AND minute_ms >= ? ORDER BY minute_ms, metric",
            [device, since_ms],
        )

    def _recent(self, table: str, device: str | None, limit: int) -> list[dict[str, Any]]:
        where, args = ("WHERE device = ? ", [device]) if device is not None else ("", [])
        return self._rows(
            f"SELECT * FROM [{table}] {where}ORDER BY rowid DESC LIMIT ?", [*args, limit]
        )

    def _rows(self, sql: str, args: Iterable[object] = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, list(args))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _decision_row(d: Decision) -> dict[str, Any]:
    cmd = d.command
    return {
        "decision_id": d.decision_id, "ts_ms": d.ts_ms, "hlc": d.hlc, "device": d.device,
        "source": d.source, "name": d.name, "version": d.version,
        "inputs": json.dumps(d.inputs), "score": d.score, "threshold": d.threshold,
        "cmd_id": cmd.cmd_id if cmd else None, "action": cmd.action if cmd else None,
        "params": json.dumps(cmd.params) if cmd else None, "latency_us": d.latency_us,
        "reading_seq": d.reading_seq, "traceparent": d.traceparent,
    }  # fmt: skip


def _action_row(a: ActionRecord) -> dict[str, Any]:
    cmd = a.command
    return {
        "cmd_id": cmd.cmd_id, "ts_ms": cmd.issued_ms, "device": cmd.device,
        "action": cmd.action, "params": json.dumps(cmd.params), "origin": a.origin,
        "epoch": cmd.epoch, "session": cmd.session, "status": a.status, "reason": a.reason,
    }  # fmt: skip


def _rollup_row(r: RollupDelta) -> dict[str, Any]:
    return {
        "device": r.device, "metric": r.metric, "minute_ms": r.minute_ms,
        "min": r.min, "max": r.max, "sum": r.sum, "count": r.count,
    }  # fmt: skip


def _twin_row(t: TwinRecord) -> dict[str, Any]:
    return {
        "device": t.device, "desired_version": t.desired_version,
        "desired": json.dumps(dict(t.desired)), "applied_version": t.applied_version,
        "reported": json.dumps(dict(t.reported)), "updated_ms": t.updated_ms,
    }  # fmt: skip


def _twin_record(row: dict[str, Any]) -> TwinRecord:
    return TwinRecord(
        device=row["device"],
        desired_version=row["desired_version"],
        desired=json.loads(row["desired"]),
        applied_version=row["applied_version"],
        reported=json.loads(row["reported"]),
        updated_ms=row["updated_ms"],
    )

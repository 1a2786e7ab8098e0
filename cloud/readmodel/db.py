"""The replica's SQLite read model: devices, readings, per-minute rollups, a stream cursor.

It is a cache of the hub, never the truth: twins come from the `twins` KV bucket and
readings from the FLEET stream (see `cloud.readmodel.projector`), so a lost or deleted
file is rebuilt on start. Hence WAL with `synchronous=NORMAL`: a power cut may lose the
last commits, which the projector simply replays from its cursor.

Readings are keyed by (gw, device, seq) and a rollup is updated only when its reading
row is new, so a reading delivered twice (a replay past the duplicate window) is counted
once. Readings older than the retention are neither kept nor counted again.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import sqlite_utils

from cloud.twins.record import TwinRecord
from cloud.twins.view import Rollup, minute_floor
from shared.messages import TwinState, now_ms

MINUTE_MS: Final = 60_000
CURSOR_KEY: Final = "fleet_stream_seq"

_SCHEMA: Final[dict[str, tuple[dict[str, type], tuple[str, ...]]]] = {
    "devices": (
        {
            "gw": str,
            "device": str,
            "online": int,
            "last_seen_ms": int,
            "drift": int,
            "revision": int,
            "twin": str,
        },
        ("gw", "device"),
    ),
    "readings": (
        {
            "gw": str,
            "device": str,
            "seq": int,
            "hlc": int,
            "at_ms": int,
            "ts_ms": int,
            "metrics": str,
        },
        ("gw", "device", "seq"),
    ),
    "rollups": (
        {
            "gw": str,
            "device": str,
            "metric": str,
            "minute_ms": int,
            "vmin": float,
            "vmax": float,
            "vsum": float,
            "count": int,
        },
        ("gw", "device", "metric", "minute_ms"),
    ),
    "meta": ({"key": str, "value": int}, ("key",)),
}
_UPSERT_ROLLUP = """
INSERT INTO rollups (gw, device, metric, minute_ms, vmin, vmax, vsum, count)
VALUES (?, ?, ?, ?, ?, ?, ?, 1)
ON CONFLICT (gw, device, metric, minute_ms) DO UPDATE SET
  vmin = min(vmin, excluded.vmin), vmax = max(vmax, excluded.vmax),
  vsum = vsum + excluded.vsum, count = count + 1
"""
_UPSERT_DEVICE = """
INSERT INTO devices (gw, device, online, last_seen_ms, drift, revision, twin)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (gw, device) DO UPDATE SET
  online = excluded.online, last_seen_ms = excluded.last_seen_ms, drift = excluded.drift,
  revision = excluded.revision, twin = excluded.twin
WHERE excluded.revision > devices.revision
"""


@dataclass(frozen=True, slots=True)
class ReadingRow:
    gw: str
    device: str
    seq: int
    hlc: int
    at_ms: int  # when it was measured (see `projector.measured_at`): its rollup minute
    ts_ms: int
    metrics: dict[str, float]


class ReadModel:
    """SQLite tables behind the API and `FleetView` (which this class satisfies)."""

    def __init__(self, path: Path | None, *, retention_minutes: int = 24 * 60) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite_utils.Database(path if path is not None else sqlite3.connect(":memory:"))
        self._conn = self._db.conn
        self._retention_ms = retention_minutes * MINUTE_MS
        self._create()

    def close(self) -> None:
        self._db.close()

    def _create(self) -> None:
        if self._db.journal_mode != "memory":
            self._db.enable_wal()
        self._conn.execute("PRAGMA synchronous=NORMAL")
        for name, (columns, pk) in _SCHEMA.items():
            self._db.table(name).create(columns, pk=pk, if_not_exists=True)
        self._db.table("readings").create_index(["gw", "device", "hlc"], if_not_exists=True)
        self._db.table("readings").create_index(["at_ms"], if_not_exists=True)
        self._db.table("devices").create_index(["online", "last_seen_ms"], if_not_exists=True)

    # -- writes (the projector) --------------------------------------------------------

    def put_twin(self, record: TwinRecord, revision: int) -> None:
        with self._conn:
            self._conn.execute(
                _UPSERT_DEVICE,
                (
                    record.gw,
                    record.device,
                    int(record.online),
                    record.last_seen_ms,
                    int(record.drift),
                    revision,
                    record.model_dump_json(),
                ),
            )

    def delete_twin(self, gw: str, device: str) -> None:
        with self._conn:
            self._conn.execute("DELETE FROM devices WHERE gw = ? AND device = ?", (gw, device))

    def add_readings(self, rows: Iterable[ReadingRow], cursor: int | None) -> int:
        """Insert new readings and their rollups in one transaction; the count inserted."""
        cutoff = minute_floor(now_ms()) - self._retention_ms
        inserted = 0
        with self._conn:
            for row in rows:
                if minute_floor(row.at_ms) >= cutoff and self._insert(row):
                    inserted += 1
            if cursor is not None:
                self._conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
                    (CURSOR_KEY, cursor),
                )
        return inserted

    def _insert(self, row: ReadingRow) -> bool:
        cur = self._conn.execute(
            "INSERT OR IGNORE INTO readings (gw, device, seq, hlc, at_ms, ts_ms, metrics) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (row.gw, row.device, row.seq, row.hlc, row.at_ms, row.ts_ms, json.dumps(row.metrics)),
        )
        if cur.rowcount == 0:
            return False
        minute = minute_floor(row.at_ms)
        for metric, value in row.metrics.items():
            self._conn.execute(
                _UPSERT_ROLLUP, (row.gw, row.device, metric, minute, value, value, value)
            )
        return True

    def prune(self) -> None:
        """Drop readings and rollups older than the retention."""
        cutoff = minute_floor(now_ms()) - self._retention_ms
        with self._conn:
            self._conn.execute("DELETE FROM readings WHERE at_ms < ?", (cutoff,))
            self._conn.execute("DELETE FROM rollups WHERE minute_ms < ?", (cutoff,))

    def cursor(self) -> int | None:
        """The last FLEET stream sequence projected, if any."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (CURSOR_KEY,)).fetchone()
        return int(row[0]) if row else None

    # -- reads (API, FleetView, reconcile) ---------------------------------------------

    def devices(self) -> list[TwinState]:
        """`FleetView.devices`: every twin (they are `TwinRecord`s; see `twins`)."""
        return list(self.twins())

    def device(self, device_id: str, gateway: str | None = None) -> TwinState | None:
        """`FleetView.device`: the twin of `device_id`, the first gateway's if ambiguous."""
        found = self._twins(
            "SELECT twin FROM devices WHERE device = ? AND (? IS NULL OR gw = ?) "
            "ORDER BY gw LIMIT 1",
            (device_id, gateway, gateway),
        )
        return found[0] if found else None

    def twins(self) -> list[TwinRecord]:
        return self._twins("SELECT twin FROM devices ORDER BY gw, device")

    def twin(self, gw: str, device: str) -> TwinRecord | None:
        found = self._twins("SELECT twin FROM devices WHERE gw = ? AND device = ?", (gw, device))
        return found[0] if found else None

    def silent(self, before_ms: int) -> list[TwinRecord]:
        """Twins still marked online whose last word is older than `before_ms`."""
        return self._twins(
            "SELECT twin FROM devices WHERE online = 1 AND last_seen_ms < ?", (before_ms,)
        )

    def drifting(self) -> list[TwinRecord]:
        """Online twins whose desired version is not yet reported applied."""
        return self._twins("SELECT twin FROM devices WHERE drift = 1 AND online = 1")

    def counts(self) -> dict[str, int]:
        """Devices by state: online, offline, drifting (desired not yet applied)."""
        row = self._conn.execute(
            "SELECT count(*), coalesce(sum(online), 0), coalesce(sum(drift), 0) FROM devices"
        ).fetchone()
        total, online, drifting = (int(v) for v in row)
        return {"online": online, "offline": total - online, "drifting": drifting}

    def _twins(self, sql: str, args: tuple[Any, ...] = ()) -> list[TwinRecord]:
        rows = self._conn.execute(sql, args).fetchall()
        return [TwinRecord.model_validate_json(row[0]) for row in rows]

    def readings(self, gw: str, device: str, limit: int = 20) -> list[dict[str, Any]]:
        """The newest readings of one device by HLC (arrival order does not matter)."""
        rows = self._conn.execute(
            "SELECT seq, hlc, at_ms, ts_ms, metrics FROM readings WHERE gw = ? AND device = ? "
            "ORDER BY hlc DESC, seq DESC LIMIT ?",
            (gw, device, limit),
        ).fetchall()
        return [
            {"seq": s, "hlc": h, "at_ms": a, "ts_ms": t, "metrics": json.loads(m)}
            for s, h, a, t, m in rows
        ]

    def reading_count(self, gw: str | None = None, device: str | None = None) -> int:
        row = self._conn.execute(
            "SELECT count(*) FROM readings WHERE (? IS NULL OR gw = ?) AND (? IS NULL OR device = ?)",
            (gw, gw, device, device),
        ).fetchone()
        return int(row[0])

    def rollups(self, device_id: str, minutes: int, gateway: str | None = None) -> list[Rollup]:
        since = minute_floor(now_ms()) - max(minutes - 1, 0) * MINUTE_MS
        rows = self._conn.execute(
            "SELECT gw, device, metric, minute_ms, vmin, vmax, vsum, count FROM rollups "
            "WHERE device = ? AND (? IS NULL OR gw = ?) AND minute_ms >= ? "
            "ORDER BY gw, minute_ms, metric",
            (device_id, gateway, gateway, since),
        ).fetchall()
        return [
            Rollup(gw=g, device=d, metric=m, minute_ms=t, min=lo, max=hi, mean=s / n, count=n)
            for g, d, m, t, lo, hi, s, n in rows
        ]

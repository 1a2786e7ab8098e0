"""The replica's SQLite copy of the `plans` bucket, for queries (sqlite-utils).

    plans   one row per plan: status, key, scope, owner, epoch, times, the record JSON
    steps   one row per step: target, action, status
    events  the step history, in order

Fed by a watch on the bucket (every replica sees every plan) and written through by the
replica's own saves, so a plan is queryable here as soon as its owner stored it. A row is
only replaced by a higher KV revision: a late watch delivery never rolls a plan back.
SQLite is called on the event loop thread: each call is a few row writes on a local file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlite_utils

from cloud.planner.records import TERMINAL, PlanRecord, StepEvent
from shared.messages import Plan

_OPEN = tuple(sorted({"pending", "running"}))


class PlanMirror:
    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            self._db = sqlite_utils.Database(memory=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite_utils.Database(path)
            self._db.enable_wal()
        self._create()

    def _create(self) -> None:
        self._db.table("plans").create(
            {"plan_id": str, "rev": int, "key": str, "scope": str, "status": str,
             "trigger": str, "planner": str, "owner": str, "epoch": int,
             "created_ms": int, "updated_ms": int, "record": str},
            pk="plan_id", if_not_exists=True,
        )  # fmt: skip
        self._db.table("steps").create(
            {"plan_id": str, "idx": int, "gw": str, "device": str, "action": str, "status": str},
            pk=("plan_id", "idx"), if_not_exists=True,
        )  # fmt: skip
        self._db.table("events").create(
            {"plan_id": str, "seq": int, "idx": int, "event": str, "ts_ms": int,
             "replica": str, "epoch": int, "cmd_id": str, "detail": str},
            pk=("plan_id", "seq"), if_not_exists=True,
        )  # fmt: skip
        self._db.table("plans").create_index(["status"], if_not_exists=True)
        self._db.table("plans").create_index(["key"], if_not_exists=True)
        self._db.table("steps").create_index(["gw", "device"], if_not_exists=True)

    def close(self) -> None:
        self._db.close()

    def apply(self, record: PlanRecord, rev: int) -> bool:
        """Store `record` unless a newer revision is already here; True when stored."""
        row = self._one("SELECT rev FROM plans WHERE plan_id = ?", record.plan_id)
        if row is not None and row[0] >= rev:
            return False
        with self._db.conn:
            self._put(record, rev)
        return True

    def _put(self, record: PlanRecord, rev: int) -> None:
        plan = record.plan
        self._db.table("plans").upsert(
            {"plan_id": plan.plan_id, "rev": rev, "key": record.key, "scope": record.scope,
             "status": plan.status, "trigger": plan.trigger, "planner": plan.planner,
             "owner": record.owner, "epoch": plan.epoch, "created_ms": plan.created_ms,
             "updated_ms": record.updated_ms, "record": record.model_dump_json()},
            pk="plan_id",
        )  # fmt: skip
        self._db.table("steps").upsert_all(
            [{"plan_id": plan.plan_id, "idx": s.index, "gw": s.gw, "device": s.device,
              "action": s.action, "status": s.status} for s in plan.steps],
            pk=("plan_id", "idx"),
        )  # fmt: skip
        self._db.table("events").upsert_all(
            [{"plan_id": plan.plan_id, "seq": n, "idx": e.index, "event": e.event,
              "ts_ms": e.ts_ms, "replica": e.replica, "epoch": e.epoch, "cmd_id": e.cmd_id,
              "detail": e.detail} for n, e in enumerate(record.history)],
            pk=("plan_id", "seq"),
        )  # fmt: skip

    def record(self, plan_id: str) -> PlanRecord | None:
        row = self._one("SELECT record FROM plans WHERE plan_id = ?", plan_id)
        return None if row is None else PlanRecord.model_validate_json(row[0])

    def plans(self, limit: int = 50, status: str | None = None) -> list[Plan]:
        """Newest first."""
        where, args = ("WHERE status = ?", [status]) if status else ("", [])
        sql = f"SELECT record FROM plans {where} ORDER BY created_ms DESC, plan_id LIMIT ?"
        rows = self._db.execute(sql, [*args, max(0, limit)]).fetchall()
        return [PlanRecord.model_validate_json(r[0]).plan for r in rows]

    def history(self, plan_id: str) -> list[StepEvent]:
        rows = self._db.execute(
            "SELECT event, idx, ts_ms, replica, epoch, cmd_id, detail FROM events"
            " WHERE plan_id = ? ORDER BY seq",
            [plan_id],
        ).fetchall()
        names = ("event", "index", "ts_ms", "replica", "epoch", "cmd_id", "detail")
        return [StepEvent.model_validate(dict(zip(names, r, strict=True))) for r in rows]

    def scope_busy(self, scope: str, ended_since_ms: int) -> bool:
        """A plan for this trigger scope is open, or ended at or after `ended_since_ms`."""
        return self._busy("scope", scope, ended_since_ms)

    def key_busy(self, key: str, ended_since_ms: int) -> bool:
        """A plan with proposal `key` is open, or ended at or after `ended_since_ms`."""
        return self._busy("key", key, ended_since_ms)

    def _busy(self, column: str, value: str, ended_since_ms: int) -> bool:
        sql = (
            f"SELECT 1 FROM plans WHERE {column} = ? AND (status IN {_OPEN}"
            f" OR (status IN {tuple(sorted(TERMINAL))} AND updated_ms >= ?)) LIMIT 1"
        )
        return self._db.execute(sql, [value, ended_since_ms]).fetchone() is not None

    def open_plans(self) -> list[str]:
        sql = f"SELECT plan_id FROM plans WHERE status IN {_OPEN} ORDER BY created_ms"
        return [r[0] for r in self._db.execute(sql).fetchall()]

    def _one(self, sql: str, *args: object) -> tuple[Any, ...] | None:
        row = self._db.execute(sql, list(args)).fetchone()
        return None if row is None else tuple(row)

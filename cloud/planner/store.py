"""Plan records and dedupe locks in the hub KV, written only by compare-and-set.

    plans  bucket   <plan_id>        PlanRecord JSON   (the source of truth)
    planner bucket  open.<key>       the plan id holding proposal key <key>

Only a saga's owner writes its record, so a lost compare-and-set means the saga has a
new owner: `save` raises `Conflict` and the old owner stops.
"""

from __future__ import annotations

import logging

from nats.js.errors import APIError
from nats.js.kv import KeyValue

from cloud.errors import Conflict
from cloud.planner.kv import get, is_wrong_last
from cloud.planner.records import PlanRecord

log = logging.getLogger(__name__)


class PlanStore:
    def __init__(self, plans: KeyValue, coord: KeyValue) -> None:
        self._plans = plans
        self._coord = coord

    async def create(self, record: PlanRecord) -> int:
        return await self._write(record, 0)

    async def save(self, record: PlanRecord, last: int) -> int:
        """Write `record` over revision `last`; `Conflict` when someone wrote since."""
        return await self._write(record, last)

    async def load(self, plan_id: str) -> tuple[PlanRecord, int] | None:
        entry = await get(self._plans, plan_id)
        if entry is None or entry.value is None:
            return None
        return PlanRecord.decode(entry.value), entry.revision or 0

    async def _write(self, record: PlanRecord, last: int) -> int:
        try:
            return await self._plans.update(record.plan_id, record.encode(), last=last)
        except APIError as exc:
            if is_wrong_last(exc):
                raise Conflict(f"plan {record.plan_id} changed since revision {last}") from exc
            raise

    async def lock(self, key: str, plan_id: str) -> bool:
        """Hold proposal key `key` for `plan_id`; False while another live plan holds it."""
        for _ in range(2):
            try:
                await self._coord.create(f"open.{key}", plan_id.encode())
                return True
            except APIError as exc:
                if not is_wrong_last(exc):
                    raise
            if not await self._clear_stale(key):
                return False
        return False

    async def unlock(self, key: str, plan_id: str) -> None:
        entry = await get(self._coord, f"open.{key}")
        if entry is not None and entry.value == plan_id.encode():
            await self._delete(f"open.{key}", entry.revision or 0)

    async def _clear_stale(self, key: str) -> bool:
        """Drop a lock whose plan ended or vanished (its owner died before unlocking)."""
        entry = await get(self._coord, f"open.{key}")
        if entry is None:
            return True
        holder = await self.load((entry.value or b"").decode())
        if holder is not None and not holder[0].ended:
            return False
        log.info("clearing stale lock %s", key, extra={"key": key})
        await self._delete(f"open.{key}", entry.revision or 0)
        return True

    async def _delete(self, key: str, last: int) -> None:
        try:
            await self._coord.delete(key, last=last)
        except APIError as exc:
            if not is_wrong_last(exc):
                raise

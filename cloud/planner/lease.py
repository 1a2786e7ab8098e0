"""Saga ownership: one lease per running plan in the hub KV bucket `plan_leases`.

The key is the plan id, the value the owner replica; the bucket's TTL (`lease_s`) ends a
lease its owner stopped renewing, and the server's expiry marker tells every replica at
once. The revision of the claiming write is the saga's fencing epoch (DESIGN "Edge
handoff"): every command the saga sends carries it, so a paused zombie's late commands
carry a lower epoch than its successor's.
"""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError
from nats.js.kv import KeyValue

from cloud.planner.kv import KV_OPERATION, MARKER_REASON, is_wrong_last

log = logging.getLogger(__name__)


class Leases:
    def __init__(self, js: JetStreamContext, kv: KeyValue, bucket: str, replica: str) -> None:
        self._js = js
        self._kv = kv
        self._stream = f"KV_{bucket}"
        self._prefix = f"$KV.{bucket}."
        self._replica = replica.encode()
        self._held: dict[str, int] = {}  # plan id -> revision of our last write

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self._held)

    async def claim(self, plan_id: str) -> int | None:
        """Take the lease when nobody holds it; the epoch, or None when someone does."""
        last = await self._last_revision(plan_id)
        if last is None:
            return None
        try:
            revision = await self._kv.update(plan_id, self._replica, last=last)
        except APIError as exc:
            if is_wrong_last(exc):
                return None  # another replica claimed it first
            raise
        self._held[plan_id] = revision
        return revision

    async def renew(self, plan_id: str) -> bool:
        """Extend a held lease; False when it was lost (expired and claimed by another)."""
        last = self._held.get(plan_id)
        if last is None:
            return False
        try:
            self._held[plan_id] = await self._kv.update(plan_id, self._replica, last=last)
        except APIError as exc:
            if not is_wrong_last(exc):
                raise
            self._held.pop(plan_id, None)
            return False
        return True

    async def release(self, plan_id: str) -> None:
        """Give the lease up, so another replica may take the saga over at once."""
        last = self._held.pop(plan_id, None)
        if last is None:
            return
        try:
            await self._kv.delete(plan_id, last=last)
        except APIError as exc:
            if not is_wrong_last(exc):
                raise
            log.info("lease of %s was already lost", plan_id, extra={"plan": plan_id})

    def forget(self, plan_id: str) -> None:
        self._held.pop(plan_id, None)

    async def _last_revision(self, plan_id: str) -> int | None:
        """0 for a free key, the tombstone's revision for an ended lease, None if held."""
        try:
            msg = await self._js.get_msg(self._stream, subject=self._prefix + plan_id)
        except NotFoundError:
            return 0
        headers = msg.headers or {}
        if KV_OPERATION in headers or MARKER_REASON in headers:
            return msg.seq or 0
        return None

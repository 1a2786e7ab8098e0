"""Command acks, filed in the hub KV so the saga's owner sees them whichever replica got them.

    FLEET fleet.<gw>.ack.<dev> ──(shared durable, any replica)──▶ file(): planner KV ack.<plan>.<slot>
                                                                  │ watch ack.>
    saga owner: wait(slot, deadline) ◀── future ◀────────────────┘

The first ack filed for a cmd_id wins (create, not put): a redelivered or repeated ack
changes nothing. Acks expire from the bucket after `ACK_TTL_S`.
"""

from __future__ import annotations

import asyncio
import logging

from nats.js.errors import APIError
from nats.js.kv import KeyValue

from cloud.planner.commands import Slot, parse_cmd_id
from cloud.planner.kv import Entry, follow, get, is_removal, is_wrong_last
from shared import codec
from shared.compat import timeout
from shared.errors import DecodeError
from shared.messages import CommandAck, now_ms

log = logging.getLogger(__name__)

# Longer than any step deadline we expect; a saga waits no longer than its deadline.
ACK_TTL_S = 24 * 3600.0


class AckBook:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self._waiting: dict[str, asyncio.Future[CommandAck]] = {}
        self.ready = asyncio.Event()

    async def file(self, ack: CommandAck) -> bool | None:
        """File an ack; True if new, False if already filed, None if not a plan's command."""
        slot = parse_cmd_id(ack.cmd_id)
        if slot is None:
            return None
        try:
            await self._kv.create(slot.ack_key, codec.encode(ack), msg_ttl=ACK_TTL_S)
        except APIError as exc:
            if is_wrong_last(exc):
                return False
            raise
        return True

    async def follow(self) -> None:
        """Resolve waiting sagas as acks are filed (run as a task until cancelled)."""
        await follow(self._kv, "ack.>", self._on_entry, self.ready)

    async def wait(self, slot: Slot, deadline_ms: int) -> CommandAck | None:
        """The ack for `slot`, or None when `deadline_ms` (wall clock) passes first."""
        future: asyncio.Future[CommandAck] = asyncio.get_running_loop().create_future()
        self._waiting[slot.ack_key] = future
        try:
            # Filed before we started waiting (or before a takeover): it is in the bucket.
            filed = await self._filed(slot)
            if filed is not None:
                return filed
            remaining_s = (deadline_ms - now_ms()) / 1000
            if remaining_s <= 0:
                return None
            async with timeout(remaining_s):  # converted once: loop.time() from here on
                return await future
        except asyncio.TimeoutError:
            return None
        finally:
            self._waiting.pop(slot.ack_key, None)

    async def _filed(self, slot: Slot) -> CommandAck | None:
        entry = await get(self._kv, slot.ack_key)
        return None if entry is None or entry.value is None else _decode(entry.value)

    def _on_entry(self, entry: Entry) -> None:
        future = self._waiting.get(entry.key)
        if future is None or future.done() or is_removal(entry) or entry.value is None:
            return
        ack = _decode(entry.value)
        if ack is not None:
            future.set_result(ack)


def _decode(data: bytes) -> CommandAck | None:
    try:
        return codec.decode(data, CommandAck)
    except DecodeError as exc:  # only we write this bucket; a bad entry is a bug, not input
        log.error("unreadable ack in the planner bucket: %s", exc)
        return None

"""Small helpers over nats-py's KV: open-or-create a bucket, follow a key range, CAS errors.

Every KV write the planner makes is a compare-and-set on the key's last revision
(JetStream `Nats-Expected-Last-Subject-Sequence`, ADR-8), so two replicas never both
win the same write; `Conflict` says a write lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import (
    APIError,
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
)
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

# A delete marker or a server expiry marker (nats-server 2.11+, ADR-43) ends a key's life.
KV_OPERATION = "KV-Operation"
MARKER_REASON = "Nats-Marker-Reason"
# JetStream error codes for a failed expected-last-sequence check.
WRONG_LAST_SEQUENCE = (10071, 10164)

Entry = KeyValue.Entry


async def open_bucket(
    js: JetStreamContext,
    bucket: str,
    *,
    ttl_s: float | None = None,
    markers: bool = False,
    replicas: int = 1,
) -> KeyValue:
    """The bucket, created on first use. An existing bucket is used as it is: its TTL
    was fixed when the first replica created it."""
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        pass
    config = KeyValueConfig(
        bucket=bucket,
        history=1,
        ttl=ttl_s,
        replicas=replicas,
        # An expiry marker lets watchers see a TTL run out (a lost saga owner) at once.
        limit_marker_ttl=ttl_s if markers else None,
    )
    try:
        return await js.create_key_value(config)
    except APIError:  # another replica created it a moment ago
        return await js.key_value(bucket)


async def get(kv: KeyValue, key: str) -> Entry | None:
    """The live entry of `key`, or None when it is absent, deleted or expired."""
    try:
        return await kv.get(key)
    except KeyNotFoundError:
        return None


def is_wrong_last(exc: APIError) -> bool:
    """A compare-and-set lost (nats-py translates some of these, not `delete`'s)."""
    return isinstance(exc, KeyWrongLastSequenceError) or exc.err_code in WRONG_LAST_SEQUENCE


async def follow(
    kv: KeyValue,
    keys: str,
    on_entry: Callable[[Entry], object],
    ready: asyncio.Event | None = None,
) -> None:
    """Call `on_entry` for the current value of every key under `keys`, then for every
    change, until cancelled. `ready` is set once the current values have been replayed.
    A failing callback is logged and the next entry is still delivered."""
    watcher = await kv.watch(keys)
    try:
        async for entry in watcher:
            if entry is None:  # nats-py's end-of-replay marker
                if ready is not None:
                    ready.set()
                continue
            try:
                result = on_entry(entry)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("watch handler failed on %s", entry.key, extra={"key": entry.key})
    finally:
        with contextlib.suppress(NatsError, asyncio.TimeoutError):  # closing with the connection
            await watcher.stop()  # type: ignore[no-untyped-call]


def is_removal(entry: Entry) -> bool:
    """True when `entry` is a delete, a purge or an expiry marker."""
    return entry.operation is not None

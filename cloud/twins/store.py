"""The `twins` KV bucket: read a twin, change it by compare-and-set on its revision.

Every writer (ingest on any replica, the API, the reconcile loop) goes through `update`,
which re-reads and retries when another writer got there first, so no change is lost
and none is applied on a stale copy. nats-py errors are translated here, once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Final, TypeVar

import nats.errors
from nats.js.errors import Error as JetStreamError
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from cloud.errors import Conflict
from cloud.twins.record import TwinRecord
from shared.errors import DecodeError, TransportError

log = logging.getLogger(__name__)

T = TypeVar("T")
# Contention on one twin is a handful of writers (ingest workers, the API, reconcile);
# this many lost races in a row means something is wrong, not merely busy.
MAX_CAS_ATTEMPTS: Final = 25
# Change functions return the record to write (None: nothing to write) and a result.
Change = Callable[[TwinRecord | None], tuple[TwinRecord | None, T]]


class TwinStore:
    """Compare-and-set access to the `twins` bucket (key `<gw>.<dev>`)."""

    def __init__(self, kv: KeyValue, *, on_conflict: Callable[[], None] | None = None) -> None:
        self._kv = kv
        self._on_conflict = on_conflict or (lambda: None)

    async def get(self, key: str) -> tuple[TwinRecord | None, int]:
        """The twin and its revision (0 when there is none)."""
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None, 0
        except (JetStreamError, nats.errors.Error, asyncio.TimeoutError) as exc:
            raise TransportError(f"twins KV get {key}: {exc!r}") from exc
        if entry.value is None or entry.revision is None:
            return None, 0
        try:
            return TwinRecord.decode(entry.value), entry.revision
        except DecodeError:
            # A value we cannot read is replaced by the next write rather than wedging
            # the device forever; the loss is logged.
            log.error("twin %s: unreadable KV value at revision %s", key, entry.revision)
            return None, entry.revision

    async def update(self, key: str, change: Change[T]) -> T:
        """Apply `change` to the current twin and store it by CAS; retry lost races."""
        for attempt in range(MAX_CAS_ATTEMPTS):
            record, revision = await self.get(key)
            new, result = change(record)
            if new is None:
                return result
            if await self._put(key, new, revision):
                return result
            self._on_conflict()
            # Jitter so two replicas racing on one twin do not collide again in step.
            await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
        raise Conflict(f"twin {key}: {MAX_CAS_ATTEMPTS} compare-and-set attempts lost")

    async def _put(self, key: str, record: TwinRecord, revision: int) -> bool:
        try:
            if revision:
                await self._kv.update(key, record.encode(), last=revision)
            else:
                await self._kv.create(key, record.encode())
        except KeyWrongLastSequenceError:
            return False
        except (JetStreamError, nats.errors.Error, asyncio.TimeoutError) as exc:
            raise TransportError(f"twins KV write {key}: {exc!r}") from exc
        return True

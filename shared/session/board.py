"""`LeaseBoard`: every session lease as this process last saw it, from one KV watch.

The board is how an observer (the previous owner, the CLI, the API) learns who owns a
session and when a lease ran out. Expiry is the clock-free rule of `lease`: a revision
not replaced within `ttl + grace` of the moment *this process saw it* is expired. Seeing
happens after the write, so the observer's deadline is after the holder's own
(`keeper.SAFETY`); a lease seen for the first time at start-up gets a full TTL too.
A takeover is still a CAS on the observed revision: if the holder renewed in between,
it fails and nothing happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Final

import nats.errors
from nats.js.kv import KeyValue

from shared.compat import timeout
from shared.session.lease import Lease, LeaseStore, decode_value
from shared.session.tasks import stop_task

log = logging.getLogger(__name__)

# Added to the TTL before an observer calls a lease expired: a renewal in flight when
# the TTL ends (one hub round trip, a busy event loop) still wins.
GRACE_S: Final = 0.25
READY_TIMEOUT_S: Final = 10.0


@dataclass(frozen=True, slots=True)
class Seen:
    lease: Lease
    at: float  # loop.time() when this process saw this revision


Listener = Callable[[str, "Seen | None"], None]


class LeaseBoard:
    """An async context manager; `get`/`leases` answer from memory."""

    def __init__(self, store: LeaseStore, *, grace_s: float = GRACE_S) -> None:
        self.store = store
        self.grace_s = grace_s
        self._seen: dict[str, Seen] = {}
        self._listeners: list[Listener] = []
        self._changed = asyncio.Event()
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LeaseBoard:
        self._task = asyncio.create_task(self._watch(), name="lease-board")
        try:
            async with timeout(READY_TIMEOUT_S):
                await self._ready
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)

    def get(self, session: str) -> Seen | None:
        return self._seen.get(session)

    def leases(self) -> list[Lease]:
        return [seen.lease for seen in self._seen.values()]

    def deadline(self, seen: Seen) -> float:
        """When an observer may call `seen` expired (loop.time())."""
        return seen.at + seen.lease.ttl_s + self.grace_s

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(session, seen)` on every change (None: the lease is gone).
        Returns its undo."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def changed(self) -> asyncio.Event:
        """An event set at the next change of any lease."""
        return self._changed

    async def wait(self, session: str, check: Callable[[Lease | None], bool]) -> Lease | None:
        """Until the session's lease satisfies `check`; bound it with `timeout`."""
        while True:
            seen = self._seen.get(session)
            lease = seen.lease if seen else None
            if check(lease):
                return lease
            changed = self._changed
            await changed.wait()

    async def _watch(self) -> None:
        kv: KeyValue = self.store.kv
        try:
            watcher = await kv.watch(">")
        except Exception as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            raise
        try:
            async for entry in watcher:
                if entry is None:  # nats-py: the current values have all been replayed
                    if not self._ready.done():
                        self._ready.set_result(None)
                    continue
                self._apply(entry)
        finally:
            with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
                await watcher.stop()  # type: ignore[no-untyped-call]

    def _apply(self, entry: KeyValue.Entry) -> None:
        seen: Seen | None = None
        value = None if entry.operation else decode_value(entry.value)
        if value is not None and entry.revision is not None:
            lease = Lease(entry.key, value, entry.revision)
            seen = Seen(lease, asyncio.get_running_loop().time())
            self._seen[entry.key] = seen
        else:
            self._seen.pop(entry.key, None)
        for listener in list(self._listeners):
            try:
                listener(entry.key, seen)
            except Exception:  # one listener's bug must not stop the board
                log.exception("lease listener failed on %s", entry.key)
        self._changed.set()
        self._changed = asyncio.Event()

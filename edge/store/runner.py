"""`AsyncStore`: the event loop's handle on `EdgeStore`, running every call on one thread.

One dedicated worker instead of `asyncio.to_thread`'s shared pool: an SQLite connection
belongs to the thread that made it, and one writer at a time is what SQLite wants anyway.
The loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from edge.store.db import EdgeStore
from edge.store.records import AuditBatch, TwinRecord

T = TypeVar("T")


class AsyncStore:
    """Open with `await AsyncStore.open(...)`; `aclose()` is safe twice."""

    def __init__(self, executor: ThreadPoolExecutor, store: EdgeStore) -> None:
        self._executor = executor
        self._store = store
        self._closed = False

    @classmethod
    async def open(cls, state_dir: Path, *, max_quarantine: int, max_decisions: int) -> AsyncStore:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-store")
        opener = functools.partial(
            EdgeStore.in_dir, state_dir, max_quarantine=max_quarantine, max_decisions=max_decisions
        )
        try:
            store = await asyncio.get_running_loop().run_in_executor(executor, opener)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(executor, store)

    @property
    def path(self) -> Path:
        return self._store.path

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(store, *args)` on the store's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, self._store, *args)

    async def write(self, batch: AuditBatch) -> None:
        await self.call(EdgeStore.write, batch)

    async def save_twin(self, twin: TwinRecord) -> None:
        await self.call(EdgeStore.save_twin, twin)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.call(EdgeStore.close)
        self._executor.shutdown(wait=True)

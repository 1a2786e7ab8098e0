"""Helpers of the handoff reliability test: an owner that can be frozen like a stopped
process, without leaving the test's process.

    PausableLoop   an event loop on its own thread. `freeze()` blocks that loop inside a
                   callback (as SIGSTOP blocks a process: every task, timer and socket
                   read of it stops where it is); `thaw()` lets it go on exactly from there.
                   `call(coro)` runs a coroutine on it from the test's loop.

Objects made on a paused loop (a `SessionHost`, its NATS client, its model) are only ever
touched through `call`, so each lives on one loop as asyncio requires.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class PausableLoop:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._resume = threading.Event()
        self._resume.set()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on this loop; the result (or its exception) here."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def freeze(self) -> None:
        """Returns once the loop is held: nothing of it runs until `thaw()`."""
        held = threading.Event()
        self._resume.clear()
        self.loop.call_soon_threadsafe(self._hold, held)
        await asyncio.to_thread(held.wait)

    def _hold(self, held: threading.Event) -> None:
        held.set()
        self._resume.wait()

    def thaw(self) -> None:
        self._resume.set()

    @property
    def frozen(self) -> bool:
        return not self._resume.is_set()

    async def aclose(self) -> None:
        """Thaw, stop and close the loop (what runs on it must be closed first)."""
        self.thaw()
        if self.loop.is_closed():
            return
        await self.call(_cancel_the_rest())
        await self.call(self.loop.shutdown_asyncgens())
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self._thread.join)
        self.loop.close()


async def _cancel_the_rest() -> None:
    """Cancel and await every task still on this loop (as asyncio.run does on exit)."""
    me = asyncio.current_task()
    rest = [task for task in asyncio.all_tasks() if task is not me]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)

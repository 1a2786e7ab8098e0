"""Cancel tasks and wait until they really ended."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

# Python 3.11's `asyncio.wait_for` (inside every nats-py request) swallows a cancel that
# lands just as its inner future completes (CPython gh-86296), so a task may keep
# running after one cancel(): it is cancelled again after this long.
RECANCEL_S = 0.05


async def cancel_and_wait(tasks: Iterable[asyncio.Task[None]]) -> None:
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_S)

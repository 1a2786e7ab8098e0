"""Stopping tasks that talk to NATS.

One `cancel()` is not always enough: nats-py's publish swallows a CancelledError that
lands while it waits on a full flush (`Client._flush_pending`, nats-py 2.16), and the
loop around it carries on. So a stop cancels again until the task has really ended.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

# How long to wait after a cancel() before cancelling again.
CANCEL_RETRY_S = 0.1


async def cancel_until_done(
    task: asyncio.Task[None], children: Iterable[asyncio.Task[None]] = ()
) -> None:
    """Cancel `task`, and the `children` it runs in a TaskGroup, until it has ended.

    The children are cancelled again directly: once a TaskGroup is aborting, a second
    cancel of its parent no longer reaches them.
    """
    task.cancel()
    while not task.done():
        await asyncio.wait({task}, timeout=CANCEL_RETRY_S)
        for child in children:
            child.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

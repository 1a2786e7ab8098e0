"""Stopping the tasks this package owns.

`task.cancel()` then `await task` is not enough here: nats-py's `request` awaits its
reply through `asyncio.wait_for`, which in Python 3.11 can swallow a cancellation that
races the reply (cpython gh-86296, fixed in 3.12). The task then runs on to its next
wait and never ends. `stop_task` cancels again until the task is done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Final

log = logging.getLogger(__name__)

# How long a cancelled task gets to finish its cleanup (closing a peer connection takes
# milliseconds) before it is cancelled again.
CANCEL_RETRY_S: Final = 0.5


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` and wait until it has ended; its exception (if any) is logged."""
    if task is None:
        return
    task.cancel()
    while not task.done():
        await asyncio.wait({task}, timeout=CANCEL_RETRY_S)
        task.cancel()  # a no-op once done; a second chance for a swallowed cancel
    if not task.cancelled() and task.exception() is not None:
        log.error("task %s failed", task.get_name(), exc_info=task.exception())


async def stop_tasks(tasks: Iterable[asyncio.Task[Any]]) -> None:
    await asyncio.gather(*(stop_task(task) for task in list(tasks)))

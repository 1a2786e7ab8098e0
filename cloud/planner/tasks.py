"""The planner's background loops: run one under supervision; cancel and really wait."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

# Python 3.11's `asyncio.wait_for` (inside every nats-py request) swallows a cancel that
# lands just as its inner future completes (CPython gh-86296), so a task may keep
# running after one cancel(): it is cancelled again after this long.
RECANCEL_S = 0.05
# A failed loop starts again after this, doubling while it keeps failing fast, up to the
# cap: a hub that is away for minutes is not asked in a tight loop.
RESTART_MIN_S = 1.0
RESTART_MAX_S = 30.0

Loop = Callable[[], Coroutine[Any, Any, None]]
OnFailure = Callable[[str, BaseException | None], None]


async def supervised(
    name: str, loop: Loop, on_failure: OnFailure, *, up: asyncio.Event | None = None
) -> None:
    """Run `loop()` until cancelled, starting it again whenever it fails or returns.

    Every loop here runs until cancelled, so an end is a failure too. Each goes to
    `on_failure(name, error)` (None: it returned), which logs and counts it. Until `up`
    is set (the loop has been ready once) a failure is raised instead, so a start that
    cannot work fails at once rather than retrying behind the caller's back.
    """
    clock = asyncio.get_running_loop()
    delay = RESTART_MIN_S
    while True:
        started = clock.time()
        error: BaseException | None = None
        try:
            await loop()
        except Exception as exc:
            if up is not None and not up.is_set():
                raise
            error = exc
        else:
            if up is not None and not up.is_set():
                raise RuntimeError(f"{name} ended before it was ready")
        on_failure(name, error)
        if clock.time() - started > RESTART_MAX_S:
            delay = RESTART_MIN_S  # it ran for a while: a new failure, not a crash loop
        await asyncio.sleep(delay)  # a back-off, not a wait for some state
        delay = min(2 * delay, RESTART_MAX_S)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[None]]) -> None:
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_S)

"""Exponential backoff with full jitter, for reconnecting to a hub that went away.

Full jitter (a uniform draw in [0, cap]) rather than a fixed doubling keeps a fleet of
gateways that lost the hub together from reconnecting in lock step when it returns.
"""

from __future__ import annotations

import asyncio
import random

# The first retry comes quickly: most outages seen by a gateway are a leaf node link
# that re-dials within a second (nats-server's default leafnode reconnect interval is 1 s).
BACKOFF_FIRST_S = 0.05


class Backoff:
    """`await backoff.wait()` after each failure; `reset()` after a success."""

    def __init__(self, max_s: float, *, first_s: float = BACKOFF_FIRST_S) -> None:
        self._first_s = min(first_s, max_s)
        self._max_s = max_s
        self._cap = self._first_s
        self.failures = 0

    def next_delay(self) -> float:
        delay = random.uniform(self._first_s / 2, self._cap)
        self._cap = min(self._cap * 2, self._max_s)
        self.failures += 1
        return delay

    async def wait(self) -> None:
        await asyncio.sleep(self.next_delay())

    def reset(self) -> None:
        self._cap = self._first_s
        self.failures = 0

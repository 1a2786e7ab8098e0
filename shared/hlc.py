"""Hybrid logical clock (Kulkarni et al., 2014) packed into one sortable integer.

Readings from many gateways reach the cloud late and out of order; wall clocks on
devices skew. An HLC timestamp stays close to physical time yet never goes backwards
and orders causally related events, so the cloud can sort by it. Packed as
`physical_ms << 16 | logical`: a plain int that msgpack and SQLite store and compare.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from shared.errors import BatonError

LOGICAL_BITS = 16
_LOGICAL_MASK = (1 << LOGICAL_BITS) - 1
# A remote stamp further ahead than this is a broken clock, not causality: refusing it
# keeps one bad device from dragging every gateway's clock into the future.
MAX_DRIFT_MS = 60_000


class ClockDriftError(BatonError, ValueError):
    """A remote HLC stamp is further ahead of our physical clock than MAX_DRIFT_MS."""


def pack(physical_ms: int, logical: int) -> int:
    return (physical_ms << LOGICAL_BITS) | logical


def unpack(stamp: int) -> tuple[int, int]:
    return stamp >> LOGICAL_BITS, stamp & _LOGICAL_MASK


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class HybridLogicalClock:
    """Thread-safe HLC. `now()` for local events, `update(remote)` on receipt."""

    def __init__(
        self, wall_ms: Callable[[], int] = _wall_ms, max_drift_ms: int = MAX_DRIFT_MS
    ) -> None:
        self._wall_ms = wall_ms
        self._max_drift_ms = max_drift_ms
        self._physical = 0
        self._logical = 0
        self._lock = threading.Lock()

    def now(self) -> int:
        with self._lock:
            wall = self._wall_ms()
            if wall > self._physical:
                self._physical, self._logical = wall, 0
            else:
                self._bump_logical()
            return pack(self._physical, self._logical)

    def update(self, remote: int) -> int:
        remote_physical, remote_logical = unpack(remote)
        with self._lock:
            wall = self._wall_ms()
            if remote_physical - wall > self._max_drift_ms:
                raise ClockDriftError(f"remote clock {remote_physical - wall} ms ahead")
            top = max(wall, self._physical, remote_physical)
            if top == self._physical == remote_physical:
                self._logical = max(self._logical, remote_logical)
                self._bump_logical()
            elif top == self._physical:
                self._bump_logical()
            elif top == remote_physical:
                self._physical, self._logical = top, remote_logical
                self._bump_logical()
            else:
                self._physical, self._logical = top, 0
            return pack(self._physical, self._logical)

    def _bump_logical(self) -> None:
        if self._logical == _LOGICAL_MASK:
            # Counter exhausted inside one millisecond: borrow the next one.
            self._physical += 1
            self._logical = 0
        else:
            self._logical += 1

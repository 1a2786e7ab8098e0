"""`FleetView`: the read-only window on fleet state that planners and agents read.

The orchestrator's SQLite read model satisfies it; `MemoryFleetView` is its in-memory
twin for tests and plug-in agents. Reads are synchronous and local (no network round
trip), so a planner can call them freely inside a planning round.

    devices()                     every twin this replica knows, whole fleet
    device(device_id, gateway)    one twin; `gateway` disambiguates equal device ids
    rollups(device_id, minutes)   per-minute min/max/mean per metric, oldest first
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol, TypedDict, runtime_checkable

from shared.messages import TwinState, now_ms


class Rollup(TypedDict):
    """One metric of one device over one minute (`minute_ms` is the minute's start)."""

    gw: str
    device: str
    metric: str
    minute_ms: int
    min: float
    max: float
    mean: float
    count: int


@runtime_checkable
class FleetView(Protocol):
    def devices(self) -> list[TwinState]:
        """Every device twin in the fleet, ordered by (gateway, device)."""
        ...

    def device(self, device_id: str, gateway: str | None = None) -> TwinState | None:
        """The twin of `device_id` (on `gateway` when given), or None if unknown."""
        ...

    def rollups(self, device_id: str, minutes: int, gateway: str | None = None) -> list[Rollup]:
        """Per-minute rollups of the last `minutes` minutes up to now, oldest first."""
        ...


class MemoryFleetView:
    """A `FleetView` over lists the caller fills: for tests and offline planning."""

    def __init__(
        self,
        twins: Iterable[TwinState] = (),
        rollups: Iterable[Rollup] = (),
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.twins: list[TwinState] = list(twins)
        self.rollup_rows: list[Rollup] = list(rollups)
        self._clock = clock

    def devices(self) -> list[TwinState]:
        return sorted(self.twins, key=lambda t: (t.gw, t.device))

    def device(self, device_id: str, gateway: str | None = None) -> TwinState | None:
        for twin in self.devices():
            if twin.device == device_id and gateway in (None, twin.gw):
                return twin
        return None

    def rollups(self, device_id: str, minutes: int, gateway: str | None = None) -> list[Rollup]:
        since = minute_floor(self._clock()) - max(minutes - 1, 0) * 60_000
        rows = [
            r
            for r in self.rollup_rows
            if r["device"] == device_id and gateway in (None, r["gw"]) and r["minute_ms"] >= since
        ]
        return sorted(rows, key=lambda r: (r["gw"], r["minute_ms"], r["metric"]))


def minute_floor(ms: int) -> int:
    """The start of the minute holding `ms` (rollup bucket key)."""
    return ms - ms % 60_000

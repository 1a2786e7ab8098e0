"""Which reading sequence numbers of one device have been applied: a floor and ranges.

    floor = 41, ranges = [(44, 50), (53, 53)]
    applied: every seq <= 41, 44..50 and 53;   not yet: 42, 43, 51, 52, 54...

This is what makes ingest idempotent by (gateway, device, sequence) without relying on
JetStream's duplicate window: a redelivery, or a replay from a gateway that was offline
for a week, finds its seq already applied. A plain high-water mark would not do: with
several workers a redelivered seq 42 can arrive after seq 43 was applied, and must still
count. Gaps are normal (a reading quarantined at the edge never arrives), so the number
of ranges is bounded: past `MAX_RANGES`, the oldest gap is given up on (the floor moves
over it); that gap is then older than a whole redelivery cycle, so nothing real is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MAX_RANGES: Final = 32


@dataclass(frozen=True, slots=True)
class SeqWindow:
    floor: int = -1
    ranges: tuple[tuple[int, int], ...] = ()

    def seen(self, seq: int) -> bool:
        if seq <= self.floor:
            return True
        return any(lo <= seq <= hi for lo, hi in self.ranges)

    def mark(self, seq: int) -> SeqWindow:
        """The window with `seq` applied (itself when it already was)."""
        if self.seen(seq):
            return self
        ranges = sorted((*self.ranges, (seq, seq)))
        merged: list[tuple[int, int]] = []
        for lo, hi in ranges:
            if merged and lo <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
            else:
                merged.append((lo, hi))
        return _compact(self.floor, merged)

    @property
    def highest(self) -> int:
        return self.ranges[-1][1] if self.ranges else self.floor


def _compact(floor: int, ranges: list[tuple[int, int]]) -> SeqWindow:
    while ranges and (ranges[0][0] <= floor + 1 or len(ranges) > MAX_RANGES):
        floor = max(floor, ranges.pop(0)[1])
    return SeqWindow(floor, tuple(ranges))

"""Which reading sequence numbers of one device have been applied: a floor and ranges.

    floor = 41, ranges = [(44, 50), (53, 53)]
    applied: every seq <= 41, 44..50 and 53;   not yet: 42, 43, 51, 52, 54...

This is what makes ingest idempotent by (gateway, device, sequence) without relying on
JetStream's duplicate window: a redelivery, or a replay from a gateway that was offline
for a week, finds its seq already applied. A plain high-water mark would not do: with
several workers a redelivered seq 42 can arrive after seq 43 was applied, and must still
count.

Gaps are of two sorts. Some close soon: the missing readings are in FLEET, in another
worker's batch or waiting for redelivery after a failed twin write. JetStream deals a
shared pull consumer's messages out to the waiting requests in turn, so one batch can
leave a gap at every other seq, dozens at once. Others never close: a reading dropped
on the radio or quarantined at the edge never arrives. The window must forget the
second sort, or it grows without bound, and must never forget the first: a gap given up
on is treated as applied, so a reading still on its way to it would be acked as a
duplicate and lost.

So each range remembers `opened`, the FLEET stream sequence of the reading that opened
the gap below it. A gateway forwards each device's readings in order, so whatever could
fill that gap is in FLEET before `opened`; once the ingest consumer's ack floor has
passed `opened` (`settle`), every such message has been acked or terminated and the gap
is permanent. Past `MAX_RANGES`, the oldest permanent gaps are given up. Only past
`HARD_MAX_RANGES` (an ack floor stuck behind a message that never settles) is the oldest
gap given up regardless, and `settle` says so, for the caller to log and count.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Final

MAX_RANGES: Final = 32
# A bound on the record's size when the ack floor cannot move: ~30 bytes a range.
HARD_MAX_RANGES: Final = 1024


@dataclass(frozen=True, slots=True)
class SeqWindow:
    floor: int = -1
    ranges: tuple[tuple[int, int], ...] = ()
    # Per range: the FLEET stream sequence that opened the gap below it (0: unknown,
    # e.g. a record written before this was kept, which counts as settled).
    opened: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if len(self.opened) != len(self.ranges):
            object.__setattr__(self, "opened", (0,) * len(self.ranges))

    def seen(self, seq: int) -> bool:
        if seq <= self.floor:
            return True
        i = bisect_left(self.ranges, (seq + 1,)) - 1
        return i >= 0 and self.ranges[i][0] <= seq <= self.ranges[i][1]

    def mark(self, seq: int, at: int = 0) -> SeqWindow:
        """The window with `seq` applied (itself when it already was); `at` is the FLEET
        stream sequence of its message. Never gives a gap up: see `settle`."""
        if self.seen(seq):
            return self
        ranges, opened = list(self.ranges), list(self.opened)
        i = bisect_left(ranges, (seq,))  # ranges[i - 1] is below seq, ranges[i] above
        if i == 0 and seq == self.floor + 1:
            return _absorb(seq, ranges, opened)
        joins_below = i > 0 and ranges[i - 1][1] == seq - 1
        joins_above = i < len(ranges) and ranges[i][0] == seq + 1
        if joins_below and joins_above:  # the gap closes: two ranges become one
            ranges[i - 1 : i + 1] = [(ranges[i - 1][0], ranges[i][1])]
            del opened[i]
        elif joins_below:
            ranges[i - 1] = (ranges[i - 1][0], seq)
        elif joins_above:
            # The gap below shrinks; what may still fill it came before `at` as well.
            ranges[i] = (seq, ranges[i][1])
            opened[i] = max(opened[i], at)
        else:
            ranges.insert(i, (seq, seq))
            opened.insert(i, at)
        return SeqWindow(self.floor, tuple(ranges), tuple(opened))

    def settle(self, settled: int) -> tuple[SeqWindow, int]:
        """Give up permanent gaps while there are more than `MAX_RANGES`.

        `settled`: the ingest consumer's ack floor (every FLEET message at or below it
        was acked or terminated). Returns the window and how many gaps were given up
        *unsettled* (past `HARD_MAX_RANGES`): readings that may yet arrive there would
        be taken for duplicates.
        """
        ranges, opened = list(self.ranges), list(self.opened)
        floor, forced = self.floor, 0
        while len(ranges) > MAX_RANGES:
            i = next((i for i, at in enumerate(opened) if at <= settled), None)
            if i is None:
                if len(ranges) <= HARD_MAX_RANGES:
                    break
                i, forced = 0, forced + 1
            if i == 0:  # the gap between the floor and the first range
                floor = ranges.pop(0)[1]
                opened.pop(0)
            else:
                ranges[i - 1 : i + 1] = [(ranges[i - 1][0], ranges[i][1])]
                del opened[i]
        if floor == self.floor and len(ranges) == len(self.ranges):
            return self, 0
        return SeqWindow(floor, tuple(ranges), tuple(opened)), forced

    @property
    def highest(self) -> int:
        return self.ranges[-1][1] if self.ranges else self.floor


def _absorb(floor: int, ranges: list[tuple[int, int]], opened: list[int]) -> SeqWindow:
    """Move the floor over ranges that now touch it (no gap left below them)."""
    while ranges and ranges[0][0] <= floor + 1:
        floor = max(floor, ranges.pop(0)[1])
        opened.pop(0)
    return SeqWindow(floor, tuple(ranges), tuple(opened))

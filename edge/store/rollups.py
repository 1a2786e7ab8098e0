"""Per device, per metric, per minute min / max / sum / count, accumulated in memory.

The hot path adds each reading (a few dict operations); every writer flush takes the
deltas since the last one and the store merges them into the minute's row, so a restart
in mid-minute adds to the row instead of overwriting it.
"""

from __future__ import annotations

from collections.abc import Mapping

from edge.store.records import RollupDelta

MINUTE_MS = 60_000

_Key = tuple[str, str, int]


class RollupBook:
    __slots__ = ("_cells",)

    def __init__(self) -> None:
        # [min, max, sum, count]: a list is cheaper to update in place than a dataclass.
        self._cells: dict[_Key, list[float]] = {}

    def add(self, device: str, metrics: Mapping[str, float], wall_ms: int) -> None:
        minute = wall_ms - wall_ms % MINUTE_MS
        cells = self._cells
        for metric, value in metrics.items():
            cell = cells.get((device, metric, minute))
            if cell is None:
                cells[(device, metric, minute)] = [value, value, value, 1]
                continue
            if value < cell[0]:
                cell[0] = value
            if value > cell[1]:
                cell[1] = value
            cell[2] += value
            cell[3] += 1

    def take(self) -> list[RollupDelta]:
        """The deltas since the last call; the book starts empty again."""
        cells, self._cells = self._cells, {}
        return [
            RollupDelta(device, metric, minute, c[0], c[1], c[2], int(c[3]))
            for (device, metric, minute), c in cells.items()
        ]

    def __len__(self) -> int:
        return len(self._cells)

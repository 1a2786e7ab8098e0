"""The last few readings per device, for the agent's `recent_readings` tool.

The gateway's SQLite keeps per-minute rollups, not raw readings (the hot path must not
write a row per reading). `RecentReadings` is a small ring per device in memory, fed by
`ReadingTap` (a plain subscription to the leaf's `baton.d.*.r`) or by any caller's `add()`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from shared import subjects
from shared.codec import decode
from shared.errors import DecodeError
from shared.messages import Reading

log = logging.getLogger(__name__)

PER_DEVICE = 32
MAX_DEVICES = 4096


@dataclass(frozen=True, slots=True)
class Recent:
    ts_ms: int
    seq: int
    metrics: Mapping[str, float]


class RecentReadings:
    def __init__(self, per_device: int = PER_DEVICE, max_devices: int = MAX_DEVICES) -> None:
        self._per_device = per_device
        self._max_devices = max_devices
        self._rings: dict[str, deque[Recent]] = {}

    def add(self, reading: Reading) -> None:
        ring = self._rings.get(reading.device)
        if ring is None:
            if len(self._rings) >= self._max_devices:
                return  # a flood of made-up device ids must not grow this without bound
            ring = self._rings[reading.device] = deque(maxlen=self._per_device)
        ring.append(Recent(reading.ts_ms, reading.seq, dict(reading.metrics)))

    def latest(self, device: str, limit: int) -> list[Recent]:
        """Newest first."""
        ring = self._rings.get(device)
        return list(reversed(ring))[:limit] if ring else []

    def devices(self) -> list[str]:
        return sorted(self._rings)


class ReadingTap:
    """Subscribes `RecentReadings` to the leaf's reading subjects; `aclose()` safe twice."""

    def __init__(self, nc: Client, readings: RecentReadings) -> None:
        self._nc = nc
        self._readings = readings
        self._sub: Subscription | None = None
        self.refused = 0

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(subjects.READINGS_ALL, cb=self._on_msg)

    async def _on_msg(self, msg: Msg) -> None:
        try:
            reading = decode(msg.data, Reading)
        except DecodeError:
            self.refused += 1  # the daemon quarantines it; the agent just does not show it
            return
        if reading.device == subjects.device_from_subject(msg.subject):
            self._readings.add(reading)

    async def aclose(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None and not self._nc.is_closed:
            await sub.unsubscribe()

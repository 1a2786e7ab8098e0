"""Reflex firings per site and rule, counted in the hub KV so that every replica's share of
the shared consumer adds up (a per-replica counter would see only part of the firings).

    planner bucket  win.<gw>.<rule>  JSON [[ts_ms, device, decision_id], ...]

Each firing is a compare-and-set append that also drops entries older than the window;
a redelivered decision (same id) is not counted twice.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass

from nats.js.errors import APIError
from nats.js.kv import KeyValue

from cloud.errors import Conflict
from cloud.planner.kv import get, is_wrong_last
from shared.messages import Decision

# Firings kept per (site, rule); beyond this the oldest go first.
MAX_FIRINGS = 256
# Retries of the append when another replica appended at the same moment.
CAS_ATTEMPTS = 8
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

Firing = tuple[int, str, str]


@dataclass(frozen=True, slots=True)
class SiteFirings:
    """The firings of one rule on one site inside the window, by device."""

    counts: dict[str, int]
    new: bool  # False when this decision had been counted already

    def hot(self, threshold: int) -> tuple[str, ...]:
        return tuple(sorted(d for d, n in self.counts.items() if n >= threshold))


class FiringWindows:
    def __init__(self, kv: KeyValue, window_ms: int) -> None:
        self._kv = kv
        self._window_ms = window_ms

    async def record(self, decision: Decision, now_ms: int) -> SiteFirings:
        key = f"win.{decision.gw}.{_UNSAFE.sub('_', decision.name)}"
        if decision.ts_ms < now_ms - self._window_ms:  # a stale backlog is no longer a burst
            return SiteFirings({}, new=False)
        for _ in range(CAS_ATTEMPTS):
            entry = await get(self._kv, key)
            firings = _load(entry.value if entry else None)
            kept = [f for f in firings if f[0] >= now_ms - self._window_ms]
            if any(f[2] == decision.decision_id for f in kept):
                return _summary(kept, new=False)
            kept = [*kept, (decision.ts_ms, decision.device, decision.decision_id)]
            kept = kept[-MAX_FIRINGS:]
            value = json.dumps(kept).encode()
            try:
                await self._kv.update(key, value, last=entry.revision if entry else 0)
            except APIError as exc:
                if not is_wrong_last(exc):
                    raise
                continue
            return _summary(kept, new=True)
        raise Conflict(f"firing window {key} kept changing under us")


def _load(data: bytes | None) -> list[Firing]:
    if not data:
        return []
    return [(int(ts), str(dev), str(did)) for ts, dev, did in json.loads(data)]


def _summary(firings: list[Firing], *, new: bool) -> SiteFirings:
    return SiteFirings(dict(Counter(dev for _, dev, _ in firings)), new)

"""`Flow`: where readings go, counted by what the cloud sees, as Sankey links.

    sensors ──▶ edge ──▶ hub ──▶ cloud twins
       │          └──▶ reflex ──▶ planner
       └──▶ quarantine

- edge → hub, hub → cloud twins: readings in FLEET (the gateway forwards every valid
  reading it accepted, so this is also what the edge took in).
- edge → reflex: decisions that sent a command; reflex → planner: plans that a
  decision triggered (`anomaly`, `repeated_action`).
- sensors → quarantine: payloads the gateway refused, from its `quarantine` and
  `stats` events (`GatewayEvent` on `fleet.<gw>.ev.<gw>`); a gateway that reports
  neither shows none.
- sensors → edge: the larger of what reached the hub and what the gateway's own
  `stats` says it processed, so a backlog waiting at the leaf shows as the gap
  between edge and hub.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shared.messages import GatewayEvent

# Plan triggers that come from reflex decisions.
REFLEX_TRIGGERS = frozenset({"anomaly", "repeated_action"})


@dataclass
class GatewayStats:
    """The latest `stats` a gateway reported (cumulative counters)."""

    readings_ok: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    backlog: int = 0


@dataclass
class Flow:
    readings: int = 0
    reflex: int = 0
    planned: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)  # from `quarantine` events
    stats: dict[str, GatewayStats] = field(default_factory=dict)
    _plans: set[str] = field(default_factory=set)

    def on_event(self, gw: str, event: GatewayEvent) -> None:
        data = event.data
        if event.type == "quarantine":
            count = data.get("count", 1)
            self.quarantined[str(data.get("reason", "unknown"))] += (
                count if isinstance(count, int) else 1
            )
        elif event.type == "stats":
            quarantined = data.get("quarantined")
            self.stats[gw] = GatewayStats(
                readings_ok=_int(data.get("readings_ok")),
                quarantined={str(k): _int(v) for k, v in quarantined.items()}
                if isinstance(quarantined, dict)
                else {},
                backlog=_int(data.get("backlog")),
            )

    def on_plan(self, plan_id: str, trigger: str) -> None:
        if plan_id not in self._plans:
            self._plans.add(plan_id)
            if trigger.split(":")[0] in REFLEX_TRIGGERS:
                self.planned += 1

    def quarantine_by_reason(self) -> dict[str, int]:
        """Events counted one by one, or the gateways' cumulative stats: the larger."""
        from_stats: Counter[str] = Counter()
        for stats in self.stats.values():
            from_stats.update(stats.quarantined)
        reasons = set(from_stats) | set(self.quarantined)
        return {r: max(from_stats[r], self.quarantined[r]) for r in sorted(reasons)}

    def to_json(self) -> dict[str, Any]:
        quarantined = self.quarantine_by_reason()
        processed = max(self.readings, sum(s.readings_ok for s in self.stats.values()))
        links = [
            ("sensors", "edge", processed),
            ("sensors", "quarantine", sum(quarantined.values())),
            ("edge", "hub", self.readings),
            ("edge", "reflex", self.reflex),
            ("hub", "cloud twins", self.readings),
            ("reflex", "planner", self.planned),
        ]
        return {
            "links": [{"source": s, "target": t, "value": v} for s, t, v in links],
            "quarantine": quarantined,
            "backlog": {gw: s.backlog for gw, s in sorted(self.stats.items())},
        }


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0

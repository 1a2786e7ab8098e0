"""The end-of-run summary: what every part did, and whether anything was lost.

Each figure comes from where it is true: readings at the leaf and at the hub from the
demo's own observer, reflex latency from the decisions the gateway forwarded (each
carries `latency_us`), quarantine from the edge's counters, plans from the cloud's API,
handoffs from the operator session. `nothing_lost` holds when every reading the leaf
accepted is in the hub's FLEET stream and the cloud applied each of them exactly once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Readings:
    sensors_sent: int  # publishes by the simulated firmware (duplicates included)
    leaf_accepted: int  # distinct valid readings the leaf stored (device, seq)
    edge_processed: int  # readings the edge daemon ran through its rules and model
    hub_received: int  # distinct readings in FLEET
    cloud_applied: int  # readings folded into device twins, each once
    missing_at_hub: int  # accepted at the leaf, not in FLEET
    applied_twice: int  # cloud applied more than FLEET holds


@dataclass(frozen=True, slots=True)
class Reflex:
    actions: int  # commands the rules and models sent to devices
    by_name: dict[str, int]
    latency_p50_us: int | None
    latency_p99_us: int | None
    latency_max_us: int | None
    device_acks: dict[str, int]


@dataclass(frozen=True, slots=True)
class Quarantine:
    total: int
    by_reason: dict[str, int]
    bad_payloads_sent: int  # what the observer saw at the leaf that does not decode


@dataclass(frozen=True, slots=True)
class Uplink:
    outage_s: float | None
    backlog_at_return: int | None
    delivered: bool  # the backlog drained before the demo stopped


@dataclass(frozen=True, slots=True)
class Twin:
    device: str
    desired_version: int | None  # what the operator set; None when it could not
    reported_version: int
    convergence_ms: int | None  # desired change → matching report, as the cloud measured


@dataclass(frozen=True, slots=True)
class Plans:
    total: int
    by_status: dict[str, int]
    steps: int
    triggers: dict[str, int]


@dataclass(frozen=True, slots=True)
class Handoffs:
    session: str | None  # the operator's session
    owners: list[str]  # who owned it, in order, as the chat reported
    completed: int
    failed: int
    latency_ms: list[float]
    skipped: str | None
    # Each /handoff that left the session where it was, in the chat's words (the
    # operator looked again and tried again, a few times).
    failures: list[str] = field(default_factory=list)
    kept_by: str | None = None  # who held the session once the chat had exited


@dataclass(frozen=True, slots=True)
class DemoSummary:
    duration_s: float
    devices: int
    readings: Readings
    reflex: Reflex
    quarantine: Quarantine
    uplink: Uplink
    twin: Twin
    plans: Plans
    handoffs: Handoffs
    components: dict[str, int | None] = field(default_factory=dict)  # exit codes

    @property
    def nothing_lost(self) -> bool:
        r = self.readings
        return (
            r.missing_at_hub == 0
            and r.applied_twice == 0
            and r.hub_received == r.leaf_accepted
            and r.cloud_applied == r.hub_received
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "nothing_lost": self.nothing_lost}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def lines(self) -> list[str]:
        """The summary for a person, one fact per line."""
        r, x, q, u = self.readings, self.reflex, self.quarantine, self.uplink
        return [
            f"baton demo: {self.duration_s:.0f} s, {self.devices} devices",
            f"  readings      {r.sensors_sent} sent by sensors, {r.leaf_accepted} accepted "
            f"at the leaf, {r.edge_processed} through reflex",
            f"  reflex        {x.actions} actions ({_pairs(x.by_name)}), latency p50 "
            f"{_us(x.latency_p50_us)}, p99 {_us(x.latency_p99_us)}; "
            f"device acks {_pairs(x.device_acks)}",
            f"  quarantine    {q.total} payloads ({_pairs(q.by_reason)}) of "
            f"{q.bad_payloads_sent} bad ones sent",
            f"  uplink        {r.hub_received} of {r.leaf_accepted} at the hub, "
            f"{r.cloud_applied} applied by the cloud; outage {_s(u.outage_s)} with "
            f"{u.backlog_at_return if u.backlog_at_return is not None else '?'} waiting",
            f"  twin          {self._twin_line()}",
            f"  plans         {self.plans.total} ({_pairs(self.plans.by_status)}), "
            f"{self.plans.steps} steps; triggers {_pairs(self.plans.triggers)}",
            f"  handoffs      {self._handoff_line()}",
            f"  nothing lost  {'yes' if self.nothing_lost else self._loss_line()}",
        ]

    def _twin_line(self) -> str:
        t = self.twin
        if t.desired_version is None:
            return f"desired state not set on {t.device}"
        if t.reported_version < t.desired_version:
            return f"{t.device} desired v{t.desired_version}, still at v{t.reported_version}"
        return f"{t.device} desired v{t.desired_version} converged in {_ms(t.convergence_ms)}"

    def _handoff_line(self) -> str:
        h = self.handoffs
        where = f"session {h.session or '?'} owned by {' → '.join(h.owners) or '?'}"
        if h.kept_by:
            where += f", kept by {h.kept_by}"
        if h.skipped:
            return f"{where}; skipped: {h.skipped}"
        times = ", ".join(f"{ms:.0f} ms" for ms in h.latency_ms) or "latency not seen"
        line = f"{where}; {h.completed} completed, {h.failed} failed ({times})"
        if h.failures:
            line += f"; did not go through: {'; '.join(h.failures)}"
        return line

    def _loss_line(self) -> str:
        r = self.readings
        return (
            f"NO: {r.missing_at_hub} accepted readings missing at the hub, "
            f"{r.hub_received - r.cloud_applied} not applied by the cloud, "
            f"{r.applied_twice} applied twice"
        )


def percentile(values: list[int], q: float) -> int | None:
    """The q-quantile (nearest rank) of `values`, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


def _ms(value: int | None) -> str:
    return "?" if value is None else f"{value} ms"


def _us(value: int | None) -> str:
    return "-" if value is None else f"{value} µs"


def _s(value: float | None) -> str:
    return "none" if value is None else f"{value:.1f} s"

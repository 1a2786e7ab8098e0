"""What a run did, counted: live `Counters` on the hot path, a frozen `SimSummary` at the end."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from firmware_sim.config import PayloadKind


class Counters:
    """Mutable tallies shared by every device and connection of one run (one thread)."""

    __slots__ = (
        "acked",
        "commands",
        "commands_rejected",
        "dropped_buffer",
        "dropped_fault",
        "duplicates",
        "malformed",
        "readings",
        "reconnects",
        "sent",
    )

    def __init__(self) -> None:
        self.readings = 0  # generated: a `seq` was used
        self.sent = 0  # reading publishes handed to a live connection (duplicates too)
        self.acked = 0  # QoS 1 PUBACKs for those
        self.dropped_buffer = 0  # oldest readings pushed out of a full local buffer
        self.dropped_fault = 0  # lost to the dropout fault
        self.duplicates = 0
        self.reconnects = 0
        self.commands = 0
        self.commands_rejected = 0
        self.malformed: dict[PayloadKind, int] = {}

    def count_bad(self, kind: PayloadKind) -> None:
        self.malformed[kind] = self.malformed.get(kind, 0) + 1


@dataclass(frozen=True, slots=True)
class SimSummary:
    """The end-of-run counts; `line()` for people, `to_json()` for tests and benchmarks."""

    devices: int
    qos: int
    elapsed_s: float
    readings: int
    sent: int
    acked: int
    dropped_buffer: int
    dropped_fault: int
    duplicates: int
    reconnects: int
    commands: int
    commands_rejected: int
    malformed: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, counters: Counters, *, devices: int, qos: int, elapsed_s: float) -> SimSummary:
        return cls(
            devices=devices,
            qos=qos,
            elapsed_s=round(elapsed_s, 3),
            readings=counters.readings,
            sent=counters.sent,
            acked=counters.acked,
            dropped_buffer=counters.dropped_buffer,
            dropped_fault=counters.dropped_fault,
            duplicates=counters.duplicates,
            reconnects=counters.reconnects,
            commands=counters.commands,
            commands_rejected=counters.commands_rejected,
            malformed=dict(sorted(counters.malformed.items())),
        )

    @property
    def rate(self) -> float:
        """Readings sent per wall second."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "rate": round(self.rate, 1)}, indent=2)

    def line(self) -> str:
        acked = f"acked {self.acked}" if self.qos else "acked n/a (QoS 0)"
        bad = " ".join(f"{kind}={n}" for kind, n in self.malformed.items()) or "none"
        return (
            f"sim: {self.devices} devices, {self.elapsed_s:.1f} s, {self.rate:,.0f} readings/s: "
            f"sent {self.sent}, {acked}, dropped from buffer {self.dropped_buffer}, "
            f"reconnects {self.reconnects}, malformed {bad}"
        )

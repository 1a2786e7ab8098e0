"""In-process records the daemon hands to the store: frozen, cheap to build on the hot path."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from shared.messages import Command, Decision
from shared.messages.base import Scalar

# What a quarantine row keeps of a payload: enough to see what a device sent, while a
# flood of maximum-size garbage cannot grow the table past rows x this.
QUARANTINE_KEEP_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    topic: str
    payload: bytes
    reason: str
    detail: str
    ts_ms: int

    def row(self) -> dict[str, object]:
        return {
            "ts_ms": self.ts_ms,
            "topic": self.topic,
            "reason": self.reason,
            "detail": self.detail[:500],
            "size": len(self.payload),
            "payload": self.payload[:QUARANTINE_KEEP_BYTES],
        }


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """A command the daemon sent, refused (the guard's reason) or failed to publish; or,
    for the gateway's own `gw.*` actions, carried out (`done`) or could not (`failed`)."""

    command: Command
    status: Literal["sent", "refused", "failed", "done"]
    origin: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RollupDelta:
    """min / max / sum / count of one metric of one device over one minute, since the
    last flush; the store merges it into the minute's row."""

    device: str
    metric: str
    minute_ms: int
    min: float
    max: float
    sum: float
    count: int


@dataclass(frozen=True, slots=True)
class TwinRecord:
    device: str
    desired_version: int
    desired: Mapping[str, Scalar]
    applied_version: int
    reported: Mapping[str, Scalar]
    updated_ms: int


@dataclass(frozen=True, slots=True)
class TicketRecord:
    """A ticket the planner opened for the site's technicians (`gw.ticket`)."""

    ref: str
    device: str
    kind: str
    reason: str
    opened_ms: int
    cmd_id: str

    def row(self) -> dict[str, object]:
        return {
            "ref": self.ref, "device": self.device, "kind": self.kind, "reason": self.reason,
            "status": "open", "opened_ms": self.opened_ms, "closed_ms": None,
            "cmd_id": self.cmd_id, "closed_by": None,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class AuditBatch:
    """Everything one writer flush commits, in one transaction."""

    decisions: list[Decision] = field(default_factory=list)
    actions: list[ActionRecord] = field(default_factory=list)
    quarantine: list[QuarantineEntry] = field(default_factory=list)
    rollups: list[RollupDelta] = field(default_factory=list)
    fencing: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return (
            len(self.decisions)
            + len(self.actions)
            + len(self.quarantine)
            + len(self.rollups)
            + len(self.fencing)
        )

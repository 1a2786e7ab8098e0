"""`PlanRecord`: what the planner keeps per plan in the hub KV bucket `plans`.

It is the `shared.messages.Plan` (steps with their statuses) plus the saga's bookkeeping:
who owns it and under which epoch, the absolute deadline of every command sent, and the
step history. The record is the source of truth; a replica that takes a saga over reads
everything it needs to continue or compensate from it.

    phase   forward ──(a step fails)──▶ compensate ──▶ done
                    └──(all acked)──────────────────▶ done
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.messages import Plan, PlanStep, now_ms
from shared.messages.plan import PlanStatus, StepStatus

Phase = Literal["forward", "compensate", "done"]
EventKind = Literal[
    "opened", "claimed", "released", "sent", "acked", "failed", "skipped",
    "undo_sent", "compensated", "undo_failed", "finished",
]  # fmt: skip
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "compensated"})
# Step history kept per plan: 64 steps x (sent, acked, undo_sent, compensated) plus claims.
MAX_HISTORY = 512


class StepEvent(BaseModel):
    """One line of a plan's history. `index` is None for plan-level events (claims)."""

    model_config = ConfigDict(frozen=True)

    event: EventKind
    index: int | None = None
    ts_ms: int = Field(default_factory=now_ms)
    replica: str = ""
    epoch: int = 0
    cmd_id: str | None = None
    detail: str = ""


class PlanRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    plan: Plan
    key: str
    scope: str
    phase: Phase = "forward"
    owner: str | None = None
    # Absolute wall-clock deadlines (ms) of the commands sent, by cmd_id: a replica that
    # takes over waits for the same deadline the edge was given, not a fresh one.
    deadlines: dict[str, int] = Field(default_factory=dict)
    history: list[StepEvent] = Field(default_factory=list)
    updated_ms: int = Field(default_factory=now_ms)

    @property
    def plan_id(self) -> str:
        return self.plan.plan_id

    @property
    def status(self) -> PlanStatus:
        return self.plan.status

    @property
    def ended(self) -> bool:
        return self.plan.status in TERMINAL

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, data: bytes) -> PlanRecord:
        return cls.model_validate_json(data)

    def step(self, index: int) -> PlanStep:
        return self.plan.steps[index]

    def log(self, event: StepEvent, **changes: object) -> PlanRecord:
        """A copy with `event` appended to the history and `changes` applied."""
        history = [*self.history, event][-MAX_HISTORY:]
        return self.model_copy(update={**changes, "history": history, "updated_ms": now_ms()})

    def with_step(self, index: int, status: StepStatus) -> PlanRecord:
        steps = list(self.plan.steps)
        steps[index] = steps[index].model_copy(update={"status": status})
        return self.with_plan(steps=steps)

    def with_plan(self, **changes: object) -> PlanRecord:
        return self.model_copy(update={"plan": self.plan.model_copy(update=changes)})

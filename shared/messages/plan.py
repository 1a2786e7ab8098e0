"""Plans from the background planner, run as sagas of commands to gateways."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from shared.messages.base import (
    BUILT_ON_FIRST_USE,
    Count,
    DeviceId,
    GatewayId,
    Message,
    Millis,
    Name,
    Params,
    Part,
    new_id,
    now_ms,
)

StepStatus = Literal["pending", "sent", "acked", "failed", "compensating", "compensated", "skipped"]
PlanStatus = Literal["pending", "running", "succeeded", "failed", "compensated"]


class Compensation(Part):
    """What undoes a completed step when a later one fails."""

    model_config = BUILT_ON_FIRST_USE
    action: Name
    params: Params = Field(default_factory=dict)


class PlanStep(Part):
    model_config = BUILT_ON_FIRST_USE
    step_id: str = Field(default_factory=new_id)
    index: Count
    gw: GatewayId
    device: DeviceId
    action: Name
    params: Params = Field(default_factory=dict)
    preconditions: list[str] = Field(default_factory=list)
    # Relative: how long the step has to be acknowledged once its command is sent. The
    # command itself carries the absolute `Command.deadline_ms` computed at send time.
    deadline_ms: Millis
    compensation: Compensation | None = None
    status: StepStatus = "pending"


class Plan(Message):
    model_config = BUILT_ON_FIRST_USE
    kind: ClassVar[str] = "plan"
    plan_id: str = Field(default_factory=new_id)
    trigger: str = Field(max_length=128)
    reason: str = Field(default="", max_length=2048)
    planner: str = Field(default="deterministic", max_length=64)
    steps: list[PlanStep] = Field(min_length=1, max_length=64)
    status: PlanStatus = "pending"
    epoch: Count = 0
    created_ms: Millis = Field(default_factory=now_ms)

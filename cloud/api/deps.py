"""What the HTTP API needs from the orchestrator, as one small bundle (and a fake-able one)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel

from cloud.api.events import EventBus
from cloud.api.metrics import CloudMetrics
from cloud.readmodel.db import ReadModel
from cloud.twins.record import TwinRecord
from shared.messages import Plan
from shared.messages.base import Scalar


class PlanSource(Protocol):
    """The planner as the API sees it (`cloud.planner.PlannerService` satisfies it)."""

    def plans(self, limit: int = 50) -> list[Plan]: ...

    def plan(self, plan_id: str) -> Plan | None: ...

    def history(self, plan_id: str) -> Sequence[BaseModel]: ...

    async def request_plan(self, trigger: str, reason: str) -> Plan | None: ...


class DesiredWriter(Protocol):
    async def set(
        self, gw: str, device: str, state: Mapping[str, Scalar], *, if_version: int | None = None
    ) -> TwinRecord: ...


@dataclass(frozen=True, slots=True)
class ApiDeps:
    replica: str
    readmodel: ReadModel
    desired: DesiredWriter
    bus: EventBus
    metrics: CloudMetrics
    # Health facts (nats connected, twins loaded...); unhealthy when any value is False.
    health: Callable[[], dict[str, Any]]
    planner: PlanSource | None = None
    max_body_bytes: int = 64 * 1024

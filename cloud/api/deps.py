"""What the HTTP API needs from the orchestrator, as one small bundle (and a fake-able one)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from cloud.api.events import EventBus
from cloud.api.metrics import CloudMetrics
from cloud.readmodel.db import ReadModel
from cloud.twins.record import TwinRecord
from shared.messages import AgentEventBase, Plan
from shared.messages.base import Scalar

if TYPE_CHECKING:
    from cloud.sessions import SessionInfo
    from shared.session import HandoffReport, Side


class PlanSource(Protocol):
    """The planner as the API sees it (`cloud.planner.PlannerService` satisfies it)."""

    def plans(self, limit: int = 50) -> list[Plan]: ...

    def plan(self, plan_id: str) -> Plan | None: ...

    def history(self, plan_id: str) -> Sequence[BaseModel]: ...

    async def request_plan(self, trigger: str, reason: str) -> Plan | None: ...


class SessionSource(Protocol):
    """Session handoff as the API sees it (`cloud.sessions.SessionManager` satisfies it)."""

    def sessions(self) -> list[SessionInfo]: ...

    def session(self, session: str) -> SessionInfo | None: ...

    async def request_handoff(
        self, session: str, to: Side, *, reason: str = "api"
    ) -> HandoffReport: ...

    async def rtc_answer(self, session: str, sdp: str, *, after: int = 0) -> str: ...

    def events(self, session: str, *, after: int = 0) -> AsyncIterator[AgentEventBase]: ...


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
    sessions: SessionSource | None = None  # None: this replica takes part in no handoff
    max_body_bytes: int = 64 * 1024

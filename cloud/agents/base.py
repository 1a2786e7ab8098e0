"""What a plug-in agent is: the trigger it reacts to, the proposals it returns, its context.

    Trigger ──▶ Agent.propose(trigger, ctx) ──▶ [Proposal(plan, key)] ──▶ the planner opens sagas

A *reactive* agent answers one event with a short plan; a *deliberative* one reads the
fleet (`ctx.fleet`) and may plan across devices. Both return proposals; the planner
dedupes them by `Proposal.key`, stores them and runs them as sagas. An agent never
publishes commands itself: every side effect goes through a saga, so it is acknowledged,
compensated and fenced like any other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from cloud.twins.view import FleetView
from shared.messages import Plan, now_ms
from shared.messages.base import Scalar

TriggerKind = Literal["anomaly", "repeated_action", "offline", "schedule", "request"]
TRIGGER_KINDS: frozenset[str] = frozenset(
    ("anomaly", "repeated_action", "offline", "schedule", "request")
)
# `handles` / `tools` entry that matches every trigger kind / every action.
ANY = "*"
# A proposal key becomes part of a KV key (ADR-8 key alphabet, no wildcards).
_KEY_RE = re.compile(r"^[A-Za-z0-9_=-]+(\.[A-Za-z0-9_=-]+)*$")
MAX_KEY_LEN = 200


@dataclass(frozen=True, slots=True)
class Trigger:
    """Why planning runs: an edge event, the schedule, or a request from the API."""

    kind: TriggerKind
    gw: str | None = None
    device: str | None = None
    reason: str = ""
    # Event details: model/rule name, score, threshold, firing count...
    detail: Mapping[str, Scalar] = field(default_factory=dict)
    # repeated_action: every device of the site whose rule fired often enough.
    devices: tuple[str, ...] = ()
    traceparent: str | None = None
    at_ms: int = field(default_factory=now_ms)

    @property
    def scope(self) -> str:
        """What the trigger is about; a second trigger with the same scope waits."""
        return ".".join(part or "_" for part in (self.kind, self.gw, self.device))


@dataclass(frozen=True, slots=True)
class Proposal:
    """A plan an agent wants run. While a plan with the same `key` runs (or ended less
    than the planner's cooldown ago), no second one opens: e.g. `maintenance.gw1.pump-1`."""

    plan: Plan
    key: str


def valid_key(key: str) -> bool:
    return len(key) <= MAX_KEY_LEN and _KEY_RE.match(key) is not None


@dataclass(frozen=True, slots=True)
class AgentContext:
    """What an agent may read while it plans."""

    fleet: FleetView
    replica: str
    step_deadline_ms: int
    """The default time a step has to be acknowledged once sent."""


@runtime_checkable
class Agent(Protocol):
    """A planner variant or a custom reactive/deliberative agent.

    `handles`: trigger kinds it reacts to (`"*"` for all). `tools`: the step and
    compensation actions its plans may use (`"*"` for any); a plan using another is refused.
    """

    @property
    def id(self) -> str: ...

    @property
    def handles(self) -> frozenset[str]: ...

    @property
    def tools(self) -> frozenset[str]: ...

    async def propose(self, trigger: Trigger, ctx: AgentContext) -> Sequence[Proposal]:
        """Plans for `trigger` (empty when it has nothing to do). Raise `PlanError` for an
        invalid plan; any exception isolates this agent, never the planner."""
        ...

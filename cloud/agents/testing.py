"""In-memory agents for tests and examples: one that proposes what it is given, one that fails."""

from __future__ import annotations

from collections.abc import Sequence

from cloud.agents.base import ANY, AgentContext, Proposal, Trigger


class StaticAgent:
    """Proposes the same proposals for every trigger it handles; records what it saw."""

    def __init__(
        self,
        agent_id: str = "static",
        proposals: Sequence[Proposal] = (),
        handles: frozenset[str] = frozenset({ANY}),
        tools: frozenset[str] = frozenset({ANY}),
    ) -> None:
        self._id = agent_id
        self._proposals = tuple(proposals)
        self._handles = handles
        self._tools = tools
        self.seen: list[Trigger] = []

    @property
    def id(self) -> str:
        return self._id

    @property
    def handles(self) -> frozenset[str]:
        return self._handles

    @property
    def tools(self) -> frozenset[str]:
        return self._tools

    async def propose(self, trigger: Trigger, ctx: AgentContext) -> Sequence[Proposal]:
        self.seen.append(trigger)
        return self._proposals


class FailingAgent(StaticAgent):
    """Raises on every call: what a buggy plug-in looks like to the registry."""

    def __init__(self, agent_id: str = "failing", error: str = "plug-in bug") -> None:
        super().__init__(agent_id)
        self._error = error

    async def propose(self, trigger: Trigger, ctx: AgentContext) -> Sequence[Proposal]:
        self.seen.append(trigger)
        raise RuntimeError(self._error)

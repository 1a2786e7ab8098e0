"""The agent registry: who handles a trigger, in which order, and isolation when one fails.

Agents are asked in priority order (lower first); the first that proposes something wins,
so the LLM planner (priority 10) falls back to the deterministic one (priority 1000) when
it fails or has nothing to say. An agent that raises, times out or proposes an invalid
plan is logged, counted by reason and skipped for `cooldown_s`, then tried again: one bad
plug-in never stops planning.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cloud.agents.base import ANY, Agent, AgentContext, Proposal, Trigger, valid_key
from cloud.agents.health import AgentStatus, Health
from cloud.errors import PlanError
from shared.compat import timeout

log = logging.getLogger(__name__)

DEFAULT_PRIORITY = 100


@dataclass(frozen=True, slots=True)
class Outcome:
    """What planning for one trigger gave: the winner's proposals and who failed before it."""

    agent: str | None
    proposals: tuple[Proposal, ...]
    failed: tuple[str, ...]

    @property
    def fell_back(self) -> bool:
        return bool(self.failed) and self.agent is not None


class AgentRegistry:
    def __init__(
        self,
        *,
        timeout_s: float = 30.0,
        cooldown_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,  # the clock loop.time() reads
    ) -> None:
        self._clock = clock
        self._timeout_s = timeout_s
        self._cooldown_s = cooldown_s
        self._agents: dict[str, tuple[Agent, Health]] = {}
        self._broken: dict[str, Health] = {}

    def add(self, agent: Agent, *, priority: int = DEFAULT_PRIORITY) -> Callable[[], None]:
        """Register `agent`; returns the function that removes it again."""
        if agent.id in self._agents:
            raise ValueError(f"agent id {agent.id!r} is already registered")
        self._agents[agent.id] = (agent, Health(agent.id, priority))

        def remove() -> None:
            self._agents.pop(agent.id, None)

        return remove

    def broken(self, name: str, error: str) -> None:
        """Record an agent that could not be loaded: reported, never run."""
        log.error("agent %s could not be loaded: %s", name, error, extra={"agent": name})
        health = Health(name, DEFAULT_PRIORITY, retry_at=math.inf)
        health.failures["load"] += 1
        health.last_error = error
        self._broken[name] = health

    def agents(self) -> list[Agent]:
        return [agent for agent, _ in self._ordered()]

    def status(self) -> list[AgentStatus]:
        now = self._clock()
        every = [h for _, h in self._ordered()] + list(self._broken.values())
        return [h.status(now) for h in every]

    async def propose(self, trigger: Trigger, ctx: AgentContext) -> Outcome:
        """Ask the agents that handle `trigger.kind`, in order, until one proposes."""
        failed: list[str] = []
        now = self._clock()
        for agent, health in self._ordered():
            if not _handles(agent, trigger.kind) or not health.usable(now):
                continue
            proposals = await self._ask(agent, health, trigger, ctx)
            if proposals is None:
                failed.append(agent.id)
            elif proposals:
                return Outcome(agent.id, tuple(proposals), tuple(failed))
        return Outcome(None, (), tuple(failed))

    def _ordered(self) -> list[tuple[Agent, Health]]:
        return sorted(self._agents.values(), key=lambda pair: (pair[1].priority, pair[0].id))

    async def _ask(
        self, agent: Agent, health: Health, trigger: Trigger, ctx: AgentContext
    ) -> Sequence[Proposal] | None:
        """The agent's proposals, or None when it failed (and is now isolated)."""
        try:
            async with timeout(self._timeout_s):
                proposals = list(await agent.propose(trigger, ctx))
            for proposal in proposals:
                check_proposal(agent, proposal)
        except PlanError as exc:
            self._isolate(agent, health, "invalid", exc)
            return None
        except asyncio.TimeoutError as exc:  # 3.10: not yet the builtin TimeoutError
            self._isolate(agent, health, "timeout", exc)
            return None
        except Exception as exc:  # a plug-in's bug must not stop the planner
            self._isolate(agent, health, "error", exc)
            return None
        health.succeeded(len(proposals))
        return proposals

    def _isolate(self, agent: Agent, health: Health, reason: str, exc: BaseException) -> None:
        retry_at = self._clock() + self._cooldown_s
        health.failed(reason, f"{type(exc).__name__}: {exc}", retry_at)
        log.warning(
            "agent %s failed (%s), skipped for %.0f s: %s",
            agent.id,
            reason,
            self._cooldown_s,
            exc,
            exc_info=reason == "error",
            extra={"agent": agent.id, "reason": reason},
        )


def _handles(agent: Agent, kind: str) -> bool:
    return ANY in agent.handles or kind in agent.handles


def check_proposal(agent: Agent, proposal: Proposal) -> None:
    """Refuse a proposal whose key is unusable or that uses a tool the agent did not declare."""
    if not isinstance(proposal, Proposal):
        raise PlanError(f"expected a Proposal, got {type(proposal).__name__}")
    if not valid_key(proposal.key):
        raise PlanError(f"proposal key {proposal.key!r} is not a dotted KV key")
    if ANY in agent.tools:
        return
    for step in proposal.plan.steps:
        actions = [step.action] + ([step.compensation.action] if step.compensation else [])
        undeclared = [a for a in actions if a not in agent.tools]
        if undeclared:
            raise PlanError(f"step {step.index} uses undeclared tools {undeclared}")

"""Per-agent health: calls, failures by reason, and the cooldown that isolates a failing agent."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """A snapshot of one agent's health, for the API and logs."""

    agent: str
    healthy: bool
    priority: int
    calls: int
    proposals: int
    failures: dict[str, int]
    last_error: str | None


@dataclass(slots=True)
class Health:
    """Mutable counters of one registered (or unloadable) agent."""

    agent: str
    priority: int
    calls: int = 0
    proposals: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None
    # loop.time() before which the agent is skipped; inf for one that never loaded.
    retry_at: float = 0.0

    def usable(self, now: float) -> bool:
        return now >= self.retry_at

    def succeeded(self, proposals: int) -> None:
        self.calls += 1
        self.proposals += proposals
        self.retry_at = 0.0
        self.last_error = None

    def failed(self, reason: str, error: str, retry_at: float) -> None:
        self.calls += 1
        self.failures[reason] += 1
        self.last_error = error
        self.retry_at = retry_at

    def status(self, now: float) -> AgentStatus:
        return AgentStatus(
            agent=self.agent,
            healthy=self.usable(now),
            priority=self.priority,
            calls=self.calls,
            proposals=self.proposals,
            failures=dict(self.failures),
            last_error=self.last_error,
        )

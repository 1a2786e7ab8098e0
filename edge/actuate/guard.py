"""The actuation guard: what a command from outside the rules must pass before a device sees it.

Checks, in order (each refusal is a `GuardRefused` with its counter label):

- **fencing** (`stale_epoch`): a command for a session carries the epoch of the lease that
  issued it (DESIGN, "Edge handoff"). The guard keeps the highest epoch seen per session
  and refuses a lower one, so a paused zombie owner cannot act after a handoff. A higher
  epoch is recorded even if a later check refuses the command: it proves a newer owner.
  Commands without a session (the fleet planner's) are not fenced.
- **allow-list** (`not_allowed`): the actions the rules and models use, plus `[actuate] allow`.
- **bounds** (`out_of_bounds`): `[actuate.bounds.<action>] param = [min, max]`.
- **deadline** (`expired`): a command whose deadline has passed is history, not an order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from edge.config import ActuateConfig
from edge.errors import GuardRefused
from shared.messages import Command
from shared.messages.base import Scalar

# Desired twin state reaches a device as this action; it is always allowed (the twin's
# version is its own fence) but its params still meet `[actuate.bounds.set]`.
TWIN_ACTION = "set"


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    allowed: frozenset[str]
    bounds: Mapping[str, Mapping[str, tuple[float, float]]] = field(default_factory=dict)

    @classmethod
    def build(cls, config: ActuateConfig, rule_actions: frozenset[str]) -> GuardPolicy:
        allowed = rule_actions | set(config.allow) | {TWIN_ACTION}
        return cls(frozenset(allowed), config.bounds)


class ActuationGuard:
    def __init__(self, policy: GuardPolicy, epochs: Mapping[str, int] | None = None) -> None:
        self.policy = policy
        self._epochs: dict[str, int] = dict(epochs or {})

    def check(self, cmd: Command, now_ms: int) -> bool:
        """Raise `GuardRefused`, or return whether the command raised its session's epoch."""
        raised = self._fence(cmd) if cmd.session is not None else False
        self.check_params(cmd.action, cmd.params)
        if cmd.expired(now_ms):
            raise GuardRefused(
                f"{cmd.cmd_id} deadline passed {now_ms - cmd.deadline_ms} ms ago",
                reason="expired",
            )
        return raised

    def check_params(self, action: str, params: Mapping[str, Scalar]) -> None:
        if action not in self.policy.allowed:
            raise GuardRefused(f"action {action!r} is not allowed here", reason="not_allowed")
        for name, (low, high) in self.policy.bounds.get(action, {}).items():
            if name not in params:
                continue
            value = params[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise GuardRefused(
                    f"{action}.{name}={value!r} is not a number", reason="out_of_bounds"
                )
            if not low <= value <= high:
                raise GuardRefused(
                    f"{action}.{name}={value} outside [{low}, {high}]", reason="out_of_bounds"
                )

    def _fence(self, cmd: Command) -> bool:
        session = cmd.session or ""
        highest = self._epochs.get(session, 0)
        if cmd.epoch < highest:
            raise GuardRefused(
                f"session {session} epoch {cmd.epoch} < {highest} already seen",
                reason="stale_epoch",
            )
        self._epochs[session] = cmd.epoch
        return cmd.epoch > highest

    def epoch(self, session: str) -> int:
        return self._epochs.get(session, 0)

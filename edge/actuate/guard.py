"""The actuation guard: what a command from outside the rules must pass before a device sees it.

Checks, in order (each refusal is a `GuardRefused` with its counter label):

- **fencing** (`stale_epoch`): a command for a session carries the epoch of the lease that
  issued it (DESIGN, "Edge handoff"). The guard keeps the highest epoch seen per session
  and refuses a lower one, so a paused zombie owner cannot act after a handoff. A higher
  epoch is recorded even if a later check refuses the command: it proves a newer owner.
  Commands without a session (the fleet planner's) are not fenced. `observe()` raises
  the fence without a command: the handoff service reports each new lease epoch, so a
  late local command is refused as soon as another owner holds the session.
- **allow-list** (`not_allowed`): the fleet's action vocabulary (`shared.actions`: what
  the planner and the twin send, `gw.*` included), the actions the rules and models use,
  plus `[actuate] allow`.
- **bounds** (`out_of_bounds`): the vocabulary's bounds (`set_load.load` in [0, 1], ...),
  overridden or extended per param by `[actuate.bounds.<action>] param = [min, max]`.
- **params** (`bad_params`): a param the vocabulary knows, with a value of the wrong type
  (`fan.on = "yes"`). Unknown or missing params are the device's to refuse: a site's own
  device may take more than the vocabulary says.
- **deadline** (`expired`): a command whose deadline has passed is history, not an order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from edge.config import ActuateConfig
from edge.errors import GuardRefused
from shared import actions
from shared.messages import Command
from shared.messages.base import Scalar

Bounds = Mapping[str, Mapping[str, tuple[float, float]]]


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    allowed: frozenset[str]
    bounds: Bounds = field(default_factory=dict)

    @classmethod
    def build(cls, config: ActuateConfig, rule_actions: frozenset[str]) -> GuardPolicy:
        allowed = rule_actions | set(config.allow) | set(actions.ACTIONS)
        return cls(frozenset(allowed), _merged_bounds(config.bounds))


def _merged_bounds(configured: Bounds) -> dict[str, dict[str, tuple[float, float]]]:
    """The vocabulary's bounds, with the site's `[actuate.bounds]` taking precedence."""
    merged = {name: spec.bounds for name, spec in actions.ACTIONS.items() if spec.bounds}
    for action, params in configured.items():
        merged[action] = {**merged.get(action, {}), **params}
    return merged


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
        bounds = self.policy.bounds.get(action, {})
        _check_bounds(action, params, bounds)
        # The bounded params were judged by the site's limits where it set some.
        rest = {name: value for name, value in params.items() if name not in bounds}
        why = actions.problem(action, rest, strict=False)
        if why is not None:
            raise GuardRefused(why, reason="bad_params")

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

    def observe(self, session: str, epoch: int) -> bool:
        """Record a lease epoch seen outside any command; whether it raised the fence
        (persist it then, as `Actuator.admit` does, so a restart still refuses a zombie)."""
        if epoch <= self._epochs.get(session, 0):
            return False
        self._epochs[session] = epoch
        return True

    def epoch(self, session: str) -> int:
        return self._epochs.get(session, 0)


def _check_bounds(
    action: str, params: Mapping[str, Scalar], bounds: Mapping[str, tuple[float, float]]
) -> None:
    for name, (low, high) in bounds.items():
        if name not in params:
            continue
        value = params[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise GuardRefused(f"{action}.{name}={value!r} is not a number", reason="out_of_bounds")
        if not low <= value <= high:
            raise GuardRefused(
                f"{action}.{name}={value} outside [{low}, {high}]", reason="out_of_bounds"
            )

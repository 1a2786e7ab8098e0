"""Step preconditions: checked against the fleet view right before a step is sent.

    online      the device's twin says it is online
    converged   the edge has applied the twin's current desired version

A device the fleet view does not know yet passes: the step's deadline still guards it.
An unknown precondition never passes, so a typo in a plan fails loudly, not silently.
"""

from __future__ import annotations

from collections.abc import Callable

from cloud.twins.view import FleetView
from shared.messages import PlanStep, TwinState

_CHECKS: dict[str, Callable[[TwinState], bool]] = {
    "online": lambda twin: twin.online,
    "converged": lambda twin: twin.converged,
}
PRECONDITIONS: frozenset[str] = frozenset(_CHECKS)


def unmet(step: PlanStep, fleet: FleetView) -> str | None:
    """The first precondition of `step` that does not hold, or None."""
    twin = fleet.device(step.device, step.gw)
    for name in step.preconditions:
        check = _CHECKS.get(name)
        if check is None:
            return f"unknown precondition {name!r}"
        if twin is not None and not check(twin):
            return f"precondition {name!r} not met"
    return None

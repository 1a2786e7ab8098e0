"""Actuation: the guard (fencing, allow-list, bounds, deadlines) and the actuator."""

from edge.actuate.actuator import Actuator
from edge.actuate.guard import TWIN_ACTION, ActuationGuard, GuardPolicy

__all__ = ["TWIN_ACTION", "ActuationGuard", "Actuator", "GuardPolicy"]

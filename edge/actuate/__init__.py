"""Actuation: the guard (fencing, allow-list, bounds, deadlines), the actuator, and the
actions the gateway carries out itself (`gw.*`)."""

from edge.actuate.actuator import Actuator
from edge.actuate.gateway import GatewayActions
from edge.actuate.guard import ActuationGuard, GuardPolicy

__all__ = ["ActuationGuard", "Actuator", "GatewayActions", "GuardPolicy"]

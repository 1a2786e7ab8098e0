"""The actions the shipped planners put in plan steps: a selection of `shared.actions`.

The names, params and bounds live in `shared.actions`, the one vocabulary the edge's
guard and twin and the simulated firmware read too; this module only says which of them
the planners use and hands their descriptions to the LLM planner as its tool list.

Device actions go to the device's command topic; `gw.*` actions are addressed to the
same device subject (`downlink.<gw>.cmd.<device>`, so they stay attached to the device
they concern) but are carried out and acknowledged by the edge daemon itself.
"""

from __future__ import annotations

from shared import actions as vocabulary
from shared.actions import (
    DIAGNOSE,
    SET_LOAD,
    SET_SETPOINT,
    TICKET,
    TICKET_CANCEL,
    problem,
    state_key,
)

__all__ = [
    "ACTIONS",
    "DIAGNOSE",
    "LOAD_KEY",
    "SETPOINT_KEY",
    "SET_LOAD",
    "SET_SETPOINT",
    "TICKET",
    "TICKET_CANCEL",
    "problem",
]

# Name -> what it does (also the LLM planner's tool list).
ACTIONS: dict[str, str] = {
    name: vocabulary.ACTIONS[name].summary
    for name in (SET_LOAD, SET_SETPOINT, TICKET, TICKET_CANCEL, DIAGNOSE)
}

# Where a device twin keeps the value these actions set (desired/reported state keys).
LOAD_KEY = state_key(SET_LOAD, "load")
SETPOINT_KEY = state_key(SET_SETPOINT, "setpoint")

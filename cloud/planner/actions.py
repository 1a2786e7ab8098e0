"""The actions the shipped planners put in plan steps: what the edge must understand.

Device actions go to the device's command topic; `gw.*` actions are addressed to the
same device subject (`downlink.<gw>.cmd.<device>`, so they stay attached to the device
they concern) but are carried out and acknowledged by the edge daemon itself.
"""

from __future__ import annotations

SET_LOAD = "set_load"
SET_SETPOINT = "set_setpoint"
TICKET = "gw.ticket"
TICKET_CANCEL = "gw.ticket_cancel"
DIAGNOSE = "gw.diagnose"

# Name -> what it does (also the LLM planner's tool list, so say it plainly).
ACTIONS: dict[str, str] = {
    SET_LOAD: "device: run at params.load (0.0-1.0 of rated load)",
    SET_SETPOINT: "device: regulate to params.setpoint (same unit as its temperature)",
    TICKET: "gateway: open a ticket params.kind ('maintenance'|'check') with params.ref, "
    "params.reason for the site's technicians",
    TICKET_CANCEL: "gateway: withdraw the ticket params.ref",
    DIAGNOSE: "gateway: probe the device's link and report what it finds",
}

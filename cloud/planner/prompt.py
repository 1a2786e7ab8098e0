"""What the LLM planner is told: its job, the tools, and the facts of one trigger."""

from __future__ import annotations

import json
from typing import Any

from cloud.agents.base import AgentContext, Trigger
from cloud.twins.view import FleetView
from shared.messages import TwinState

SYSTEM = (
    "You plan maintenance for an industrial IoT fleet. Given a trigger and the state of "
    "the devices involved, reply with one JSON plan: ordered steps, each a command to one "
    "device through its gateway, each with a compensation that undoes it (or null when "
    "nothing needs undoing). Use only the listed actions and only devices in the facts. "
    "Prefer few, safe steps; reduce load before asking people to act."
)
# Rollup minutes shown per device, and site peers listed, to keep the prompt short.
ROLLUP_MINUTES = 15
MAX_PEERS = 12


def targets(fleet: FleetView, trigger: Trigger) -> list[TwinState]:
    """The devices the model is told about (and may target): the trigger's first."""
    site = [t for t in fleet.devices() if trigger.gw is None or t.gw == trigger.gw]
    focus = {trigger.device, *trigger.devices}
    site.sort(key=lambda t: t.device not in focus)
    return site[:MAX_PEERS]


def messages(
    trigger: Trigger, ctx: AgentContext, actions: dict[str, str], devices: list[TwinState]
) -> list[dict[str, str]]:
    facts = {
        "trigger": _trigger(trigger),
        "devices": [_device(ctx.fleet, twin, trigger) for twin in devices],
        "actions": actions,
        "default_deadline_s": ctx.step_deadline_ms / 1000,
    }
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": json.dumps(facts, separators=(",", ":"), default=str)},
    ]


def _trigger(trigger: Trigger) -> dict[str, Any]:
    return {
        "kind": trigger.kind,
        "gw": trigger.gw,
        "device": trigger.device,
        "devices": list(trigger.devices),
        "reason": trigger.reason,
        "detail": dict(trigger.detail),
    }


def _device(fleet: FleetView, twin: TwinState, trigger: Trigger) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "gw": twin.gw,
        "device": twin.device,
        "online": twin.online,
        "reported": twin.reported,
    }
    if twin.device in {trigger.device, *trigger.devices}:
        entry["rollups"] = _rollups(fleet, twin.device, twin.gw)
    return entry


def _rollups(fleet: FleetView, device: str, gw: str) -> dict[str, list[float]]:
    """Per metric, the per-minute means, oldest first."""
    series: dict[str, list[float]] = {}
    for row in fleet.rollups(device, ROLLUP_MINUTES, gw):
        series.setdefault(row["metric"], []).append(round(row["mean"], 3))
    return series

"""The local agent's tools over the gateway's own state.

    list_devices        devices this gateway has data for
    recent_readings     the last readings of a device (live), else its latest minute
    query_rollups       per-minute min/max/mean of a device over the last N minutes
    read_twin           desired vs applied state and versions
    list_rules          the reflex rules (and models) in force, with their limits
    explain_decision    why a reflex fired: the inputs against the rule, what it sent
    actuate             a command through the edge's safety guard, fenced by the epoch

A tool that needs a device and is not given one uses the session's focus device (the
last one asked about), or the only device there is; otherwise it says which exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pydantic import JsonValue

from edge.agent import explain
from edge.agent.actuate import actuate
from edge.agent.resolve import resolve_device
from edge.agent.state import EdgeState
from shared.agent import Tool, ToolBox, ToolContext, ToolError
from shared.agent.tools import Run
from shared.messages import now_ms

Args = Mapping[str, JsonValue]

DEVICE: dict[str, JsonValue] = {"type": "string", "description": "device id, e.g. pump1"}
DEFAULT_MINUTES = 60
MAX_MINUTES = 7 * 24 * 60


def edge_tools(state: EdgeState) -> ToolBox:
    """Every tool, bound to `state`, with the compact state summary the model starts from."""
    tools = [
        _tool("list_devices", "which devices this gateway has data for", {},
              lambda a, c: _devices(state), explain.devices),
        _tool("recent_readings", "the latest readings of a device", {"device": DEVICE},
              lambda a, c: _recent(state, a, c), explain.recent),
        _tool("query_rollups", "min/max/mean of a device's metrics over the last minutes",
              {"device": DEVICE, "minutes": {"type": "integer"}, "metric": {"type": "string"}},
              lambda a, c: _rollups(state, a, c), explain.rollups),
        _tool("read_twin", "a device's twin: desired vs applied state and versions",
              {"device": DEVICE}, lambda a, c: _twin(state, a, c), explain.twin),
        _tool("list_rules", "the reflex rules in force and their limits", {"device": DEVICE},
              lambda a, c: _rules(state, a), explain.rules),
        _tool("explain_decision", "why a reflex rule fired on a device, and what it did",
              {"device": DEVICE, "decision_id": {"type": "string"}},
              lambda a, c: _decision(state, a, c), explain.decision),
        _tool("actuate", "send a command to a device (checked by the safety guard)",
              {"device": DEVICE, "action": {"type": "string"}, "params": {"type": "object"}},
              lambda a, c: actuate(state, a, c), explain.actuation, required=("action",)),
    ]  # fmt: skip
    return ToolBox(tools, summary=lambda: explain.summary(state))


def _tool(
    name: str,
    description: str,
    props: dict[str, JsonValue],
    run: Run,
    summarize: Callable[[JsonValue], str],
    *,
    required: tuple[str, ...] = (),
) -> Tool:
    params: dict[str, JsonValue] = {"type": "object", "properties": props}
    if required:
        params["required"] = list(required)
    return Tool(name, description, params, run, summarize)


async def _devices(state: EdgeState) -> JsonValue:
    return {"gateway": state.gateway, "devices": list(await state.devices())}


async def _recent(state: EdgeState, args: Args, ctx: ToolContext) -> JsonValue:
    device = await resolve_device(state, args, ctx)
    live = state.recent(device, 5)
    if live:
        rows: list[JsonValue] = [{"ts_ms": r.ts_ms, "metrics": dict(r.metrics)} for r in live]
        return {"device": device, "source": "live", "readings": rows}
    # No live tap (or nothing heard yet): the newest per-minute rollup is the latest data.
    minutes = await state.rollups(device, now_ms() - 60 * 60_000)
    if not minutes:
        return {"device": device, "source": "none", "readings": []}
    newest = max(row["minute_ms"] for row in minutes)
    metrics = {row["metric"]: row["mean"] for row in minutes if row["minute_ms"] == newest}
    return {
        "device": device,
        "source": "rollup",
        "readings": [{"ts_ms": newest, "metrics": metrics}],
    }


async def _rollups(state: EdgeState, args: Args, ctx: ToolContext) -> JsonValue:
    device = await resolve_device(state, args, ctx)
    minutes = args.get("minutes", DEFAULT_MINUTES)
    if not isinstance(minutes, int) or not 1 <= minutes <= MAX_MINUTES:
        raise ToolError(f"minutes must be 1..{MAX_MINUTES}")
    rows = await state.rollups(device, now_ms() - minutes * 60_000)
    metric = args.get("metric")
    if isinstance(metric, str):
        rows = [row for row in rows if row["metric"] == metric]
    return {"device": device, "minutes": minutes, "metrics": explain.fold_rollups(rows)}


async def _twin(state: EdgeState, args: Args, ctx: ToolContext) -> JsonValue:
    device = await resolve_device(state, args, ctx)
    twin = (await state.twins()).get(device)
    if twin is None:
        return {"device": device, "twin": None}
    return {
        "device": device,
        "desired_version": twin.desired_version,
        "applied_version": twin.applied_version,
        "desired": dict(twin.desired),
        "reported": dict(twin.reported),
        "updated_ms": twin.updated_ms,
        "converged": twin.applied_version >= twin.desired_version,
    }


async def _rules(state: EdgeState, args: Args) -> JsonValue:
    device = args.get("device")
    rules = [
        explain.rule_dict(rule)
        for rule in state.rules()
        if not isinstance(device, str) or rule.device in (None, device)
    ]
    models: list[JsonValue] = [
        {"name": m.name, "action": m.action, "threshold": m.threshold, "dclass": m.dclass,
         "device": m.device}
        for m in state.models()
    ]  # fmt: skip
    return {"rules": list(rules), "models": models}


async def _decision(state: EdgeState, args: Args, ctx: ToolContext) -> JsonValue:
    wanted = args.get("decision_id")
    device = args.get("device") or ctx.memory.get("device")
    rows = await state.decisions(device if isinstance(device, str) else None, 50)
    if isinstance(wanted, str):
        rows = [row for row in rows if row["decision_id"] == wanted]
    if not rows:
        return {"device": device, "decision": None}
    row = rows[0]  # newest first
    ctx.memory["device"] = row["device"]
    action = await state.action(row["cmd_id"]) if row["cmd_id"] else None
    rule = next((r for r in state.rules() if r.name == row["name"]), None)
    return explain.decision_dict(row, action, rule)

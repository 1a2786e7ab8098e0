"""Plan builders of the deterministic planner's scenarios (see `deterministic`).

Current values come from the device twin, under the keys desired state uses for them
(`set_load.load`, `set_setpoint.setpoint`: `shared.actions.state_key`).
"""

from __future__ import annotations

from cloud.agents.base import AgentContext, Proposal, Trigger
from cloud.planner.actions import (
    DIAGNOSE,
    LOAD_KEY,
    SET_LOAD,
    SET_SETPOINT,
    SETPOINT_KEY,
    TICKET,
    TICKET_CANCEL,
)
from cloud.planner.config import ScenarioConfig
from shared import trace
from shared.messages import Compensation, Plan, PlanStep, TwinState, new_id
from shared.messages.base import Params

# A rebalance touches at most this many devices (a plan has at most 64 steps).
MAX_REBALANCE = 32


def maintenance(
    cfg: ScenarioConfig, trigger: Trigger, ctx: AgentContext, gw: str, device: str
) -> Proposal:
    twin = ctx.fleet.device(device, gw)
    load = _number(twin, LOAD_KEY, cfg.normal_load)
    why = trigger.reason or f"{trigger.detail.get('model', 'a model')} flagged {device}"
    steps = [
        _step(ctx, 0, gw, device, SET_LOAD, {"load": cfg.reduced_load}, (SET_LOAD, {"load": load}),
              preconditions=["online"]),
        _ticket(ctx, 1, gw, device, "maintenance", why),
    ]  # fmt: skip
    return Proposal(
        _plan(trigger, steps, f"schedule maintenance: {why}"), f"maintenance.{gw}.{device}"
    )


def rebalance(
    cfg: ScenarioConfig, trigger: Trigger, ctx: AgentContext, gw: str, hot: tuple[str, ...]
) -> Proposal | None:
    site = [t for t in ctx.fleet.devices() if t.gw == gw]
    hot_set = set(hot[:MAX_REBALANCE])
    peers = [t for t in site if t.online and t.device not in hot_set and SETPOINT_KEY in t.reported]
    peers = peers[:MAX_REBALANCE]
    steps: list[PlanStep] = []
    for device in sorted(hot_set):
        current = _number(ctx.fleet.device(device, gw), SETPOINT_KEY, cfg.default_setpoint)
        steps.append(_setpoint(ctx, len(steps), gw, device, current, current - cfg.setpoint_delta))
    # The cool peers take the load off the hot ones: their setpoints rise by a share.
    share = cfg.setpoint_delta * len(hot_set) / len(peers) if peers else 0.0
    for twin in peers:
        current = _number(twin, SETPOINT_KEY, cfg.default_setpoint)
        raised = current + min(share, cfg.setpoint_delta)
        steps.append(_setpoint(ctx, len(steps), gw, twin.device, current, raised))
    if not steps:
        return None
    why = trigger.reason or f"{trigger.detail.get('rule', 'a rule')} keeps firing on {gw}"
    return Proposal(_plan(trigger, steps, f"rebalance setpoints: {why}"), f"rebalance.{gw}")


def check(trigger: Trigger, ctx: AgentContext, gw: str, device: str) -> Proposal:
    why = trigger.reason or f"{device} went offline"
    steps = [
        _step(ctx, 0, gw, device, DIAGNOSE, {}, None),
        _ticket(ctx, 1, gw, device, "check", why),
    ]
    return Proposal(_plan(trigger, steps, f"check device: {why}"), f"check.{gw}.{device}")


def _plan(trigger: Trigger, steps: list[PlanStep], reason: str) -> Plan:
    tp = trace.child_of(trigger.traceparent) if trigger.traceparent else trace.new_traceparent()
    return Plan(trigger=trigger.kind, reason=reason[:2048], steps=steps, traceparent=tp)


def _step(
    ctx: AgentContext,
    index: int,
    gw: str,
    device: str,
    action: str,
    params: Params,
    undo: tuple[str, Params] | None,
    preconditions: list[str] | None = None,
) -> PlanStep:
    return PlanStep(
        index=index,
        gw=gw,
        device=device,
        action=action,
        params=params,
        preconditions=preconditions or [],
        deadline_ms=ctx.step_deadline_ms,
        compensation=Compensation(action=undo[0], params=undo[1]) if undo else None,
    )


def _ticket(ctx: AgentContext, index: int, gw: str, device: str, kind: str, why: str) -> PlanStep:
    ref = new_id()
    params: Params = {"kind": kind, "ref": ref, "reason": why[:512]}
    return _step(ctx, index, gw, device, TICKET, params, (TICKET_CANCEL, {"ref": ref}))


def _setpoint(
    ctx: AgentContext, index: int, gw: str, device: str, now: float, to: float
) -> PlanStep:
    undo: tuple[str, Params] = (SET_SETPOINT, {"setpoint": now})
    return _step(ctx, index, gw, device, SET_SETPOINT, {"setpoint": round(to, 3)}, undo,
                 preconditions=["online"])  # fmt: skip


def _number(twin: TwinState | None, name: str, default: float) -> float:
    """The twin's reported (else desired) numeric value of `name`, or `default`."""
    for state in (twin.reported, twin.desired) if twin else ():
        value = state.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return default

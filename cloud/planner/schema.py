"""The JSON the LLM planner must produce, and its validation into a `shared` `Plan`.

The schema goes to llama.cpp as a grammar (`response_format={"type": "json_object",
"schema": ...}`), so the model can only emit this shape; the pydantic `Plan`/`PlanStep`
models then check what a grammar cannot (id patterns, numbers), the action vocabulary
(`shared.actions`) checks every step's and compensation's params (names, types, bounds:
what the edge's guard and the device would refuse anyway), and the fleet view checks
that every target exists. Anything that fails is a `PlanError`: the registry counts it
and falls back to the next planner.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from cloud.errors import PlanError
from cloud.planner.actions import problem
from cloud.planner.preconditions import PRECONDITIONS
from cloud.twins.view import FleetView
from shared.messages import Compensation, Plan, PlanStep

# Bounded strings keep a grammar-constrained generation short even from a confused model.
_SCALAR = {"anyOf": [{"type": "string", "maxLength": 64}, {"type": "number"}, {"type": "boolean"}]}
MAX_REASON_CHARS = 400
# The model may not wait for an ack longer than this per step.
MAX_DEADLINE_S = 3600.0


def plan_schema(
    actions: list[str],
    max_steps: int,
    targets: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The plan JSON schema. With `targets` ((gw, device) pairs), the model can only name
    those gateways and devices: it cannot invent one."""
    gw = {"enum": sorted({g for g, _ in targets})} if targets else {"type": "string"}
    device = {"enum": sorted({d for _, d in targets})} if targets else {"type": "string"}
    params = {"type": "object", "additionalProperties": _SCALAR}
    compensation = {
        "type": "object",
        "properties": {"action": {"enum": actions}, "params": params},
        "required": ["action", "params"],
    }
    conditions = {"type": "array", "items": {"enum": sorted(PRECONDITIONS)}, "maxItems": 2}
    step = {
        "type": "object",
        "properties": {
            "gw": gw,
            "device": device,
            "action": {"enum": actions},
            "params": params,
            "preconditions": conditions,
            "deadline_s": {"type": "number"},
            "compensation": {"anyOf": [compensation, {"type": "null"}]},
        },
        "required": ["gw", "device", "action", "params", "compensation"],
    }
    return {
        "type": "object",
        "properties": {
            "reason": {"type": "string", "maxLength": MAX_REASON_CHARS},
            "steps": {"type": "array", "items": step, "minItems": 1, "maxItems": max_steps},
        },
        "required": ["reason", "steps"],
    }


def parse_plan(text: str, *, trigger: str, default_deadline_ms: int, fleet: FleetView) -> Plan:
    """Validate the model's output into a plan; `PlanError` saying what is wrong."""
    try:
        # llama.cpp's JSON grammar lets raw control characters into strings: harmless here.
        draft = json.loads(text, strict=False)
    except ValueError as exc:
        raise PlanError(f"LLM output is not JSON: {exc}") from exc
    if not isinstance(draft, dict) or not isinstance(draft.get("steps"), list):
        raise PlanError("LLM output has no steps list")
    try:
        steps = [_step(i, raw, default_deadline_ms) for i, raw in enumerate(draft["steps"])]
        plan = Plan(trigger=trigger, reason=str(draft.get("reason", ""))[:2048], steps=steps)
    except (ValidationError, TypeError, ValueError) as exc:
        raise PlanError(f"LLM plan is invalid: {exc}") from exc
    for step in plan.steps:
        _check_params(step)
        if fleet.device(step.device, step.gw) is None:
            raise PlanError(f"LLM plan targets unknown device {step.gw}/{step.device}")
    return plan


def _check_params(step: PlanStep) -> None:
    calls = [(step.action, step.params)]
    if step.compensation is not None:
        calls.append((step.compensation.action, step.compensation.params))
    for action, params in calls:
        why = problem(action, params)
        if why is not None:
            raise PlanError(f"LLM plan step {step.index}: {why}")


def _step(index: int, raw: Any, default_deadline_ms: int) -> PlanStep:
    if not isinstance(raw, dict):
        raise TypeError(f"step {index} is not an object")
    deadline_s = raw.get("deadline_s")
    if isinstance(deadline_s, (int, float)) and 0 < deadline_s <= MAX_DEADLINE_S:
        deadline_ms = int(deadline_s * 1000)
    else:
        deadline_ms = default_deadline_ms
    undo = raw.get("compensation")
    return PlanStep.model_validate(
        {
            "index": index,
            "gw": raw.get("gw"),
            "device": raw.get("device"),
            "action": raw.get("action"),
            "params": raw.get("params") or {},
            "preconditions": raw.get("preconditions") or [],
            "deadline_ms": deadline_ms,
            "compensation": Compensation.model_validate(undo) if undo else None,
        }
    )

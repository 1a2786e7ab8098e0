"""Plan routes: list, read, and ask the planner for a plan now."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query

from cloud.api.deps import PlanSource
from cloud.api.routes import Deps
from cloud.api.schemas import ErrorOut, PlanRequest
from cloud.errors import NotFound, Unavailable
from shared.messages import Plan

router = APIRouter(prefix="/api/plans")
PlanId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


def _planner(deps: Deps) -> PlanSource:
    if deps.planner is None:
        raise Unavailable("the planner is disabled on this replica ([planner] enabled = false)")
    return deps.planner


@router.get("", response_model=list[Plan], summary="recent plans, newest first")
async def plans(deps: Deps, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[Plan]:
    return [] if deps.planner is None else deps.planner.plans(limit=limit)


@router.get(
    "/{plan_id}",
    response_model=Plan,
    responses={404: {"model": ErrorOut, "description": "unknown plan"}},
    summary="one plan with its steps",
)
async def plan(deps: Deps, plan_id: PlanId) -> Plan:
    found = None if deps.planner is None else deps.planner.plan(plan_id)
    if found is None:
        raise NotFound(f"plan {plan_id} is not known")
    return found


@router.get(
    "/{plan_id}/history",
    responses={404: {"model": ErrorOut, "description": "unknown plan"}},
    summary="the plan's step history: sent, acked, failed, compensated, taken over",
)
async def history(deps: Deps, plan_id: PlanId) -> list[dict[str, Any]]:
    if deps.planner is None or deps.planner.plan(plan_id) is None:
        raise NotFound(f"plan {plan_id} is not known")
    return [event.model_dump(mode="json") for event in deps.planner.history(plan_id)]


@router.post(
    "",
    response_model=Plan | None,
    responses={503: {"model": ErrorOut, "description": "planner disabled"}},
    summary="plan now; null when the planner finds nothing to do (or it was just planned)",
)
async def plan_now(
    deps: Deps, request: Annotated[PlanRequest | None, Body()] = None
) -> Plan | None:
    request = request or PlanRequest()
    return await _planner(deps).request_plan(request.trigger, request.reason)

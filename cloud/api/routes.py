"""Fleet, device and desired-state routes (sessions: `cloud.api.sessions`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request

from cloud.api.deps import ApiDeps
from cloud.api.schemas import (
    DesiredBody,
    DesiredOut,
    DeviceOut,
    DeviceSummary,
    ErrorOut,
    FleetOut,
    ReadingOut,
    RollupOut,
    summary_fields,
)
from cloud.errors import BadRequest, NotFound
from shared.subjects import ID_PATTERN


def get_deps(request: Request) -> ApiDeps:
    deps: ApiDeps = request.app.state.deps
    return deps


Deps = Annotated[ApiDeps, Depends(get_deps)]
GatewayId = Annotated[str, Path(pattern=ID_PATTERN, description="gateway id")]
DeviceId = Annotated[str, Path(pattern=ID_PATTERN, description="device id")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "unknown device"},
    422: {"model": ErrorOut, "description": "malformed request"},
}

router = APIRouter(prefix="/api")


@router.get("/fleet", response_model=FleetOut, summary="every device twin, whole fleet")
async def fleet(deps: Deps) -> FleetOut:
    db = deps.readmodel
    devices = [DeviceSummary.of(twin) for twin in db.twins()]
    return FleetOut(replica=deps.replica, counts=db.counts(), devices=devices)


@router.get("/devices/{gw}/{dev}", response_model=DeviceOut, responses=_ERRORS, summary="one twin")
async def device(
    deps: Deps,
    gw: GatewayId,
    dev: DeviceId,
    readings: Annotated[int, Query(ge=0, le=1000, description="recent readings")] = 20,
    minutes: Annotated[int, Query(ge=0, le=24 * 60, description="rollup window")] = 60,
) -> DeviceOut:
    db = deps.readmodel
    twin = db.twin(gw, dev)
    if twin is None:
        raise NotFound(f"device {gw}/{dev} is not known to the fleet")
    return DeviceOut(
        **summary_fields(twin),
        desired=dict(twin.desired),
        reported=dict(twin.reported),
        desired_ms=twin.desired_ms,
        sent_ms=twin.sent_ms,
        sends=twin.sends,
        recent=[ReadingOut(**row) for row in db.readings(gw, dev, readings)],
        rollups=[RollupOut.of(row) for row in db.rollups(dev, minutes, gw)] if minutes else [],
    )


@router.put(
    "/devices/{gw}/{dev}/desired",
    response_model=DesiredOut,
    responses={**_ERRORS, 412: {"model": ErrorOut, "description": "If-Match is stale"}},
    summary="replace the desired state; returns its new version",
)
async def set_desired(
    deps: Deps,
    gw: GatewayId,
    dev: DeviceId,
    state: Annotated[
        DesiredBody,
        Body(description='the whole desired state, e.g. {"fan.on": true, "set_load.load": 0.5}'),
    ],
    if_match: Annotated[
        str | None, Header(description="the desired version this change is based on")
    ] = None,
) -> DesiredOut:
    record = await deps.desired.set(gw, dev, state, if_version=_version(if_match))
    return DesiredOut(gw=gw, device=dev, version=record.desired_version, state=dict(record.desired))


def _version(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    value = if_match.strip().strip('"')
    if not value.isdigit():
        raise BadRequest(f"If-Match must be a desired version number, not {if_match!r}")
    return int(value)

"""The FastAPI application of one replica; `create_app(deps)` wires routes to services.

GET  /api/fleet                       every twin (summary), counts
GET  /api/devices/{gw}/{dev}          one twin: desired, reported, recent readings, rollups
PUT  /api/devices/{gw}/{dev}/desired  replace desired state → new version (If-Match optional)
GET  /api/plans · /api/plans/{id}     plans and their steps
POST /api/plans                       plan now
GET  /api/sessions · /api/sessions/{id}   sessions: owner, side, epoch
POST /api/sessions/{id}/handoff       move a session to the cloud or the edge
POST /api/sessions/{id}/rtc           WebRTC offer for a session's live stream → answer
GET  /api/sessions/{id}/events        a session's events (server-sent events)
GET  /api/events                      server-sent events
GET  /healthz · /metrics · /openapi.json · /docs
"""

from __future__ import annotations

from fastapi import FastAPI

from cloud.api import errors, plans, routes, sessions, stream
from cloud.api.deps import ApiDeps

API_VERSION = "1"


def create_app(deps: ApiDeps) -> FastAPI:
    app = FastAPI(
        title="baton cloud orchestrator",
        version=API_VERSION,
        summary="Fleet twins, desired state, plans and live events of a baton fleet.",
    )
    app.state.deps = deps
    errors.install(app)
    app.add_middleware(errors.BodyLimit, max_bytes=deps.max_body_bytes)
    app.add_middleware(errors.RefusalCounter, counter=deps.metrics.api_refused)
    app.include_router(routes.router)
    app.include_router(plans.router)
    app.include_router(sessions.router)
    app.include_router(stream.router)
    return app

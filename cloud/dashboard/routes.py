"""The page and the routes it needs beyond the API.

GET /                          the dashboard (static HTML; its JS and CSS under /dashboard/)
GET /dashboard/...             static files: modules, styles, vendored Cytoscape.js
GET /api/dashboard             one snapshot: flow, graph, agent streams, handoffs, picks
GET /api/traces?kind=&limit=   readings, commands, plan steps or handoffs that have a trace
GET /api/traces/{trace_id}     the spans of one trace, in time order
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from cloud.dashboard.traces import PickKind
from cloud.errors import NotFound

if TYPE_CHECKING:
    from cloud.dashboard.service import Dashboard

STATIC_PREFIX = "/dashboard"

router = APIRouter()


def static_dir() -> Path:
    return Path(str(resources.files("cloud.dashboard").joinpath("static")))


def mount(app: FastAPI, dashboard: Dashboard) -> None:
    """Serve the page, its files and its routes from `app`."""
    app.state.dashboard = dashboard
    app.include_router(router)
    app.mount(STATIC_PREFIX, StaticFiles(directory=static_dir()), name="dashboard")


def _dashboard(request: Request) -> Dashboard:
    found: Dashboard = request.app.state.dashboard
    return found


@cache
def _index() -> str:
    return (static_dir() / "index.html").read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index() -> HTMLResponse:
    return HTMLResponse(_index(), headers={"Cache-Control": "no-cache"})


@router.get("/api/dashboard", summary="the dashboard's state: flow, graph, agents, handoffs")
async def snapshot(request: Request) -> dict[str, Any]:
    return _dashboard(request).snapshot()


@router.get("/api/traces", summary="recent readings, commands, plan steps or handoffs")
async def picks(
    request: Request,
    kind: Annotated[PickKind, Query(description="what to list")] = "reading",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[dict[str, Any]]:
    return [p.to_json() for p in _dashboard(request).store.picks(kind, limit)]


@router.get(
    "/api/traces/{trace_id}",
    summary="one trace's spans: the path across sensor, edge, hub and cloud",
)
async def spans(request: Request, trace_id: str) -> dict[str, Any]:
    if not _is_trace_id(trace_id):
        raise NotFound(f"{trace_id!r} is not a W3C trace id (32 lower-case hex digits)")
    found = _dashboard(request).store.spans(trace_id)
    if not found:
        raise NotFound(f"trace {trace_id} is not known to this replica (or has been evicted)")
    return {"trace_id": trace_id, "spans": [span.to_json() for span in found]}


def _is_trace_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)

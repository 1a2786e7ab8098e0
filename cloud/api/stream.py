"""`GET /api/events` (server-sent events), `GET /healthz` and `GET /metrics`.

The event stream starts with a `: connected` comment (a client knows it is subscribed
before anything happens), then one SSE event per fleet or agent event:

    id: 42
    event: twin
    data: {"gw": "gw1", "device": "fan-3", "online": true, ...}

and a `: ping` comment every `HEARTBEAT_S` so proxies keep idle streams open. It ends
when the replica shuts down (the bus closes) or the client goes away.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cloud.api.events import Subscription
from cloud.api.routes import Deps
from cloud.errors import BadRequest

HEARTBEAT_S: Final = 15.0
EVENT_TYPES: Final = frozenset(
    {"twin", "reading", "report", "status", "ack", "decision", "event", "plan"}
    # the dashboard's own views (cloud/dashboard)
    | {"agent", "handoff", "flow", "graph", "picks"}
)

router = APIRouter()


@router.get(
    "/api/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE stream"}},
    summary="live fleet and agent events (server-sent events)",
)
async def events(
    deps: Deps,
    types: Annotated[
        str | None, Query(description=f"comma-separated subset of {sorted(EVENT_TYPES)}")
    ] = None,
) -> StreamingResponse:
    wanted = _types(types)
    sub = deps.bus.subscribe(wanted)
    return StreamingResponse(
        _stream(sub),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _types(types: str | None) -> set[str] | None:
    if not types:
        return None
    wanted = {t.strip() for t in types.split(",") if t.strip()}
    unknown = wanted - EVENT_TYPES
    if unknown:
        raise BadRequest(f"unknown event types {sorted(unknown)}; known: {sorted(EVENT_TYPES)}")
    return wanted


async def _stream(sub: Subscription) -> AsyncIterator[str]:
    try:
        yield ": connected\nretry: 2000\n\n"
        while True:
            try:
                event = await sub.next(HEARTBEAT_S)
            except asyncio.TimeoutError:
                yield ": ping\n\n"
                continue
            if event is None:
                return
            data = json.dumps(event.data, separators=(",", ":"))
            yield f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n"
    finally:
        sub.close()


@router.get("/healthz", summary="200 when this replica is connected and loaded, else 503")
async def healthz(deps: Deps) -> JSONResponse:
    facts: dict[str, Any] = {"replica": deps.replica, **deps.health()}
    healthy = all(value is not False for value in facts.values())
    facts["status"] = "ok" if healthy else "degraded"
    return JSONResponse(facts, status_code=200 if healthy else 503)


@router.get("/metrics", response_class=Response, summary="Prometheus metrics of this replica")
async def metrics(deps: Deps) -> Response:
    return Response(generate_latest(deps.metrics.registry), media_type=CONTENT_TYPE_LATEST)

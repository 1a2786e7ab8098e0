"""Session routes: list the sessions on the hub, move one, follow one live.

GET  /api/sessions                  every session: owner, side, epoch (this replica's lease board)
GET  /api/sessions/{id}             one session; 404 when no lease names it
POST /api/sessions/{id}/handoff     {"to": "cloud"|"edge"} → the handoff report (409 when it
                                    did not move: the report says at which step and why)
POST /api/sessions/{id}/rtc         {"sdp", "after"} → {"type": "answer", "sdp"}: a browser's
                                    WebRTC offer for the live stream (404 no owner, 503 owner silent)
GET  /api/sessions/{id}/events      the session's events after `after`, then live (SSE)

The routes answer 503 when this replica runs no `SessionManager`. A handoff that did not
complete is published on the event bus as a `handoff` event, so the dashboard's timeline
shows it: a completed one (and an abort the old owner logged) the dashboard already draws
from the session log (`cloud.dashboard.sessiontap`), and drawing it twice would show two rows.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from cloud.api.deps import ApiDeps, SessionSource
from cloud.api.routes import Deps
from cloud.api.schemas import ErrorOut
from cloud.errors import NotFound, Unavailable
from shared.errors import TransportError
from shared.messages import AgentEventBase, now_ms
from shared.session import HandoffReport, NotOwner
from shared.subjects import ID_PATTERN

log = logging.getLogger(__name__)

MAX_SDP: Final = 64 * 1024  # a browser's offer is a few KiB; the body limit bounds it anyway

router = APIRouter(prefix="/api/sessions")
SessionPath = Annotated[str, Path(pattern=ID_PATTERN, description="session id")]
_UNKNOWN: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "unknown session"},
    503: {"model": ErrorOut, "description": "no session handoff on this replica"},
}
_ids = itertools.count(1)


class SessionOut(BaseModel):
    session: str
    gw: str
    owner: str = Field(description="who holds the lease, e.g. edge:gw1 or cloud:r1")
    side: str = Field(description="edge or cloud")
    epoch: int = Field(description="the lease revision: the session's fencing epoch")
    prev: str | None = Field(description="the owner before this one")
    last_seq: int = Field(description="the last event of the session's log the owner wrote")


class HandoffBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: Literal["cloud", "edge"]
    reason: str = Field(default="api", max_length=256)


class RtcBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sdp: str = Field(min_length=1, max_length=MAX_SDP, description="the browser's SDP offer")
    after: int = Field(default=0, ge=0, description="the last event seq the browser has")


class RtcAnswer(BaseModel):
    type: Literal["answer"] = "answer"
    sdp: str


def _manager(deps: ApiDeps) -> SessionSource:
    if deps.sessions is None:
        raise Unavailable("session handoff is not running on this replica")
    return deps.sessions


def _known(sessions: SessionSource, session: str) -> SessionOut:
    info = sessions.session(session)
    if info is None:
        raise NotFound(f"session {session} is not known to the hub")
    return SessionOut.model_validate(info, from_attributes=True)


@router.get("", response_model=list[SessionOut], summary="every session: owner, side, epoch")
async def list_sessions(deps: Deps) -> list[SessionOut]:
    if deps.sessions is None:
        return []
    infos = deps.sessions.sessions()
    return [SessionOut.model_validate(info, from_attributes=True) for info in infos]


@router.get("/{session}", response_model=SessionOut, responses=_UNKNOWN, summary="one session")
async def one_session(deps: Deps, session: SessionPath) -> SessionOut:
    return _known(_manager(deps), session)


@router.post(
    "/{session}/handoff",
    response_model=HandoffReport,
    responses={**_UNKNOWN, 409: {"model": HandoffReport, "description": "it did not move"}},
    summary="move the session to the cloud or the edge; the report has each step's latency",
)
async def handoff(
    deps: Deps, session: SessionPath, body: Annotated[HandoffBody, Body()]
) -> JSONResponse:
    sessions = _manager(deps)
    _known(sessions, session)
    report = await sessions.request_handoff(session, body.to, reason=body.reason)
    if not report.ok:
        log.warning("handoff of %s to %s failed at %s: %s", session, body.to, report.step,
                    report.error, extra={"session": session})  # fmt: skip
        deps.bus.publish("handoff", _timeline(report, body))
    status = 200 if report.ok else 409
    return JSONResponse(report.model_dump(mode="json"), status_code=status)


def _timeline(report: HandoffReport, body: HandoffBody) -> dict[str, Any]:
    """The report in the dashboard timeline's shape (`sessiontap.Handoff.to_json`)."""
    end = now_ms()
    at = end - round(sum(step.ms for step in report.steps))
    steps = [{"name": "request", "at_ms": at, "ms": 0.0}]
    for step in report.steps:
        at += round(step.ms)
        steps.append({"name": step.name, "at_ms": at, "ms": step.ms})
    steps.append({"name": f"aborted at {report.step}: {report.error}", "at_ms": end, "ms": 0.0})
    return {"id": f"api-{report.session}-{next(_ids)}", "session": report.session,
            "to": body.to, "reason": body.reason, "trace_id": "", "state": "aborted",
            "latency_ms": report.latency_ms, "steps": steps}  # fmt: skip


@router.post(
    "/{session}/rtc",
    response_model=RtcAnswer,
    responses={**_UNKNOWN, 503: {"model": ErrorOut, "description": "its owner did not answer"}},
    summary="a browser's WebRTC offer for the session's live stream → the answer",
)
async def rtc(deps: Deps, session: SessionPath, body: Annotated[RtcBody, Body()]) -> RtcAnswer:
    sessions = _manager(deps)
    try:
        sdp = await sessions.rtc_answer(session, body.sdp, after=body.after)
    except NotOwner as exc:
        raise NotFound(f"session {session} has no owner to stream it: {exc}") from exc
    except TransportError as exc:
        raise Unavailable(str(exc)) from exc
    return RtcAnswer(sdp=sdp)


@router.get(
    "/{session}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **_UNKNOWN},
    summary="the session's events after `after`, then live (server-sent events)",
)
async def events(
    deps: Deps,
    session: SessionPath,
    after: Annotated[int, Query(ge=0, description="the last event seq already seen")] = 0,
) -> StreamingResponse:
    sessions = _manager(deps)
    _known(sessions, session)
    return StreamingResponse(
        _stream(sessions.events(session, after=after)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(feed: AsyncIterator[AgentEventBase]) -> AsyncIterator[str]:
    try:
        yield ": connected\nretry: 2000\n\n"
        async for event in feed:
            kind = getattr(event, "type", "event")  # every concrete event names its type
            yield f"id: {event.seq}\nevent: {kind}\ndata: {event.model_dump_json()}\n\n"
    finally:
        # The client went away: close the feed (its NATS subscription) now, not at GC.
        close = getattr(feed, "aclose", None)
        if close is not None:
            await close()

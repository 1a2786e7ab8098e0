"""Session routes without a hub: bad bodies are 4xx with a reason, the manager's errors
map to 404/409/503, and a failed handoff reaches the dashboard's timeline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from cloud.api.app import create_app
from cloud.api.deps import ApiDeps, SessionSource
from cloud.api.events import EventBus
from cloud.api.metrics import CloudMetrics
from cloud.readmodel.db import ReadModel
from cloud.sessions import SessionInfo
from shared.errors import TransportError
from shared.messages import AgentEventBase
from shared.session import HandoffReport, NotOwner, Side, Step

INFO = SessionInfo("s1", "gw1", "edge:gw1", "edge", 4, None, 7)


class FakeSessions:
    """The `SessionSource` seam: one session; rtc answers per `rtc_error`."""

    def __init__(self) -> None:
        self.rtc_error: Exception | None = None
        self.ok = False

    def sessions(self) -> list[SessionInfo]:
        return [INFO]

    def session(self, session: str) -> SessionInfo | None:
        return INFO if session == "s1" else None

    async def request_handoff(
        self, session: str, to: Side, *, reason: str = "api"
    ) -> HandoffReport:
        steps = [Step(name="quiesce", ms=1.0), Step(name="request", ms=2.0)]
        if self.ok:
            return HandoffReport(ok=True, session=session, owner="cloud:r1", epoch=5, steps=steps)
        return HandoffReport(ok=False, session=session, steps=steps, step="prepare",
                             error="no cloud replica answered")  # fmt: skip

    async def rtc_answer(self, session: str, sdp: str, *, after: int = 0) -> str:
        if self.rtc_error is not None:
            raise self.rtc_error
        return f"answer to {sdp} after {after}"

    async def events(self, session: str, *, after: int = 0) -> AsyncIterator[AgentEventBase]:
        return
        yield


def app(sessions: SessionSource | None, bus: EventBus) -> httpx.AsyncClient:
    deps = ApiDeps(replica="r1", readmodel=ReadModel(None), desired=None,  # type: ignore[arg-type]
                   bus=bus, metrics=CloudMetrics("r1"), health=dict, sessions=sessions,
                   max_body_bytes=4096)  # fmt: skip
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(deps)),
                             base_url="http://cloud")  # fmt: skip


@pytest.fixture
async def fake() -> FakeSessions:
    return FakeSessions()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/sessions/s1/handoff", {"to": "mars"}),
        ("/api/sessions/s1/handoff", {}),
        ("/api/sessions/s1/handoff", {"to": "cloud", "extra": 1}),
        ("/api/sessions/s1/handoff", [1, 2]),
        ("/api/sessions/s1/rtc", {"sdp": ""}),
        ("/api/sessions/s1/rtc", {"sdp": "v=0", "after": -1}),
        ("/api/sessions/s1/rtc", {"after": 1}),
        ("/api/sessions/s..1/handoff", {"to": "cloud"}),
    ],
)
async def test_bad_bodies_are_4xx_with_a_reason(fake: FakeSessions, path: str, body: Any) -> None:
    async with app(fake, EventBus()) as client:
        answer = await client.post(path, json=body)
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["reason"]


async def test_not_json_and_oversized_bodies_are_4xx(fake: FakeSessions) -> None:
    async with app(fake, EventBus()) as client:
        garbled = await client.post("/api/sessions/s1/handoff", content=b"{to",
                                    headers={"content-type": "application/json"})  # fmt: skip
        huge = await client.post("/api/sessions/s1/rtc", json={"sdp": "x" * 10_000})
    assert (garbled.status_code, huge.status_code) == (422, 413)


async def test_without_a_manager_the_routes_say_why(fake: FakeSessions) -> None:
    async with app(None, EventBus()) as client:
        assert (await client.get("/api/sessions")).json() == []
        answer = await client.post("/api/sessions/s1/handoff", json={"to": "cloud"})
    assert answer.status_code == 503 and "not running" in answer.json()["reason"]


async def test_a_failed_handoff_is_409_with_its_report_and_on_the_timeline(
    fake: FakeSessions,
) -> None:
    bus = EventBus()
    timeline = bus.subscribe({"handoff"})
    async with app(fake, bus) as client:
        answer = await client.post("/api/sessions/s1/handoff", json={"to": "cloud"})
        assert answer.status_code == 409
        assert (answer.json()["step"], answer.json()["ok"]) == ("prepare", False)
        event = await timeline.next(1.0)
        assert event is not None and event.data["state"] == "aborted"
        assert [s["name"] for s in event.data["steps"]][:3] == ["request", "quiesce", "request"]
        fake.ok = True
        moved = await client.post("/api/sessions/s1/handoff", json={"to": "cloud"})
    assert (moved.status_code, moved.json()["owner"], moved.json()["epoch"]) == (200, "cloud:r1", 5)


async def test_rtc_answers_and_maps_the_owner_errors(fake: FakeSessions) -> None:
    async with app(fake, EventBus()) as client:
        ok = await client.post("/api/sessions/s1/rtc", json={"sdp": "v=0", "after": 3})
        assert ok.json() == {"type": "answer", "sdp": "answer to v=0 after 3"}
        fake.rtc_error = NotOwner("s1", None)
        gone = await client.post("/api/sessions/s1/rtc", json={"sdp": "v=0"})
        fake.rtc_error = TransportError("the owner of s1 did not answer")
        silent = await client.post("/api/sessions/s1/rtc", json={"sdp": "v=0"})
        listed = (await client.get("/api/sessions")).json()
    assert (gone.status_code, silent.status_code) == (404, 503)
    assert listed == [{"session": "s1", "gw": "gw1", "owner": "edge:gw1", "side": "edge",
                       "epoch": 4, "prev": None, "last_seq": 7}]  # fmt: skip

"""The cloud API's session routes against a real hub and a real `SessionManager`.

What an operator notices: a session the gateway runs is listed with its owner and epoch;
`POST /api/sessions/{id}/handoff` moves it to the cloud and back, the listing follows,
and the conversation carries on wherever it runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from handoffkit import GW, WAIT_S, Sides, conversation, start_session, turn

from cloud.api import sessions as sessions_api
from cloud.api.app import create_app
from cloud.api.deps import ApiDeps
from cloud.api.events import EventBus
from cloud.api.metrics import CloudMetrics
from cloud.readmodel.db import ReadModel
from cloud.sessions import SessionManager, start_sessions
from shared.agent import RuleBackend
from shared.compat import timeout


class NoDesired:
    async def set(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("not used")


@pytest.fixture
async def api(sides: Sides) -> AsyncIterator[tuple[httpx.AsyncClient, SessionManager]]:
    nc = await sides.connect(sides.cloud_url)
    manager = await start_sessions(nc, "r1", backend=RuleBackend())
    sides.services.append(manager)
    readmodel = ReadModel(None)
    deps = ApiDeps(replica="r1", readmodel=readmodel, desired=NoDesired(), bus=EventBus(),
                   metrics=CloudMetrics("r1"), health=dict, sessions=manager)  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(deps))
    async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as client:
        yield client, manager
    readmodel.close()


async def until(manager: SessionManager, ok: Callable[[], bool]) -> None:
    """Until the manager's lease board satisfies `ok` (its KV watch is asynchronous)."""
    board = manager.host.board
    async with timeout(WAIT_S):
        while not ok():
            await board.changed().wait()


def listed(body: list[dict[str, Any]], session: str) -> dict[str, Any]:
    return next(item for item in body if item["session"] == session)


async def test_a_session_moves_to_the_cloud_and_back_through_the_api(
    sides: Sides, api: tuple[httpx.AsyncClient, SessionManager]
) -> None:
    client, manager = api
    edge = await sides.edge()
    await start_session(edge)
    await turn(edge, "s1", "one")
    await until(manager, lambda: manager.session("s1") is not None)
    before = listed((await client.get("/api/sessions")).json(), "s1")
    assert (before["owner"], before["side"], before["gw"]) == (f"edge:{GW}", "edge", GW)

    moved = await client.post("/api/sessions/s1/handoff", json={"to": "cloud"})
    assert moved.status_code == 200, moved.text
    report = moved.json()
    assert (report["ok"], report["owner"]) == (True, "cloud:r1")
    assert report["epoch"] > before["epoch"] and report["steps"]
    await until(manager, lambda: getattr(manager.session("s1"), "side", "") == "cloud")
    one = (await client.get("/api/sessions/s1")).json()
    assert (one["owner"], one["side"], one["epoch"]) == ("cloud:r1", "cloud", report["epoch"])
    await turn(edge, "s1", "two")  # asked at the gateway, answered by the cloud

    back = await client.post("/api/sessions/s1/handoff", json={"to": "edge", "reason": "test"})
    assert back.status_code == 200, back.text
    assert (back.json()["owner"], back.json()["epoch"] > report["epoch"]) == (f"edge:{GW}", True)
    await until(manager, lambda: getattr(manager.session("s1"), "side", "") == "edge")
    after = listed((await client.get("/api/sessions")).json(), "s1")
    assert (after["side"], after["epoch"]) == ("edge", back.json()["epoch"])
    await turn(edge, "s1", "three")
    assert [text for role, text in conversation(edge, "s1") if role == "user"] == [
        "one", "two", "three",
    ]  # fmt: skip


async def test_unknown_sessions_are_404_and_the_log_streams_as_events(
    sides: Sides, api: tuple[httpx.AsyncClient, SessionManager]
) -> None:
    client, manager = api
    for method, path, body in (
        ("GET", "/api/sessions/nope", None),
        ("POST", "/api/sessions/nope/handoff", {"to": "cloud"}),
        ("GET", "/api/sessions/nope/events", None),
    ):
        answer = await client.request(method, path, json=body)
        assert (answer.status_code, answer.json()["error"]) == (404, "not_found"), path

    edge = await sides.edge()
    await start_session(edge)
    said = await turn(edge, "s1", "hello")
    await until(manager, lambda: manager.session("s1") is not None)
    # httpx's ASGI transport buffers a whole response, so the route's stream is read here
    # from its generator over the manager's real feed.
    seen: list[str] = []
    stream = sessions_api._stream(manager.events("s1", after=0))
    async with timeout(WAIT_S):
        async for chunk in stream:
            seen += [line.removeprefix("event: ") for line in chunk.splitlines()
                     if line.startswith("event: ")]  # fmt: skip
            if seen and seen[-1] == "agent_complete":
                break
    await stream.aclose()  # type: ignore[attr-defined]
    assert seen == [getattr(event, "type", "") for event in said]

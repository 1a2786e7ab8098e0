"""The HTTP API: malformed requests get 4xx with a reason (never 500), OpenAPI, SSE.

Most checks run the app in-process (httpx ASGITransport) over an in-memory read model
and a fake desired-state writer; the last ones go over real HTTP to a running replica.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping

import httpx
import pytest
from cloudkit import GW, WAIT_S, FleetPublisher, OrchestratorFactory, applied

from cloud.api.app import create_app
from cloud.api.deps import ApiDeps
from cloud.api.events import EventBus
from cloud.api.metrics import CloudMetrics
from cloud.errors import NotFound, PreconditionFailed
from cloud.readmodel.db import ReadModel
from cloud.twins.record import TwinRecord
from shared.compat import timeout
from shared.messages.base import Scalar


class FakeDesired:
    """The `DesiredWriter` seam in memory: versions per twin, no hub."""

    def __init__(self, readmodel: ReadModel) -> None:
        self.readmodel = readmodel
        self.calls: list[dict[str, Scalar]] = []

    async def set(
        self, gw: str, device: str, state: Mapping[str, Scalar], *, if_version: int | None = None
    ) -> TwinRecord:
        twin = self.readmodel.twin(gw, device)
        if twin is None:
            raise NotFound(f"device {gw}/{device} is not known to the fleet")
        if if_version is not None and if_version != twin.desired_version:
            raise PreconditionFailed(f"desired version is {twin.desired_version}")
        self.calls.append(dict(state))
        return twin.model_copy(
            update={"desired": dict(state), "desired_version": twin.desired_version + 1}
        )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    readmodel = ReadModel(None)
    readmodel.put_twin(TwinRecord.new(GW, "fan1", now_ms=1), revision=1)
    deps = ApiDeps(
        replica="test",
        readmodel=readmodel,
        desired=FakeDesired(readmodel),
        bus=EventBus(),
        metrics=CloudMetrics("test"),
        health=lambda: {"nats": True},
        max_body_bytes=4096,
    )
    transport = httpx.ASGITransport(app=create_app(deps))
    async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as c:
        yield c
    readmodel.close()


DESIRED = f"/api/devices/{GW}/fan1/desired"
JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{not json", 422, "JSON"),
        (b"[1, 2]", 422, "dictionary"),
        (b'{"on": {"nested": true}}', 422, "body.on"),
        (b'{"on": NaN}', 422, "finite"),
        (b'{"bad key!": 1}', 422, "body"),
        (json.dumps({f"k{i}": i for i in range(65)}).encode(), 422, "64"),
        (b"", 422, "body"),
        (b'{"x": "' + b"a" * 5000 + b'"}', 413, "4096"),
    ],
)
async def test_malformed_desired_bodies_get_4xx_with_a_reason(
    client: httpx.AsyncClient, body: bytes, status: int, reason: str
) -> None:
    response = await client.put(DESIRED, content=body, headers=JSON)
    assert response.status_code == status, response.text
    assert reason in response.json()["reason"]


async def test_desired_happy_path_and_preconditions(client: httpx.AsyncClient) -> None:
    response = await client.put(DESIRED, json={"on": True, "speed": 2.5, "mode": None})
    assert response.status_code == 200
    assert response.json()["version"] == 1
    stale = await client.put(DESIRED, json={"on": False}, headers={"If-Match": "7"})
    assert stale.status_code == 412 and stale.json()["error"] == "precondition_failed"
    garbage = await client.put(DESIRED, json={"on": False}, headers={"If-Match": "latest"})
    assert garbage.status_code == 400


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", f"/api/devices/{GW}/nope", 404),
        ("PUT", f"/api/devices/{GW}/nope/desired", 404),
        ("GET", "/api/devices/g*w/fan1", 422),
        ("GET", f"/api/devices/{GW}/fan1?readings=-1", 422),
        ("GET", "/api/plans/unknown", 404),
        ("GET", "/api/plans?limit=0", 422),
        ("POST", "/api/plans", 503),
        ("GET", "/api/events?types=bogus", 400),
        ("DELETE", "/api/fleet", 405),
    ],
)
async def test_bad_requests_are_refused_with_a_reason(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(method, path, json={} if method == "PUT" else None)
    assert response.status_code == status, response.text
    assert response.json().get("reason") or response.json().get("detail")


async def test_read_routes(client: httpx.AsyncClient) -> None:
    fleet = (await client.get("/api/fleet")).json()
    assert [d["device"] for d in fleet["devices"]] == ["fan1"]
    assert fleet["counts"] == {"online": 1, "offline": 0, "drifting": 0}
    device = (await client.get(f"/api/devices/{GW}/fan1")).json()
    assert device["recent"] == [] and device["readings"] == 0
    assert (await client.get("/api/plans")).json() == []
    assert (await client.get("/api/sessions")).json() == []
    assert (await client.get("/healthz")).json()["status"] == "ok"
    assert "baton_cloud_replica" in (await client.get("/metrics")).text


async def test_openapi_document_over_http(orchestrator: OrchestratorFactory) -> None:
    orch = await orchestrator()
    async with httpx.AsyncClient(base_url=orch.url) as http:
        doc = (await http.get("/openapi.json")).json()
    assert doc["info"]["title"] == "baton cloud orchestrator"
    for path in (
        "/api/fleet",
        "/api/devices/{gw}/{dev}",
        "/api/devices/{gw}/{dev}/desired",
        "/api/plans",
        "/api/plans/{plan_id}",
        "/api/sessions",
        "/api/events",
        "/healthz",
        "/metrics",
    ):
        assert path in doc["paths"], path
    assert "put" in doc["paths"]["/api/devices/{gw}/{dev}/desired"]


async def test_event_stream_carries_fleet_events(
    orchestrator: OrchestratorFactory, fleet: FleetPublisher
) -> None:
    orch = await orchestrator()
    async with httpx.AsyncClient(base_url=orch.url, timeout=WAIT_S) as http:
        async with http.stream("GET", "/api/events", params={"types": "reading,twin"}) as stream:
            lines = stream.aiter_lines()
            assert await anext(lines) == ": connected"  # subscribed: now publish
            await fleet.reading("fan1", 0)
            seen = await _events(lines, want={"reading", "twin"})
        assert seen["reading"]["device"] == "fan1"
        assert seen["reading"]["message"]["seq"] == 0
        assert seen["twin"]["readings"] == 1
    await orch.wait_for(lambda: applied(orch, "fan1", 1), WAIT_S)


async def _events(lines: AsyncIterator[str], want: set[str]) -> dict[str, dict[str, object]]:
    seen: dict[str, dict[str, object]] = {}
    event = ""
    async with timeout(WAIT_S):
        async for line in lines:
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event in want:
                seen.setdefault(event, json.loads(line.removeprefix("data: ")))
                if set(seen) == want:
                    return seen
    raise AssertionError(f"stream ended; seen {sorted(seen)}")


async def test_plan_routes_with_the_planner_running(orchestrator: OrchestratorFactory) -> None:
    orch = await orchestrator(planner={"enabled": True})
    async with httpx.AsyncClient(base_url=orch.url) as http:
        assert (await http.get("/healthz")).json()["planner"] is True
        assert (await http.get("/api/plans")).json() == []
        bad = await http.post("/api/plans", json={"trigger": "whenever you like"})
        assert bad.status_code == 422 and bad.json()["error"] == "plan_error"
        now = await http.post("/api/plans", json={"trigger": "schedule"})
        assert now.status_code == 200  # an empty fleet: nothing to plan (null)
        assert (await http.get("/api/plans/nope/history")).status_code == 404

"""`Dashboard` on a real hub: mounted on the API app, it serves the page and its files,
turns FLEET and SESSIONS messages into traces, flow and handoffs, and says so on the bus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from dashkit import Served, decision_for, fleet_message, next_of, reading, running_dashboard

from shared import codec, streams, subjects, trace
from shared.messages import HandoffComplete, HandoffRequest, now_ms
from shared.natsrun import NatsServer
from shared.session.frames import pack


@pytest.fixture
async def served(hub: NatsServer, tmp_path: Path) -> AsyncIterator[Served]:
    nc = await nats.connect(hub.client_url)
    try:
        await streams.ensure_hub(nc.jetstream())
        async with running_dashboard(nc, tmp_path) as served:
            yield served
    finally:
        await nc.close()


async def test_the_page_and_its_files_are_served(served: Served) -> None:
    page = await served.client.get("/")
    assert page.status_code == 200 and "<title>baton" in page.text
    for path in ("/dashboard/app.js", "/dashboard/style.css", "/dashboard/vendor/cytoscape.min.js"):
        response = await served.client.get(path)
        assert response.status_code == 200, path


async def test_a_reflex_decision_is_a_trace_the_page_can_pick(served: Served) -> None:
    sub = served.bus.subscribe()
    t0 = now_ms()
    r = reading(ts_ms=t0 - 5)
    d = decision_for(r, ts_ms=t0 - 2)
    for kind, message in (("r", r), ("dec", d)):
        subject, headers, data = fleet_message(kind, r.device, message, edge_ms=t0 - 3)
        await served.js.publish(subject, data, stream=subjects.FLEET_STREAM, headers=headers)

    flow = await next_of(sub, "flow", lambda f: _link(f, "edge", "reflex") == 1)
    assert _link(flow, "edge", "hub") == 1
    picks = (await served.client.get("/api/traces", params={"kind": "command"})).json()
    trace_id = trace.TraceContext.parse(r.traceparent).trace_id
    assert [p["trace_id"] for p in picks] == [trace_id]

    spans = (await served.client.get(f"/api/traces/{trace_id}")).json()["spans"]
    assert {s["where"] for s in spans} == {"edge", "hub", "cloud"}
    assert any(s["name"] == "reflex overheat → fan" for s in spans)
    assert (await served.client.get(f"/api/traces/{'0' * 31}1")).status_code == 404
    assert (await served.client.get("/api/traces/not-a-trace")).status_code == 404
    sub.close()


async def test_a_handoff_in_the_session_log_reaches_the_bus_and_the_snapshot(
    served: Served,
) -> None:
    sub = served.bus.subscribe()
    t0 = now_ms()
    frame = pack([
        codec.encode(HandoffRequest(session="s1", seq=1, to="cloud", ts_ms=t0)),
        codec.encode(HandoffComplete(session="s1", seq=2, owner="cloud", latency_ms=12.0,
                                     ts_ms=t0 + 12, epoch=3)),
    ])  # fmt: skip
    await served.js.publish(subjects.session_events("s1"), frame, stream=subjects.SESSIONS_STREAM)

    handoff = await next_of(sub, "handoff", lambda h: h["state"] == "completed")
    assert [s["name"] for s in handoff["steps"]] == ["request", "complete: cloud owns it"]
    graph = await next_of(sub, "graph", lambda g: any(
        n["data"]["id"] == "session:s1" for n in g["nodes"]))  # fmt: skip
    assert graph["nodes"][0]["data"]["kind"] == "cloud"
    snapshot = (await served.client.get("/api/dashboard")).json()
    assert snapshot["handoffs"][0]["latency_ms"] == 12.0
    assert snapshot["agents"][0] | {"owner": "cloud", "epoch": 3} == snapshot["agents"][0]
    sub.close()


def _link(flow: dict[str, Any], source: str, target: str) -> int:
    values = [int(link["value"]) for link in flow["links"]
              if link["source"] == source and link["target"] == target]  # fmt: skip
    return values[0]

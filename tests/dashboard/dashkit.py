"""Helpers of the dashboard tests: a dashboard on a real hub, FLEET messages as a
gateway forwards them.

running_dashboard(nc, dir)  a `Served` replica: the API app with the `Dashboard` mounted
                     and watching the hub on `nc`, its event bus, an httpx client on it
next_of(sub, type, check)   the next event of a type on a bus subscription
fleet_message(...)   (subject, headers, payload) of one forwarded message, with the
                     Baton-Hlc / Baton-Gateway / traceparent headers the forwarder adds
reading(...), decision_for(...), ack_for(...)   a reading, the reflex decision it
                     triggered (same trace), and the device's ack of its command
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from nats.aio.client import Client
from nats.js import JetStreamContext

from cloud.api.app import create_app
from cloud.api.deps import ApiDeps
from cloud.api.events import EventBus, Subscription
from cloud.api.metrics import CloudMetrics
from cloud.dashboard import Dashboard
from cloud.readmodel.db import ReadModel
from cloud.twins.record import TwinRecord
from shared import codec, hlc, subjects, trace
from shared.compat import timeout
from shared.messages import Command, CommandAck, Decision, Message, Reading
from shared.messages.base import Scalar

GW = "gw1"
WAIT_S = 15.0


class NoDesired:
    async def set(
        self, gw: str, device: str, state: Mapping[str, Scalar], *, if_version: int | None = None
    ) -> TwinRecord:
        raise AssertionError("not used by these tests")


@dataclass
class Served:
    dashboard: Dashboard
    client: httpx.AsyncClient
    js: JetStreamContext
    bus: EventBus


@contextlib.asynccontextmanager
async def running_dashboard(
    nc: Client, state_dir: Path, replica: str = "t"
) -> AsyncIterator[Served]:
    """One cloud replica's API with its dashboard watching the hub on `nc` (which the
    caller opened and closes; the hub's streams exist), its read model in `state_dir`."""
    readmodel = ReadModel(state_dir / f"readmodel-{replica}.sqlite", retention_minutes=60)
    bus = EventBus()
    deps = ApiDeps(replica=replica, readmodel=readmodel, desired=NoDesired(), bus=bus,
                   metrics=CloudMetrics(replica), health=dict)  # fmt: skip
    app = create_app(deps)
    dashboard = await Dashboard.attach(app, nc)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as client:
            yield Served(dashboard, client, nc.jetstream(), bus)
    finally:
        await dashboard.aclose()
        await dashboard.aclose()  # twice is safe
        bus.close()
        readmodel.close()


async def next_of(
    sub: Subscription, type_: str, check: Callable[[dict[str, Any]], bool] = lambda data: True
) -> dict[str, Any]:
    """The next event of `type_` on the bus whose data passes `check`."""
    async with timeout(WAIT_S):
        while True:
            event = await sub.next(WAIT_S)
            assert event is not None, "the bus closed"
            if event.type == type_ and check(event.data):
                return event.data


def fleet_message(
    kind: str, device: str, message: Message, *, edge_ms: int, gw: str = GW
) -> tuple[str, dict[str, str], bytes]:
    headers = {
        "Baton-Hlc": str(hlc.pack(edge_ms, 0)),
        "Baton-Gateway": gw,
        trace.HEADER: trace.child_of(message.traceparent),
    }
    return subjects.fleet(gw, kind, device), headers, codec.encode(message)


def reading(device: str = "pump-0", seq: int = 1, *, ts_ms: int, temp: float = 71.5) -> Reading:
    return Reading(device=device, seq=seq, ts_ms=ts_ms, metrics={"temp_c": temp})


def decision_for(r: Reading, *, ts_ms: int, latency_us: int = 300) -> Decision:
    tp = trace.child_of(r.traceparent)
    command = Command(
        device=r.device, gw=GW, action="fan", params={"on": True},
        issued_ms=ts_ms, deadline_ms=ts_ms + 2000, traceparent=tp,
    )  # fmt: skip
    return Decision(
        gw=GW, device=r.device, source="rule", name="overheat", version="1",
        inputs={"temp_c": r.metrics["temp_c"]}, command=command, latency_us=latency_us,
        ts_ms=ts_ms, reading_seq=r.seq, traceparent=tp,
    )  # fmt: skip


def ack_for(d: Decision, *, ts_ms: int, ok: bool = True) -> CommandAck:
    assert d.command is not None
    return CommandAck(
        cmd_id=d.command.cmd_id, device=d.device, ok=ok, ts_ms=ts_ms,
        reason=None if ok else "unknown action", traceparent=trace.child_of(d.traceparent),
    )  # fmt: skip

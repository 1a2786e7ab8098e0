"""`Dashboard`: what the live page needs beyond the API, kept by one replica.

    dashboard = await Dashboard.attach(app, nc)   # mounts the page, starts watching
    ...
    await dashboard.aclose()                      # before the event bus closes

It watches, on the replica's own hub connection, FLEET (readings, decisions, acks,
gateway events: spans, the reading flow) and SESSIONS (agent streams, handoffs) with
ordered consumers that start `BACKFILL_S` in the past, so a page opened on a fresh
replica has recent traces; and the planner's records (plan and saga-step spans). What
changes goes out on the replica's `EventBus`, so the page gets it from `/api/events`
with everything else:

    agent     one agent event (a streamed chunk, a tool call, a completion)
    handoff   a handoff record with its steps so far
    flow      the Sankey links, at most once a second, when they changed
    graph     the flow graph's elements, when they changed
    picks     the newest readings, commands, plan steps and handoffs with a trace

Cost: one more message per FLEET message per replica, parsed once. Fine for the demo
and for hundreds of gateways; a large fleet would point the dashboard at a sample.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

import nats.errors
from fastapi import FastAPI
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import ConsumerConfig, DeliverPolicy

from cloud.dashboard import graph, otel
from cloud.dashboard.fleettap import Commands, FleetTap
from cloud.dashboard.flow import Flow
from cloud.dashboard.plantap import PlanTap
from cloud.dashboard.sessiontap import ENDED, SessionTap, Update
from cloud.dashboard.spans import Span
from cloud.dashboard.traces import PICK_KINDS, TraceStore
from cloud.readmodel.ordered import subscribe_ordered
from shared import subjects
from shared.lifecycle import Service
from shared.messages import now_ms

if TYPE_CHECKING:
    from cloud.api.deps import ApiDeps
    from cloud.planner.records import PlanRecord

log = logging.getLogger(__name__)

BACKFILL_S: Final = 600.0
TICK_S: Final = 1.0
PICKS_PER_KIND: Final = 25


@runtime_checkable
class PlanFeed(Protocol):
    """The planner's record stream (`cloud.planner.PlannerService` has it)."""

    def subscribe(self, listener: Callable[[PlanRecord], None]) -> Callable[[], None]: ...


class Dashboard(Service):
    def __init__(self, nc: Client, deps: ApiDeps) -> None:
        self._nc = nc
        self._deps = deps
        self.store = TraceStore()
        self.flow = Flow()
        commands = Commands()
        self.fleet = FleetTap(self.store, self.flow, commands)
        self.plans = PlanTap(self.store, self.flow, commands)
        self.sessions = SessionTap(self.store)
        self._planners: set[str] = set()
        self._subs: list[Subscription] = []
        self._undo_plans: Callable[[], None] = lambda: None
        self._ticker: asyncio.Task[None] | None = None
        self._sink = otel.exporter(deps.replica)
        self._live_from_ms = now_ms()  # spans of the backfill are not exported again
        self._last: dict[str, str] = {}
        self._closed = False

    @classmethod
    async def attach(cls, app: FastAPI, nc: Client) -> Dashboard:
        """Mount the page and its routes on `app` (built by `create_app`) and start."""
        from cloud.dashboard.routes import mount

        dashboard = cls(nc, app.state.deps)
        mount(app, dashboard)
        await dashboard.start()
        return dashboard

    async def start(self) -> None:
        try:
            js = self._nc.jetstream()
            watches = (
                (subjects.FLEET_ALL, subjects.FLEET_STREAM, self._on_fleet),
                (subjects.SESSIONS_ALL, subjects.SESSIONS_STREAM, self._on_session),
            )
            for subject, stream, handler in watches:
                # Ordered feeds that survive a hub restart (cloud/readmodel/ordered.py).
                sub = await subscribe_ordered(
                    js, subject, stream=stream, config=_since(BACKFILL_S), cb=handler
                )
                self._subs.append(sub)
            if isinstance(self._deps.planner, PlanFeed):
                self._undo_plans = self._deps.planner.subscribe(self._on_plan)
            self._ticker = asyncio.create_task(self._tick(), name="dashboard-tick")
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop watching and publishing; flush exported spans. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._undo_plans()
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
        subs, self._subs = self._subs, []
        for sub in subs:
            try:
                await sub.unsubscribe()
            except nats.errors.Error as exc:  # the connection went first: nothing to undo
                log.debug("dashboard unsubscribe: %r", exc)
        if self._sink is not None:
            await asyncio.to_thread(self._sink.shutdown)

    # -- what the routes read ----------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "replica": self._deps.replica,
            "flow": self.flow.to_json(),
            "graph": self.graph(),
            "agents": [s.to_json() for s in self.sessions.streams.values()],
            "handoffs": [h.to_json() for h in self.sessions.handoffs.values()],
            "picks": self.picks(),
        }

    def graph(self) -> dict[str, Any]:
        devices = [graph.DeviceNode(t.gw, t.device, t.online) for t in self._deps.readmodel.twins()]
        return graph.build(
            self._deps.replica, devices, self._planners, self.sessions.streams.values()
        )

    def picks(self, limit: int = PICKS_PER_KIND) -> dict[str, list[dict[str, Any]]]:
        return {kind: [p.to_json() for p in self.store.picks(kind, limit)] for kind in PICK_KINDS}

    # -- inputs ------------------------------------------------------------------------

    async def _on_fleet(self, msg: Msg) -> None:
        try:
            hub_ms = msg.metadata.timestamp.timestamp() * 1000
        except (nats.errors.Error, AttributeError, ValueError):
            hub_ms = None
        spans = self.fleet.on_message(
            msg.subject, msg.headers, msg.data, hub_ms=hub_ms, seen_ms=now_ms()
        )
        self._export(spans, hub_ms)

    async def _on_session(self, msg: Msg) -> None:
        update: Update = self.sessions.on_frame(msg.data)
        bus = self._deps.bus
        for item in update.agent:
            bus.publish("agent", item)
        for handoff in update.handoffs:
            bus.publish("handoff", handoff.to_json())
        self._export([s for s in update.spans if s.attrs.get("state") in ENDED])

    def _on_plan(self, record: PlanRecord) -> None:
        self._planners.add(record.plan.planner)
        spans = self.plans.on_record(record)
        self._export([s for s in spans if s.attrs.get("ended")], record.updated_ms)

    def _export(self, spans: list[Span], at_ms: float | None = None) -> None:
        if self._sink is None or not spans:
            return
        if at_ms is not None and at_ms < self._live_from_ms:
            return
        try:
            self._sink.export(spans)
        except Exception:  # an exporter bug must not stop the FLEET watch
            log.exception("span export failed")

    # -- outputs -----------------------------------------------------------------------

    async def _tick(self) -> None:
        """Publish what changed, at most once a second: flow, graph, picks."""
        while True:
            for kind, make in (("flow", self.flow.to_json), ("graph", self.graph),
                               ("picks", self.picks)):  # fmt: skip
                self._publish_if_changed(kind, make())
            await asyncio.sleep(TICK_S)  # a rate limit on views, not a wait for state

    def _publish_if_changed(self, kind: str, data: dict[str, Any]) -> None:
        text = json.dumps(data, sort_keys=True, default=str)
        if self._last.get(kind) != text:
            self._last[kind] = text
            self._deps.bus.publish(kind, data)


def _since(seconds: float) -> ConsumerConfig:
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)
    return ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=start)

"""The planner's background loops against a real hub: a quiet FLEET is no reason to stop,
and a loop that fails anyway is logged, counted and started again, never left dead."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from cloud.ingest import pull
from cloud.planner import PlannerConfig, PlannerService, PlanRecord, consumer, tasks
from cloud.planner.actions import LOAD_KEY
from cloud.planner.fakes import FakeEdge
from cloud.twins.view import MemoryFleetView
from shared import codec, trace
from shared.compat import timeout
from shared.messages import Decision, TwinState
from shared.natsrun import NatsServer
from shared.streams import ensure_hub

WAIT_S = 15.0
FAST = PlannerConfig(step_deadline_s=2.0, lease_s=1.0, schedule_s=3600, entry_points=False)
QUIET_FETCHES = 3  # per consumer, before the decision is published


@pytest.fixture
async def conn(hub: NatsServer) -> AsyncIterator[tuple[Client, JetStreamContext]]:
    nc = await nats.connect(hub.client_url)
    js = nc.jetstream()
    await ensure_hub(js)
    yield nc, js
    await nc.close()


def pump_fleet() -> MemoryFleetView:
    return MemoryFleetView([TwinState(device="pump-1", gw="gw1", reported={LOAD_KEY: 0.9})])


async def plan_for_a_bearing_alert(js: JetStreamContext, planner: PlannerService) -> PlanRecord:
    done: asyncio.Queue[PlanRecord] = asyncio.Queue()
    planner.subscribe(lambda rec: done.put_nowait(rec) if rec.ended else None)
    decision = Decision(
        gw="gw1", device="pump-1", source="model", name="bearing_wear", version="3",
        score=0.93, threshold=0.8, latency_us=850,
    )  # fmt: skip
    await js.publish(
        f"fleet.{decision.gw}.dec.{decision.device}",
        codec.encode(decision),
        headers={"Nats-Msg-Id": decision.decision_id, trace.HEADER: decision.traceparent},
    )
    async with timeout(WAIT_S):
        return await done.get()


def consumer_name(sub: JetStreamContext.PullSubscription) -> str:
    return str(getattr(sub, "_consumer", ""))


async def test_quiet_fetches_do_not_end_the_planners_consumers(
    conn: tuple[Client, JetStreamContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    nc, js = conn
    monkeypatch.setattr(consumer, "FETCH_WAIT_S", 0.1)
    # nats-py ends a fetch that found nothing with a plain asyncio.TimeoutError from its
    # lingering step and with nats.errors.TimeoutError from others; make it the former
    # every time, so each planner consumer meets it at once.
    real_fetch = JetStreamContext.PullSubscription.fetch
    quiet: Counter[str] = Counter()
    both_quiet = asyncio.Event()

    async def fetch(sub: JetStreamContext.PullSubscription, *args: Any, **kw: Any) -> list[Msg]:
        try:
            return await real_fetch(sub, *args, **kw)
        except asyncio.TimeoutError:
            quiet[consumer_name(sub)] += 1
            if min(quiet[FAST.consumer], quiet[FAST.ack_consumer]) >= QUIET_FETCHES:
                both_quiet.set()
            raise asyncio.TimeoutError from None

    monkeypatch.setattr(JetStreamContext.PullSubscription, "fetch", fetch)
    async with (
        FakeEdge(js, "gw1"),
        PlannerService(nc, js, FAST, pump_fleet(), "r1") as planner,
    ):
        async with timeout(WAIT_S):
            await both_quiet.wait()
        # The decision needs the event consumer, its steps' acks the ack consumer.
        rec = await plan_for_a_bearing_alert(js, planner)
        assert rec.status == "succeeded"
        assert planner.stats().get("loops.crashed", 0) == 0


async def test_a_failing_planner_loop_is_logged_counted_and_restarted(
    conn: tuple[Client, JetStreamContext],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    nc, js = conn
    monkeypatch.setattr(tasks, "RESTART_MIN_S", 0.05)
    real_fetch = pull.fetch
    broken = asyncio.Event()

    async def fetch_once_broken(
        sub: JetStreamContext.PullSubscription, batch: int, timeout_s: float
    ) -> list[Msg]:
        if consumer_name(sub) == FAST.consumer and not broken.is_set():
            broken.set()
            raise RuntimeError("a bug in the loop")  # not a hub error: nothing catches it
        return await real_fetch(sub, batch, timeout_s)

    monkeypatch.setattr(pull, "fetch", fetch_once_broken)
    failed: list[str] = []
    async with (
        FakeEdge(js, "gw1"),
        PlannerService(nc, js, FAST, pump_fleet(), "r1", on_loop_error=failed.append) as planner,
    ):
        async with timeout(WAIT_S):
            await broken.wait()
        rec = await plan_for_a_bearing_alert(js, planner)  # the restarted loop planned it
        assert rec.status == "succeeded"
        assert failed == ["fleet-events"]
        assert planner.stats()["loops.crashed"] == 1
    logged = [
        r for r in caplog.records if r.levelno == logging.ERROR and "fleet-events" in r.getMessage()
    ]
    assert logged and logged[0].exc_info is not None

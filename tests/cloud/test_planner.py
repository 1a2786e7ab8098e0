"""The background planner end to end against a real hub: FLEET events in, plans stored,
step commands on DOWNLINK, acks from a fake edge, plans queryable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from cloud.errors import PlanError
from cloud.planner import PlannerConfig, PlannerService, PlanRecord
from cloud.planner.actions import LOAD_KEY, SETPOINT_KEY
from cloud.planner.fakes import Answer, FakeEdge
from cloud.planner.intake import Intake
from cloud.planner.windows import FiringWindows
from cloud.twins.view import MemoryFleetView
from shared import codec, trace
from shared.compat import timeout
from shared.messages import Command, Decision, Plan, TwinState
from shared.natsrun import NatsServer
from shared.streams import ensure_hub

WAIT_S = 15.0
FAST = PlannerConfig(step_deadline_s=1.0, lease_s=1.0, schedule_s=3600, entry_points=False)


@pytest.fixture
async def conn(hub: NatsServer) -> AsyncIterator[tuple[Client, JetStreamContext]]:
    nc = await nats.connect(hub.client_url)
    js = nc.jetstream()
    await ensure_hub(js)
    yield nc, js
    await nc.close()


def pump_fleet(**reported: float) -> MemoryFleetView:
    return MemoryFleetView([TwinState(device="pump-1", gw="gw1", reported=dict(reported))])


def ended(service: PlannerService) -> asyncio.Queue[PlanRecord]:
    """Every plan record that reaches a final status, as the service stores it."""
    queue: asyncio.Queue[PlanRecord] = asyncio.Queue()
    service.subscribe(lambda rec: queue.put_nowait(rec) if rec.ended else None)
    return queue


async def next_ended(queue: asyncio.Queue[PlanRecord]) -> PlanRecord:
    async with timeout(WAIT_S):
        return await queue.get()


async def publish_decision(js: JetStreamContext, decision: Decision) -> None:
    await js.publish(
        f"fleet.{decision.gw}.dec.{decision.device}",
        codec.encode(decision),
        headers={"Nats-Msg-Id": decision.decision_id, trace.HEADER: decision.traceparent},
    )


def bearing_wear(score: float = 0.93) -> Decision:
    return Decision(
        gw="gw1", device="pump-1", source="model", name="bearing_wear", version="3",
        score=score, threshold=0.8, latency_us=850,
    )  # fmt: skip


def silent_on(action: str) -> Callable[[Command], Answer]:
    return lambda cmd: "silent" if cmd.action == action else "ack"


async def test_bearing_wear_leads_to_an_acknowledged_maintenance_plan(
    conn: tuple[Client, JetStreamContext],
) -> None:
    nc, js = conn
    async with (
        FakeEdge(js, "gw1") as edge,
        PlannerService(nc, js, FAST, pump_fleet(**{LOAD_KEY: 0.9}), "r1") as planner,
    ):
        done = ended(planner)
        decision = bearing_wear()
        await publish_decision(js, decision)
        rec = await next_ended(done)

    assert rec.status == "succeeded"
    assert rec.plan.planner == "deterministic" and rec.plan.trigger == "anomaly"
    assert [s.status for s in rec.plan.steps] == ["acked", "acked"]
    # The plan joins the trace of the decision that caused it.
    assert rec.plan.traceparent.split("-")[1] == decision.traceparent.split("-")[1]
    commands = edge.heard
    assert [c.action for c in commands] == ["set_load", "gw.ticket"]
    assert commands[0].params == {"load": 0.5}
    assert all(c.device == "pump-1" and c.gw == "gw1" for c in commands)
    assert commands[0].source == f"plan:{rec.plan_id}:0"
    assert all(c.epoch == rec.plan.epoch > 0 for c in commands)
    assert all(c.deadline_ms > c.issued_ms for c in commands)
    events = [(e.event, e.index) for e in rec.history]
    assert events[:2] == [("opened", None), ("claimed", None)]
    assert ("acked", 1) in events and events[-1] == ("finished", None)


async def test_plans_and_history_are_queryable_and_kept_in_the_hub(
    conn: tuple[Client, JetStreamContext],
) -> None:
    nc, js = conn
    async with (
        FakeEdge(js, "gw1"),
        PlannerService(nc, js, FAST, pump_fleet(), "r1") as planner,
    ):
        done = ended(planner)
        await publish_decision(js, bearing_wear())
        rec = await next_ended(done)
        assert [p.plan_id for p in planner.plans()] == [rec.plan_id]
        assert planner.plan(rec.plan_id) == rec.plan
        assert planner.plan("0" * 32) is None
        history = planner.history(rec.plan_id)
        assert [e.event for e in history] == [e.event for e in rec.history]
        stored = await (await js.key_value("plans")).get(rec.plan_id)
        assert stored.value is not None
        assert PlanRecord.decode(stored.value).plan.status == "succeeded"
        assert planner.stats()["plans.opened"] == 1


async def test_a_step_never_acknowledged_compensates_the_completed_ones(
    conn: tuple[Client, JetStreamContext],
) -> None:
    nc, js = conn
    async with (
        FakeEdge(js, "gw1", silent_on("gw.ticket")) as edge,
        PlannerService(nc, js, FAST, pump_fleet(**{LOAD_KEY: 0.9}), "r1") as planner,
    ):
        done = ended(planner)
        await publish_decision(js, bearing_wear())
        rec = await next_ended(done)

    assert rec.status == "compensated"
    assert [s.status for s in rec.plan.steps] == ["compensated", "failed"]
    assert [c.action for c in edge.heard] == ["set_load", "gw.ticket", "set_load"]
    undo = edge.heard[-1]
    assert undo.params == {"load": 0.9}  # what the twin reported before the plan
    assert undo.cmd_id == f"{rec.plan_id}-0-u" and undo.source.endswith(":undo")
    failed = next(e for e in rec.history if e.event == "failed")
    assert failed.index == 1 and "deadline" in failed.detail
    assert [e.event for e in rec.history][-3:] == ["undo_sent", "compensated", "finished"]


async def test_a_refused_compensation_fails_the_plan(
    conn: tuple[Client, JetStreamContext],
) -> None:
    nc, js = conn

    def policy(cmd: Command) -> Answer:
        return "refuse" if cmd.action == "gw.ticket" or cmd.cmd_id.endswith("-u") else "ack"

    async with (
        FakeEdge(js, "gw1", policy),
        PlannerService(nc, js, FAST, pump_fleet(), "r1") as planner,
    ):
        done = ended(planner)
        await publish_decision(js, bearing_wear())
        rec = await next_ended(done)
    assert rec.status == "failed"
    assert "refused" in next(e for e in rec.history if e.event == "undo_failed").detail


async def test_an_unmet_precondition_fails_the_step_without_sending_it(
    conn: tuple[Client, JetStreamContext],
) -> None:
    nc, js = conn
    fleet = MemoryFleetView([TwinState(device="pump-1", gw="gw1", online=False)])
    async with (
        FakeEdge(js, "gw1") as edge,
        PlannerService(nc, js, FAST, fleet, "r1") as planner,
    ):
        done = ended(planner)
        await publish_decision(js, bearing_wear())
        rec = await next_ended(done)
    assert rec.status == "compensated"
    assert [s.status for s in rec.plan.steps] == ["failed", "skipped"]
    assert edge.heard == []


async def test_a_second_trigger_for_a_running_plan_is_deduped(
    conn: tuple[Client, JetStreamContext],
) -> None:
    nc, js = conn
    cfg = FAST.model_copy(update={"step_deadline_s": 30.0, "cooldown_s": 600.0})
    async with (
        FakeEdge(js, "gw1", lambda cmd: "silent") as edge,
        PlannerService(nc, js, cfg, pump_fleet(), "r1") as planner,
    ):
        await publish_decision(js, bearing_wear())
        async with timeout(WAIT_S):
            first = await edge.commands.get()
        again = await planner.request_plan("anomaly:gw1/pump-1", "operator asked")
        assert again is None
        assert len(planner.plans()) == 1
        assert planner.stats()["plans.deduped"] == 1
        assert first.source.startswith("plan:")


async def test_device_offline_leads_to_a_check_plan(
    conn: tuple[Client, JetStreamContext],
) -> None:
    nc, js = conn
    async with (
        FakeEdge(js, "gw1") as edge,
        PlannerService(nc, js, FAST, pump_fleet(), "r1") as planner,
    ):
        done = ended(planner)
        await js.publish("fleet.gw1.status.pump-1", b"online")
        await js.publish("fleet.gw1.status.pump-1", b"offline")
        rec = await next_ended(done)
    assert rec.status == "succeeded" and rec.plan.trigger == "offline"
    assert [c.action for c in edge.heard] == ["gw.diagnose", "gw.ticket"]
    assert edge.heard[1].params["kind"] == "check"
    assert rec.key == "check.gw1.pump-1"


async def test_repeated_overheat_reflexes_rebalance_the_site(
    conn: tuple[Client, JetStreamContext],
) -> None:
    nc, js = conn
    fleet = MemoryFleetView([
        TwinState(device="fan-1", gw="gw1", reported={SETPOINT_KEY: 60.0}),
        TwinState(device="fan-2", gw="gw1", reported={SETPOINT_KEY: 55.0}),
    ])  # fmt: skip
    async with (
        FakeEdge(js, "gw1") as edge,
        PlannerService(nc, js, FAST, fleet, "r1") as planner,
    ):
        done = ended(planner)
        for _ in range(FAST.repeated_action_threshold):
            await publish_decision(js, Decision(
                gw="gw1", device="fan-1", source="rule", name="overheat", version="1",
                latency_us=40,
            ))  # fmt: skip
        rec = await next_ended(done)
    assert rec.plan.trigger == "repeated_action" and rec.key == "rebalance.gw1"
    assert [(c.device, c.params) for c in edge.heard] == [
        ("fan-1", {"setpoint": 58.0}),
        ("fan-2", {"setpoint": 57.0}),
    ]
    assert rec.plan.steps[0].compensation is not None
    assert rec.plan.steps[0].compensation.params == {"setpoint": 60.0}


async def test_a_bad_payload_is_refused_and_the_next_event_still_plans(
    conn: tuple[Client, JetStreamContext],
) -> None:
    nc, js = conn
    async with (
        FakeEdge(js, "gw1"),
        PlannerService(nc, js, FAST, pump_fleet(), "r1") as planner,
    ):
        done = ended(planner)
        await js.publish("fleet.gw1.dec.pump-1", b"\xc1 not msgpack")
        await publish_decision(js, bearing_wear())
        rec = await next_ended(done)
        assert rec.status == "succeeded"
        assert planner.stats()["fleet.rejected.malformed"] == 1


async def test_request_plan_validates_its_trigger(conn: tuple[Client, JetStreamContext]) -> None:
    nc, js = conn
    async with PlannerService(nc, js, FAST, pump_fleet(), "r1") as planner:
        with pytest.raises(PlanError, match="KIND"):
            await planner.request_plan("explode:gw1/pump-1", "why not")
        with pytest.raises(PlanError):
            await planner.request_plan("anomaly:gw1/pump.1", "bad id")
        plan = await planner.request_plan("anomaly:gw1/pump-1", "operator asked")
        assert isinstance(plan, Plan) and "operator asked" in plan.reason


async def test_aclose_is_safe_twice(conn: tuple[Client, JetStreamContext]) -> None:
    nc, js = conn
    planner = PlannerService(nc, js, FAST, pump_fleet(), "r1")
    await planner.start()
    await planner.aclose()
    await planner.aclose()
    with pytest.raises(RuntimeError):
        await planner.request_plan("anomaly:gw1/pump-1", "after close")


async def test_the_scheduled_round_runs_once_across_replicas(
    conn: tuple[Client, JetStreamContext],
) -> None:
    nc, js = conn
    cfg = FAST.model_copy(update={"schedule_s": 0.2})
    fleet = MemoryFleetView([TwinState(device="pump-3", gw="gw1", online=False)])
    async with (
        FakeEdge(js, "gw1") as edge,
        PlannerService(nc, js, cfg, fleet, "r1") as r1,
        PlannerService(nc, js, cfg, fleet, "r2") as r2,
    ):
        done = ended(r1)
        rec = await next_ended(done)
        opened = r1.stats().get("plans.opened", 0) + r2.stats().get("plans.opened", 0)
    assert rec.plan.trigger == "schedule" and rec.key == "check.gw1.pump-3"
    assert opened == 1  # one elected round, and the cooldown keeps the next ones quiet
    assert [c.action for c in edge.heard] == ["gw.diagnose", "gw.ticket"]


@pytest.mark.parametrize(
    ("score", "threshold", "floor", "plans"),
    [(0.93, 0.8, None, True), (0.5, 0.8, None, False), (0.5, None, None, True),
     (0.5, None, 0.6, False), (0.7, 0.8, 0.6, True)],
)  # fmt: skip
async def test_which_anomaly_scores_trigger_planning(
    score: float, threshold: float | None, floor: float | None, plans: bool
) -> None:
    cfg = FAST.model_copy(update={"anomaly_min_score": floor})
    intake = Intake(cfg, FiringWindows(None, 60_000))  # type: ignore[arg-type]  # no rules here
    decision = Decision(
        gw="gw1", device="pump-1", source="model", name="bearing_wear", version="1",
        score=score, threshold=threshold, latency_us=1,
    )  # fmt: skip
    msg = Msg(None, "fleet.gw1.dec.pump-1", data=codec.encode(decision))  # type: ignore[arg-type]
    trigger = await intake.trigger(msg)
    assert (trigger is not None) == plans
    if trigger is not None:
        assert trigger.kind == "anomaly" and trigger.detail["score"] == score


async def test_foreign_fleet_subjects_are_not_triggers() -> None:
    intake = Intake(FAST, FiringWindows(None, 60_000))  # type: ignore[arg-type]
    for subject in ("fleet.gw1.r.pump-1", "fleet.gw1.twin.pump-1", "other.gw1.dec.pump-1"):
        assert await intake.trigger(Msg(None, subject, data=b"x")) is None  # type: ignore[arg-type]
    assert await intake.trigger(Msg(None, "fleet.gw1.status.p", data=b"online")) is None  # type: ignore[arg-type]

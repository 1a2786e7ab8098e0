"""Plug-in agents: registration by config and entry points, priority, isolation of a
failing agent, and the planner falling back past it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from importlib.metadata import EntryPoint

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from cloud.agents import (
    AgentContext,
    AgentEntry,
    AgentRegistry,
    Proposal,
    Trigger,
    load_configured,
    load_entry_points,
)
from cloud.agents import loader as loader_module
from cloud.agents.testing import FailingAgent, StaticAgent
from cloud.planner import PlannerConfig, PlannerService, PlanRecord
from cloud.planner.fakes import FakeEdge
from cloud.twins.view import MemoryFleetView
from shared import codec
from shared.compat import timeout
from shared.messages import Decision, Plan, PlanStep, TwinState
from shared.natsrun import NatsServer
from shared.streams import ensure_hub

WAIT_S = 15.0
CTX = AgentContext(MemoryFleetView(), "r1", 1000)
TRIGGER = Trigger("anomaly", "gw1", "pump-1", "test")


def proposal(action: str = "set_load", key: str = "maintenance.gw1.pump-1") -> Proposal:
    step = PlanStep(index=0, gw="gw1", device="pump-1", action=action, deadline_ms=1000)
    return Proposal(Plan(trigger="anomaly", steps=[step]), key)


class SlowAgent(StaticAgent):
    """Never answers: what a hung plug-in looks like."""

    async def propose(self, trigger: Trigger, ctx: AgentContext) -> Sequence[Proposal]:
        await asyncio.Event().wait()
        return []


async def test_a_failing_agent_is_isolated_and_the_next_one_answers() -> None:
    registry = AgentRegistry(cooldown_s=60)
    registry.add(FailingAgent(), priority=1)
    good = StaticAgent("good", [proposal()])
    registry.add(good, priority=2)

    outcome = await registry.propose(TRIGGER, CTX)
    assert outcome.agent == "good" and outcome.failed == ("failing",) and outcome.fell_back
    status = {s.agent: s for s in registry.status()}
    assert not status["failing"].healthy and status["failing"].failures == {"error": 1}
    assert "plug-in bug" in (status["failing"].last_error or "")
    assert status["good"].healthy and status["good"].proposals == 1

    again = await registry.propose(TRIGGER, CTX)  # skipped while cooling down
    assert again.failed == () and again.agent == "good"


async def test_an_isolated_agent_is_retried_after_its_cooldown() -> None:
    registry = AgentRegistry(cooldown_s=0)
    failing = FailingAgent()
    registry.add(failing)
    await registry.propose(TRIGGER, CTX)
    await registry.propose(TRIGGER, CTX)
    assert len(failing.seen) == 2
    assert registry.status()[0].failures == {"error": 2}


@pytest.mark.parametrize(
    ("agent", "reason"),
    [
        (StaticAgent("sneaky", [proposal("self_destruct")], tools=frozenset({"set_load"})), "invalid"),
        (StaticAgent("badkey", [proposal(key="no spaces allowed")]), "invalid"),
        (SlowAgent("slow"), "timeout"),
    ],
)  # fmt: skip
async def test_bad_proposals_and_hangs_are_isolated(agent: StaticAgent, reason: str) -> None:
    registry = AgentRegistry(timeout_s=0.2)
    registry.add(agent)
    outcome = await registry.propose(TRIGGER, CTX)
    assert outcome.proposals == () and outcome.failed == (agent.id,)
    assert registry.status()[0].failures == {reason: 1}


async def test_agents_only_see_the_triggers_they_handle() -> None:
    registry = AgentRegistry()
    offline_only = StaticAgent("offline", [proposal()], handles=frozenset({"offline"}))
    registry.add(offline_only)
    assert (await registry.propose(TRIGGER, CTX)).agent is None
    assert offline_only.seen == []
    with pytest.raises(ValueError, match="already registered"):
        registry.add(StaticAgent("offline"))


def test_config_entries_load_and_broken_ones_are_reported() -> None:
    registry = AgentRegistry()
    entries = [
        AgentEntry(factory="cloud.agents.testing:StaticAgent", options={"agent_id": "cfg"}),
        AgentEntry(factory="no_such_module.agents:Agent"),
        AgentEntry(factory="builtins:dict"),  # imports, but is no Agent
        AgentEntry(factory="cloud.agents.testing:FailingAgent", enabled=False),
    ]
    assert load_configured(registry, entries) == 1
    assert [a.id for a in registry.agents()] == ["cfg"]
    broken = {s.agent: s for s in registry.status() if not s.healthy}
    assert set(broken) == {"no_such_module.agents:Agent", "builtins:dict"}
    assert broken["builtins:dict"].failures == {"load": 1}
    with pytest.raises(ValueError):
        AgentEntry(factory="not a factory")


def test_entry_points_register_agents(monkeypatch: pytest.MonkeyPatch) -> None:
    found = [EntryPoint("demo", "cloud.agents.testing:FailingAgent", "baton.agents")]
    monkeypatch.setattr(loader_module, "entry_points", lambda group: found)
    registry = AgentRegistry()
    assert load_entry_points(registry) == 1
    assert [a.id for a in registry.agents()] == ["failing"]


# --- the planner service with plug-ins -----------------------------------------------


@pytest.fixture
async def conn(hub: NatsServer) -> AsyncIterator[tuple[Client, JetStreamContext]]:
    nc = await nats.connect(hub.client_url)
    js = nc.jetstream()
    await ensure_hub(js)
    yield nc, js
    await nc.close()


async def test_a_failing_plug_in_never_stops_the_planner(
    conn: tuple[Client, JetStreamContext],
) -> None:
    nc, js = conn
    plug_in = AgentEntry(factory="cloud.agents.testing:FailingAgent", priority=1)
    cfg = PlannerConfig(step_deadline_s=1.0, entry_points=False, agents=[plug_in])
    fleet = MemoryFleetView([TwinState(device="pump-1", gw="gw1")])
    done: asyncio.Queue[PlanRecord] = asyncio.Queue()
    async with FakeEdge(js, "gw1"), PlannerService(nc, js, cfg, fleet, "r1") as planner:
        planner.subscribe(lambda rec: done.put_nowait(rec) if rec.ended else None)
        decision = Decision(
            gw="gw1", device="pump-1", source="model", name="bearing_wear", version="1",
            score=0.9, threshold=0.5, latency_us=10,
        )  # fmt: skip
        await js.publish("fleet.gw1.dec.pump-1", codec.encode(decision))
        async with timeout(WAIT_S):
            rec = await done.get()
        agents = {s.agent: s for s in planner.agents()}
    assert rec.status == "succeeded" and rec.plan.planner == "deterministic"
    assert not agents["failing"].healthy and agents["failing"].failures == {"error": 1}
    assert agents["deterministic"].healthy
    assert planner.stats()["planner.fallbacks"] == 1


def test_the_public_surface_is_pinned() -> None:
    import cloud.agents
    import cloud.planner

    assert set(cloud.planner.__all__) == {
        "ACTIONS", "DeterministicPlanner", "LlamaCppBackend", "LlmBackend", "LlmConfig",
        "LlmPlanner", "PlanRecord", "PlannerConfig", "PlannerService", "ScenarioConfig",
        "StepEvent",
    }  # fmt: skip
    assert set(cloud.agents.__all__) == {
        "ANY", "ENTRY_POINT_GROUP", "TRIGGER_KINDS", "Agent", "AgentContext", "AgentEntry",
        "AgentRegistry", "AgentStatus", "Outcome", "Proposal", "Trigger", "TriggerKind",
        "load_configured", "load_entry_points",
    }  # fmt: skip
    assert all(hasattr(cloud.planner, name) for name in cloud.planner.__all__)
    assert all(hasattr(cloud.agents, name) for name in cloud.agents.__all__)

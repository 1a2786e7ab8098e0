"""The LLM planner: schema-constrained output validated into a Plan, and the fallback to
the deterministic planner when the model says something invalid."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from cloud.agents import AgentContext, Trigger
from cloud.errors import PlanError
from cloud.planner import LlmConfig, LlmPlanner, PlannerConfig, PlannerService, PlanRecord
from cloud.planner.fakes import FakeEdge, ScriptedBackend
from cloud.planner.schema import parse_plan, plan_schema
from cloud.twins.view import MemoryFleetView
from shared.compat import timeout
from shared.messages import TwinState
from shared.natsrun import NatsServer
from shared.streams import ensure_hub

WAIT_S = 15.0
FLEET = MemoryFleetView([TwinState(device="pump-1", gw="gw1", reported={"load": 0.8})])
CFG = PlannerConfig(step_deadline_s=1.0, entry_points=False)


def llm_plan(device: str = "pump-1", action: str = "set_load", load: float = 0.4) -> str:
    return json.dumps({
        "reason": "bearing wear: slow the pump down and call a technician",
        "steps": [
            {"gw": "gw1", "device": device, "action": action, "params": {"load": load},
             "deadline_s": 2, "compensation": {"action": "set_load", "params": {"load": 0.8}}},
            {"gw": "gw1", "device": device, "action": "gw.ticket",
             "params": {"kind": "maintenance", "ref": "t1"}, "compensation": None},
        ],
    })  # fmt: skip


def test_a_valid_reply_becomes_a_plan() -> None:
    plan = parse_plan(llm_plan(), trigger="anomaly", default_deadline_ms=7000, fleet=FLEET)
    assert [s.action for s in plan.steps] == ["set_load", "gw.ticket"]
    assert [s.deadline_ms for s in plan.steps] == [2000, 7000]
    assert plan.steps[0].compensation is not None and plan.steps[1].compensation is None


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("{not json", "not JSON"),
        ('{"reason": "x"}', "no steps"),
        ('{"reason": "x", "steps": []}', "invalid"),
        ('{"reason": "x", "steps": [7]}', "not an object"),
        (llm_plan(action="Set Load!"), "invalid"),
        (llm_plan(device="pump-99"), "unknown device"),
        (llm_plan(device="../etc"), "invalid"),
        # The action vocabulary's bounds: the edge would refuse it anyway.
        (llm_plan(load=1.5), r"step 0: set_load.load=1.5 is outside"),
        (llm_plan(action="gw.diagnose"), "gw.diagnose has no param 'load'"),
    ],
)
def test_an_invalid_reply_is_a_plan_error(reply: str, why: str) -> None:
    with pytest.raises(PlanError, match=why):
        parse_plan(reply, trigger="anomaly", default_deadline_ms=1000, fleet=FLEET)


def test_the_schema_only_offers_known_actions() -> None:
    schema = plan_schema(["gw.ticket", "set_load"], max_steps=4)
    step = schema["properties"]["steps"]["items"]
    assert step["properties"]["action"] == {"enum": ["gw.ticket", "set_load"]}
    assert schema["properties"]["steps"]["maxItems"] == 4


async def test_the_prompt_carries_the_trigger_and_the_device_state() -> None:
    backend = ScriptedBackend([llm_plan()])
    planner = LlmPlanner(backend)
    trigger = Trigger("anomaly", "gw1", "pump-1", "bearing wear", {"score": 0.9})
    [proposal] = await planner.propose(trigger, AgentContext(FLEET, "r1", 1000))
    assert proposal.key == "llm.anomaly.gw1.pump-1"
    messages, schema = backend.calls[0]
    facts = json.loads(messages[-1]["content"])
    assert facts["trigger"]["detail"] == {"score": 0.9}
    assert facts["devices"][0]["reported"] == {"load": 0.8}
    assert "set_load" in facts["actions"] and schema["required"] == ["reason", "steps"]
    # The grammar lets the model name only the devices it was told about.
    step = schema["properties"]["steps"]["items"]["properties"]
    assert step["device"] == {"enum": ["pump-1"]} and step["gw"] == {"enum": ["gw1"]}


@pytest.fixture
async def conn(hub: NatsServer) -> AsyncIterator[tuple[Client, JetStreamContext]]:
    nc = await nats.connect(hub.client_url)
    js = nc.jetstream()
    await ensure_hub(js)
    yield nc, js
    await nc.close()


async def plan_once(
    conn: tuple[Client, JetStreamContext], backend: ScriptedBackend
) -> tuple[PlanRecord, PlannerService]:
    nc, js = conn
    done: asyncio.Queue[PlanRecord] = asyncio.Queue()
    async with (
        FakeEdge(js, "gw1"),
        PlannerService(nc, js, CFG, FLEET, "r1", llm_backend=backend) as planner,
    ):
        planner.subscribe(lambda rec: done.put_nowait(rec) if rec.ended else None)
        await planner.request_plan("anomaly:gw1/pump-1", "bearing wear")
        async with timeout(WAIT_S):
            return await done.get(), planner


async def test_the_llm_plans_when_its_reply_is_valid(
    conn: tuple[Client, JetStreamContext],
) -> None:
    backend = ScriptedBackend([llm_plan()])
    rec, planner = await plan_once(conn, backend)
    assert rec.plan.planner == "llm" and rec.status == "succeeded"
    assert rec.plan.steps[0].params == {"load": 0.4}
    assert "planner.fallbacks" not in planner.stats()
    assert backend.closed  # the service closes the planner it built


async def test_invalid_llm_output_falls_back_to_the_deterministic_planner(
    conn: tuple[Client, JetStreamContext],
) -> None:
    rec, planner = await plan_once(conn, ScriptedBackend(["I think you should fix it."]))
    assert rec.plan.planner == "deterministic" and rec.status == "succeeded"
    assert planner.stats()["planner.fallbacks"] == 1
    llm = next(s for s in planner.agents() if s.agent == "llm")
    assert llm.failures == {"invalid": 1} and "not JSON" in (llm.last_error or "")


# --- the real llama.cpp, where it is installed ----------------------------------------


async def test_llama_cpp_output_is_schema_constrained(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    from cloud.planner import LlamaCppBackend
    from shared.agent.tinygguf import write_tiny_llama

    model = write_tiny_llama(tmp_path / "tiny.gguf", words=("pump", "load", "ticket"))
    cfg = LlmConfig(n_ctx=2048, max_tokens=1500, max_steps=1, seed=1)
    backend = LlamaCppBackend(model, cfg)
    texts: list[str] = []
    generate = backend.generate

    async def recorded(messages: list[dict[str, str]], schema: dict[str, Any]) -> str:
        texts.append(await generate(messages, schema))
        return texts[-1]

    backend.generate = recorded  # type: ignore[method-assign]
    proposals: Any = ()
    try:
        with contextlib.suppress(PlanError):  # random weights may run out of tokens
            proposals = await LlmPlanner(backend, cfg).propose(
                Trigger("anomaly", "gw1", "pump-1", "wear"), AgentContext(FLEET, "r1", 1000)
            )
    finally:
        await backend.aclose()
    # The grammar admits only the schema's shape, and only the devices in the facts.
    assert texts and texts[0].startswith("{")
    for proposal in proposals:
        assert all(step.device == "pump-1" for step in proposal.plan.steps)

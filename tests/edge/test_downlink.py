"""The downlink against a real hub + leaf: what the hub publishes reaches the handler,
what fails a check is refused, reported to the hub, and never reaches it."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from pydantic import JsonValue

from edge.errors import RuleError
from edge.uplink import Downlink, DownlinkConfig, Uplink, UplinkConfig
from shared import codec, streams, subjects
from shared.compat import timeout
from shared.messages import (
    Command,
    DesiredState,
    GatewayEvent,
    Message,
    ModelUpdate,
    RulesUpdate,
    now_ms,
    rules_digest,
)
from shared.natsrun import LocalTopology
from shared.natsrun.monitor import poll_until

GW = "gw1"
FAST_UP = UplinkConfig(batch=64, hub_ack_timeout_s=1.0, retry_backoff_max_s=0.3)
FAST_DOWN = DownlinkConfig(retry_backoff_max_s=0.3, model_fetch_timeout_s=10.0)
WAIT_S = 30.0
RULES: list[dict[str, JsonValue]] = [
    {"name": "overheat", "metric": "temperature", "above": 70.0, "action": "fan"}
]

Call = tuple[str, Message, bytes | None]


class Recorder:
    """A DownlinkHandler that records calls, refuses a rule set named `refuse-me` and
    fails once on a command whose action is `flaky`."""

    def __init__(self) -> None:
        self.calls: asyncio.Queue[Call] = asyncio.Queue()
        self.flaky_failures = 0

    async def on_command(self, cmd: Command) -> None:
        if cmd.action == "flaky" and self.flaky_failures == 0:
            self.flaky_failures += 1
            raise RuntimeError("the actuator driver hiccuped")
        await self.calls.put(("cmd", cmd, None))

    async def on_desired(self, desired: DesiredState) -> None:
        await self.calls.put(("desired", desired, None))

    async def on_rules(self, update: RulesUpdate) -> None:
        if any(rule.get("name") == "refuse-me" for rule in update.rules):
            raise RuleError("metric does not exist", rule="refuse-me")
        await self.calls.put(("rules", update, None))

    async def on_model(self, update: ModelUpdate, data: bytes) -> None:
        await self.calls.put(("model", update, data))

    async def next(self) -> Call:
        async with timeout(WAIT_S):
            return await self.calls.get()


@pytest.fixture
async def leaf(topology: LocalTopology) -> AsyncIterator[Client]:
    nc = await nats.connect(topology.leaf.client_url)
    yield nc
    await nc.close()


@pytest.fixture
async def hub_nc(topology: LocalTopology) -> AsyncIterator[Client]:
    """The cloud's connection, with the hub's streams, KV and object stores created."""
    nc = await nats.connect(topology.hub.client_url)
    await streams.ensure_hub(nc.jetstream())
    yield nc
    await nc.close()


async def reports(hub: JetStreamContext, count: int) -> list[GatewayEvent]:
    """The first `count` downlink reports the gateway forwarded to the hub."""
    subject = subjects.fleet(GW, "ev", GW)

    async def arrived() -> bool:
        info = await hub.stream_info(subjects.FLEET_STREAM, subjects_filter=subject)
        return info.state.messages >= count

    await poll_until(arrived, timeout_s=WAIT_S)
    sub = await hub.pull_subscribe(subject, stream=subjects.FLEET_STREAM)
    msgs = await sub.fetch(count, timeout=5)
    await sub.unsubscribe()
    return [codec.decode(m.data, GatewayEvent) for m in msgs]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_hub_messages_reach_the_handler_and_bad_updates_are_refused_and_reported(
    leaf: Client, hub_nc: Client
) -> None:
    hub = hub_nc.jetstream()
    handler = Recorder()
    model = b"\x08\x07onnx-model" * 500
    await (await hub.object_store(subjects.MODELS_STORE)).put("anomaly-2.onnx", model)
    cmd = Command(
        device="d1", gw=GW, action="fan", params={"on": True}, deadline_ms=now_ms() + 60_000
    )
    desired = DesiredState(device="d1", gw=GW, version=3, state={"setpoint": 21.5})
    bad_rules = RulesUpdate(gw=GW, version="2", sha256="0" * 64, rules=RULES)
    good_rules = RulesUpdate(gw=GW, version="3", sha256=rules_digest(RULES), rules=RULES)
    refused_rules: list[dict[str, JsonValue]] = [
        {"name": "refuse-me", "metric": "nope", "above": 1.0, "action": "fan"}
    ]
    handler_refused = RulesUpdate(
        gw=GW, version="4", sha256=rules_digest(refused_rules), rules=refused_rules
    )
    bad_model = ModelUpdate(
        gw=GW, name="anomaly", version="2", object_name="anomaly-2.onnx", sha256=digest(b"x")
    )
    good_model = bad_model.model_copy(update={"version": "2b", "sha256": digest(model)})
    sent = [
        ("cmd", cmd),
        ("desired", desired),
        ("rules", bad_rules),
        ("rules", good_rules),
        ("rules", handler_refused),
        ("model", bad_model),
        ("model", good_model),
    ]
    async with (
        Uplink(leaf, GW, FAST_UP) as uplink,
        Downlink(leaf, GW, FAST_DOWN, handler, events=uplink) as downlink,
    ):
        for kind, msg in sent:
            device = getattr(msg, "device", None) if kind in ("cmd", "desired") else None
            await hub.publish(subjects.downlink(GW, kind, device), codec.encode(msg))
        assert await handler.next() == ("cmd", cmd, None)
        assert await handler.next() == ("desired", desired, None)
        assert await handler.next() == ("rules", good_rules, None)
        assert await handler.next() == ("model", good_model, model)
        got = await reports(hub, 5)
        stats = downlink.stats()
    assert handler.calls.empty()
    assert {(e.gw, e.type, e.device) for e in got} == {(GW, "downlink", None)}
    assert [(e.data["update"], e.data["version"], e.data["refused"]) for e in got] == [
        ("rules", "2", True),
        ("rules", "3", False),
        ("rules", "4", True),
        ("model", "2", True),
        ("model", "2b", False),
    ]
    assert "sha256" in str(got[0].data["reason"]) and "refuse-me" in str(got[2].data["reason"])
    assert (stats.received, stats.applied, stats.refused, stats.hub_connected) == (7, 4, 3, True)


async def test_a_failing_handler_gets_the_message_again(leaf: Client, hub_nc: Client) -> None:
    handler = Recorder()
    flaky = Command(device="d2", gw=GW, action="flaky", deadline_ms=now_ms() + 60_000)
    async with Downlink(leaf, GW, FAST_DOWN, handler) as downlink:
        await hub_nc.jetstream().publish(subjects.downlink(GW, "cmd", "d2"), codec.encode(flaky))
        assert await handler.next() == ("cmd", flaky, None)

        async def acked() -> bool:
            return downlink.stats().applied == 1

        await poll_until(acked, timeout_s=WAIT_S)
    assert handler.flaky_failures == 1
    assert downlink.stats().handler_errors == 1


async def test_started_while_the_hub_is_down_it_subscribes_when_the_hub_returns(
    topology: LocalTopology, leaf: Client
) -> None:
    nc = await nats.connect(topology.hub.client_url)
    await streams.ensure_hub(nc.jetstream())
    await nc.close()
    await topology.hub.kill()
    handler = Recorder()
    async with Downlink(leaf, GW, FAST_DOWN, handler) as downlink:  # returns at once
        assert not downlink.stats().hub_connected
        await topology.hub.start()
        await topology.wait_linked()
        nc = await nats.connect(topology.hub.client_url)
        cmd = Command(device="d3", gw=GW, action="valve", deadline_ms=now_ms() + 60_000)
        await nc.jetstream().publish(subjects.downlink(GW, "cmd", "d3"), codec.encode(cmd))
        await nc.close()
        assert await handler.next() == ("cmd", cmd, None)
        assert downlink.stats().hub_connected

"""When sessions move on their own: the device's state and the agent's limits.

What a user notices: a gateway that overheats (or runs low on battery) hands its
sessions to the cloud and takes them back once it is well again, without flapping; a
question that needs the whole fleet is answered in the cloud; a request made while the
uplink is down is made when it comes back.
"""

from __future__ import annotations

import asyncio

from handoffkit import GW, WAIT_S, Sides

from cloud.sessions import SessionManager
from edge.handoff import EdgeHandoff, HandoffConfig, MemoryDeviceState, edge_loader
from shared.agent import AgentSession, RuleBackend
from shared.compat import timeout
from shared.messages import AgentComplete, HandoffRequest
from shared.session import SessionSettings
from shared.session.policy import DeviceSignals, HandoffPolicy, PolicyConfig

HOT = DeviceSignals(temp_c=85.0)
WARM = DeviceSignals(temp_c=75.0)
COOL = DeviceSignals(temp_c=60.0)


def request(reason: str = "needs_fleet: 'fleet'") -> HandoffRequest:
    return HandoffRequest(session="s1", seq=3, to="cloud", reason=reason)


def test_a_hot_gateway_hands_over_and_takes_back_only_when_cool() -> None:
    policy = HandoffPolicy(PolicyConfig(dwell_s=10.0))
    decision = policy.on_device("s1", HOT, side="edge", now=0.0)
    assert decision is not None and decision.to == "cloud" and "thermal" in decision.reason
    assert policy.on_device("s1", COOL, side="cloud", now=5.0) is None  # dwelling
    assert policy.on_device("s1", WARM, side="cloud", now=20.0) is None  # hysteresis
    back = policy.on_device("s1", COOL, side="cloud", now=21.0)
    assert back is not None and back.to == "edge"


def test_a_low_battery_hands_over() -> None:
    policy = HandoffPolicy()
    decision = policy.on_device("s1", DeviceSignals(battery_pct=12.0), side="edge", now=0.0)
    assert decision is not None and decision.reason.startswith("battery")


def test_an_agent_request_waits_for_the_uplink_and_stays_in_the_cloud() -> None:
    policy = HandoffPolicy(PolicyConfig(dwell_s=0.0))
    assert policy.on_agent("s1", request(), side="edge", uplink=False, now=0.0) is None
    down = DeviceSignals(temp_c=50.0, uplink=False)
    assert policy.on_device("s1", down, side="edge", now=1.0) is None
    back = policy.on_device("s1", DeviceSignals(temp_c=50.0), side="edge", now=2.0)
    assert back is not None and back.to == "cloud" and back.reason.startswith("uplink back")
    # the agent sent it: a healthy device does not pull it back
    assert policy.on_device("s1", COOL, side="cloud", now=3.0) is None


def test_nothing_moves_while_the_uplink_is_down() -> None:
    policy = HandoffPolicy()
    assert policy.on_device("s1", DeviceSignals(temp_c=90.0, uplink=False), side="edge",
                            now=0.0) is None  # fmt: skip


class Epochs:
    """What the actuation guard would hear: every epoch of the gateway's sessions."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.heard = asyncio.Event()

    def __call__(self, session: str, epoch: int) -> None:
        self.seen.append(epoch)
        self.heard.set()

    async def until(self, epoch: int) -> None:
        async with timeout(WAIT_S):
            while self.seen[-1:] != [epoch]:
                self.heard.clear()
                await self.heard.wait()


async def edge_service(sides: Sides, device: MemoryDeviceState, epochs: Epochs) -> EdgeHandoff:
    nc = await sides.connect(sides.edge_url)
    config = HandoffConfig(lease_ttl_s=2.0, dwell_s=0.0)
    service = EdgeHandoff(nc, GW, edge_loader(RuleBackend()), config=config, device=device,
                          on_epoch=epochs)  # fmt: skip
    await service.__aenter__()
    sides.services.append(service)  # closed with the others
    return service


async def cloud_service(sides: Sides) -> SessionManager:
    nc = await sides.connect(sides.cloud_url)
    manager = SessionManager(nc, "r1", backend=RuleBackend(), settings=SessionSettings(ttl_s=2.0))
    await manager.__aenter__()
    sides.services.append(manager)
    return manager


async def owner_is(service: EdgeHandoff | SessionManager, owner: str) -> int:
    """Until `service`'s own lease board shows `owner` holding s1: its epoch then."""
    async with timeout(WAIT_S):
        lease = await service.host.board.wait(
            "s1", lambda lease: lease is not None and lease.value.owner == owner
        )
    assert lease is not None
    return lease.epoch


async def test_the_gateway_moves_its_sessions_with_its_temperature(sides: Sides) -> None:
    device = MemoryDeviceState(COOL)
    epochs = Epochs()
    edge = await edge_service(sides, device, epochs)
    cloud = await cloud_service(sides)
    await edge.open(AgentSession("s1", gw=GW, backend=RuleBackend(), side="edge"), "s1")

    device.update(temp_c=HOT.temp_c)
    in_cloud = await owner_is(edge, "cloud:r1")
    assert await owner_is(cloud, "cloud:r1") == in_cloud
    assert [info.side for info in cloud.sessions()] == ["cloud"]
    device.update(temp_c=COOL.temp_c)
    back = await owner_is(edge, f"edge:{GW}")
    assert back > in_cloud
    await epochs.until(back)  # the guard hears each new epoch from the lease board
    assert in_cloud in epochs.seen


async def test_a_fleet_question_at_the_gateway_is_answered_in_the_cloud(sides: Sides) -> None:
    edge = await edge_service(sides, MemoryDeviceState(), Epochs())
    await cloud_service(sides)
    await edge.open(AgentSession("s1", gw=GW, backend=RuleBackend(), side="edge"), "s1")
    async with timeout(WAIT_S):
        events = [event async for event in edge.ask("s1", "how is the whole fleet doing?")]
    asked = next(e for e in events if isinstance(e, HandoffRequest))
    assert asked.reason.startswith("needs_fleet")
    answer = events[-1]
    assert isinstance(answer, AgentComplete) and answer.agent == "cloud:rules"
    assert answer.epoch > asked.epoch
    assert [e.seq for e in events] == list(range(events[0].seq, events[-1].seq + 1))

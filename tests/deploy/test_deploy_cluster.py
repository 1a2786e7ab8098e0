"""The shipped three-node hub: an R3 stream survives a node's death without losing an
acknowledged message, and a gateway's leaf links to it over TLS with its NKEY and
reaches only its own subtree.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig
from nats.js.errors import APIError

from shared.compat import timeout
from shared.creds import EDGE_USER, CredStore, downlink_consumer, gateway_inbox_prefix
from shared.natsrun import NatsServer
from shared.natsrun.monitor import poll_until

from ._support import CLUSTER_READY_S, GATEWAY, installed_leaf

pytestmark = pytest.mark.usefixtures("no_nats_left")
log = logging.getLogger(__name__)

# Leader election after a node's loss takes a few seconds (raft election timeouts).
FAILOVER_TIMEOUT_S = 30.0
PUBLISH_TIMEOUT_S = 2.0
RETRY_PAUSE_S = 0.05
REDELIVER_S = 1.0
BEFORE_KILL = 50
AFTER_KILL = 50


async def _orchestrator(store: CredStore, nodes: list[NatsServer]) -> Client:
    urls = [node.client_url for node in nodes]
    return await nats.connect(
        urls,
        nkeys_seed_str=store.orchestrator_seed(),
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
    )


async def _publish_acked(nc: Client, seq: int, acked: set[str]) -> float:
    """Publish message `seq` until the stream acknowledges it; seconds spent retrying.

    A timed-out publish may or may not have been stored; the retry carries the same
    Nats-Msg-Id, so the stream keeps it once either way.
    """
    js = nc.jetstream(timeout=PUBLISH_TIMEOUT_S)
    loop = asyncio.get_running_loop()
    started = loop.time()
    msg_id = f"m-{seq}"
    async with timeout(FAILOVER_TIMEOUT_S):
        while True:
            try:
                await js.publish(
                    f"downlink.{GATEWAY}.cmd.dev-a",
                    msg_id.encode(),
                    headers={"Nats-Msg-Id": msg_id},
                )
            except (NatsError, asyncio.TimeoutError, APIError) as exc:
                log.info("publish %s not acknowledged yet: %r", msg_id, exc)
                # Pacing only (a "no responders" answer comes back at once while the
                # stream has no leader); the signal we wait for is the PubAck.
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            acked.add(msg_id)
            return loop.time() - started


async def _stored_payloads(nc: Client, stream: str) -> list[str]:
    """Every message of `stream`, read by sequence from its leader (no consumer: creating
    one needs the meta leader, which may still be electing after a node's loss)."""
    js = nc.jetstream(timeout=5.0)
    state = (await js.stream_info(stream)).state
    return [
        (await js.get_msg(stream, seq)).data.decode()  # type: ignore[union-attr]
        for seq in range(state.first_seq, state.last_seq + 1)
    ]


async def test_r3_stream_survives_a_hub_node_kill_without_losing_acked_messages(
    hub_cluster: list[NatsServer], store: CredStore
) -> None:
    for node in hub_cluster:
        jsz = (await node.monitor("/varz"))["jetstream"]["config"]
        assert jsz["sync_always"] is True and jsz["domain"] == "hub"
    nc = await _orchestrator(store, hub_cluster)
    try:
        js = nc.jetstream(timeout=10.0)
        # The orchestrator's own R3 stream: commands to gateways must not be lost.
        info = await js.add_stream(
            StreamConfig(
                name="DOWNLINK", subjects=["downlink.>"], num_replicas=3, storage=StorageType.FILE
            )
        )
        assert info.cluster is not None and len(info.cluster.replicas or []) == 2
        acked: set[str] = set()
        for seq in range(BEFORE_KILL):
            await _publish_acked(nc, seq, acked)

        leader_name = (await js.stream_info("DOWNLINK")).cluster.leader  # type: ignore[union-attr]
        leader = next(node for node in hub_cluster if node.name == leader_name)
        await leader.kill()
        # The first publish after the kill waits out the new leader's election.
        failover_s = await _publish_acked(nc, BEFORE_KILL, acked)
        log.warning(
            "R3 stream leader %s killed; writes resumed after %.2fs", leader_name, failover_s
        )
        for seq in range(BEFORE_KILL + 1, BEFORE_KILL + AFTER_KILL):
            await _publish_acked(nc, seq, acked)

        info = await js.stream_info("DOWNLINK")
        assert info.cluster is not None and info.cluster.leader != leader_name
        assert info.state.messages == len(acked) == BEFORE_KILL + AFTER_KILL
        stored = await _stored_payloads(nc, "DOWNLINK")
        assert sorted(stored) == sorted(acked), "an acknowledged message is missing or doubled"
        assert failover_s < FAILOVER_TIMEOUT_S
    finally:
        await nc.close()


# -- a gateway's leaf on the cluster --------------------------------------------------------


@pytest.fixture
async def linked_leaf(
    hub_cluster: list[NatsServer], installed: Path, tmp_path: Path, store: CredStore
) -> AsyncIterator[NatsServer]:
    """The installed gw1 leaf, linked to hub-1 over TLS with its NKEY."""
    hub_leaf_port = hub_cluster[0].config.leafnode_port
    leaf, _ = installed_leaf(installed, tmp_path / "leaf", hub_leafnode_port=hub_leaf_port)
    async with leaf:
        await hub_cluster[0].wait_for_leafnodes(1, timeout_s=CLUSTER_READY_S)
        yield leaf


async def _edge_client(leaf: NatsServer, store: CredStore) -> Client:
    """The edge daemon's connection: its leaf login and its gateway's inbox prefix."""
    return await nats.connect(
        leaf.client_url,
        user=EDGE_USER,
        password=store.edge_password(GATEWAY),
        inbox_prefix=gateway_inbox_prefix(GATEWAY),
        allow_reconnect=False,
    )


async def test_gateway_leaf_reaches_its_own_subtree_on_the_hub_and_nothing_else(
    hub_cluster: list[NatsServer], linked_leaf: NatsServer, store: CredStore
) -> None:
    orch = await _orchestrator(store, hub_cluster)
    edge = await _edge_client(linked_leaf, store)
    try:
        ojs = orch.jetstream(timeout=10.0)
        await ojs.add_stream(StreamConfig(name="FLEET", subjects=["fleet.>"], num_replicas=3))
        await ojs.add_stream(StreamConfig(name="DOWNLINK", subjects=["downlink.>"], num_replicas=3))
        await ojs.publish(f"downlink.{GATEWAY}.cmd.dev-a", b"for gw1")
        await ojs.publish("downlink.gw2.cmd.dev-z", b"for gw2")

        hub = edge.jetstream(domain="hub", timeout=5.0)
        # Interest for the hub's JetStream API crosses the link a moment after the link.
        await poll_until(_answers(hub), timeout_s=CLUSTER_READY_S)
        ack = await hub.publish(f"fleet.{GATEWAY}.r.dev-a", b"reading")
        assert ack.stream == "FLEET" and ack.domain == "hub"
        # Another gateway's subtree: the hub never even offers the leaf that interest.
        with pytest.raises((NatsError, asyncio.TimeoutError)):
            await hub.publish("fleet.gw2.r.dev-a", b"spoofed", timeout=1.0)

        own = downlink_consumer(GATEWAY)
        await hub.add_consumer(
            "DOWNLINK",
            ConsumerConfig(
                name=own,
                durable_name=own,
                filter_subject=f"downlink.{GATEWAY}.>",
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=REDELIVER_S,
            ),
        )
        sub = await hub.pull_subscribe_bind(own, stream="DOWNLINK")
        msg = await _fetch_one(sub)
        assert msg.data == b"for gw1"
        await msg.ack_sync()
        # Reading gw2's commands through a consumer of its own name is refused.
        with pytest.raises((NatsError, asyncio.TimeoutError)):
            await hub.add_consumer(
                "DOWNLINK",
                ConsumerConfig(name=own, durable_name=own, filter_subject="downlink.gw2.>"),
                timeout=1.0,
            )
        stored = await ojs.stream_info("FLEET")
        assert stored.state.messages == 1
    finally:
        await edge.close()
        await orch.close()


async def _fetch_one(sub: JetStreamContext.PullSubscription) -> Msg:
    """The next message, fetching again until it comes.

    The consumer's leader may sit on another hub node than the leaf's; a delivery sent
    before the interest in the fetch's inbox has crossed the routes is lost and comes
    again after the consumer's ack wait, as the edge daemon's own fetch loop would see.
    """
    async with timeout(CLUSTER_READY_S):
        while True:
            try:
                return (await sub.fetch(1, timeout=REDELIVER_S * 2))[0]
            except (NatsError, asyncio.TimeoutError):
                continue


def _answers(js: JetStreamContext) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        try:
            await js.account_info()
        except (NatsError, asyncio.TimeoutError):
            return False
        return True

    return probe

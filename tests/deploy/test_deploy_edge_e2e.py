"""The edge daemon's uplink and downlink, through a gateway leaf installed with generated
credentials and linked to the shipped hub cluster: the gateway's permissions are enough
for what the daemon does (forward readings, pull commands, fetch a pushed model)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from edge.uplink import Downlink, DownlinkConfig, Uplink, UplinkConfig
from shared import codec, streams, subjects
from shared.compat import timeout
from shared.creds import EDGE_USER, CredStore, gateway_inbox_prefix
from shared.messages import Command, DesiredState, Message, ModelUpdate, RulesUpdate, now_ms
from shared.natsrun import NatsServer
from shared.natsrun.monitor import poll_until

from ._support import GATEWAY, installed_leaf

pytestmark = pytest.mark.usefixtures("no_nats_left")

WAIT_S = 30.0
READINGS = 20
FAST_UP = UplinkConfig(batch=64, hub_ack_timeout_s=2.0, retry_backoff_max_s=0.3)
FAST_DOWN = DownlinkConfig(retry_backoff_max_s=0.3, model_fetch_timeout_s=10.0)

Call = tuple[str, Message, bytes | None]


class Recorder:
    """A DownlinkHandler that records what reaches it."""

    def __init__(self) -> None:
        self.calls: asyncio.Queue[Call] = asyncio.Queue()

    async def on_command(self, cmd: Command) -> None:
        await self.calls.put(("cmd", cmd, None))

    async def on_desired(self, desired: DesiredState) -> None:
        await self.calls.put(("desired", desired, None))

    async def on_rules(self, update: RulesUpdate) -> None:
        await self.calls.put(("rules", update, None))

    async def on_model(self, update: ModelUpdate, data: bytes) -> None:
        await self.calls.put(("model", update, data))

    async def next(self) -> Call:
        async with timeout(WAIT_S):
            return await self.calls.get()


@pytest.fixture
async def linked(
    hub_cluster: list[NatsServer], installed: Path, tmp_path: Path
) -> AsyncIterator[NatsServer]:
    port = hub_cluster[0].config.leafnode_port
    leaf, _ = installed_leaf(installed, tmp_path / "leaf", hub_leafnode_port=port)
    async with leaf:
        await hub_cluster[0].wait_for_leafnodes(1, timeout_s=WAIT_S)
        yield leaf


async def test_uplink_and_downlink_work_within_the_gateways_permissions(
    hub_cluster: list[NatsServer], linked: NatsServer, store: CredStore
) -> None:
    orch = await nats.connect(
        [node.client_url for node in hub_cluster], nkeys_seed_str=store.orchestrator_seed()
    )
    # The daemon's connection: its leaf login, and its gateway's inbox prefix, without
    # which no reply from the hub may cross the link.
    nc = await nats.connect(
        linked.client_url,
        user=EDGE_USER,
        password=store.edge_password(GATEWAY),
        inbox_prefix=gateway_inbox_prefix(GATEWAY),
    )
    try:
        hub = orch.jetstream(timeout=10.0)
        await streams.ensure_hub(hub, replicas=3)
        model = b"onnx" * 3000
        await (await hub.object_store(subjects.MODELS_STORE)).put("m-1.onnx", model)
        handler = Recorder()
        async with (
            Uplink(nc, GATEWAY, FAST_UP) as uplink,
            Downlink(nc, GATEWAY, FAST_DOWN, handler, events=uplink),
        ):
            for seq in range(READINGS):
                uplink.submit("r", "dev-a", seq, b"reading-%d" % seq)

            async def forwarded() -> bool:
                info = await hub.stream_info(subjects.FLEET_STREAM)
                return info.state.messages >= READINGS

            await poll_until(forwarded, timeout_s=WAIT_S)

            cmd = Command(device="dev-a", gw=GATEWAY, action="fan", deadline_ms=now_ms() + 60_000)
            await hub.publish(subjects.downlink(GATEWAY, "cmd", "dev-a"), codec.encode(cmd))
            assert await handler.next() == ("cmd", cmd, None)

            update = ModelUpdate(
                gw=GATEWAY,
                name="anomaly",
                version="1",
                object_name="m-1.onnx",
                sha256=hashlib.sha256(model).hexdigest(),
            )
            await hub.publish(subjects.downlink(GATEWAY, "model"), codec.encode(update))
            assert await handler.next() == ("model", update, model)
            assert uplink.stats().forwarded == READINGS
    finally:
        await nc.close()
        await orch.close()

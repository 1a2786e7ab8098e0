"""Issue 10 item 11, devices: a device with its own valid credentials attacking the others
on its gateway's leaf, past what tests/deploy/test_deploy_permissions.py checks.

That module shows the basics (publishing as B, subscribing to B's commands, `>`, `#`,
`baton.d.*.cmd`). Here: the leaf's JetStream API and MQTT's own `$MQTT.>` subjects,
wildcard shapes that cover B without naming it, writing straight into the gateway's
store-and-forward stream, a retained message and a last will planted on B's topics, and
B's MQTT client id and persistent session.

Each refusal is seen, not inferred from silence: the server's `-ERR 'Permissions
Violation'` on the same NATS connection, SUBACK 0x80 (MQTT 3.1.1 §3.9.3), the leaf's own
stream state, or a sentinel the same server queued behind the forbidden message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from relkit_figures import Figures
from relkit_mqtt import SUBACK_FAILURE, ConnectionDropped, RawMqtt
from relkit_site import Seen, edge_client, install_gateway, make_creds

from shared import streams, subjects
from shared.creds import CredStore
from shared.natsrun import NatsServer
from shared.natsrun.monitor import poll_until
from tests.deploy._support import make_certs
from tests.deploy.test_deploy_permissions import Violations, wait_subscribed

pytestmark = pytest.mark.usefixtures("no_nats_left")

GW, A, B = "gw1", "dev-a", "dev-b"
WAIT_S = 15.0

# NATS subjects a device must not publish to (each one names what it would reach).
FORBIDDEN_PUBLISH = (
    "$JS.API.STREAM.LIST",  # the leaf's JetStream API
    f"$JS.{subjects.gateway_domain(GW)}.API.STREAM.PURGE.UPLINK",  # ... through its domain
    "$JS.hub.API.INFO",  # the hub's, across the leaf node link
    "$JS.ACK.UPLINK.edge.1.1.1.1.0",  # acknowledging (deleting) the gateway's backlog
    "$KV.leases.s1",  # a session lease
    "$MQTT.rmsgs.baton.d.dev-b.cmd",  # a retained message, written into MQTT's own stream
    "$MQTT.sess.x",  # MQTT session state
    f"uplink.{GW}.r.{B}",  # straight into the store-and-forward stream, as B
    f"fleet.{GW}.r.{B}",  # the hub's subject for gateway readings
    f"baton.d.{B}.status",  # B's presence
    f"baton.d.{A}.cmd",  # a command, even to itself
    f"baton.d.{A}.r.more",  # a level below its own reading subject
    "_INBOX.forged",  # a reply to someone else's request
)
# NATS subscriptions a device must not hold: each would cover B or the gateway's internals.
FORBIDDEN_SUBSCRIBE = (
    "$MQTT.>",
    "$MQTT.sub.>",
    "$MQTT.msgs.>",
    "$JS.>",
    "$JS.API.>",
    "_INBOX.>",
    f"_INBOX_{GW}.>",
    "$KV.>",
    "uplink.>",
    "baton.d.>",
    f"baton.d.{B}.>",
    "baton.d.*.*",
    f"baton.*.{B}.cmd",
    "*.*.*.*",
    f"baton.d.{A}.>",
)
# MQTT filters a device must be refused: system topics, and wildcards that reach B.
FORBIDDEN_FILTERS = (
    "$MQTT/#",
    "$MQTT/sub/#",
    "$MQTT/msgs/#",
    "baton/#",
    "baton/d/+/+",
    f"baton/d/{B}/#",
    f"baton/d/{B}/+",
    f"+/d/{B}/cmd",
    "+/+/+/+",
    f"baton/d/{A}/#",
    f"$share/g/baton/d/{B}/cmd",
)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[NatsServer, int, CredStore]]:
    """gw1's leaf as install.sh lays it out, alone, with devices A and B."""
    creds = make_creds(tmp_path / "creds", gateways=[GW], devices={A: GW, B: GW})
    leaf, mqtt_port = install_gateway(
        tmp_path / GW, creds, GW, make_certs(tmp_path / "certs"), hub_leafnode_port=None
    )
    async with leaf:
        yield leaf, mqtt_port, creds


async def _observer(leaf: NatsServer, edge: Client) -> Seen:
    seen = Seen()
    await edge.subscribe("baton.d.>", cb=seen.on_msg)
    await wait_subscribed(leaf, "baton.d.>")
    return seen


async def test_device_over_nats_reaches_no_jetstream_mqtt_internals_or_other_subtree(
    site: tuple[NatsServer, int, CredStore], figures: Figures
) -> None:
    leaf, _, creds = site
    edge = await edge_client(leaf, creds, GW)
    violations = Violations()
    dev = await nats.connect(
        leaf.client_url,
        user=A,
        password=creds.device_password(A),
        error_cb=violations.on_error,
        allow_reconnect=False,
    )
    try:
        leaf_js = edge.jetstream(domain=subjects.gateway_domain(GW))
        await leaf_js.add_stream(streams.uplink_stream(GW))
        seen = await _observer(leaf, edge)
        refused = []
        for subject in FORBIDDEN_PUBLISH:
            await dev.publish(subject, b"hostile")
            refused.append(await violations.next())
        for subject in FORBIDDEN_SUBSCRIBE:
            await dev.subscribe(subject)
            refused.append(await violations.next())
        await dev.subscribe(f"baton.d.{B}.cmd", queue="workers")
        refused.append(await violations.next())
        assert all("permissions violation" in text.lower() for text in refused), refused

        # Still connected and still itself: its own reading goes through, and is the only
        # thing the gateway's store-and-forward stream took from it.
        await dev.publish(f"baton.d.{A}.r", b"own")
        await seen.wait_for(lambda s, d: (s, d) == (f"baton.d.{A}.r", b"own"))
        # A core subscriber can hear it before the stream has stored it.
        stored: dict[str, int] | None = None

        async def holds_one() -> bool:
            nonlocal stored
            info = await leaf_js.stream_info(subjects.UPLINK_STREAM, subjects_filter=">")
            stored = info.state.subjects
            return info.state.messages >= 1

        await poll_until(holds_one, timeout_s=WAIT_S)
        assert stored == {f"baton.d.{A}.r": 1}
        assert all(data != b"hostile" for _, data in seen.messages)
        attempts = len(FORBIDDEN_PUBLISH) + len(FORBIDDEN_SUBSCRIBE) + 1
        figures.record(attempts=attempts, refused=len(refused), accepted=attempts - len(refused))
    finally:
        await dev.close()
        await edge.close()


async def test_device_over_mqtt_is_refused_system_topics_and_wildcards_over_others(
    site: tuple[NatsServer, int, CredStore], figures: Figures
) -> None:
    leaf, mqtt_port, creds = site
    edge = await edge_client(leaf, creds, GW)
    try:
        async with RawMqtt.connect(
            mqtt_port, client_id=A, user=A, password=creds.device_password(A)
        ) as dev:
            assert dev.connack == 0
            codes = {topic: await dev.subscribe(topic) for topic in FORBIDDEN_FILTERS}
            granted = {topic: code for topic, code in codes.items() if code != [SUBACK_FAILURE]}
            assert not granted, f"SUBSCRIBE granted: {granted}"
            assert await dev.subscribe(subjects.mqtt_command(A), qos=0) == [0]
            # Only its own command arrives: B's, sent first by the same publisher, never.
            await edge.publish(f"baton.d.{B}.cmd", b"for b")
            await edge.publish(f"baton.d.{A}.cmd", b"for a")
            got = await dev.next_publish()
            assert (got.topic, got.payload) == (subjects.mqtt_command(A), b"for a")
        figures.record(attempts=len(FORBIDDEN_FILTERS), refused=len(FORBIDDEN_FILTERS), accepted=0)
    finally:
        await edge.close()


async def _retained_subjects(edge: Client) -> dict[str, int]:
    js = edge.jetstream(domain=subjects.gateway_domain(GW))
    info = await js.stream_info("$MQTT_rmsgs", subjects_filter=">")
    return dict(info.state.subjects or {})


async def test_a_retained_message_planted_on_another_devices_topics_is_never_kept(
    site: tuple[NatsServer, int, CredStore], figures: Figures
) -> None:
    leaf, mqtt_port, creds = site
    edge = await edge_client(leaf, creds, GW)
    planted = (subjects.mqtt_command(B), subjects.mqtt_status(B))
    try:
        async with RawMqtt.connect(
            mqtt_port, client_id=A, user=A, password=creds.device_password(A)
        ) as dev:
            for topic in planted:  # MQTT 3.1.1 has no negative PUBACK: it acks and drops
                await dev.publish(topic, b"planted", retain=True)
            # Its own retained status is kept; PUBLISHes of one connection are handled in
            # order, so by this PUBACK the planted ones were handled too.
            await dev.publish(subjects.mqtt_status(A), b"online", retain=True)
        assert await _retained_subjects(edge) == {f"$MQTT.rmsgs.baton.d.{A}.status": 1}

        # B subscribing to its own commands gets no planted command, only live ones.
        async with RawMqtt.connect(
            mqtt_port, client_id=B, user=B, password=creds.device_password(B)
        ) as victim:
            assert await victim.subscribe(subjects.mqtt_command(B)) == [1]
            await edge.publish(f"baton.d.{B}.cmd", b"live")
            got = await victim.next_publish()
            assert (got.payload, got.retain) == (b"live", False)
        figures.record(attempts=len(planted), kept=0, delivered_to_victim=0)
    finally:
        await edge.close()


async def _closed(leaf: NatsServer, client_id: str) -> None:
    """Until the leaf lists the MQTT connection `client_id` as closed."""

    async def listed() -> bool:
        connz = await leaf.monitor("/connz?state=closed&limit=1024")
        return any(c.get("mqtt_client") == client_id for c in connz.get("connections", []))

    await poll_until(listed, timeout_s=WAIT_S)


async def test_a_last_will_on_another_devices_topic_never_fires(
    site: tuple[NatsServer, int, CredStore], figures: Figures
) -> None:
    leaf, mqtt_port, creds = site
    edge = await edge_client(leaf, creds, GW)
    password = creds.device_password(A)
    try:
        seen = await _observer(leaf, edge)
        forged = (subjects.mqtt_status(B), b"forged offline", True)
        async with RawMqtt.connect(
            mqtt_port, client_id="a-forger", user=A, password=password, will=forged
        ) as forger:
            accepted = forger.connack == 0
            if accepted:
                forger.drop()  # no DISCONNECT: the server must publish the will (§3.1.2.5)
                await _closed(leaf, "a-forger")
        # The same device's will on its own topic does fire: the test can see a will.
        own = (subjects.mqtt_status(A), b"own offline", False)
        async with RawMqtt.connect(
            mqtt_port, client_id="a-honest", user=A, password=password, will=own
        ) as honest:
            assert honest.connack == 0
            honest.drop()
            await seen.wait_for(lambda s, d: d == b"own offline")
        assert f"baton.d.{B}.status" not in seen.subjects(), seen.messages
        assert f"$MQTT.rmsgs.baton.d.{B}.status" not in await _retained_subjects(edge)
        figures.record(forged_will_connect_accepted=accepted, forged_will_published=0)
    finally:
        await edge.close()


async def test_taking_over_another_devices_session_does_not_leak_its_commands(
    site: tuple[NatsServer, int, CredStore], figures: Figures
) -> None:
    leaf, mqtt_port, creds = site
    edge = await edge_client(leaf, creds, GW)
    try:
        async with RawMqtt.connect(
            mqtt_port, client_id=B, user=B, password=creds.device_password(B), clean=False
        ) as victim:
            assert await victim.subscribe(subjects.mqtt_command(B), qos=0) == [0]
            await victim.disconnect()
        # A resumes B's persistent session by its client id (firmware uses the device id).
        async with RawMqtt.connect(
            mqtt_port, client_id=B, user=A, password=creds.device_password(A), clean=False
        ) as thief:
            assert thief.connack == 0
            assert await thief.subscribe(subjects.mqtt_command(A), qos=0) == [0]
            # QoS 0 on both: deliveries to one connection keep the publisher's order, so
            # once A's own command arrives, B's (sent first) is known never to.
            await edge.publish(f"baton.d.{B}.cmd", b"for b")
            await edge.publish(f"baton.d.{A}.cmd", b"for a")
            got = await thief.next_publish()
            assert (got.topic, got.payload) == (subjects.mqtt_command(A), b"for a")
            figures.record(session_resumed=thief.session_present, commands_leaked=0)
    finally:
        await edge.close()


@pytest.mark.xfail(
    strict=True,
    reason="nats-server ties an MQTT session to its client id, not to the login: device A "
    "connecting with its own password and device B's client id (firmware-sim uses the "
    "device id) disconnects B (MQTT 3.1.1 §3.1.4 take-over); with firmware that reconnects, "
    "the two evict each other. Needs a per-device account or an auth callout that binds "
    "client id to user.",
)
async def test_a_device_cannot_disconnect_another_by_reusing_its_client_id(
    site: tuple[NatsServer, int, CredStore], figures: Figures
) -> None:
    _, mqtt_port, creds = site
    async with RawMqtt.connect(
        mqtt_port, client_id=B, user=B, password=creds.device_password(B)
    ) as victim:
        assert victim.connack == 0
        async with RawMqtt.connect(
            mqtt_port, client_id=B, user=A, password=creds.device_password(A)
        ) as thief:
            taken = thief.connack == 0
            figures.record(takeover_connect_accepted=taken)
            try:
                await victim.ping()  # answered only while B's connection is up
            except ConnectionDropped:
                figures.record(victim_disconnected=True)
                raise AssertionError("device A's login disconnected device B") from None
            figures.record(victim_disconnected=False)

"""Issue 10 item 11, gateways: a gateway's leaf, logged in to the shipped hub with its own
NKEY, going after another gateway's subtree and the hub's control plane.

tests/deploy/test_deploy_cluster.py shows a gateway cannot publish into `fleet.gw2.>` or
read gw2's commands through a consumer of its own name. Here the rest of the hub API a
leaf could try on gw2 (pull, create, delete, ack its consumer; read DOWNLINK by sequence;
purge), interest in gw2's traffic, the orchestrator's control subjects and other inboxes,
and a gateway's NKEY used as an ordinary client.

Refused API requests come back as "no responders" at once: the hub never offers a leaf the
interest, so the request dies at the gateway. Refused interest is shown with a sentinel:
the hub node both leaves hang off handles gw2's traffic before gw2 gets its PubAck, so
once gw1's own reply (asked for after that PubAck) arrives, gw2's message never will.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.js.api import AckPolicy, ConsumerConfig
from relkit_cluster import HubCluster, hub_cluster
from relkit_figures import Figures
from relkit_site import Seen, edge_client, install_gateway, make_creds

from shared import streams, subjects
from shared.compat import timeout
from shared.creds import CredStore, downlink_consumer
from shared.natsrun import NatsServer
from shared.natsrun.monitor import poll_until
from tests.deploy._support import hub_answers, make_certs

pytestmark = pytest.mark.usefixtures("no_nats_left")

GW1, GW2 = "gw1", "gw2"
WAIT_S = 30.0
HUB = f"$JS.{subjects.HUB_DOMAIN}.API"
THEIRS = downlink_consumer(GW2)
# Hub API requests gw1 must not get answered (each would read, steal or destroy gw2's).
FORBIDDEN_API = (
    (f"{HUB}.CONSUMER.MSG.NEXT.DOWNLINK.{THEIRS}", b'{"batch":1}'),
    (f"{HUB}.CONSUMER.CREATE.DOWNLINK.{THEIRS}.downlink.{GW2}.>", b""),
    (f"{HUB}.CONSUMER.CREATE.DOWNLINK.{downlink_consumer(GW1)}.downlink.>", b""),
    (f"{HUB}.CONSUMER.DURABLE.CREATE.DOWNLINK.{downlink_consumer(GW1)}", b""),
    (f"{HUB}.CONSUMER.INFO.DOWNLINK.{THEIRS}", b""),
    (f"{HUB}.CONSUMER.DELETE.DOWNLINK.{THEIRS}", b""),
    (f"{HUB}.CONSUMER.CREATE.FLEET", b""),
    (f"{HUB}.STREAM.MSG.GET.DOWNLINK", b'{"seq":1}'),
    (f"{HUB}.DIRECT.GET.DOWNLINK", b'{"seq":1}'),
    (f"{HUB}.STREAM.PURGE.FLEET", b""),
    (f"{HUB}.STREAM.DELETE.DOWNLINK", b""),
    (f"{HUB}.STREAM.LIST", b""),
    (f"$JS.ACK.DOWNLINK.{THEIRS}.1.1.1.0.0", b"+TERM"),
    (f"$KV.{subjects.LEASES_BUCKET}.s1", b"forged lease"),
    ("downlink.gw2.cmd.dev-z", b"forged command"),
    # Session subjects carry no gateway, so appending to a session's log is a handoff
    # grant every gateway has (shared.creds.permissions); wiping the log is not.
    (f"{HUB}.STREAM.PURGE.{subjects.SESSIONS_STREAM}", b""),
)
# Interest gw1's leaf must never be served on.
FORBIDDEN_INTEREST = (
    f"fleet.{GW2}.>",
    f"downlink.{GW2}.>",
    f"_INBOX_{GW2}.>",
    "_INBOX.>",
    "session.>",
    "handoff.>",
    "rtc.>",
    "$KV.>",
    ">",
)


@dataclass
class Site:
    cluster: HubCluster
    leaves: dict[str, NatsServer]
    creds: CredStore


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    """The shipped hub, gw1's and gw2's leaves installed and linked to the same node."""
    creds = make_creds(tmp_path / "creds", gateways=[GW1, GW2])
    certs = make_certs(tmp_path / "certs")
    async with hub_cluster(tmp_path / "hub", creds=creds, certs=certs) as cluster:
        port = cluster.nodes[0].config.leafnode_port
        leaves = {
            gw: install_gateway(tmp_path / gw, creds, gw, certs, hub_leafnode_port=port)[0]
            for gw in (GW1, GW2)
        }
        async with leaves[GW1], leaves[GW2]:
            await cluster.nodes[0].wait_for_leafnodes(2, timeout_s=WAIT_S)
            nc = await cluster.orchestrator()
            try:
                await streams.ensure_hub(nc.jetstream(timeout=10.0), replicas=3)
                for gw in (GW1, GW2):
                    await nc.jetstream(timeout=10.0).add_consumer(
                        subjects.DOWNLINK_STREAM,
                        ConsumerConfig(
                            name=downlink_consumer(gw),
                            durable_name=downlink_consumer(gw),
                            filter_subject=subjects.downlink_all(gw),
                            ack_policy=AckPolicy.EXPLICIT,
                        ),
                    )
            finally:
                await nc.close()
            yield Site(cluster, leaves, creds)


async def test_gateway_gets_no_answer_from_the_hub_api_on_another_gateways_things(
    site: Site, figures: Figures
) -> None:
    orch = await site.cluster.orchestrator()
    edge = await edge_client(site.leaves[GW1], site.creds, GW1)
    try:
        ojs = orch.jetstream(timeout=10.0)
        await ojs.publish("downlink.gw2.cmd.dev-z", b"for gw2")
        await hub_answers(edge, timeout_s=WAIT_S)
        outcomes = {}
        for subject, body in FORBIDDEN_API:
            try:
                await edge.request(subject, body, timeout=5.0)
                outcomes[subject] = "answered"
            except NoRespondersError:
                outcomes[subject] = "no responders"
        answered = [subject for subject, what in outcomes.items() if what == "answered"]
        assert not answered, f"the hub answered gw1 on: {answered}"
        # Its own consumer it may read (the same kind of request, allowed).
        own = await edge.jetstream(domain=subjects.HUB_DOMAIN).consumer_info(
            subjects.DOWNLINK_STREAM, downlink_consumer(GW1)
        )
        assert own.name == downlink_consumer(GW1)
        # gw2's command is still there, undelivered, and nothing was purged or deleted.
        theirs = await ojs.consumer_info(subjects.DOWNLINK_STREAM, THEIRS)
        assert (theirs.num_pending, theirs.num_ack_pending, theirs.delivered.stream_seq) == (
            1,
            0,
            0,
        )
        assert (await ojs.stream_info(subjects.DOWNLINK_STREAM)).state.messages == 1
        figures.record(attempts=len(FORBIDDEN_API), refused=len(FORBIDDEN_API), accepted=0)
    finally:
        await edge.close()
        await orch.close()


async def test_gateway_hears_nothing_of_another_gateway_or_the_control_plane(
    site: Site, figures: Figures
) -> None:
    hub_node = site.cluster.nodes[0]
    orch = await nats.connect(  # on the node both leaves hang off: one order for all
        hub_node.client_url, nkeys_seed_str=site.creds.orchestrator_seed()
    )
    spy = await edge_client(site.leaves[GW1], site.creds, GW1, no_echo=True)
    other = await edge_client(site.leaves[GW2], site.creds, GW2)
    try:
        seen = Seen()
        for subject in FORBIDDEN_INTEREST:
            await spy.subscribe(subject, cb=seen.on_msg)
        await hub_answers(spy, timeout_s=WAIT_S)
        await hub_answers(other, timeout_s=WAIT_S)
        # The hub holds gw1's `>` interest (a wildcard that overlaps what it may hear);
        # what matters is that nothing outside gw1's own inbox is delivered on it.
        await _leaf_interest(hub_node, ">")

        other_js = other.jetstream(domain=subjects.HUB_DOMAIN, timeout=10.0)
        await other_js.publish(f"fleet.{GW2}.r.dev-z", b"gw2 reading")
        await other_js.account_info()  # a reply into gw2's inbox
        for subject in ("downlink.gw2.cmd.dev-z", "session.s1.ev", "handoff.s1", "rtc.s1"):
            await orch.publish(subject, b"control plane")
        await orch.flush()  # the node has handled (and fanned out) all of it
        # The sentinel: gw1's own reply, queued by the same node after all of the above.
        await spy.jetstream(domain=subjects.HUB_DOMAIN, timeout=10.0).account_info()
        await seen.wait_for(lambda subject, _: subject.startswith(f"_INBOX_{GW1}."))
        leaked = [s for s in seen.subjects() if not s.startswith(f"_INBOX_{GW1}.")]
        assert not leaked, f"gw1 heard: {leaked}"
        figures.record(subscriptions=len(FORBIDDEN_INTEREST), foreign_messages_sent=6, heard=0)
    finally:
        await other.close()
        await spy.close()
        await orch.close()


async def _leaf_interest(hub_node: NatsServer, subject: str) -> None:
    async def held() -> bool:
        leafz = await hub_node.monitor("/leafz?subs=1")
        return any(subject in leaf.get("subscriptions_list", []) for leaf in leafz["leafs"])

    await poll_until(held, timeout_s=WAIT_S)


async def test_a_gateways_nkey_is_refused_as_an_ordinary_hub_client(
    site: Site, figures: Figures
) -> None:
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    refused = 0
    for node in site.cluster.nodes:
        nc = Client()
        try:
            async with timeout(WAIT_S):
                await nc.connect(
                    node.client_url,
                    nkeys_seed_str=site.creds.gateway_seed(GW1),
                    allow_reconnect=False,
                    max_reconnect_attempts=0,
                    error_cb=on_error,
                )
        except NatsError as exc:
            assert "authorization violation" in str(exc).lower()
            refused += 1
        finally:
            await nc.close()
    figures.record(attempts=len(site.cluster.nodes), refused=refused)
    assert refused == len(site.cluster.nodes)

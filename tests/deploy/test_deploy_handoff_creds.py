"""Session handoff under the credentials `baton creds` generates.

A gateway's leaf link and the orchestrator may do what a handoff edge -> cloud -> edge
needs (shared.creds.permissions), and the gateway still reaches nothing of another
gateway's handoff inbox. The hub is one node with the store's hub authorization
(`_support.single_hub`), the leaf is the gateway tree `install.sh --root` laid out,
linked to it over TLS with the gateway's NKEY. Both sides are real `SessionHost`s over the
agent engine with a scripted model (tests/handoff/handoffkit): the edge on the daemon's
leaf login, the cloud replica on the orchestrator's NKEY.

Grants that are missing do not always show as errors: the hub offers a leaf no interest
in a subject the gateway may not publish to, so the leaf drops the message and a request
dies as a timeout. Hence every step below waits for its effect (a report, an answer, a
WebRTC channel in sync), and the servers' logs must show no permissions violation.

Refusals are observed, never inferred from silence after a sleep: a request the hub
never offers the leaf fails with no responders; a message that must not reach a
subscription is followed by a sentinel that may, sent by the same connection through
the same link, so once the sentinel arrives the forbidden one never will.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.errors import NoRespondersError

from shared import streams, subjects
from shared.compat import timeout
from shared.creds import EDGE_USER, CredStore, gateway_inbox_prefix, hub_authorization
from shared.messages import AgentComplete, HandoffSnapshot
from shared.natsrun import NatsServer
from shared.natsrun.monitor import poll_until
from shared.session import EventFeed, Owner, SessionHost
from shared.session.log import read_log
from shared.session.runner import hub_js
from tests.handoff.handoffkit import Model, conversation, loader, settings, start_session, turn

from ._support import GATEWAY, Certs, hub_answers, installed_leaf, single_hub

pytestmark = pytest.mark.usefixtures("no_nats_left")

OTHER = "gw2"  # in the store too: the gateway whose inbox gw1 must not reach
WAIT_S = 30.0
SESSION = "s1"
# Each exchange adds a question and its echo. Enough of them make the session's snapshot
# bigger than one message (snapshot.INLINE_MAX_BYTES, 200 KiB), so both sides also write
# and read snapshot blobs; each question alone stays within the edge model's context.
FILLER_TURNS = 16
FILLER = "a long question " * 500  # 8000 characters
# What is tested here is the permissions, not the timing: the new owner's commit reply
# (after it closed its WebRTC follower and read the log's tail through a TLS leaf link)
# took over the default 2 s once in a loaded CI run.
SETTINGS = settings(commit_timeout_s=10.0)


@dataclass
class Site:
    hub: NatsServer
    leaf: NatsServer
    store: CredStore

    async def edge(self) -> Client:
        """The edge daemon's connection: its leaf login and its gateway's inbox prefix."""
        return await nats.connect(
            self.leaf.client_url,
            user=EDGE_USER,
            password=self.store.edge_password(GATEWAY),
            inbox_prefix=gateway_inbox_prefix(GATEWAY),
            allow_reconnect=False,
        )

    async def orchestrator(self) -> Client:
        return await nats.connect(
            self.hub.client_url,
            nkeys_seed_str=self.store.orchestrator_seed(),
            allow_reconnect=False,
        )

    def violations(self) -> list[str]:
        return [
            line
            for server in (self.hub, self.leaf)
            for line in server.log_path.read_text(errors="replace").splitlines()
            if "violation" in line.lower()
        ]


@pytest.fixture
async def site(
    tmp_path: Path, certs: Certs, store: CredStore, installed: Path
) -> AsyncIterator[Site]:
    hub = single_hub(tmp_path / "hub", certs, hub_authorization(store))
    async with hub:
        port = hub.config.leafnode_port
        leaf, _ = installed_leaf(installed, tmp_path / "leaf", hub_leafnode_port=port)
        async with leaf:
            await hub.wait_for_leafnodes(1, timeout_s=WAIT_S)
            site = Site(hub, leaf, store)
            orch = await site.orchestrator()
            try:
                await streams.ensure_hub(orch.jetstream(timeout=10.0))
            finally:
                await orch.close()
            yield site


@contextlib.asynccontextmanager
async def _hosts(
    edge_nc: Client, cloud_nc: Client, *, follow: bool
) -> AsyncIterator[tuple[SessionHost, SessionHost]]:
    """The gateway's host on the daemon's leaf login, replica `r1`'s on the orchestrator's."""
    async with (
        SessionHost(
            edge_nc, Owner("edge", GATEWAY), loader("edge", Model(name="edge-model")),
            gw=GATEWAY, settings=SETTINGS, follow_after_handoff=follow,
        ) as edge,
        SessionHost(
            cloud_nc, Owner("cloud", "r1"), loader("cloud", Model(name="cloud-model")),
            settings=SETTINGS,
        ) as cloud,
    ):  # fmt: skip
        yield edge, cloud


async def _in_sync_over_webrtc(feed: EventFeed) -> None:
    """Until `feed` takes the session's stream from its WebRTC channel: the offer went
    out on `rtc.<session>.<owner side>` and the owner's answer came back."""
    async with timeout(WAIT_S):
        await feed.wait_via("rtc")


async def test_a_session_goes_edge_cloud_edge_within_the_generated_permissions(
    site: Site,
) -> None:
    edge_nc, cloud_nc = await site.edge(), await site.orchestrator()
    try:
        await hub_answers(edge_nc, timeout_s=WAIT_S)
        async with _hosts(edge_nc, cloud_nc, follow=True) as (edge, cloud):
            # The lease (KV CAS through the hub domain), the log and the first snapshot.
            await start_session(edge)
            await turn(edge, SESSION, "one")
            # The cloud asks the edge-owned session (`handoff.gw1.ask`, answered on the
            # replica's inbox) and follows it: it dials `rtc.s1.edge`, the edge answers.
            await turn(cloud, SESSION, "from the cloud")
            await _in_sync_over_webrtc(cloud.feeds[SESSION])
            for _ in range(FILLER_TURNS):
                await turn(edge, SESSION, FILLER)

            # Edge -> cloud: `cloud.session.prepare` (the replicas' queue group), the
            # flip, `cloud.session.r1.commit`; the cloud reads the edge's snapshot blob.
            to_cloud = await edge.handoff(SESSION, "cloud", reason="test")
            assert (to_cloud.ok, to_cloud.owner) == (True, "cloud:r1"), to_cloud.error
            # Asked at the gateway, answered in the cloud (`cloud.session.r1.ask`); the
            # edge follows over WebRTC (`rtc.s1.cloud`) and the log.
            two = await turn(edge, SESSION, "two")
            assert isinstance(two[-1], AgentComplete) and two[-1].epoch == to_cloud.epoch
            await _in_sync_over_webrtc(edge.feeds[SESSION])

            # Cloud -> edge: `handoff.gw1.prepare` and `.commit`, answered on the
            # replica's inbox; the edge reads the cloud's snapshot blob (a pull consumer).
            back = await cloud.handoff(SESSION, "edge", reason="test")
            assert (back.ok, back.owner) == (True, f"edge:{GATEWAY}"), back.error
            assert back.epoch > to_cloud.epoch
            three = await turn(edge, SESSION, "three")
            assert isinstance(three[-1], AgentComplete) and three[-1].epoch == back.epoch

            said = conversation(edge, SESSION)
            log = await read_log(hub_js(edge_nc), SESSION, after=0)
    finally:
        await edge_nc.close()
        await cloud_nc.close()

    questions = [text for role, text in said if role == "user"]
    assert questions == ["one", "from the cloud", *[FILLER] * FILLER_TURNS, "two", "three"]
    assert [role for role, _ in said] == ["user", "assistant"] * len(questions)
    assert [event.seq for event in log] == list(range(1, len(log) + 1))
    blobs = [e.object_name for e in log if isinstance(e, HandoffSnapshot)]
    assert len(blobs) == 2 and all(blobs), "both snapshots should have gone as blobs"
    assert site.violations() == []


async def _wait_link_interest(server: NatsServer, subject: str) -> None:
    """Until `server` holds interest in `subject` from the other end of the leaf link
    (on the hub: the gateway's subscriptions; on the leaf: the hub's)."""

    async def held() -> bool:
        leafz = await server.monitor("/leafz?subs=1")
        return any(subject in leaf.get("subscriptions_list", []) for leaf in leafz["leafs"])

    await poll_until(held, timeout_s=WAIT_S)


async def test_a_gateway_reaches_no_other_gateways_handoff_inbox(site: Site) -> None:
    edge, orch = await site.edge(), await site.orchestrator()
    try:
        await hub_answers(edge, timeout_s=WAIT_S)
        # gw2's daemon, as the hub sees it: interest in its inbox (and a replica's).
        # The hub passes interest on to the leaf in order: once the leaf holds the
        # replica's, subscribed last, the hub has decided on gw2's.
        theirs = await orch.subscribe(subjects.handoff_all(OTHER))
        replica = await orch.subscribe("cloud.session.r1.ask")
        await _wait_link_interest(site.leaf, "cloud.session.r1.ask")
        # Sending into gw2's inbox: the hub never offers gw1's leaf that interest.
        with pytest.raises(NoRespondersError):
            await edge.request(f"handoff.{OTHER}.ask", b"forged ask", timeout=5.0)
        await edge.publish(f"handoff.{OTHER}.prepare", b"forged prepare")
        await edge.publish("cloud.session.r1.ask", b"sentinel")  # gw1 may ask a replica
        sentinel = await replica.next_msg(timeout=WAIT_S)
        assert sentinel.data == b"sentinel"
        assert theirs.pending_msgs == 0, "gw1 reached gw2's handoff inbox"

        # Hearing gw2's inbox, or the replicas' (a gateway in the prepare queue group
        # would be handed sessions): the hub refuses that interest from the leaf. The
        # leaf passes subscriptions on in order, so once the hub holds gw1's own inbox,
        # subscribed last, it has refused the others. The sentinel to gw1's own inbox
        # goes last too.
        spied = [await edge.subscribe(s) for s in (subjects.handoff_all(OTHER), "cloud.session.>")]
        own = await edge.subscribe(subjects.handoff_all(GATEWAY))
        await _wait_link_interest(site.hub, subjects.handoff_all(GATEWAY))
        await orch.publish(f"handoff.{OTHER}.ask", b"for gw2")
        await orch.publish(subjects.CLOUD_SESSION_PREPARE, b"for the replicas")
        await orch.publish(f"handoff.{GATEWAY}.ask", b"for gw1")
        assert (await own.next_msg(timeout=WAIT_S)).data == b"for gw1"
        assert [sub.pending_msgs for sub in spied] == [0, 0], "gw1 heard another's inbox"

        # Nothing more on the SESSIONS stream than handoff needs: no purge (its filter
        # is in the body: it could wipe every session's audit).
        with pytest.raises(NoRespondersError):
            await edge.request(
                f"$JS.{subjects.HUB_DOMAIN}.API.STREAM.PURGE.{subjects.SESSIONS_STREAM}",
                b"{}",
                timeout=5.0,
            )
    finally:
        await edge.close()
        await orch.close()


async def test_baton_handoff_on_a_gateway_leaf_moves_a_session_under_its_login(
    site: Site,
) -> None:
    """`baton handoff --gateway GW --nats nats://edge:PASS@leaf` is what an operator on
    the gateway types: the hub's replies reach it only on `_INBOX_<gw>`."""
    edge_nc, cloud_nc = await site.edge(), await site.orchestrator()
    try:
        await hub_answers(edge_nc, timeout_s=WAIT_S)
        async with _hosts(edge_nc, cloud_nc, follow=False) as (edge, cloud):
            await start_session(edge)
            port = site.leaf.config.client_port
            url = f"nats://{EDGE_USER}:{site.store.edge_password(GATEWAY)}@127.0.0.1:{port}"
            baton = Path(sys.executable).with_name("baton")
            proc = await asyncio.create_subprocess_exec(
                str(baton), "handoff", SESSION, "--to", "cloud", "--gateway", GATEWAY,
                "--nats", url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(proc.communicate(), WAIT_S)
            assert proc.returncode == 0, err.decode()
            assert "cloud" in out.decode()
            await poll_until(lambda: _owned_by(cloud, "cloud:r1"), timeout_s=WAIT_S)
            assert site.store.edge_password(GATEWAY) not in out.decode() + err.decode()
    finally:
        await edge_nc.close()
        await cloud_nc.close()
    assert site.violations() == []


async def _owned_by(host: SessionHost, owner: str) -> bool:
    lease = host.lease(SESSION)
    return lease is not None and lease.value.owner == owner

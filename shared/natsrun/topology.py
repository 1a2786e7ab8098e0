"""A local hub and one gateway leaf joined by a leaf node link: the system's NATS in miniature.

Used by `baton nats up`, the tests and the benchmarks. "Linked" means more than the TCP
link in `/leafz`: the JetStream API of each domain answers from the other side, which is
what a client needs before it can publish to a stream across the link (interest for
`$JS.<domain>.API.>` crosses the link a moment after the link itself).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from shared.errors import HarnessError
from shared.lifecycle import Service
from shared.natsrun.config import hub_config, leaf_config, leaf_domain
from shared.natsrun.monitor import poll_until
from shared.natsrun.server import READY_TIMEOUT_S, NatsServer

log = logging.getLogger(__name__)

DEFAULT_GATEWAY = "gw1"
LINK_TIMEOUT_S = 15.0
# One JetStream API round trip on loopback; a miss means interest has not crossed yet.
_PROBE_TIMEOUT_S = 1.0


class LocalTopology(Service):
    """Hub (`hub` domain) + leaf (`edge-<gateway_id>` domain, MQTT), in that order.

    `base_dir` holds `hub/` and `edge-<gateway_id>/`; without it both use temp dirs that
    are removed on close. Ports left out are picked free.
    """

    def __init__(
        self,
        gateway_id: str = DEFAULT_GATEWAY,
        *,
        base_dir: Path | str | None = None,
        hub_port: int | None = None,
        leaf_port: int | None = None,
        mqtt_port: int | None = None,
        sync_always: bool = True,
        ready_timeout: float = READY_TIMEOUT_S,
    ) -> None:
        leaf_domain(gateway_id)  # a bad id fails here, before any temp dir is made
        base = Path(base_dir) if base_dir is not None else None
        hub_cfg = hub_config(
            store_dir=base / "hub" if base else None,
            client_port=hub_port,
            sync_always=sync_always,
        )
        self.hub = NatsServer(hub_cfg, ready_timeout=ready_timeout)
        leaf_cfg = leaf_config(
            gateway_id,
            self._hub_leafnode_url(),
            store_dir=base / f"edge-{gateway_id}" if base else None,
            client_port=leaf_port,
            mqtt_port=mqtt_port,
            sync_always=sync_always,
        )
        self.leaf = NatsServer(leaf_cfg, ready_timeout=ready_timeout)
        self.gateway_id = gateway_id

    def _hub_leafnode_url(self) -> str:
        url = self.hub.leafnode_url
        if url is None:  # pragma: no cover - hub_config always sets a leaf node port
            raise HarnessError("the hub config has no leaf node port")
        return url

    @property
    def servers(self) -> tuple[NatsServer, NatsServer]:
        """(hub, leaf): start order; close in reverse."""
        return (self.hub, self.leaf)

    async def start(self, *, link_timeout: float = LINK_TIMEOUT_S) -> None:
        """Start the hub, then the leaf, then wait until the link carries JetStream."""
        await self.hub.start()
        await self.leaf.start()
        await self.wait_linked(timeout_s=link_timeout)

    async def wait_linked(self, *, timeout_s: float = LINK_TIMEOUT_S) -> None:
        """Wait until the leaf node link is up and each domain's JetStream answers across it.

        Call it after restarting the hub: the leaf redials every second or so.
        """
        # Only the leaf's count is exact: tests may attach more leaves to this hub.
        await self.leaf.wait_for_leafnodes(1, timeout_s=timeout_s)
        await _wait_js_reachable(self.leaf.client_url, self.hub.domain, timeout_s)
        await _wait_js_reachable(self.hub.client_url, self.leaf.domain, timeout_s)
        log.info("leaf node link %s <-> %s carries JetStream", self.leaf.name, self.hub.name)

    async def aclose(self) -> None:
        """Close the leaf, then the hub. Safe to call twice."""
        for server in reversed(self.servers):
            await server.aclose()


async def _wait_js_reachable(client_url: str, domain: str, timeout_s: float) -> None:
    """Wait until a client of `client_url` gets an answer from JetStream domain `domain`."""
    import nats  # lazily: `baton doctor` imports this package to report a missing nats-py
    from nats.errors import Error as NatsError

    subject = f"$JS.{domain}.API.INFO"
    # One attempt with the whole budget: a loaded machine can be slow to accept.
    nc = await nats.connect(client_url, allow_reconnect=False, connect_timeout=timeout_s)

    async def answers() -> bool:
        try:
            reply = await nc.request(subject, b"", timeout=_PROBE_TIMEOUT_S)
        except (NatsError, asyncio.TimeoutError):
            return False
        return "error" not in json.loads(reply.data)

    try:
        await poll_until(answers, timeout_s=timeout_s)
    except asyncio.TimeoutError:
        raise HarnessError(f"JetStream domain {domain!r} not reachable from {client_url}") from None
    finally:
        await nc.close()

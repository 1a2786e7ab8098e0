"""Helpers of the hostile-client tests: identities from `baton creds`, gateways laid out by
`install.sh --root`, and ways to see a refusal as a signal rather than as silence.

    make_creds(folder, ...)     a credentials store with gateways and devices
    install_gateway(...)        `install.sh --root` for one gateway; its leaf nats-server
                                (tests/deploy/_support.installed_leaf) on free ports
    edge_client(...)            the edge daemon's login on its leaf (trusted, local)
    Seen                        every message a subscription got, and a wait for one
    log_shows(...)              until a server's log shows a line (a refusal it logged)

What a test cannot see directly it brackets with an ordered sentinel: messages one
server hands one connection arrive in the order it handled them, so once a sentinel
queued after a forbidden message arrives, the forbidden one never will.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from shared.compat import timeout
from shared.creds import EDGE_USER, CredStore, gateway_inbox_prefix, leaf_credentials, write_atomic
from shared.natsrun import NatsServer
from tests.deploy._support import Certs, installed_leaf, run_install

WAIT_S = 15.0
POLL_S = 0.05


def make_creds(
    folder: Path, *, gateways: Iterable[str] = (), devices: dict[str, str] | None = None
) -> CredStore:
    """A store with the orchestrator, `gateways`, and `devices` (device -> gateway)."""
    store = CredStore.init(folder)
    for gw in gateways:
        store.add_gateway(gw)
    for device, gw in (devices or {}).items():
        store.add_device(device, gw)
    return store


def install_gateway(
    folder: Path, creds: CredStore, gateway: str, certs: Certs, *, hub_leafnode_port: int | None
) -> tuple[NatsServer, int]:
    """Install `gateway` under `folder/root` as an operator would; its leaf and MQTT port.

    Without a hub port the leaf runs alone (its remote points where nobody listens).
    """
    bundle = folder / f"{gateway}.creds"
    write_atomic(bundle, leaf_credentials(creds, gateway))
    root = folder / "root"
    run_install(
        "--root", root, "--no-pip", "--creds", bundle,
        "--hub", "tls://127.0.0.1:7422", "--hub-ca", certs.ca,
    )  # fmt: skip
    return installed_leaf(root, folder / "leaf", hub_leafnode_port=hub_leafnode_port)


async def edge_client(
    leaf: NatsServer, creds: CredStore, gateway: str, *, no_echo: bool = False
) -> Client:
    """The edge daemon's connection: its leaf login and its gateway's inbox prefix.

    `no_echo`: the server never hands the connection its own messages back, so a
    subscription to `>` hears only what others sent.
    """
    return await nats.connect(
        leaf.client_url,
        user=EDGE_USER,
        password=creds.edge_password(gateway),
        inbox_prefix=gateway_inbox_prefix(gateway),
        allow_reconnect=False,
        no_echo=no_echo,
    )


@dataclass
class Seen:
    """Messages one or more subscriptions got, in arrival order."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_msg(self, msg: Msg) -> None:
        self.messages.append((msg.subject, msg.data))
        self._changed.set()

    async def wait_for(self, match: Callable[[str, bytes], bool]) -> tuple[str, bytes]:
        """Until a message matching `match` has arrived; that message."""
        async with timeout(WAIT_S):
            while True:
                for subject, data in self.messages:
                    if match(subject, data):
                        return subject, data
                self._changed.clear()
                await self._changed.wait()

    def subjects(self) -> list[str]:
        return [subject for subject, _ in self.messages]


async def log_shows(server: NatsServer, pattern: str, *, count: int = 1) -> list[str]:
    """Until `server`'s log holds `count` lines matching `pattern`; those lines.

    The log is the server's own account of a refusal it made (a TLS handshake it failed,
    an authorization it denied); polled because a file has no change notification here.
    """
    wanted = re.compile(pattern)
    async with timeout(WAIT_S):
        while True:
            text = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
            lines = [line for line in text.splitlines() if wanted.search(line)]
            if len(lines) >= count:
                return lines
            await asyncio.sleep(POLL_S)

"""Issue 10 item 11, the leaf node link: only TLS to the hub's certificate, with a known NKEY.

A hub node runs from the shipped hub-1.conf + hub-common.conf (TLS on the leaf node
port), alone: the link's handshake needs no cluster. Certificates come from
tests/deploy/_support.make_certs; a second, unrelated CA plays the wrong one.

- a plaintext CONNECT on the leaf node port: the hub closes the connection unanswered
- a leaf with no TLS settings: it must verify the hub against the system's CAs, which do
  not include ours, and gives up (a leaf that pins nothing trusts nothing private)
- a leaf pinning another CA: the handshake fails
- the right CA with an NKEY the hub does not know: authorization refused
- the right CA and the gateway's NKEY: linked (the control: the test can see a link)

A refusal is read from the server's own log (each retry logs it again) and the hub's
`/leafz`; two refused attempts in a row show it stays refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from relkit_figures import Figures
from relkit_site import log_shows, make_creds

from shared.compat import timeout
from shared.creds import CredStore, hub_authorization, new_user_key
from shared.natsrun import NatsServer, free_port
from tests.deploy._support import Certs, FileConfig, free_node_ports, hub_node, make_certs

pytestmark = pytest.mark.usefixtures("no_nats_left")

GW = "gw1"
WAIT_S = 15.0
REFUSED_ATTEMPTS = 2


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[tuple[NatsServer, CredStore, Certs]]:
    creds = make_creds(tmp_path / "creds", gateways=[GW])
    certs = make_certs(tmp_path / "certs")
    node = hub_node(1, free_node_ports(), tmp_path / "hub-1", certs, hub_authorization(creds))
    async with node:
        yield node, creds, certs


def _leaf(folder: Path, hub: NatsServer, *, seed: str, tls: str, scheme: str) -> NatsServer:
    """A leaf soliciting `hub`'s leaf node port with `seed`; `tls` is its remote's tls block."""
    client, monitor = free_port(), free_port()
    text = "\n".join(
        [
            f'server_name: "{folder.name}"',
            f'listen: "127.0.0.1:{client}"',
            f'http: "127.0.0.1:{monitor}"',
            "leafnodes { remotes: [ {",
            f'  urls: ["{scheme}://127.0.0.1:{hub.config.leafnode_port}"]',
            f'  nkey: "{seed}"',
            f"  {tls}",
            "} ] }",
        ]
    )
    config = FileConfig(
        name=folder.name,
        domain="",
        store_dir=folder,
        client_port=client,
        monitor_port=monitor,
        text=text + "\n",
    )
    return NatsServer(config)


async def test_plaintext_on_the_leaf_node_port_is_closed_unanswered(
    hub: tuple[NatsServer, CredStore, Certs], figures: Figures
) -> None:
    server, _, _ = hub
    reader, writer = await asyncio.open_connection("127.0.0.1", server.config.leafnode_port)
    try:
        async with timeout(WAIT_S):
            info = await reader.readline()
            assert b'"tls_required":true' in info
            writer.write(b'CONNECT {"verbose":true}\r\nPING\r\n')
            await writer.drain()
            rest = await reader.read()  # to EOF: the hub hangs up
    finally:
        writer.close()
        await writer.wait_closed()
    assert b"+OK" not in rest and b"PONG" not in rest, rest
    assert await server.leafnode_count() == 0
    figures.record(attempts=1, refused=1)


def _tls_block(case: str, certs: Certs, other: Certs) -> tuple[str, str]:
    """(scheme, tls block) of a leaf remote for `case`."""
    if case == "no_tls_settings":
        return "nats-leaf", ""
    ca = other.ca if case == "wrong_ca" else certs.ca
    return "tls", f'tls: {{ ca_file: "{ca}", timeout: 5 }}'


@pytest.mark.parametrize(
    ("case", "refusal"),
    [
        ("no_tls_settings", r"TLS Handshake Failure"),
        ("wrong_ca", r"TLS Handshake Failure"),
        ("stranger_nkey", r"[Aa]uthorization [Vv]iolation"),
    ],
)
async def test_a_leaf_without_the_hubs_ca_or_a_known_nkey_is_refused(
    hub: tuple[NatsServer, CredStore, Certs],
    tmp_path: Path,
    figures: Figures,
    case: str,
    refusal: str,
) -> None:
    server, creds, certs = hub
    other = make_certs(tmp_path / "other-ca")
    seed = new_user_key().seed if case == "stranger_nkey" else creds.gateway_seed(GW)
    scheme, tls = _tls_block(case, certs, other)
    async with _leaf(tmp_path / f"leaf-{case}", server, seed=seed, tls=tls, scheme=scheme) as leaf:
        lines = await log_shows(leaf, refusal, count=REFUSED_ATTEMPTS)
        assert await server.leafnode_count() == 0
    figures.record(attempts=len(lines), refused=len(lines), linked=0)


async def test_the_right_ca_and_the_gateways_nkey_link(
    hub: tuple[NatsServer, CredStore, Certs], tmp_path: Path, figures: Figures
) -> None:
    server, creds, certs = hub
    tls = f'tls: {{ ca_file: "{certs.ca}", timeout: 5 }}'
    seed = creds.gateway_seed(GW)
    async with _leaf(tmp_path / "leaf-good", server, seed=seed, tls=tls, scheme="tls"):
        await server.wait_for_leafnodes(1, timeout_s=WAIT_S)
    figures.record(linked=1)

"""Helpers of the deploy tests: test certificates, the shipped configs rendered onto free
ports, and running `install.sh`.

The shipped files are used as they are; only what must differ on a test machine
(ports, store dirs, certificate paths, host names) is rewritten, and every rewrite must
hit exactly once, so a change to a shipped file fails here instead of going untested.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from nats.aio.client import Client
from nats.errors import Error as NatsError

from shared import subjects
from shared.natsrun import NatsServer, ServerConfig, find_nats_server, free_port, hub_config
from shared.natsrun.monitor import MonitorUnavailable, poll_until

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
NATS_DIR = DEPLOY / "nats"
INSTALL_SH = DEPLOY / "edge" / "install.sh"
GATEWAY = "gw1"
DEVICES = ("dev-a", "dev-b")
HUB_NODES = (1, 2, 3)
INSTALL_TIMEOUT_S = 60
# A fresh cluster elects its JetStream meta leader within seconds (raft election timeouts).
CLUSTER_READY_S = 30.0


# -- certificates -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Certs:
    ca: Path
    cert: Path
    key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_certs(folder: Path) -> Certs:
    """A CA and a server certificate for 127.0.0.1 / localhost signed by it."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("baton test CA"))
        .issuer_name(_name("baton test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("baton hub"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(san, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    certs = Certs(folder / "ca.pem", folder / "leaf-server.pem", folder / "leaf-server-key.pem")
    certs.ca.write_bytes(ca.public_bytes(pem))
    certs.cert.write_bytes(cert.public_bytes(pem))
    certs.key.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certs


# -- credentials --------------------------------------------------------------------------


# -- rewriting shipped configs --------------------------------------------------------------


def rewrite(text: str, replacements: dict[str, str], what: str) -> str:
    """Replace each key once; fail when a key is missing or ambiguous in the shipped text."""
    for old, new in replacements.items():
        count = text.count(old)
        assert count == 1, f"{what}: expected {old!r} once, found it {count} times"
        text = text.replace(old, new)
    return text


def set_vars(text: str, values: dict[str, str], what: str) -> str:
    """Set `NAME: value` lines of an install.sh-written gateway.conf."""
    for name, value in values.items():
        text, count = re.subn(rf"^{name}: .*$", f"{name}: {value}", text, flags=re.M)
        assert count == 1, f"{what}: no {name} line"
    return text


@dataclass(frozen=True, slots=True)
class FileConfig(ServerConfig):
    """A ServerConfig whose text is a shipped file (rewritten) instead of a rendering."""

    text: str = ""

    def render(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class NodePorts:
    client: int
    monitor: int
    cluster: int
    leafnode: int


def hub_node(
    node: int, ports: dict[int, NodePorts], folder: Path, certs: Certs, auth: str
) -> NatsServer:
    """Hub node `node` from hub-N.conf + hub-common.conf, on free ports in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    mine = ports[node]
    swaps = {
        '"0.0.0.0:4222"': f'"127.0.0.1:{mine.client}"',
        '"0.0.0.0:8222"': f'"127.0.0.1:{mine.monitor}"',
        '"0.0.0.0:6222"': f'"127.0.0.1:{mine.cluster}"',
        '"0.0.0.0:7422"': f'"127.0.0.1:{mine.leafnode}"',
        'store_dir: "/data"': f'store_dir: "{folder / "js"}"',
        '"/etc/nats/certs/leaf-server.pem"': f'"{certs.cert}"',
        '"/etc/nats/certs/leaf-server-key.pem"': f'"{certs.key}"',
    }
    for other in HUB_NODES:
        swaps[f'"nats-route://hub-{other}:6222"'] = (
            f'"nats-route://127.0.0.1:{ports[other].cluster}"'
        )
    common = (NATS_DIR / "hub-common.conf").read_text()
    (folder / "hub-common.conf").write_text(rewrite(common, swaps, "hub-common.conf"))
    (folder / "auth.conf").write_text(auth)
    config = FileConfig(
        name=f"hub-{node}",
        domain="hub",
        store_dir=folder,
        client_port=mine.client,
        monitor_port=mine.monitor,
        leafnode_port=mine.leafnode,
        text=(NATS_DIR / f"hub-{node}.conf").read_text(),
    )
    return NatsServer(config)


def single_hub(folder: Path, certs: Certs, auth: str) -> NatsServer:
    """One hub node: shared.natsrun's hub config (domain "hub", a leaf node port, free
    ports in `folder`) with the shipped hub's TLS on the leaf node port and `auth`
    (`hub_authorization`). Lighter than the three-node cluster where what is tested is
    what a gateway may do, which the node its leaf link lands on decides alone."""
    config = hub_config(store_dir=folder)
    tls = f'  tls {{ cert_file: "{certs.cert}", key_file: "{certs.key}", timeout: 5 }}\n'
    text = rewrite(config.render(), {"leafnodes {\n": "leafnodes {\n" + tls}, "hub config")
    fields = {name: getattr(config, name) for name in ServerConfig.__dataclass_fields__}
    return NatsServer(FileConfig(**fields, text=text + auth))


async def wait_meta_leader(nodes: list[NatsServer]) -> None:
    """Until every node agrees on a JetStream meta leader (the cluster can take writes)."""

    async def agreed() -> bool:
        leaders = set()
        for node in nodes:
            try:
                jsz = await node.monitor("/jsz")
            except MonitorUnavailable:
                return False
            leaders.add(jsz.get("meta_cluster", {}).get("leader"))
        return len(leaders) == 1 and None not in leaders

    await poll_until(agreed, timeout_s=CLUSTER_READY_S)


def free_node_ports() -> dict[int, NodePorts]:
    return {n: NodePorts(free_port(), free_port(), free_port(), free_port()) for n in HUB_NODES}


# -- install.sh -----------------------------------------------------------------------------


def run_install(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["bash", str(INSTALL_SH), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        env={**os.environ, "LC_ALL": "C"},
    )
    if check:
        assert done.returncode == 0, f"install.sh {args} failed:\n{done.stdout}\n{done.stderr}"
    return done


def installed_leaf(
    root: Path, folder: Path, *, hub_leafnode_port: int | None = None
) -> tuple[NatsServer, int]:
    """The leaf nats-server as install.sh laid it out, on free ports in `folder`.

    Returns the server and its MQTT port. Without a hub port the remote points at a
    port nobody listens on: the leaf runs alone and keeps redialing, as when offline.
    """
    folder.mkdir(parents=True, exist_ok=True)
    etc = root / "etc" / "baton"
    client, monitor, mqtt = free_port(), free_port(), free_port()
    hub_port = hub_leafnode_port if hub_leafnode_port is not None else free_port()
    gateway_conf = set_vars(
        (etc / "gateway.conf").read_text(),
        {
            "BATON_STORE_DIR": f'"{folder / "js"}"',
            "BATON_CLIENT_LISTEN": f'"127.0.0.1:{client}"',
            "BATON_MONITOR_LISTEN": f'"127.0.0.1:{monitor}"',
            "BATON_MQTT_LISTEN": f'"127.0.0.1:{mqtt}"',
            "BATON_HUB_URLS": f'["tls://127.0.0.1:{hub_port}"]',
            "BATON_HUB_TLS": f'{{ ca_file: "{etc / "hub-ca.pem"}", timeout: 5 }}',
        },
        "gateway.conf",
    )
    (folder / "gateway.conf").write_text(gateway_conf)
    shutil.copy(etc / "creds.conf", folder / "creds.conf")
    config = FileConfig(
        name=f"edge-{GATEWAY}",
        domain=f"edge-{GATEWAY}",
        store_dir=folder,
        client_port=client,
        monitor_port=monitor,
        mqtt_port=mqtt,
        text=(etc / "leaf.conf").read_text(),
    )
    return NatsServer(config), mqtt


def nats_server_test(conf: Path) -> subprocess.CompletedProcess[str]:
    """`nats-server -t -c conf`: parse and check the config (certs, includes) and exit."""
    return subprocess.run(
        [str(find_nats_server()), "-t", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )


async def hub_answers(client: Client, *, timeout_s: float) -> None:
    """Until the hub's JetStream API answers `client` across a leaf link (a grant's
    interest reaches the leaf only after the link is up)."""
    js = client.jetstream(domain=subjects.HUB_DOMAIN, timeout=2.0)

    async def answers() -> bool:
        try:
            await js.account_info()
        except (NatsError, asyncio.TimeoutError):
            return False
        return True

    await poll_until(answers, timeout_s=timeout_s)

"""Fixtures of the deploy tests: certificates, a credentials store, the shipped hub
cluster on free ports, and an `install.sh --root` tree. Helpers are in `_support`."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.creds import CredStore, hub_authorization, leaf_credentials, write_atomic
from shared.natsrun import NatsServer

from ._support import (
    DEVICES,
    GATEWAY,
    HUB_NODES,
    Certs,
    free_node_ports,
    hub_node,
    make_certs,
    run_install,
    wait_meta_leader,
)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> CredStore:
    """Orchestrator, gateways gw1 and gw2, devices dev-a and dev-b on gw1."""
    creds = CredStore.init(tmp_path_factory.mktemp("creds") / "store")
    creds.add_gateway(GATEWAY)
    creds.add_gateway("gw2")
    for device in DEVICES:
        creds.add_device(device, GATEWAY)
    return creds


@pytest.fixture(scope="session")
def leaf_creds_file(store: CredStore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bundle") / f"{GATEWAY}.creds"
    write_atomic(path, leaf_credentials(store, GATEWAY))
    return path


@pytest.fixture
async def hub_cluster(
    tmp_path: Path, certs: Certs, store: CredStore, no_nats_left: None
) -> AsyncIterator[list[NatsServer]]:
    """The three shipped hub nodes, started together (none can elect a leader alone), once
    they agree on a JetStream meta leader: the cluster takes stream and consumer writes."""
    ports = free_node_ports()
    auth = hub_authorization(store)
    nodes = [hub_node(n, ports, tmp_path / f"hub-{n}", certs, auth) for n in HUB_NODES]
    try:
        for node in nodes:
            await node.start()
        await wait_meta_leader(nodes)
        yield nodes
    finally:
        for node in reversed(nodes):
            await node.aclose()


@pytest.fixture
def installed(tmp_path: Path, leaf_creds_file: Path, certs: Certs) -> Iterator[Path]:
    """A gateway tree from `install.sh --root` (no pip), with the test CA as hub CA."""
    root = tmp_path / "root"
    run_install(
        "--root", root, "--no-pip", "--creds", leaf_creds_file,
        "--hub", "tls://127.0.0.1:7422", "--hub-ca", certs.ca,
    )  # fmt: skip
    yield root
    shutil.rmtree(root, ignore_errors=True)

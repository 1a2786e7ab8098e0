"""Run nats-server locally: one server, or a hub and a gateway leaf joined by a leaf node link.

The harness behind `baton nats up`, the tests and the benchmarks::

    from shared.natsrun import LocalTopology

    async with LocalTopology("gw1") as topo:
        topo.leaf.mqtt_url     # sensors publish here (MQTT `a/b` is NATS `a.b`)
        topo.leaf.client_url   # the edge daemon; JetStream domain "edge-gw1"
        topo.hub.client_url    # the cloud; JetStream domain "hub"

Errors are the `HarnessError` branch of `shared.errors`: `BinaryNotFound`, `PortInUse`,
`ServerStartError`.
"""

from shared.natsrun.binary import ENV_VAR, find_nats_server, nats_server_version
from shared.natsrun.config import (
    HUB_DOMAIN,
    ServerConfig,
    hub_config,
    leaf_config,
    leaf_domain,
)
from shared.natsrun.ports import free_port
from shared.natsrun.server import NatsServer
from shared.natsrun.topology import DEFAULT_GATEWAY, LocalTopology

__all__ = [
    "DEFAULT_GATEWAY",
    "ENV_VAR",
    "HUB_DOMAIN",
    "LocalTopology",
    "NatsServer",
    "ServerConfig",
    "find_nats_server",
    "free_port",
    "hub_config",
    "leaf_config",
    "leaf_domain",
    "nats_server_version",
]

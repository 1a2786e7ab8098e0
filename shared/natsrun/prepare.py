"""A gateway leaf's own streams exist before the leaf serves a single sensor.

nats-server acknowledges an MQTT QoS 1 PUBLISH (PUBACK) once it has routed it, and a
subject no stream captures routes nowhere: the reading is acknowledged and kept by no
one. No server option refuses such a publish (the `mqtt {}` block has none), so the
leaf's UPLINK stream must exist before its MQTT listener takes the first connection:

    harness     `NatsServer.start()` of a `leaf_config` creates them before it returns
                (`create_gateway_streams`): `LocalTopology`, `baton nats up`, the demo
    gateway     baton-nats.service runs `baton nats ensure-streams --leaf-config
                /etc/baton/leaf.conf` as `ExecStartPre=` (`prepare_leaf_store`): the leaf
                starts once privately, from its own config and on its own store but with
                every listener on a free loopback port, no link to the hub and a single
                throwaway login; the streams are created; it stops. Only then does systemd
                start the leaf that devices reach, so there is no moment in which it
                accepts MQTT and stores nowhere, not even on a gateway's first boot.

Creating never changes a stream that exists (`shared.streams.ensure_leaf`): the edge
daemon sets UPLINK's limits from edge.toml when it starts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from shared.errors import HarnessError, ServerStartError
from shared.natsrun.config import LEAF_DOMAIN_PREFIX, ServerConfig, _q
from shared.natsrun.ports import HOST, free_port
from shared.natsrun.server import READY_TIMEOUT_S, NatsServer

log = logging.getLogger(__name__)

# One JetStream API round trip on loopback, with room for a loaded gateway.
API_TIMEOUT_S = 10.0
_PRIVATE_USER = "baton-prepare"


async def create_gateway_streams(
    client_url: str,
    *,
    gateway: str | None = None,
    user: str | None = None,
    password: str | None = None,
    timeout_s: float = API_TIMEOUT_S,
) -> tuple[str, list[str]]:
    """Create the missing streams of the gateway whose leaf serves `client_url`.

    `gateway` defaults to the one the leaf's JetStream domain names (`edge-<gateway>`).
    Returns the gateway and the names of the streams created (none when all existed).
    Raises `ServerStartError` when the leaf cannot be reached or refuses.
    """
    import nats  # lazily: `baton doctor` imports this package to report a missing nats-py
    from nats.errors import Error as NatsError

    from shared import streams

    try:
        nc = await nats.connect(
            client_url,
            user=user,
            password=password,
            allow_reconnect=False,
            connect_timeout=timeout_s,
        )
    except (NatsError, OSError, asyncio.TimeoutError) as exc:
        raise ServerStartError(f"cannot reach the leaf at {client_url}: {exc!r}") from exc
    try:
        js = nc.jetstream(timeout=timeout_s)
        domain = (await js.account_info()).domain or ""
        gateway = gateway or _gateway_of(domain)
        created = await streams.ensure_leaf(nc.jetstream(domain=domain, timeout=timeout_s), gateway)
    except (NatsError, asyncio.TimeoutError) as exc:
        raise ServerStartError(f"cannot create the streams of leaf {client_url}: {exc!r}") from exc
    finally:
        await nc.close()
    if created:
        log.info("created gateway %s's leaf streams %s", gateway, created)
    return gateway, created


def _gateway_of(domain: str) -> str:
    if not domain.startswith(LEAF_DOMAIN_PREFIX):
        raise HarnessError(f"JetStream domain {domain!r} is not a gateway leaf's (edge-<id>)")
    return domain[len(LEAF_DOMAIN_PREFIX) :]


@dataclass(frozen=True, slots=True)
class PrivateLeafConfig(ServerConfig):
    """A gateway's leaf config, included as it is, with what would reach the world moved.

    nats-server keeps the last value of a key: every listener, the leaf node remotes and
    the logins are set again after the include. A config that gains another listener
    (websocket, cluster) must get it overridden here too; tests/deploy checks the result.
    """

    leaf_conf: Path = Path()
    password: str = ""

    def render(self) -> str:
        # nats-server resolves an include relative to the including file, never absolute.
        include = os.path.relpath(self.leaf_conf, self.store_dir)
        return (
            "\n".join(
                [
                    "# Written by `baton nats ensure-streams`: the gateway leaf, started privately",
                    "# to create its streams before it serves devices (shared/natsrun/prepare.py).",
                    f"include {_q(include)}",
                    f"listen: {_q(f'{HOST}:{self.client_port}')}",
                    f"http: {_q(f'{HOST}:{self.monitor_port}')}",
                    f"mqtt {{ listen: {_q(f'{HOST}:{self.mqtt_port}')} }}",
                    "leafnodes { }",
                    "authorization { users = [",
                    f"  {{ user: {_q(_PRIVATE_USER)}, password: {_q(self.password)} }}",
                    "] }",
                ]
            )
            + "\n"
        )


def private_leaf_config(leaf_conf: Path | str) -> PrivateLeafConfig:
    """The private start of the leaf of `leaf_conf`: free loopback ports, a temp dir for
    its config file and log (removed when it closes), a random password."""
    path = Path(leaf_conf).resolve()
    if not path.is_file():
        raise HarnessError(f"no leaf config at {path}")
    return PrivateLeafConfig(
        name="edge-prepare",
        domain="",
        store_dir=Path(tempfile.mkdtemp(prefix="baton-prepare-")),
        client_port=free_port(),
        monitor_port=free_port(),
        mqtt_port=free_port(),
        temporary=True,
        leaf_conf=path,
        password=secrets.token_urlsafe(24),
    )


async def prepare_leaf_store(
    leaf_conf: Path | str,
    *,
    binary: Path | str | None = None,
    ready_timeout: float = READY_TIMEOUT_S,
) -> tuple[str, list[str]]:
    """Start the leaf of `leaf_conf` privately, create its gateway's missing streams, stop.

    Run it before the leaf itself starts, never beside it: nats-server does not lock its
    store, and two servers writing one corrupt it. Returns the gateway and the streams created. Raises a `HarnessError`
    (`ServerStartError` with the private server's log) when it cannot.
    """
    config = private_leaf_config(leaf_conf)
    async with NatsServer(config, binary=binary, ready_timeout=ready_timeout) as server:
        return await create_gateway_streams(
            server.client_url, user=_PRIVATE_USER, password=config.password
        )

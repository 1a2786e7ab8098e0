"""`baton nats`: run the system's NATS locally (a hub and one gateway leaf)."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import click

from shared.errors import HarnessError
from shared.natsrun import DEFAULT_GATEWAY, LocalTopology, NatsServer
from shared.natsrun.prepare import create_gateway_streams, prepare_leaf_store

log = logging.getLogger(__name__)

# A gateway's leaf restores its whole store to start: a backlog on an SD card is slow.
PREPARE_READY_TIMEOUT_S = 60.0


@click.group(name="nats")
def nats_group() -> None:
    """Local nats-server processes for development and tests."""


@nats_group.command(name="up")
@click.option(
    "--dir",
    "base_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the stores, configs and logs here (DIR/hub, DIR/edge-GW) across runs. "
    "Default: temp dirs, removed on exit.",
)
@click.option(
    "--gateway",
    default=DEFAULT_GATEWAY,
    show_default=True,
    help="Gateway id; the leaf's JetStream domain is edge-GATEWAY.",
)
@click.option("--mqtt-port", type=int, default=None, help="Leaf MQTT port (default: a free one).")
@click.option("--hub-port", type=int, default=None, help="Hub client port (default: a free one).")
@click.option("--leaf-port", type=int, default=None, help="Leaf client port (default: a free one).")
def up(
    base_dir: Path | None,
    gateway: str,
    mqtt_port: int | None,
    hub_port: int | None,
    leaf_port: int | None,
) -> None:
    """Start a hub and a gateway leaf nats-server and keep them running.

    \b
    What starts:
      hub    JetStream domain "hub", accepts leaf node links (the cloud's side)
      leaf   JetStream domain "edge-GATEWAY", an MQTT listener for sensors, and
             a leaf node link to the hub (the gateway's side)

    Both listen on 127.0.0.1 only. The command prints every URL, then waits;
    Ctrl-C (or SIGTERM) stops the leaf, then the hub, and exits 0.

    \b
    Next, in another terminal:
      baton sim run --broker MQTT_URL          simulated sensors into the leaf
      nats --server LEAF_URL sub 'baton.>'     watch readings (MQTT a/b is NATS a.b)
    """
    topology = LocalTopology(
        gateway,
        base_dir=base_dir,
        hub_port=hub_port,
        leaf_port=leaf_port,
        mqtt_port=mqtt_port,
    )
    asyncio.run(_run(topology))


@nats_group.command(name="ensure-streams")
@click.option(
    "--leaf-config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The gateway leaf's nats-server config (e.g. /etc/baton/leaf.conf). The leaf "
    "must not be running: nothing stops two servers sharing its store (use --url then).",
)
@click.option(
    "--url",
    default=None,
    help="A running leaf's client URL, with a login that may create streams "
    "(nats://user:password@host:port), instead of --leaf-config.",
)
@click.option(
    "--ready-timeout",
    type=float,
    default=PREPARE_READY_TIMEOUT_S,
    show_default=True,
    help="Seconds the private start may take (it reads the whole store).",
)
def ensure_streams(leaf_config: Path | None, url: str | None, ready_timeout: float) -> None:
    """Create the gateway's own streams (UPLINK) on its leaf, if missing.

    \b
    With --leaf-config (what baton-nats.service runs before the leaf starts): start
    the leaf privately from that config and on its store, with every listener on a
    free loopback port, no hub link and a throwaway login; create what is missing;
    stop it. The leaf's MQTT listener then never acknowledges a reading that no
    stream keeps. Idempotent: a stream that exists is left as it is (the edge
    daemon sets its limits from edge.toml).
    """
    if (leaf_config is None) == (url is None):
        raise click.UsageError("give one of --leaf-config FILE or --url URL")
    try:
        if leaf_config is not None:
            gateway, created = asyncio.run(
                prepare_leaf_store(leaf_config, ready_timeout=ready_timeout)
            )
        else:
            gateway, created = asyncio.run(create_gateway_streams(url or ""))
    except HarnessError as exc:
        raise click.ClickException(str(exc)) from exc
    what = f"created {', '.join(created)}" if created else "all present"
    click.echo(f"gateway {gateway}: leaf streams {what}")


async def _run(topology: LocalTopology) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if await _start_unless_stopped(topology, stop):
            _echo_started(topology)
            await stop.wait()
        click.echo("stopping: leaf, then hub ...")
    finally:
        await topology.aclose()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    click.echo("stopped")


async def _start_unless_stopped(topology: LocalTopology, stop: asyncio.Event) -> bool:
    """Start the topology; False if a signal came first (the caller then closes it)."""
    starting = asyncio.create_task(_start(topology), name="nats-up-start")
    signalled = asyncio.create_task(stop.wait(), name="nats-up-signal")
    done: set[asyncio.Task[None] | asyncio.Task[bool]] = set()
    try:
        done, _ = await asyncio.wait({starting, signalled}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (starting, signalled):
            task.cancel()
        await asyncio.gather(starting, signalled, return_exceptions=True)
    if starting in done:
        starting.result()  # a start error propagates
        return True
    return False


async def _start(topology: LocalTopology) -> None:
    hub, leaf = topology.hub, topology.leaf
    where = "temp dirs, removed on exit" if hub.config.temporary else str(hub.store_dir.parent)
    click.echo(f"stores: {where}")
    click.echo(f"starting hub nats-server (JetStream domain {hub.domain!r}) ...")
    await hub.start()
    click.echo(
        f"starting leaf nats-server (JetStream domain {leaf.domain!r}, MQTT, "
        "and the gateway's UPLINK stream) ..."
    )
    await leaf.start()
    click.echo("waiting for the leaf node link to carry JetStream ...")
    await topology.wait_linked()


def _echo_started(topology: LocalTopology) -> None:
    hub, leaf = topology.hub, topology.leaf
    click.echo("ready")
    _echo_server("hub", hub)
    _echo_server("leaf", leaf)
    click.echo("")
    click.echo("next:")
    click.echo(f"  baton sim run --broker {leaf.mqtt_url}")
    click.echo(f"  nats --server {leaf.client_url} sub 'baton.>'")
    click.echo("Ctrl-C to stop.")


def _echo_server(label: str, server: NatsServer) -> None:
    rows = [
        ("client", server.client_url),
        ("mqtt", server.mqtt_url),
        ("leafnode", server.leafnode_url),
        ("monitor", server.monitor_url),
        ("domain", server.domain),
        ("store", str(server.store_dir)),
        ("log", str(server.log_path)),
        ("pid", str(server.pid)),
    ]
    for key, value in rows:
        if value is not None:
            click.echo(f"{label:<5} {key:<9} {value}")

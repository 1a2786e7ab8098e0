"""The daemon's links to the outside, built from the config: the leaf connection, where
readings come from, where commands go, and the uplink/downlink to the hub.

`edge.uplink` is imported only when the uplink or downlink is enabled, and translated
here, in one place, into the small interfaces of `edge.ingest.ports`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from nats.aio.client import Client
from nats.errors import Error as NatsError

from edge.config import EdgeConfig
from edge.ingest.nats_source import NatsCommandSink, NatsSource
from edge.ingest.ports import CommandSink, ReadingSource, UplinkHandle
from shared.compat import timeout
from shared.config import redact_url
from shared.creds.permissions import gateway_inbox_prefix
from shared.errors import TransportError
from shared.hlc import HybridLogicalClock

log = logging.getLogger(__name__)

# The leaf runs on the same machine: if it does not answer in this long it is not
# running, and systemd restarting us is better than hanging in start-up.
CONNECT_TIMEOUT_S = 5.0
# Pause between two connection attempts to the leaf.
RECONNECT_WAIT_S = 0.5
# On close, in-flight publishes (commands) get this long to reach the leaf.
CLOSE_TIMEOUT_S = 5.0


class Startable(Protocol):
    async def start(self) -> None: ...
    async def aclose(self) -> None: ...


def needs_nats(
    cfg: EdgeConfig,
    source: ReadingSource | None,
    sink: CommandSink | None,
    uplink: UplinkHandle | None,
) -> bool:
    """Whether any part will talk to the leaf (an MQTT-only, offline gateway need not)."""
    mqtt_in = source is None and cfg.ingest.source == "mqtt"
    if source is None and not mqtt_in:
        return True
    if sink is None and not (mqtt_in or isinstance(source, CommandSink)):
        return True
    return (uplink is None and cfg.uplink.enabled) or cfg.downlink.enabled


async def nats_client(url: str, gateway: str) -> Client:
    nc = Client()

    async def on_error(exc: Exception) -> None:
        log.warning("leaf connection: %r", exc)

    async def on_disconnect() -> None:
        if not (nc.is_closed or nc.is_draining):  # our own close is no news
            log.warning("leaf connection lost; reconnecting")

    async def on_reconnect() -> None:
        log.info("leaf connection back")

    try:
        async with timeout(CONNECT_TIMEOUT_S):
            await nc.connect(
                url,
                name=f"baton-edge-{gateway}",
                # Replies from the hub reach a leaf only on subjects its gateway may
                # subscribe to (shared/creds/permissions.py), so not on `_INBOX.>`.
                inbox_prefix=gateway_inbox_prefix(gateway),
                connect_timeout=2,
                reconnect_time_wait=RECONNECT_WAIT_S,  # type: ignore[arg-type]
                # nats-py retries a failed *first* connect forever when this is -1;
                # start-up should fail fast instead (the leaf is local, systemd restarts).
                max_reconnect_attempts=1,
                error_cb=on_error,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
            )
    except (OSError, NatsError, asyncio.TimeoutError) as exc:
        raise TransportError(f"cannot connect to the leaf at {redact_url(url)}: {exc!r}") from exc
    # Once connected, reconnect forever: the gateway must outlive a leaf restart. The
    # client reads this option on every reconnect round.
    nc.options["max_reconnect_attempts"] = -1
    return nc


async def close_nats(nc: Client) -> None:
    """Flush what is buffered (commands, submits), then close."""
    if nc.is_closed:
        return
    try:
        async with timeout(CLOSE_TIMEOUT_S):
            await nc.flush()
    except (NatsError, asyncio.TimeoutError) as exc:
        log.warning("leaf connection not flushed on close: %r", exc)
    await nc.close()


def reading_source(cfg: EdgeConfig, nc: Client | None) -> ReadingSource:
    ingest = cfg.ingest
    if ingest.source == "mqtt":
        # Here, not at the top: paho costs a leaf-subject gateway ~4 MB for nothing.
        from edge.ingest.mqtt_source import MqttSource

        return MqttSource(
            ingest.mqtt_url,
            f"baton-edge-{cfg.gateway}",
            username=ingest.mqtt_username,
            password=ingest.mqtt_password,
        )
    assert nc is not None
    return NatsSource(nc)


def command_sink(source: ReadingSource, nc: Client | None) -> CommandSink:
    """Commands go back through the broker the readings came from."""
    if isinstance(source, CommandSink):
        return source
    assert nc is not None
    return NatsCommandSink(nc)


def uplink(nc: Client, cfg: EdgeConfig, clock: HybridLogicalClock) -> UplinkHandle:
    from edge.uplink import Uplink

    handle: UplinkHandle = Uplink(nc, cfg.gateway, cfg.uplink, clock=clock)
    return handle


def downlink(
    nc: Client, cfg: EdgeConfig, handler: Any, *, events: UplinkHandle | None
) -> Startable:
    """`handler` is the daemon; refusals and applied updates are reported via `events`."""
    from edge.uplink import Downlink

    link: Startable = Downlink(nc, cfg.gateway, cfg.downlink, handler, events=events)
    return link


def uplink_health(stats: Any) -> dict[str, Any] | None:
    """The uplink part of `/healthz` from an `UplinkStats` (None: no uplink)."""
    if stats is None:
        return None
    return {
        "backlog_msgs": int(getattr(stats, "backlog_msgs", 0)),
        "backlog_bytes": int(getattr(stats, "backlog_bytes", 0)),
        "hub_connected": bool(getattr(stats, "hub_connected", False)),
        "forwarded": int(getattr(stats, "forwarded", 0)),
        "errors": int(getattr(stats, "errors", 0)),
    }

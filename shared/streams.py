"""The durable layout both sides agree on: JetStream streams, KV buckets, object stores.

    leaf (domain edge-<gw>)                         hub (domain hub)
    UPLINK  baton.d.*.r|ack|status, uplink.<gw>.>   FLEET     fleet.>      (dedupe window)
      └─ forwarder ── Nats-Msg-Id ───────────────▶  DOWNLINK  downlink.>   (one durable per gw)
                                                    SESSIONS  session.>    (audit)
                                                    KV twins, KV leases, OS models, OS snapshots

UPLINK captures the device subjects itself, so a reading the leaf accepted is on disk
whether or not the edge daemon is running (a daemon kill -9 loses nothing). It is a work
queue: the forwarder's ack after the hub's PubAck is what frees the space.

UPLINK must exist before the leaf serves its first sensor: nats-server PUBACKs an MQTT
QoS 1 PUBLISH that no stream captures, and the reading is then kept nowhere. So it is
created with the leaf (`ensure_leaf`, from `shared.natsrun.prepare`: the harness's leaf
start and the gateway unit's `baton nats ensure-streams`), not by the daemon's first
start; the daemon then sets its limits from edge.toml (`edge.uplink.Uplink.start`).
"""

from __future__ import annotations

import contextlib
from typing import Literal

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError

from shared import subjects

# JetStream de-duplicates by Nats-Msg-Id inside this window (ADR-31's default is 2 min).
# A replay from a gateway offline for longer is still applied once, by the cloud's
# idempotent consumers keyed by (gateway, device, sequence).
DUPLICATE_WINDOW_S = 120.0
# Gateway store: 1 GiB / 7 days by default; past either, the oldest readings go first
# (see `uplink_stream`): fresh data matters more to a fleet than old backlog.
UPLINK_MAX_BYTES = 1 << 30
UPLINK_MAX_AGE_S = 7 * 24 * 3600.0
FLEET_MAX_AGE_S = 7 * 24 * 3600.0
DOWNLINK_MAX_AGE_S = 24 * 3600.0
# A lease not renewed for this long is expired, and the previous owner may reclaim it.
LEASE_TTL_S = 10.0

FullPolicy = Literal["drop_oldest", "refuse_new"]
# JSStreamNameExistErr: a stream of that name exists with another configuration.
_STREAM_NAME_IN_USE = 10058


def uplink_stream(
    gateway: str,
    *,
    max_bytes: int = UPLINK_MAX_BYTES,
    max_age_s: float = UPLINK_MAX_AGE_S,
    when_full: FullPolicy = "drop_oldest",
) -> StreamConfig:
    """The gateway's store-and-forward buffer on the leaf.

    Full-disk policy: `drop_oldest` (default) deletes the oldest unforwarded messages to
    take new ones (counted by the forwarder as `dropped_full`); `refuse_new` keeps the
    backlog and refuses new writes. Beware: nats-server sends an MQTT QoS 1 PUBACK before
    JetStream stores the message, so under `refuse_new` readings that MQTT sensors send
    while the store is full are lost at the leaf without the sensor knowing; only the
    daemon's own `submit()`s see the refusal. Hence `drop_oldest` as the default.
    """
    return StreamConfig(
        name=subjects.UPLINK_STREAM,
        description=f"store-and-forward buffer of gateway {gateway}",
        subjects=[
            subjects.READINGS_ALL,
            subjects.ACKS_ALL,
            subjects.STATUS_ALL,
            subjects.uplink_all(gateway),
        ],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        max_bytes=max_bytes,
        max_age=max_age_s,
        discard=DiscardPolicy.OLD if when_full == "drop_oldest" else DiscardPolicy.NEW,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=1,
    )


def _hub_stream(
    name: str, description: str, subject: str, replicas: int, max_age_s: float | None
) -> StreamConfig:
    """A hub stream: file storage, limits retention, the dedupe window, R`replicas`."""
    return StreamConfig(
        name=name,
        description=description,
        subjects=[subject],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=max_age_s,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=replicas,
    )


def fleet_stream(replicas: int = 1) -> StreamConfig:
    return _hub_stream(
        subjects.FLEET_STREAM,
        "readings, decisions and events forwarded by gateways",
        subjects.FLEET_ALL,
        replicas,
        FLEET_MAX_AGE_S,
    )


def downlink_stream(replicas: int = 1) -> StreamConfig:
    return _hub_stream(
        subjects.DOWNLINK_STREAM,
        "commands, desired state and rule/model updates for gateways",
        subjects.DOWNLINK_ALL,
        replicas,
        DOWNLINK_MAX_AGE_S,
    )


def sessions_stream(replicas: int = 1) -> StreamConfig:
    return _hub_stream(
        subjects.SESSIONS_STREAM,
        "audit log of every agent session event",
        subjects.SESSIONS_ALL,
        replicas,
        None,
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream, or update it in place when it exists (idempotent at start-up)."""
    try:
        await js.stream_info(config.name or "")
    except NotFoundError:
        await js.add_stream(config=config)
        return
    # Some fields (storage, retention) cannot change in place; keep the existing stream
    # rather than refuse to start.
    with contextlib.suppress(BadRequestError):
        await js.update_stream(config=config)


async def create_stream(js: JetStreamContext, config: StreamConfig) -> bool:
    """Create the stream unless it exists; never change one that does. True if created."""
    name = config.name or ""
    try:
        await js.stream_info(name)
        return False
    except NotFoundError:
        pass
    try:
        await js.add_stream(config=config)
    except BadRequestError as exc:
        # Someone else (the daemon starting meanwhile) created it first, with its limits.
        if exc.err_code == _STREAM_NAME_IN_USE:
            return False
        raise
    return True


def leaf_streams(gateway: str) -> tuple[StreamConfig, ...]:
    """The gateway's own streams on its leaf, with default limits."""
    return (uplink_stream(gateway),)


async def ensure_leaf(js: JetStreamContext, gateway: str) -> list[str]:
    """Create the gateway's leaf streams that are missing; the names of those created.

    One that exists is kept as it is: its limits are the daemon's, from edge.toml.
    """
    return [
        config.name or "" for config in leaf_streams(gateway) if await create_stream(js, config)
    ]


async def ensure_hub(js: JetStreamContext, replicas: int = 1) -> None:
    """Everything the hub needs; safe to call from every cloud replica at start-up."""
    for config in (fleet_stream(replicas), downlink_stream(replicas), sessions_stream(replicas)):
        await ensure_stream(js, config)
    await js.create_key_value(
        KeyValueConfig(bucket=subjects.TWINS_BUCKET, history=5, replicas=replicas)
    )
    await js.create_key_value(
        KeyValueConfig(bucket=subjects.LEASES_BUCKET, history=1, ttl=LEASE_TTL_S, replicas=replicas)
    )
    for store in (subjects.MODELS_STORE, subjects.SNAPSHOTS_STORE):
        await js.create_object_store(store)

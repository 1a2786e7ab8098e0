"""Every NATS subject, MQTT topic, stream, KV bucket and object store name, in one place.

Sensors speak MQTT to the gateway's leaf nats-server; its MQTT listener maps topic levels
`a/b/c` to the subject `a.b.c`, so each device topic has a twin subject below. Device and
gateway ids are restricted (see `ID_PATTERN`) so that no id can add a level, a wildcard
(`+ # * >`) or a `..` path, which is what keeps "a device publishes only as itself"
enforceable by per-identity subject permissions (deploy/ and `baton creds`).
"""

from __future__ import annotations

import re

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)

# JetStream domains: the hub's, and one per gateway leaf.
HUB_DOMAIN = "hub"

# Streams and stores.
UPLINK_STREAM = "UPLINK"  # on the leaf: the gateway's durable store-and-forward buffer
FLEET_STREAM = "FLEET"  # on the hub: everything gateways forwarded
DOWNLINK_STREAM = "DOWNLINK"  # on the hub: commands, desired state, rule/model updates
SESSIONS_STREAM = "SESSIONS"  # on the hub: audit of every session event
TWINS_BUCKET = "twins"  # hub KV: device twins, the source of truth
LEASES_BUCKET = "leases"  # hub KV: session ownership; the revision is the fencing epoch
PLANS_BUCKET = "plans"  # hub KV: plan records, the source of truth of sagas
PLANNER_BUCKET = "planner"  # hub KV: acks filed by any replica, trigger windows
PLAN_LEASES_BUCKET = "plan_leases"  # hub KV: which replica drives a saga (TTL)
MODELS_STORE = "models"  # hub Object Store: ONNX/GGUF files pushed to gateways
SNAPSHOTS_STORE = "snapshots"  # hub Object Store: session snapshots too big for one message


def is_valid_id(value: str) -> bool:
    # fullmatch: `$` alone would also match before a trailing newline.
    return _ID_RE.fullmatch(value) is not None


def check_id(value: str, what: str = "id") -> str:
    if not is_valid_id(value):
        raise ValueError(f"invalid {what} {value!r}: must match {ID_PATTERN}")
    return value


def gateway_domain(gateway: str) -> str:
    return f"edge-{check_id(gateway, 'gateway id')}"


# --- device side (MQTT topics and their NATS twins on the leaf) ----------------------

MQTT_ROOT = "baton/d"


def mqtt_reading(device: str) -> str:
    return f"{MQTT_ROOT}/{device}/r"


def mqtt_command(device: str) -> str:
    return f"{MQTT_ROOT}/{device}/cmd"


def mqtt_ack(device: str) -> str:
    return f"{MQTT_ROOT}/{device}/ack"


def mqtt_status(device: str) -> str:
    """Retained `online`, and the last will `offline` (MQTT 3.1.1 §3.1.2.5)."""
    return f"{MQTT_ROOT}/{device}/status"


def mqtt_to_nats(topic: str) -> str:
    """The subject nats-server's MQTT listener maps `topic` to (no `.` inside levels)."""
    return topic.replace("/", ".")


READINGS_ALL = "baton.d.*.r"
ACKS_ALL = "baton.d.*.ack"
STATUS_ALL = "baton.d.*.status"
MQTT_READINGS_ALL = f"{MQTT_ROOT}/+/r"
MQTT_ACKS_ALL = f"{MQTT_ROOT}/+/ack"
MQTT_STATUS_ALL = f"{MQTT_ROOT}/+/status"


def device_from_subject(subject: str) -> str:
    """`baton.d.<device>.r` -> `<device>` (also accepts the MQTT form)."""
    parts = subject.replace("/", ".").split(".")
    return parts[2] if len(parts) >= 4 else ""


# --- gateway -> hub ------------------------------------------------------------------

# r: reading, ack: command ack, status: online/offline, dec: reflex decision,
# twin: reported state, ev: other gateway events.
UPLINK_TYPES = ("r", "ack", "status", "dec", "twin", "ev")


def uplink(gateway: str, kind: str, device: str) -> str:
    """Leaf-local UPLINK stream subject: `uplink.<gw>.<kind>.<device>`."""
    return f"uplink.{gateway}.{kind}.{device}"


def uplink_all(gateway: str) -> str:
    return f"uplink.{gateway}.>"


def fleet(gateway: str, kind: str, device: str) -> str:
    """Hub FLEET stream subject the forwarder publishes to."""
    return f"fleet.{gateway}.{kind}.{device}"


FLEET_ALL = "fleet.>"


def msg_id(gateway: str, device: str, kind: str, key: int | str) -> str:
    """`Nats-Msg-Id` for JetStream de-duplication: one id per (gateway, device, kind, key);
    key is the reading's `seq`, or the id of a decision, command or twin version."""
    return f"{gateway}/{device}/{kind}/{key}"


# --- headers --------------------------------------------------------------------------

# JetStream de-duplicates on this header inside the stream's duplicate window (ADR-31).
HDR_MSG_ID = "Nats-Msg-Id"
# Stamped by the gateway's forwarder on everything it moves to the hub.
HDR_GATEWAY = "Baton-Gateway"
HDR_HLC = "Baton-Hlc"


# --- hub -> gateway ------------------------------------------------------------------


def downlink(gateway: str, kind: str, device: str | None = None) -> str:
    """`downlink.<gw>.cmd.<device>`, `downlink.<gw>.desired.<device>`, `downlink.<gw>.rules`."""
    return f"downlink.{gateway}.{kind}" + (f".{device}" if device else "")


def downlink_all(gateway: str) -> str:
    return f"downlink.{gateway}.>"


DOWNLINK_ALL = "downlink.>"


# --- sessions ------------------------------------------------------------------------


def session_events(session: str) -> str:
    return f"session.{session}.ev"


SESSIONS_ALL = "session.>"


def rtc_signal(session: str, side: str) -> str:
    """WebRTC signaling inbox of one side (`edge` / `cloud` / `browser`) of a session."""
    return f"rtc.{session}.{side}"


def handoff_request(gateway: str) -> str:
    return f"handoff.{gateway}.request"


# Mirrors of names shared/session keeps to itself (owner.py, snapshot.py), for the
# permissions of `baton creds`: keep both in step.


def handoff_all(gateway: str) -> str:
    """Every op of the edge owner's inbox `handoff.<gw>.<op>` (shared.session.owner)."""
    return f"handoff.{gateway}.>"


def session_snapshot(session: str) -> str:
    """A session's snapshots in the SESSIONS stream (shared.session.snapshot)."""
    return f"session.{session}.snap"


def session_blob(session: str, blob: str) -> str:
    """The chunks of a snapshot too big for one message (shared.session.snapshot)."""
    return f"session.{session}.blob.{blob}"


# Cloud owners' inboxes `cloud.session.<replica>.<op>`, and the queue-group subject any
# replica answers a handoff's prepare on (shared.session.owner).
CLOUD_SESSION_PREPARE = "cloud.session.prepare"
CLOUD_SESSION_ALL = "cloud.session.>"

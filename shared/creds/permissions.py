"""Who may publish and subscribe to what: one allow list per role, everything else denied.

Where each role connects and what its permissions protect::

    device ──MQTT/NATS──▶ leaf (edge-<gw>) ◀── edge daemon (user "edge", trusted, local)
                             │ leaf node link, authenticated as gateway <gw> (NKEY)
                             ▼
                            hub (domain "hub") ◀── orchestrator (NKEY)

- A device publishes only its own readings, acks and status and subscribes only to its
  own commands. nats-server's MQTT listener maps `baton/d/<dev>/r` to `baton.d.<dev>.r`
  and checks the same user permissions on the mapped subject, so one list serves both
  protocols. MQTT's own `$MQTT.>` subjects (sessions, QoS 1 deliveries, retained
  messages) are allowed implicitly for MQTT connections since nats-server 2.12.3
  (nats-server#7637; before it a restricted user's QoS 1 SUBSCRIBE is refused). Granting
  them by hand would let a NATS client holding a device's password read every device's
  QoS 1 deliveries, so we never do, and need `MIN_NATS_SERVER` instead.
- A gateway's permissions apply on the hub to its leaf node link: "publish" is what the
  leaf may send into the hub, "subscribe" is the interest it may register there, i.e.
  what the hub may send to it. Its subtree is `fleet.<gw>.>` up, its own DOWNLINK
  consumer `edge-<gw>` down, replies to its own inbox prefix `_INBOX_<gw>`, and reads of
  the shared model store. Subjects the gateway names in a request body (a consumer's
  deliver subject) cannot be checked here; see deploy/README.md "Security notes".
- The orchestrator runs the hub's JetStream and the fleet's control plane; it is trusted
  with the hub's API but not with the device subjects of any leaf.

Device ids cannot hold `.`, `*`, `>` or `/` (`shared.subjects.ID_PATTERN`), which is what
makes a per-device subject an exact, unspoofable boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared import subjects

HUB_API = f"$JS.{subjects.HUB_DOMAIN}.API"
# The first release where MQTT clients of restricted users may subscribe at QoS 1.
MIN_NATS_SERVER = (2, 12, 3)


@dataclass(frozen=True, slots=True)
class Permissions:
    """Allow lists; a subject matching neither is refused by the server."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


ALL = Permissions(publish=(">",), subscribe=(">",))
"""The edge daemon on its own leaf: the gateway's trusted local process."""


def gateway_inbox_prefix(gateway: str) -> str:
    """The inbox prefix the edge daemon must connect with (`nats.connect(inbox_prefix=...)`).

    Replies from the hub (PubAcks, JetStream API answers, pulled messages) reach a leaf
    only on subjects its gateway may subscribe to; a per-gateway prefix keeps one
    gateway from registering interest in another's replies, which `_INBOX.>` would allow.
    """
    return f"_INBOX_{subjects.check_id(gateway, 'gateway id')}"


def downlink_consumer(gateway: str) -> str:
    """The durable DOWNLINK consumer of a gateway on the hub (edge/uplink/downlink.py)."""
    return f"edge-{subjects.check_id(gateway, 'gateway id')}"


def device(device_id: str) -> Permissions:
    dev = subjects.check_id(device_id, "device id")
    own = (subjects.mqtt_reading(dev), subjects.mqtt_ack(dev), subjects.mqtt_status(dev))
    return Permissions(
        publish=tuple(subjects.mqtt_to_nats(topic) for topic in own),
        subscribe=(subjects.mqtt_to_nats(subjects.mqtt_command(dev)),),
    )


def gateway(gateway_id: str) -> Permissions:
    gw = subjects.check_id(gateway_id, "gateway id")
    durable = downlink_consumer(gw)
    downlink = subjects.DOWNLINK_STREAM
    models = f"OBJ_{subjects.MODELS_STORE}"
    return Permissions(
        publish=(
            # Uplink: forwarded readings, decisions and events, under its own id only.
            f"fleet.{gw}.>",
            # Probes and lookups the uplink and downlink make (account info, stream info).
            f"{HUB_API}.INFO",
            f"{HUB_API}.STREAM.INFO.{subjects.FLEET_STREAM}",
            f"{HUB_API}.STREAM.INFO.{downlink}",
            # Its DOWNLINK consumer. Only the create form that names the filter in the
            # subject, which the server checks against the body (nats-server 2.9+): the
            # legacy DURABLE.CREATE would let a gateway filter on another's subtree.
            f"{HUB_API}.CONSUMER.CREATE.{downlink}.{durable}.downlink.{gw}.>",
            f"{HUB_API}.CONSUMER.INFO.{downlink}.{durable}",
            f"{HUB_API}.CONSUMER.MSG.NEXT.{downlink}.{durable}",
            f"$JS.ACK.{downlink}.{durable}.>",
            # Model updates: read the shared Object Store (ordered consumer, meta lookup;
            # nats-py finds the chunks' stream by subject first, through STREAM.NAMES,
            # which names streams and shows nothing of their content).
            f"{HUB_API}.STREAM.NAMES",
            f"{HUB_API}.STREAM.INFO.{models}",
            f"{HUB_API}.STREAM.MSG.GET.{models}",
            f"{HUB_API}.DIRECT.GET.{models}.>",
            f"{HUB_API}.CONSUMER.CREATE.{models}",
            f"{HUB_API}.CONSUMER.CREATE.{models}.>",
            f"{HUB_API}.CONSUMER.DELETE.{models}.>",
            f"$JS.FC.{models}.>",
        ),
        subscribe=(f"{gateway_inbox_prefix(gw)}.>",),
    )


def orchestrator() -> Permissions:
    control = ("downlink.>", "session.>", "rtc.>", "handoff.>")
    return Permissions(
        publish=(
            "$JS.API.>",
            f"{HUB_API}.>",
            "$JS.ACK.>",
            "$JS.FC.>",
            "$KV.>",
            "$O.>",
            *control,
            # Answers to requests it serves (signaling, handoff).
            "_INBOX.>",
        ),
        subscribe=("_INBOX.>", subjects.FLEET_ALL, *control),
    )

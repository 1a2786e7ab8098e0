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
- Session handoff (`_gateway_handoff`): a gateway hears its own owner inbox
  `handoff.<gw>.>` and asks the cloud replicas' `cloud.session.>`; a session's lease,
  log, snapshots and WebRTC signaling are named by the session alone, so every gateway
  reaches those of every session. The cloud's requests to a gateway carry the asking
  replica's inbox as reply subject. nats-server's `allow_responses` does not help across
  a leaf node link (the hub offers a leaf interest only in subjects it may publish to,
  and the leaf drops what its copy of the list refuses before the hub could count it as
  a reply), so a gateway may publish to `REQUEST_REPLIES`, the shape of every client's
  request inbox, and to nothing shaped like a consumer's deliver subject.
- The orchestrator runs the hub's JetStream and the fleet's control plane; it is trusted
  with the hub's API but not with the device subjects of any leaf.

Device ids cannot hold `.`, `*`, `>` or `/` (`shared.subjects.ID_PATTERN`), which is what
makes a per-device subject an exact, unspoofable boundary.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared import subjects

HUB_API = f"$JS.{subjects.HUB_DOMAIN}.API"
# The first release where MQTT clients of restricted users may subscribe at QoS 1.
MIN_NATS_SERVER = (2, 12, 3)
# nats-py's request inboxes, `_INBOX.<nuid>.<token>` (one muxed subscription per
# connection); its consumers deliver to `_INBOX.<nuid>`, which this does not match. A
# gateway may answer on it (see the module docstring): a hostile one that guessed a
# hub client's token could forge that client an answer, never a consumer's message.
REQUEST_REPLIES = "_INBOX.*.*"


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
    handoff = _gateway_handoff(gw)
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
            *handoff.publish,
        ),
        subscribe=(f"{gateway_inbox_prefix(gw)}.>", *handoff.subscribe),
    )


def _gateway_handoff(gw: str) -> Permissions:
    """What the edge daemon's `SessionHost` (owner `edge:<gw>`, shared/session) needs.

    Only its inbox `handoff.<gw>.<op>` carries the gateway, so only that is its own:
    another gateway can neither hear nor send to it. Session ids carry no gateway, and
    so neither do the lease keys (`$KV.leases.<session>`), the log and snapshots
    (`session.<session>.>`) or WebRTC signaling (`rtc.<session>.<side>`): any gateway
    may read and compare-and-set any session's lease, append to its log, and answer
    `rtc.<session>.edge`. The lease CAS fences honest owners, not a hostile gateway;
    scoping these needs the gateway in the session's subjects (deploy/README.md).
    """
    return Permissions(
        publish=(
            *_LEASE_GRANTS,
            *_SESSIONS_GRANTS,
            # The cloud replicas' inboxes (prepare, commit, ask, request; any replica
            # through the `cloud.session.prepare` queue group) and the signaling inbox
            # of a cloud-owned session this gateway follows.
            subjects.CLOUD_SESSION_ALL,
            subjects.rtc_signal("*", "cloud"),
            # Answers to what the cloud asks it (the ops above on its own inbox, WebRTC
            # offers): the asking replica's request inbox (see the module docstring).
            REQUEST_REPLIES,
        ),
        subscribe=(
            # Its own owner inbox, every op (request, prepare, commit, ask, open, ...).
            subjects.handoff_all(gw),
            # Offers for the sessions it owns, from cloud (and browser) followers.
            subjects.rtc_signal("*", "edge"),
        ),
    )


_LEASES = f"KV_{subjects.LEASES_BUCKET}"
# The `leases` bucket (shared.session.lease, .board): the bucket's info, a key's last
# value by subject (STREAM.MSG.GET; DIRECT.GET where the bucket allows direct gets, as
# nats.go makes buckets), and the CAS writes, which cross the leaf node link only in
# the domain-prefixed form. The lease board watches every key: an ordered push consumer
# into `_INBOX_<gw>`, created unnamed (the filter is in the body, so unchecked; reading
# every lease is what the board is for).
_LEASE_GRANTS = (
    f"{HUB_API}.STREAM.INFO.{_LEASES}",
    f"{HUB_API}.STREAM.MSG.GET.{_LEASES}",
    f"{HUB_API}.DIRECT.GET.{_LEASES}.$KV.{subjects.LEASES_BUCKET}.*",
    f"{HUB_API}.$KV.{subjects.LEASES_BUCKET}.*",
    f"{HUB_API}.CONSUMER.CREATE.{_LEASES}",
    f"{HUB_API}.CONSUMER.INFO.{_LEASES}.*",
    f"$JS.FC.{_LEASES}.>",
)

_SESSIONS = subjects.SESSIONS_STREAM
# The event log and snapshots in the SESSIONS stream (shared.session.log, .snapshot,
# .feed): appends, a subject's last message, ordered consumers for followers (created
# unnamed, the filter in the body) and pull consumers for log and blob reads (named, the
# filter in the subject, which the server checks against the body); none is deleted,
# each expires when idle.
# - Appends need all of `session.>`, not `session.*.ev|snap|blob.*`: the hub offers a
#   leaf the stream's `session.>` interest only where its reverse match finds an allow
#   entry under it, and that match does not look past a `*` followed by more tokens
#   (nats-server sublist.go `getAllNodes`), so the narrow list leaves no interest at all.
# - No STREAM.PURGE, though the owner purges a superseded snapshot's blob with it: the
#   filter is in the body, so it would let a gateway wipe every session's audit. Blobs
#   the edge supersedes stay (the purge is refused; shared.session.snapshot logs it).
_SESSIONS_GRANTS = (
    subjects.SESSIONS_ALL,
    f"{HUB_API}.STREAM.MSG.GET.{_SESSIONS}",
    f"{HUB_API}.CONSUMER.CREATE.{_SESSIONS}",
    f"{HUB_API}.CONSUMER.CREATE.{_SESSIONS}.*.{subjects.session_events('*')}",
    f"{HUB_API}.CONSUMER.CREATE.{_SESSIONS}.*.{subjects.session_blob('*', '*')}",
    f"{HUB_API}.CONSUMER.MSG.NEXT.{_SESSIONS}.*",
    f"$JS.FC.{_SESSIONS}.>",
)


def orchestrator(gateways: Iterable[str] = ()) -> Permissions:
    control = ("downlink.>", "session.>", "rtc.>", "handoff.>", subjects.CLOUD_SESSION_ALL)
    return Permissions(
        publish=(
            "$JS.API.>",
            f"{HUB_API}.>",
            "$JS.ACK.>",
            "$JS.FC.>",
            "$KV.>",
            "$O.>",
            *control,
            # Answers to requests it serves (signaling, handoff): a hub client's inbox,
            # or a gateway's (`gateway_inbox_prefix`), one entry per gateway.
            "_INBOX.>",
            *(f"{gateway_inbox_prefix(gw)}.>" for gw in gateways),
        ),
        subscribe=("_INBOX.>", subjects.FLEET_ALL, *control),
    )

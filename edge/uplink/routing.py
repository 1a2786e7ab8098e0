"""Where each message of the leaf UPLINK stream goes at the hub, and under which id.

    leaf subject                  hub subject               Nats-Msg-Id key
    baton.d.<dev>.r               fleet.<gw>.r.<dev>        the reading's `seq`
    baton.d.<dev>.ack             fleet.<gw>.ack.<dev>      the ack's `cmd_id`
    baton.d.<dev>.status          fleet.<gw>.status.<dev>   the leaf stream sequence
    uplink.<gw>.<kind>.<dev>      fleet.<gw>.<kind>.<dev>   the Nats-Msg-Id `submit` set

The id is what makes re-sending safe: JetStream drops a message whose Nats-Msg-Id it
has stored within the stream's duplicate window (ADR-31), so a forwarder that re-sends
after a lost PubAck, or after being killed before its local ack, stores nothing twice.
Readings and acks are keyed by what the device put in them, so a device's own QoS 1
re-send (MQTT 3.1.1 §4.3.2, DUP) is absorbed too. The payload crosses unchanged.

`Baton-Hlc` is when the leaf stored the message (`stored_hlc`), not when it is forwarded:
the cloud orders a device's status, readings and acks by it, so a copy re-sent after the
hub's duplicate window, which the hub stores again, must carry the stamp the first copy
had to be recognised as old (facts the daemon makes itself, twin reports and decisions,
carry their own `hlc` in the payload and are ordered by that).
"""

from __future__ import annotations

from collections.abc import Mapping

from edge.ingest.ids import child_span
from edge.uplink.pipeline import Outgoing
from shared import codec, hlc, subjects, trace
from shared.errors import DecodeError
from shared.messages import CommandAck, Reading

MSG_ID = subjects.HDR_MSG_ID
GATEWAY = subjects.HDR_GATEWAY
HLC = subjects.HDR_HLC
TRACEPARENT = trace.HEADER
_NS_PER_MS = 1_000_000
# 10,000 steps a millisecond fit the HLC's 16 logical bits.
_NS_PER_STEP = 100


class Unroutable(DecodeError):
    """A leaf message the hub must not get: not ours, or not what its subject claims."""

    reason = "unroutable"


def message_id(gateway: str, device: str, kind: str, key: str | int) -> str:
    return subjects.msg_id(gateway, device, kind, key)


def stored_hlc(stored_ns: int) -> int:
    """The `Baton-Hlc` of a message the leaf stored at `stored_ns` (ns since the epoch).

    The same for every delivery of that message, however late. Milliseconds as the
    physical part, the 100 ns steps within that millisecond (0..9,999) as the logical
    part: two messages stored one after the other keep their order.
    """
    return hlc.pack(stored_ns // _NS_PER_MS, stored_ns % _NS_PER_MS // _NS_PER_STEP)


def route(
    subject: str,
    data: bytes,
    headers: Mapping[str, str] | None,
    *,
    stream_seq: int,
    gateway: str,
    hlc: int,
) -> Outgoing:
    """The hub publish of one leaf message (payload unchanged); `DecodeError` if none."""
    parts = subject.split(".")
    if len(parts) != 4:
        raise Unroutable(f"subject {subject!r}")
    if parts[0] == "baton" and parts[1] == "d":
        device, kind = parts[2], parts[3]
        key, parent = _device_key(device, kind, data, stream_seq)
        mid = message_id(gateway, device, kind, key)
        span = child_span(parent) if parent else trace.new_traceparent()
    elif parts[0] == "uplink" and parts[1] == gateway:
        kind, device = parts[2], parts[3]
        headers = headers or {}
        mid = headers.get(MSG_ID) or message_id(gateway, device, kind, stream_seq)
        parent = headers.get(TRACEPARENT)  # unchecked until here
        if parent is not None and trace.is_valid(parent):
            span = child_span(parent)
        else:
            span = trace.new_traceparent()
    else:
        raise Unroutable(f"subject {subject!r}")
    if not subjects.is_valid_id(device) or kind not in subjects.UPLINK_TYPES:
        raise Unroutable(f"subject {subject!r}")
    return Outgoing(
        subject=subjects.fleet(gateway, kind, device),
        payload=data,
        headers={
            MSG_ID: mid,
            # Each hop is a span of the reading's trace (W3C trace-context §3.2).
            TRACEPARENT: span,
            GATEWAY: gateway,
            HLC: str(hlc),
        },
    )


def _device_key(
    device: str, kind: str, data: bytes, stream_seq: int
) -> tuple[str | int, str | None]:
    """Dedupe key and parent trace of a message a device published itself."""
    # The forwarder moves bytes unchanged and the hub validates them in full, so reading
    # the envelope is enough here (and keeps the drain near raw publishing speed).
    if kind in ("r", "ack"):
        envelope = codec.peek(data, Reading if kind == "r" else CommandAck)
        _check_device(device, envelope.device)
        return envelope.key, envelope.traceparent
    if kind == "status":
        # `online` / `offline` (a retained message or the last will): no key of its own.
        return stream_seq, None
    raise Unroutable(f"device subject kind {kind!r}")


def _check_device(subject_device: str, claimed: str) -> None:
    # Subject permissions make the subject the device's identity; a payload naming
    # another device is a spoof or a bug, and the hub must not file it under either.
    if claimed != subject_device:
        raise Unroutable(f"payload device {claimed!r} on the subject of {subject_device!r}")

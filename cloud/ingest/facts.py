"""FLEET message → `Fact`: the one place a forwarded payload is parsed and checked.

A FLEET message is `fleet.<gw>.<kind>.<dev>` carrying the device's original payload
bytes; a gateway's own events (`GatewayEvent`: a refused update, quarantine counts,
stats) come on `fleet.<gw>.ev.<gw>`, naming the device they concern, if any, in the
payload. The forwarder adds `Nats-Msg-Id`, `Baton-Gateway`, `Baton-Hlc` and `traceparent`
headers. Both the ingest consumer (effects) and the read-model projector (views) parse
through here, so the two can never disagree about what a message means.

Order. A fact's `hlc` must be the same on every copy of it: a gateway re-sends after the
hub's duplicate window, FLEET stores the copy again, and the twin fold recognises it as
old only by its HLC (reports, status) or its sequence (readings). So it is the stamp
made when the fact came to be at the edge, never one made when it was forwarded:

    kind                          hlc
    twin, dec (the daemon's)      the payload's `hlc`, stamped when the daemon made it
    r, ack, status (a device's)   `Baton-Hlc`: when the leaf stored it
    ev, and the above without     `Baton-Hlc`, else the payload's `hlc`, else `ts_ms`

Every refusal is a `Rejected` with a stable `reason` label (the codec's reasons plus
`bad_subject`, `bad_hlc`, `clock_drift`, `gateway_mismatch`, `device_mismatch`,
`bad_status`), never an unhandled exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cloud.errors import Rejected
from shared import codec, hlc, subjects
from shared.errors import DecodeError
from shared.messages import CommandAck, Decision, GatewayEvent, Message, Reading, ReportedState

HLC_HEADER: Final = subjects.HDR_HLC
GATEWAY_HEADER: Final = subjects.HDR_GATEWAY
MSG_ID_HEADER: Final = subjects.HDR_MSG_ID
# Kinds whose effect is on the twin (KV); the others are events for views and agents.
TWIN_KINDS: Final = frozenset({"r", "twin", "status"})
# Kinds the edge daemon makes and stamps itself (`ReportedState.hlc` by the twin keeper,
# `Decision.hlc` by the reflex engine): their payload's stamp orders them. A device's own
# payload may carry an `hlc` too, but a device's stamp is not the gateway's.
SELF_STAMPED_KINDS: Final = frozenset({"twin", "dec"})
_STATUS = {b"online": True, b"offline": False}


@dataclass(frozen=True, slots=True)
class Fact:
    """One accepted FLEET message.

    `body` is the decoded message (`Reading` for `r`, `ReportedState` for `twin`,
    `CommandAck`, `Decision` or any message for `ev`), or a bool for `status` (online).
    `hlc` orders facts of one device, the same on every copy (module docstring): the
    daemon's own stamp for `twin` and `dec`, else the leaf's store time from the
    `Baton-Hlc` header, else the payload's, else the device's own `ts_ms`. For a
    gateway's own event (`ev` on `fleet.<gw>.ev.<gw>`)
    `device` is the gateway id, the subject's last token. `stream_seq` is the message's
    FLEET stream sequence (0 when not read from FLEET).
    """

    gw: str
    device: str
    kind: str
    hlc: int
    body: Message | bool
    stream_seq: int = 0

    @property
    def key(self) -> str:
        """The twin's key in the `twins` KV bucket."""
        return twin_key(self.gw, self.device)

    @property
    def hlc_ms(self) -> int:
        return hlc.unpack(self.hlc)[0]


def twin_key(gw: str, device: str) -> str:
    return f"{gw}.{device}"


def parse(
    subject: str,
    headers: dict[str, str] | None,
    data: bytes,
    *,
    now_ms: int,
    stream_seq: int = 0,
) -> Fact:
    """Check and decode one FLEET message; `Rejected` with a reason on any problem."""
    gw, kind, device = _split_subject(subject)
    headers = headers or {}
    sender = headers.get(GATEWAY_HEADER)
    if sender is not None and sender != gw:
        raise Rejected("gateway_mismatch", f"header {sender!r} on {subject}")
    body = _decode_body(kind, data)
    _check_identity(body, gw, device)
    stamp = _stamp(kind, headers.get(HLC_HEADER), body, now_ms)
    return Fact(gw=gw, device=device, kind=kind, hlc=stamp, body=body, stream_seq=stream_seq)


def _split_subject(subject: str) -> tuple[str, str, str]:
    parts = subject.split(".")
    if len(parts) != 4 or parts[0] != "fleet":
        raise Rejected("bad_subject", subject)
    _, gw, kind, device = parts
    if not (subjects.is_valid_id(gw) and subjects.is_valid_id(device)):
        raise Rejected("bad_subject", subject)
    if kind not in subjects.UPLINK_TYPES:
        raise Rejected("unknown_kind", f"kind {kind!r} in {subject}")
    return gw, kind, device


def _decode_body(kind: str, data: bytes) -> Message | bool:
    if kind == "status":
        online = _STATUS.get(bytes(data).strip().lower())
        if online is None:
            raise Rejected("bad_status", repr(bytes(data[:32])))
        return online
    expected: dict[str, type[Message]] = {
        "r": Reading,
        "twin": ReportedState,
        "ack": CommandAck,
        "dec": Decision,
    }
    try:
        if kind in expected:
            return codec.decode(data, expected[kind])
        return codec.decode(data)
    except DecodeError as exc:
        raise Rejected(exc.reason, exc.detail) from exc


def _check_identity(body: Message | bool, gw: str, device: str) -> None:
    # The subject is what hub permissions guard (`fleet.<gw>.>` per gateway); a payload
    # naming another device or gateway is a forgery or a bug, never a fact about it.
    # A gateway's own event is published under its own id (`fleet.<gw>.ev.<gw>`, see
    # `edge.uplink.report`): the subject vouches for the gateway only, and the event
    # may name any of its devices, or none.
    gateway_event = isinstance(body, GatewayEvent) and device == gw
    claimed_device = getattr(body, "device", device)
    if claimed_device != device and not gateway_event:
        raise Rejected("device_mismatch", f"payload device {claimed_device!r} on {device!r}")
    claimed_gw = getattr(body, "gw", None)
    if claimed_gw is not None and claimed_gw != gw:
        raise Rejected("gateway_mismatch", f"payload gw {claimed_gw!r} on {gw!r}")


def _stamp(kind: str, header: str | None, body: Message | bool, now_ms: int) -> int:
    forwarded = None if header is None else _header_stamp(header)
    own = _own_stamp(body) if kind in SELF_STAMPED_KINDS else None
    if own is not None:
        stamp = own
    elif forwarded is not None:
        stamp = forwarded
    else:
        stamp = _payload_stamp(body, now_ms)
    # A stamp from a gateway clock far in the future would win every later ordering
    # decision for its device; refuse it the way `shared.hlc` refuses remote drift.
    if hlc.unpack(stamp)[0] - now_ms > hlc.MAX_DRIFT_MS:
        raise Rejected("clock_drift", f"{hlc.unpack(stamp)[0] - now_ms} ms ahead")
    return stamp


def _header_stamp(header: str) -> int:
    # Checked even where the payload's stamp is used: a malformed header is refused.
    try:
        stamp = int(header)
    except ValueError as exc:
        raise Rejected("bad_hlc", repr(header[:32])) from exc
    if stamp < 0:
        raise Rejected("bad_hlc", repr(header[:32]))
    return stamp


def _own_stamp(body: Message | bool) -> int | None:
    stamped = getattr(body, "hlc", None)
    return stamped if isinstance(stamped, int) else None


def _payload_stamp(body: Message | bool, now_ms: int) -> int:
    own = _own_stamp(body)
    if own is not None:
        return own
    ts_ms = getattr(body, "ts_ms", None)
    return hlc.pack(ts_ms if isinstance(ts_ms, int) else now_ms, 0)

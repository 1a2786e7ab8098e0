"""Frames: how a session's events travel, many to one message.

aiortc's data channel costs about the same per message whatever its size (~0.2 MB/s at
100-byte messages, ~4 MB/s at 16 KiB), and so does a JetStream publish, so events are
packed into frames: a msgpack map with any of

    e   list of encoded events (each one `shared.codec` message, decoded and validated
        on its own), consecutive `seq`s
    w   [log_pos, seq]: "every event up to seq is in the SESSIONS stream at or before
        stream sequence log_pos": where a receiver resumes from NATS if the channel drops
    a   the receiver's ack: the last seq it has (receiver -> sender)
    h   a heartbeat: the sender is alive and has nothing to say
    n   the sender's head: the last seq it had emitted when the channel attached (sent
        once, first): a receiver holding every seq up to it is in sync
    p   [index, count, bytes]: one piece of an event too big for one channel message

Browsers get the same map as JSON text, with events as JSON objects. A bare event
message (`shared.agent.AuditStream` publishes those to the same subject) reads as a frame
of one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgpack

from shared.codec import MAX_MESSAGE_BYTES, decode, encode_json
from shared.errors import InvalidMessage, MalformedPayload
from shared.messages import AgentEventBase

# Coalesce events into channel messages up to this size (aiortc's sweet spot).
FRAME_BYTES: Final = 16 * 1024
# One channel message never exceeds this; a bigger event goes in pieces. aiortc (and
# browsers) accept 64 KiB unless the peer's SDP says more (RFC 8841 max-message-size).
PIECE_BYTES: Final = 60 * 1024
# The largest frame we decode: a log frame of many events, well under NATS' 1 MiB.
MAX_FRAME_BYTES: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Mark:
    """A durable position: events up to `seq` are in SESSIONS at or before `log_pos`."""

    log_pos: int = 0
    seq: int = 0


@dataclass(slots=True)
class Frame:
    events: list[AgentEventBase] = field(default_factory=list)
    mark: Mark | None = None
    ack: int | None = None
    head: int | None = None
    piece: tuple[int, int, bytes] | None = None


def pack(events: Sequence[bytes], mark: Mark | None = None) -> bytes:
    body: dict[str, Any] = {"e": list(events)}
    if mark is not None:
        body["w"] = [mark.log_pos, mark.seq]
    return _packb(body)


def pack_json(events: Sequence[AgentEventBase], mark: Mark | None = None) -> str:
    parts = ",".join(encode_json(event).decode() for event in events)
    tail = f',"w":[{mark.log_pos},{mark.seq}]' if mark is not None else ""
    return '{"e":[' + parts + "]" + tail + "}"


def pack_ack(seq: int) -> bytes:
    return _packb({"a": seq})


def pack_beat(mark: Mark | None = None, head: int | None = None) -> bytes:
    body: dict[str, Any] = {"h": 1}
    if head is not None:
        body["n"] = head
    if mark is not None:
        body["w"] = [mark.log_pos, mark.seq]
    return _packb(body)


def pack_pieces(data: bytes, size: int = PIECE_BYTES) -> list[bytes]:
    count = -(-len(data) // size)
    return [_packb({"p": [i, count, data[i * size : (i + 1) * size]]}) for i in range(count)]


def unpack(data: bytes | str) -> Frame:
    """Decode one frame; raises a `shared.errors.DecodeError` with the reason."""
    if len(data) > MAX_FRAME_BYTES:
        raise MalformedPayload(f"frame of {len(data)} bytes > {MAX_FRAME_BYTES}")
    raw = _parse(data)
    if "kind" in raw:  # one bare event (the agent engine's own audit publishes these)
        return Frame(events=[decode_event(data if isinstance(data, bytes) else raw)])
    frame = Frame(events=[decode_event(item) for item in _list(raw.get("e", []), "e")])
    if "w" in raw:
        log_pos, seq = _pair(raw["w"])
        frame.mark = Mark(log_pos, seq)
    if "a" in raw:
        frame.ack = _int(raw["a"], "a")
    if "n" in raw:
        frame.head = _int(raw["n"], "n")
    if "p" in raw:
        index, count, chunk = _list(raw["p"], "p") + [None] * 3
        if not isinstance(chunk, bytes):
            raise InvalidMessage("piece must be [index, count, bytes]", field="p")
        frame.piece = (_int(index, "p"), _int(count, "p"), chunk)
    return frame


def _packb(body: dict[str, Any]) -> bytes:
    packed: bytes = msgpack.packb(body, use_bin_type=True)
    return packed


def _parse(data: bytes | str) -> dict[str, Any]:
    try:
        if isinstance(data, str):
            raw = json.loads(data)
        else:
            raw = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.UnpackException, TypeError, RecursionError) as exc:
        raise MalformedPayload(f"frame: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidMessage("a frame is a map")
    return raw


def decode_event(item: Any) -> AgentEventBase:
    """One event of a frame (msgpack bytes, or a JSON object), validated."""
    if isinstance(item, dict):  # JSON frames carry objects
        item = json.dumps(item).encode()
    if not isinstance(item, bytes):
        raise InvalidMessage("an event is a msgpack or JSON message", field="e")
    event = decode(item, max_bytes=MAX_MESSAGE_BYTES)
    if not isinstance(event, AgentEventBase):
        raise InvalidMessage(f"{type(event).__name__} is not an agent event", field="e")
    return event


def _list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidMessage("must be a list", field=name)
    return value


def _int(value: Any, name: str) -> int:
    if type(value) is not int or value < 0:
        raise InvalidMessage("must be a non-negative integer", field=name)
    return value


def _pair(value: Any) -> tuple[int, int]:
    items = _list(value, "w")
    if len(items) != 2:
        raise InvalidMessage("must be [log_pos, seq]", field="w")
    return _int(items[0], "w"), _int(items[1], "w")

"""Frames: how a session's events travel, many to one message.

aiortc's data channel costs about the same per message whatever its size (~0.2 MB/s at
100-byte messages, ~4 MB/s at 16 KiB), and so does a JetStream publish, so events are
packed into frames: a msgpack map with any of

    e   the events: a msgpack array of event maps, each exactly the bytes
        `shared.codec.encode` made (spliced in, not re-encoded), validated one by one
    w   [log_pos, seq]: "every event up to seq is in the SESSIONS stream at or before
        stream sequence log_pos": where a receiver resumes from NATS if the channel drops
    a   the receiver's ack: the last seq it has (receiver -> sender)
    h   a heartbeat: the sender is alive and has nothing to say
    n   the sender's head: the last seq it had emitted when the channel attached (sent
        once, first): a receiver holding every seq up to it is in sync
    p   [index, count, bytes]: one piece of an event too big for one channel message

A frame is parsed once (one `msgpack.unpackb`), then each event map is checked the way
the codec checks a message (schema version, kind, the pydantic model) — the live path's
receiver cost is a third of decoding each event separately. Browsers get the same map as
JSON text, with events as JSON objects. A bare event message (`shared.agent.AuditStream`
publishes those to the same subject) reads as a frame of one.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgpack
from pydantic import TypeAdapter, ValidationError

from shared.codec import MAX_MESSAGE_BYTES, encode, encode_json
from shared.errors import InvalidMessage, MalformedPayload, PayloadTooLarge, UnsupportedSchema
from shared.messages import AGENT_EVENT_TYPES, SUPPORTED_VERSIONS, AgentEvent, AgentEventBase

# Coalesce events into channel messages up to this size (aiortc's sweet spot).
FRAME_BYTES: Final = 16 * 1024
# One channel message never exceeds this; a bigger event goes in pieces. aiortc (and
# browsers) accept 64 KiB unless the peer's SDP says more (RFC 8841 max-message-size).
PIECE_BYTES: Final = 60 * 1024
# The largest frame we decode: a log frame of many events, well under NATS' 1 MiB.
MAX_FRAME_BYTES: Final = 1024 * 1024

_EVENT: TypeAdapter[AgentEventBase] = TypeAdapter(AgentEvent)
# The validator of each `type`'s model, called directly: the tagged union's dispatch
# costs ~10%, `model_validate`'s own argument checks another ~10%.
_BY_TYPE: Final[dict[Any, Callable[[Any], Any]]] = {
    cls.model_fields["type"].default: cls.__pydantic_validator__.validate_python
    for cls in AGENT_EVENT_TYPES
}
# The event types whose fields hold only msgpack-native values (str, int, float, bool,
# None, JSON lists and maps) and no serializer: `model_dump` of one is its `__dict__`.
_PLAIN: Final = {
    cls: len(cls.model_fields)
    for cls in AGENT_EVENT_TYPES
    if not cls.__pydantic_decorators__.field_serializers
    and not cls.__pydantic_decorators__.model_serializers
    and not cls.model_computed_fields
}
# One packer for `encode_event` (packb makes one per call). It runs no Python code while
# it packs (no `default` hook), so the GIL makes each call whole; it resets on an error.
_PACK_EVENT: Final = msgpack.Packer(use_bin_type=True).pack
_E_KEY: Final = b"\xa1e"  # msgpack fixstr "e"
_W_KEY: Final = b"\xa1w"
_ONE: Final = b"\x81" + _E_KEY + b"\x91"  # {"e": [<one event>]}


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


def encode_event(event: AgentEventBase) -> bytes:
    """The bytes `shared.codec.encode(event)` makes, at less than half its cost: the
    fields are packed from the model's `__dict__`, without pydantic's serializer (the
    live path encodes each event once, for the channels, the log and the replay window
    alike). An event of another type, or holding a value msgpack cannot pack (a model
    made with `model_construct`), goes through the codec."""
    fields = event.__dict__
    if _PLAIN.get(type(event)) == len(fields):
        try:
            packed: bytes = _PACK_EVENT({**fields, "kind": event.kind})
            return packed
        except TypeError:
            pass
    return encode(event)


def pack_one(event: bytes) -> bytes:
    """The live path's most common frame: one event, no mark."""
    return _ONE + event


def pack(events: Sequence[bytes], mark: Mark | None = None) -> bytes:
    """A frame of already-encoded events (msgpack maps), spliced into one array."""
    parts = [b"\x82" if mark is not None else b"\x81", _E_KEY, _array_header(len(events))]
    parts.extend(events)
    if mark is not None:
        parts += [_W_KEY, _packb([mark.log_pos, mark.seq])]
    return b"".join(parts)


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
        raise PayloadTooLarge(f"frame of {len(data)} bytes > {MAX_FRAME_BYTES}")
    if isinstance(data, bytes) and data.startswith(_ONE):
        # The live path's frame of one event (`pack_one`): parse the event alone. Bytes
        # after it fail the parse as they would fail the whole frame's.
        return Frame([event_of(_load(data[len(_ONE) :]))])
    raw = _parse(data)
    if "kind" in raw:  # one bare event (the agent engine's own audit publishes these)
        return Frame(events=[event_of(raw)])
    frame = Frame(events=[event_of(item) for item in _list(raw.get("e", []), "e")])
    if "w" in raw:
        log_pos, seq = _pair(raw["w"])
        frame.mark = Mark(log_pos, seq)
    if "a" in raw:
        frame.ack = _int(raw["a"], "a")
    if "n" in raw:
        frame.head = _int(raw["n"], "n")
    if "p" in raw:
        index, count, chunk = [*_list(raw["p"], "p"), None, None, None][:3]
        if not isinstance(chunk, bytes):
            raise InvalidMessage("piece must be [index, count, bytes]", field="p")
        frame.piece = (_int(index, "p"), _int(count, "p"), chunk)
    return frame


def decode_event(data: bytes) -> AgentEventBase:
    """One encoded event (a reassembled piece), checked like a frame's events."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise PayloadTooLarge(f"{len(data)} bytes > limit {MAX_MESSAGE_BYTES}")
    return event_of(_load(data))


def event_of(raw: Any) -> AgentEventBase:
    """Check one event map as `shared.codec.decode` checks a message."""
    if not isinstance(raw, dict):
        raise InvalidMessage("an event is a map", field="e")
    version = raw.get("v")
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        raise UnsupportedSchema(f"schema version {version!r}")
    if raw.get("kind") != "agent_event":
        raise InvalidMessage(f"kind {raw.get('kind')!r} is not an agent event", field="kind")
    validate = _BY_TYPE.get(raw.get("type"))
    try:
        if validate is None:  # no such type: the union refuses it, naming the tag
            return _EVENT.validate_python(raw)
        event: AgentEventBase = validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        # The union's error locations start with the tag; a model's with the field.
        loc = first["loc"] if validate is not None else first["loc"][1:]
        raise InvalidMessage(first["msg"], field=".".join(map(str, loc)) or "type") from exc
    return event


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes([0x90 | n])
    if n < 1 << 16:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)


def _packb(body: Any) -> bytes:
    packed: bytes = msgpack.packb(body, use_bin_type=True)
    return packed


def refuse_ext(code: int, data: bytes) -> Any:
    """msgpack `ext_hook`: no extension type is part of the wire contract."""
    raise MalformedPayload(f"msgpack extension type {code} is not part of the contract")


def _parse(data: bytes | str) -> dict[str, Any]:
    raw = _load(data)
    if not isinstance(raw, dict):
        raise InvalidMessage("a frame is a map")
    return raw


def _load(data: bytes | str) -> Any:
    try:
        if isinstance(data, str):
            raw = json.loads(data)
        else:
            # A msgpack timestamp (ext -1) decodes to msgpack.Timestamp without the hook,
            # and no event field accepts one: validation refuses it with the field name.
            raw = msgpack.unpackb(data, raw=False, strict_map_key=True, ext_hook=refuse_ext)
    except MalformedPayload:
        raise
    except (ValueError, msgpack.UnpackException, TypeError, RecursionError) as exc:
        raise MalformedPayload(f"frame: {exc}") from exc
    return raw


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

"""The wire codec: msgpack out, msgpack or JSON in, with a typed error for every failure.

    encode(msg)              -> bytes (msgpack; `kind` and `v` inside)
    pack(wire)               -> bytes (msgpack of a message's wire dict, built without
                                a model by a hot path that owns every field of it)
    decode(data)             -> Message (any known kind)
    decode(data, Reading)    -> Reading (or InvalidMessage naming the `kind` field)

Decoding refuses, in this order: oversize (before parsing a byte), bytes that are not
msgpack/JSON, a top level that is not a map, an unknown schema version, an unknown kind,
and fields that fail validation (NaN/inf get their own `NonFiniteValue`). Each error's
`.reason` is the label the edge and cloud count rejections by.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast, overload

import msgpack
from pydantic import TypeAdapter, ValidationError

from shared import trace
from shared.errors import (
    InvalidMessage,
    MalformedPayload,
    NonFiniteValue,
    PayloadTooLarge,
    UnknownKind,
    UnsupportedSchema,
)
from shared.messages import (
    AGENT_EVENT_TYPES,
    MESSAGE_TYPES,
    SUPPORTED_VERSIONS,
    AgentEvent,
    Message,
)
from shared.subjects import is_valid_id

# 256 KiB: a reading is ~150 bytes; session snapshots bigger than this go through the
# Object Store, and NATS' own default max_payload (1 MiB) stays well above it.
MAX_MESSAGE_BYTES: Final = 256 * 1024

M = TypeVar("M", bound=Message)
T = TypeVar("T")

_BY_KIND: dict[str, TypeAdapter[Any]] = {cls.kind: TypeAdapter(cls) for cls in MESSAGE_TYPES}
_BY_KIND["agent_event"] = TypeAdapter(AgentEvent)
_KIND_OF: dict[type[Message], str] = {cls: cls.kind for cls in (*MESSAGE_TYPES, *AGENT_EVENT_TYPES)}


def encode(msg: Message) -> bytes:
    """Pack a message as msgpack."""
    return pack(msg.to_wire())


def encode_json(msg: Message) -> bytes:
    """The JSON form, for browsers, logs and MQTT clients that cannot speak msgpack."""
    return pack_json(msg.to_wire())


def pack(wire: Mapping[str, Any]) -> bytes:
    """`encode` of a message already in its wire form (`Message.to_wire()`'s dict).

    For a hot path that builds a message's fields itself and never had a model to dump;
    it owns keeping them what the model would dump (a test per caller pins that)."""
    return cast(bytes, msgpack.packb(wire, use_bin_type=True))


def pack_json(wire: Mapping[str, Any]) -> bytes:
    """`encode_json` of a message already in its wire form."""
    return json.dumps(wire, separators=(",", ":"), allow_nan=False).encode()


@overload
def decode(data: bytes, expect: None = None, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Message: ...
@overload
def decode(data: bytes, expect: type[M], *, max_bytes: int = MAX_MESSAGE_BYTES) -> M: ...


def decode(
    data: bytes, expect: type[M] | None = None, *, max_bytes: int = MAX_MESSAGE_BYTES
) -> Message:
    """Decode and validate one message. Raises a `DecodeError` subclass on any failure."""
    try:
        return _decode(data, expect, max_bytes)
    except RecursionError as exc:
        raise MalformedPayload(f"nested too deep to decode: {exc}") from exc


def _decode(data: bytes, expect: type[M] | None, max_bytes: int) -> Message:
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"{len(data)} bytes > limit {max_bytes}")
    raw = _parse(data)
    kind = _check_envelope(raw)
    if expect is not None:
        wanted = _KIND_OF.get(expect, expect.kind)
        if kind != wanted:
            raise InvalidMessage(f"expected {wanted!r}, got {kind!r}", field="kind")
        return _validate(expect.model_validate, raw, tagged=False)
    tagged = kind == "agent_event"
    return cast(Message, _validate(_BY_KIND[kind].validate_python, raw, tagged=tagged))


@dataclass(frozen=True, slots=True)
class Envelope:
    """What routing needs from a message, read without validating the rest of it."""

    kind: str
    device: str
    key: int | str
    traceparent: str | None


# Which field identifies a message of each routable kind for de-duplication.
_ROUTING_KEY = {"reading": "seq", "command_ack": "cmd_id"}


def peek(data: bytes, expect: type[Message], *, max_bytes: int = MAX_MESSAGE_BYTES) -> Envelope:
    """Parse and check the envelope only: size, format, version, kind, device id and the
    de-duplication key. For hops that forward bytes unchanged (the gateway's forwarder)
    and leave full validation to the endpoints, at a fraction of `decode`'s cost."""
    try:
        return _peek(data, expect, max_bytes)
    except RecursionError as exc:
        raise MalformedPayload(f"nested too deep to decode: {exc}") from exc


def _peek(data: bytes, expect: type[Message], max_bytes: int) -> Envelope:
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"{len(data)} bytes > limit {max_bytes}")
    raw = _parse(data)
    kind = _check_envelope(raw)
    if kind != expect.kind or kind not in _ROUTING_KEY:
        raise InvalidMessage(f"expected {expect.kind!r}, got {kind!r}", field="kind")
    device, key_field = raw.get("device"), _ROUTING_KEY[kind]
    key = raw.get(key_field)
    if not isinstance(device, str) or not is_valid_id(device):
        raise InvalidMessage("not a valid device id", field="device")
    if isinstance(key, bool) or not isinstance(key, int | str) or key == "":
        raise InvalidMessage("missing or of the wrong type", field=key_field)
    tp = raw.get("traceparent")
    return Envelope(kind, device, key, tp if isinstance(tp, str) and trace.is_valid(tp) else None)


# The range msgpack can carry; JSON integers outside it would decode and then fail to
# re-encode, so they are refused where they enter.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
# msgpack decodes extension type -1 (timestamp) itself without calling ext_hook. Its
# headers are fixext4/fixext8 (d6/d7) or ext8 (c7 <len>) followed by the type byte ff;
# only payloads with such a byte pattern pay for the structural check.
_MAYBE_TIMESTAMP = re.compile(rb"[\xd6\xd7]\xff|\xc7[\x00-\xff]\xff", re.DOTALL)


def _parse(data: bytes) -> Any:
    if data[:1] in (b"{", b"[", b" ", b"\n", b"\t", b"\r"):
        return _parse_json(data)
    try:
        # unpackb bounds every container by len(data) itself (msgpack >= 1.0), so a
        # small payload cannot declare a huge array.
        raw = msgpack.unpackb(data, raw=False, strict_map_key=True, ext_hook=_refuse_ext)
    except MalformedPayload:
        raise
    except (msgpack.UnpackException, ValueError, TypeError, RecursionError) as exc:
        raise MalformedPayload(f"invalid msgpack: {exc}") from exc
    # `in` is a C-speed scan; the regex only runs on the rare payload holding a 0xff.
    if b"\xff" in data and _MAYBE_TIMESTAMP.search(data) and _contains_timestamp(raw):
        raise MalformedPayload("msgpack extension type -1 (timestamp) is not part of the contract")
    return raw


def _parse_json(data: bytes) -> Any:
    try:
        return json.loads(data, parse_int=_bounded_int)
    except (ValueError, RecursionError) as exc:
        raise MalformedPayload(f"invalid JSON: {exc}") from exc


class _OutOfRange:
    """Stands in for a JSON integer msgpack cannot carry: no field type accepts it, so
    validation refuses it with the field's name (and an ignored field just drops it)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<integer outside the 64-bit range>"


def _bounded_int(text: str) -> int | _OutOfRange:
    value = int(text)
    return value if _INT_MIN <= value <= _INT_MAX else _OutOfRange()


def _refuse_ext(code: int, data: bytes) -> Any:
    raise MalformedPayload(f"msgpack extension type {code} is not part of the contract")


# Deeper than any message of the contract (a snapshot is ~5 levels); a payload nesting
# further is refused rather than walked.
MAX_DEPTH = 64


def _contains_timestamp(value: Any) -> bool:
    """Iterative (a hostile payload must not exhaust the interpreter's stack)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, msgpack.Timestamp):
            return True
        if depth > MAX_DEPTH:
            raise MalformedPayload(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return False


def _check_envelope(raw: Any) -> str:
    if not isinstance(raw, dict):
        raise InvalidMessage(f"top level must be a map, got {type(raw).__name__}")
    version = raw.get("v")
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        raise UnsupportedSchema(
            f"schema version {version!r} (this build speaks {sorted(SUPPORTED_VERSIONS)})"
        )
    kind = raw.get("kind")
    if not isinstance(kind, str) or kind not in _BY_KIND:
        raise UnknownKind(f"kind {kind!r}")
    return kind


def _validate(validate: Callable[[Any], T], raw: dict[str, Any], *, tagged: bool) -> T:
    try:
        return validate(raw)
    except ValidationError as exc:
        raise _translate(exc, tagged=tagged) from exc


# Labels pydantic puts in an error location for the member of a union that failed; they
# name a type, not a field, so they are left out of `InvalidMessage.field`.
_UNION_LABELS = frozenset({"str", "bool", "int", "float", "list", "dict", "none"})


def _field_of(loc: tuple[int | str, ...], *, tagged: bool) -> str | None:
    parts = loc[1:] if tagged else loc  # a discriminated union puts its tag first
    kept = [str(part) for part in parts if part not in _UNION_LABELS]
    return ".".join(kept) or None


def _translate(exc: ValidationError, *, tagged: bool) -> InvalidMessage:
    errors = exc.errors(include_url=False)
    for error in errors:
        if error["type"] == "finite_number":
            field = _field_of(error["loc"], tagged=tagged)
            return NonFiniteValue("NaN or infinity is not a reading", field=field)
    first = errors[0]
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return InvalidMessage(first["msg"], field="type")
    extra = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return InvalidMessage(first["msg"] + extra, field=_field_of(first["loc"], tagged=tagged))

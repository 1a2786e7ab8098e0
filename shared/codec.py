"""The wire codec: msgpack out, msgpack or JSON in, with a typed error for every failure.

    encode(msg)              -> bytes (msgpack; `kind` and `v` inside)
    decode(data)             -> Message (any known kind)
    decode(data, Reading)    -> Reading (or InvalidMessage naming the `kind` field)

Decoding refuses, in this order: oversize (before parsing a byte), bytes that are not
msgpack/JSON, a top level that is not a map, an unknown schema version, an unknown kind,
and fields that fail validation (NaN/inf get their own `NonFiniteValue`). Each error's
`.reason` is the label the edge and cloud count rejections by.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final, TypeVar, cast, overload

import msgpack
from pydantic import TypeAdapter, ValidationError

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
    return cast(bytes, msgpack.packb(msg.to_wire(), use_bin_type=True))


def encode_json(msg: Message) -> bytes:
    """The JSON form, for browsers, logs and MQTT clients that cannot speak msgpack."""
    return json.dumps(msg.to_wire(), separators=(",", ":"), allow_nan=False).encode()


@overload
def decode(data: bytes, expect: None = None, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Message: ...
@overload
def decode(data: bytes, expect: type[M], *, max_bytes: int = MAX_MESSAGE_BYTES) -> M: ...


def decode(
    data: bytes, expect: type[M] | None = None, *, max_bytes: int = MAX_MESSAGE_BYTES
) -> Message:
    """Decode and validate one message. Raises a `DecodeError` subclass on any failure."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"{len(data)} bytes > limit {max_bytes}")
    raw = _parse(data)
    kind = _check_envelope(raw)
    if expect is not None:
        wanted = _KIND_OF.get(expect, expect.kind)
        if kind != wanted:
            raise InvalidMessage(f"expected {wanted!r}, got {kind!r}", field="kind")
        return _validate(expect.model_validate, raw)
    return cast(Message, _validate(_BY_KIND[kind].validate_python, raw))


def _parse(data: bytes) -> Any:
    # unpackb bounds every container by len(data) itself (msgpack >= 1.0), so a small
    # payload cannot declare a huge array.
    if data[:1] in (b"{", b"[", b" ", b"\n", b"\t", b"\r"):
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise MalformedPayload(f"invalid JSON: {exc}") from exc
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            ext_hook=_refuse_ext,
        )
    except MalformedPayload:
        raise
    except (msgpack.UnpackException, ValueError, TypeError, RecursionError) as exc:
        raise MalformedPayload(f"invalid msgpack: {exc}") from exc


def _refuse_ext(code: int, data: bytes) -> Any:
    raise MalformedPayload(f"msgpack extension type {code} is not part of the contract")


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


def _validate(validate: Callable[[Any], T], raw: dict[str, Any]) -> T:
    try:
        return validate(raw)
    except ValidationError as exc:
        raise _translate(exc) from exc


def _translate(exc: ValidationError) -> InvalidMessage:
    first = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    if first["type"] == "finite_number":
        return NonFiniteValue("NaN or infinity is not a reading", field=field)
    if first["type"] == "union_tag_invalid":
        return InvalidMessage(first["msg"], field="type")
    extra = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return InvalidMessage(first["msg"] + extra, field=field)

"""Reading payloads on the wire, good and deliberately bad.

Good readings are built as plain dicts and packed with msgpack directly: a pydantic model
per reading costs more than the rest of the reading's path in load mode. The dict has the
fields of `shared.messages.Reading.to_wire()` (the optional `gw`/`hlc` are the gateway's
to stamp), and the tests decode these bytes with `shared.codec.decode(data, Reading)`.

Bad payloads each fail decoding with one typed error (see `shared.codec`):
`truncated` -> MalformedPayload, `wrong_types` -> InvalidMessage, `oversized` ->
PayloadTooLarge.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from random import Random
from typing import Any, Final, cast

import msgpack

from firmware_sim.config import PayloadKind
from shared.codec import MAX_MESSAGE_BYTES
from shared.messages import SCHEMA_VERSION, Reading

_KIND: Final = Reading.kind
# Trace ids must be unique, not secret or reproducible: a fast PRNG seeded once from the
# OS, kept apart from the physics generators so it never disturbs a seeded run.
_trace_ids = Random(os.urandom(16))
_packer = msgpack.Packer(use_bin_type=True)


def traceparent() -> str:
    """A fresh W3C traceparent; `| 1` keeps both ids non-zero (trace-context §3.2.2)."""
    bits = _trace_ids.getrandbits
    return f"00-{bits(128) | 1:032x}-{bits(64) | 1:016x}-01"


def reading_dict(
    device: str, seq: int, ts_ms: int, metrics: dict[str, float], dclass: str | None
) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "kind": _KIND,
        "traceparent": traceparent(),
        "device": device,
        "seq": seq,
        "ts_ms": ts_ms,
        "metrics": metrics,
        "dclass": dclass,
    }


def pack(data: dict[str, Any]) -> bytes:
    return cast(bytes, _packer.pack(data))


def truncated(good: dict[str, Any]) -> bytes:
    """A reading cut in half, as a lost radio frame leaves it: not valid msgpack."""
    whole = pack(good)
    return whole[: len(whole) // 2]


def wrong_types(good: dict[str, Any]) -> bytes:
    """Valid msgpack with strings where numbers belong: a firmware bug, not line noise."""
    bad = dict(good, seq=str(good["seq"]))
    bad["metrics"] = {name: f"{value:.2f}" for name, value in good["metrics"].items()}
    return pack(bad)


def oversized(good: dict[str, Any]) -> bytes:
    """A reading padded past the codec's size limit (it is refused before parsing)."""
    return pack(dict(good, blob=bytes(MAX_MESSAGE_BYTES + 1)))


BAD_PAYLOADS: Final[dict[PayloadKind, Callable[[dict[str, Any]], bytes]]] = {
    "truncated": truncated,
    "wrong_types": wrong_types,
    "oversized": oversized,
}
